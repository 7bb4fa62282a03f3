"""jinja2, the one module that imports it: scaffolds and report templates."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.errors import MlciError

TEMPLATE_SUFFIX = ".j2"
# Files whose names start with a dot are stored as "dot-NAME" so that the
# template tree is not mistaken for a live repository (a .github folder there
# would be this repo's own workflows) and nothing drops them as hidden files.
DOT_PREFIX = "dot-"


def templates_root() -> Path:
    """Where the templates are: inside the wheel, or at the root of a source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise MlciError(
        f"mlci's templates are missing (looked in {package / '_templates'} and "
        f"{package.parent / 'templates'})",
        hint="reinstall mlci: pip install --force-reinstall mlci",
    )


def output_name(relative: Path) -> Path:
    parts = ["." + p[len(DOT_PREFIX) :] if p.startswith(DOT_PREFIX) else p for p in relative.parts]
    out = Path(*parts)
    if out.name.endswith(TEMPLATE_SUFFIX):
        out = out.with_name(out.name[: -len(TEMPLATE_SUFFIX)])
    return out


def render_tree(folders: list[Path], context: Mapping[str, Any]) -> dict[Path, str]:
    """Render every file under ``folders`` (later folders win) to {output path: text}.

    ``*.j2`` files go through jinja2 with StrictUndefined, so a missing variable
    is an error rather than an empty string; other files are copied as they are.
    A template that renders to nothing (an optional file, switched off) is left out.
    """
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    out: dict[Path, str] = {}
    for folder in folders:
        for source in sorted(p for p in folder.rglob("*") if p.is_file()):
            if "__pycache__" in source.parts:
                continue
            relative = source.relative_to(folder)
            text = source.read_text(encoding="utf-8")
            if source.name.endswith(TEMPLATE_SUFFIX):
                try:
                    text = env.from_string(text).render(**context)
                except jinja2.TemplateError as exc:
                    raise MlciError(
                        f"template {source}: {exc}",
                        hint="this is a broken template shipped with mlci; please report it",
                    ) from exc
            if text.strip():
                out[output_name(relative)] = text
    return out


# --------------------------------------------------------------------------- reports

GITHUB_COMMENT_LIMIT = 65_536
MAX_SWEEP_ROWS = 50  # leaderboard rows in a comment; `mlci sweep report --json` has them all
_ANSI_RE = re.compile(r"\033\[[0-9;]*m")
_ANSI = {"green": "\033[32m", "red": "\033[31m", "dim": "\033[2m", "bold": "\033[1m"}
_MARKS = {  # how a cell judges the head's change (report.mark), and the legend's words
    "pass": ("✅", "passes its gate"),
    "fail": ("❌", "fails its gate"),
    "inconclusive": ("❔", "its gate is undecided (the interval spans the threshold)"),
    "better": ("🟢", "better beyond the noise"),
    "worse": ("🔴", "worse beyond the noise"),
    "noise": ("⚪", "within the noise (the interval spans no change)"),
}
_TERMINAL_COLOURS = {"pass": "green", "better": "green", "fail": "red", "worse": "red", "noise": "dim"}


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}" if abs(value) >= 1e4 else f"{value:.4f}"


def _signed(value: float) -> str:
    return f"{value:+.4f}" if abs(value) < 1e4 else f"{value:+.4g}"


def _bounds(interval: Any, signed: bool = False) -> str:
    """`` [low, high]`` of an interval ("" without one, or where it is undefined)."""
    if interval is None or interval.low != interval.low:  # NaN: undefined on most resamples
        return ""
    show = _signed if signed else _num
    return f" [{show(interval.low)}, {show(interval.high)}]"


def _head_cell(report: Any, name: str) -> str:
    """The head's value, with its interval where its predictions give one."""
    return _num(report.head.metrics.get(name)) + _bounds(report.head.intervals.get(name))


def _cell(comparison: Any, name: str, report: Any = None) -> str:
    """``name`` in ``comparison``'s column: the baseline's value, then the head's change
    from it with its interval, marked by the gate's outcome or the interval (``report.mark``;
    without ``report``, as a custom template calls it: by the interval alone)."""
    from mlci import report as rpt

    if report is not None:
        return _cell_text(comparison, name, rpt.mark(report, comparison, name))
    row = next((r for r in comparison.rows if r.name == name), None)
    kind = rpt.unruled_mark(comparison, row) if row is not None and comparison.baseline.found else "absent"
    return _cell_text(comparison, name, kind)


def _cell_text(comparison: Any, name: str, kind: str) -> str:
    """The cell of ``name`` in ``comparison``'s column, marked as ``kind`` says."""
    emoji = f"{_MARKS[kind][0]} " if kind in _MARKS else ""
    if not comparison.baseline.found:
        return f"{emoji}(no model yet)" if emoji else "—"
    row = next((r for r in comparison.rows if r.name == name), None)
    if row is None or (row.base is None and row.head is None):
        return "—"
    if row.base is None:  # only the head has it: judged by an absolute rule, if one
        return f"{emoji}new" if emoji else "—"
    if row.head is None:
        return f"{_num(row.base)}, not in this change"
    if row.delta is None or row.verdict == "same":
        return f"{_num(row.base)} → {emoji}no change"
    rel = f", {row.relative * 100:+.2f}%" if row.relative is not None else ""
    spread = _bounds(comparison.intervals.get(name), signed=True)
    return f"{_num(row.base)} → {emoji}{_signed(row.delta)}{spread}{rel}"


@dataclass(frozen=True)
class Column:
    """One column of the metric table: one baseline, or several that hold the same run
    and judge it alike ("staging v0.0.3 = base main@1a2b3c4")."""

    comparisons: tuple[Any, ...]
    cells: tuple[str, ...]
    marks: tuple[str, ...]

    @property
    def label(self) -> str:
        return " = ".join(c.baseline.label for c in self.comparisons)


def columns(report: Any, names: list[str]) -> list[Column]:
    """The table's columns, baselines that hold the same run merged into one: it shows the
    gated environment's marks (the same run gives the same intervals, so an ungated twin
    says nothing more); two gated environments that judge it differently stay apart."""
    from mlci import report as rpt

    ruled = {"pass", "fail", "inconclusive"}
    out: list[Column] = []
    for c in report.comparisons:
        marks = tuple(rpt.mark(report, c, n) for n in names)
        col = Column((c,), tuple(_cell_text(c, n, k) for n, k in zip(names, marks, strict=True)), marks)
        for i, seen in enumerate(out):
            if not rpt.same_model(seen.comparisons[0].baseline, c.baseline):
                continue
            mine, theirs = ruled & set(col.marks), ruled & set(seen.marks)
            if mine and theirs and col.marks != seen.marks:
                continue
            keep = col if mine and not theirs else seen
            out[i] = dataclasses.replace(keep, comparisons=(*seen.comparisons, c))
            break
        else:
            out.append(col)
    return out


def legend(cols: list[Column]) -> str:
    """One line naming the marks the table uses (empty where it uses none)."""
    used = {m for col in cols for m in col.marks}
    parts = [f"{emoji} {words}" for kind, (emoji, words) in _MARKS.items() if kind in used]
    if "change" in used:
        parts.append("no mark: no gate and no interval to judge the change by")
    return " · ".join(parts)


def mermaid_number(value: float) -> str:
    """A number as Mermaid's xychart grammar reads it: six significant digits, never an
    exponent (``1e-07`` is a syntax error there), no ``-0``."""
    import decimal

    if not math.isfinite(value):
        raise ValueError(f"{value} is not a number a chart can draw")
    text = format(decimal.Decimal(f"{value:.6g}"), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "", "-") else text


def axis_range(values: list[float]) -> tuple[float, float]:
    """A y-axis for ``values``: a tenth of their spread on each side, rounded outward to a
    round step (never ``-1.7e-18`` for zero), and never below zero for values that are not."""
    low, high = min(values), max(values)
    try:
        pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
        step = 10 ** math.floor(math.log10(pad))
        bottom = float(math.floor((low - pad) / step) * step)
        top = float(math.ceil((high + pad) / step) * step)
        if low >= 0 > bottom:
            bottom = 0.0
        return float(mermaid_number(bottom)), float(mermaid_number(top))
    except (OverflowError, ValueError):  # near float's limit: the values' own range
        return low, high


# Line colours set explicitly: visible on GitHub's light and dark backgrounds alike (its
# own Mermaid theme draws a pale line): each has a contrast of 3:1 or more against white and
# against the dark theme's background (tests/test_plots.py), and a square of its hue in the legend.
PALETTE = (("#2f81f7", "🟦"), ("#d4700e", "🟧"), ("#2da44e", "🟩"), ("#a371f7", "🟪"))
REFERENCE_COLOUR = ("#8b949e", "⬜")


def _mermaid_head(palette: list[str]) -> str:
    import json

    theme = {"xyChart": {"plotColorPalette": ", ".join(palette)}}
    return "%%{init: " + json.dumps({"themeVariables": theme}) + "}%%"


@dataclass(frozen=True)
class _Style:
    """How one line of a chart is drawn and named: in the Mermaid chart and the SVG one."""

    line: Any  # plots.Series
    colour: str
    square: str  # the legend's square of its hue
    reference: bool

    @property
    def text(self) -> str:
        return f"{self.line.label} ({self.line.note})" if self.line.note else str(self.line.label)


def _styles(chart: Any) -> list[_Style]:
    """Each line of ``chart``: the series in the palette's order, then the reference, grey."""
    out = [_Style(s, *PALETTE[i % len(PALETTE)], False) for i, s in enumerate(chart.series)]
    if chart.reference is not None:
        out.append(_Style(chart.reference, *REFERENCE_COLOUR, True))
    return out


def _history(report: Any) -> list[tuple[str, float]]:
    """The key metric's (version, value) across versions, then the head's; finite values
    only, and nothing where there are fewer than two (one point is no chart)."""
    if not report.key_metric:
        return []
    points = [(v, x) for v, x in report.history]
    head_value = report.head.metrics.get(report.key_metric)
    if head_value is not None:
        points.append((report.head.label, head_value))
    points = [(label, x) for label, x in points if math.isfinite(x)]
    return points if len(points) >= 2 else []


def _chart(report: Any) -> dict[str, Any] | None:
    points = _history(report)
    if not points:
        return None
    values = [x for _, x in points]
    low, high = axis_range(values)
    return {
        "init": _mermaid_head([PALETTE[0][0]]),
        "labels": [json_quote(label) for label, _ in points],
        "points": [mermaid_number(_drawn(x, (high - low) * 1e-9)) for x in values],
        "low": mermaid_number(low),
        "high": mermaid_number(high),
    }


@dataclass(frozen=True)
class DrawnChart:
    """A model plot as Mermaid text, and the legend line under it."""

    chart: Any  # plots.Chart
    mermaid: str
    legend: str


def mermaid_chart(chart: Any) -> DrawnChart | None:
    """``chart`` (``mlci.plots.Chart``) as a Mermaid ``xychart-beta`` line chart: the head
    and each baseline overlaid, the reference grey. Positions where a line has no value
    are left out for every line (Mermaid draws no gaps); an axis of evenly spaced
    positions is numeric, any other is a row of labels. None: fewer than two positions."""
    styles = _styles(chart)
    lines = [style.line for style in styles]
    keep = [
        i
        for i in range(len(chart.x))
        if math.isfinite(chart.x[i])
        and all(line.y[i] is not None and math.isfinite(line.y[i]) for line in lines)
    ]
    if len(keep) < 2:
        return None
    xs = [chart.x[i] for i in keep]
    steps = [b - a for a, b in itertools.pairwise(xs)]
    even = all(math.isclose(s, steps[0], rel_tol=1e-6, abs_tol=1e-12) for s in steps) and steps[0] > 0
    if even:
        x_axis = (
            f'x-axis "{mermaid_text(chart.x_title)}" {mermaid_number(xs[0])} --> {mermaid_number(xs[-1])}'
        )
    else:
        x_axis = "x-axis [" + ", ".join(json_quote(f"{x:.3g}") for x in xs) + "]"
    values = [line.y[i] for line in lines for i in keep]
    low, high = chart.y_range or axis_range(values)
    body = [
        _mermaid_head([style.colour for style in styles]),
        "xychart-beta",
        f'    title "{mermaid_text(chart.title)}"',
        f"    {x_axis}",
        f'    y-axis "{mermaid_text(chart.y_title)}" {mermaid_number(low)} --> {mermaid_number(high)}',
    ]
    tiny = (high - low) * 1e-9  # a value this small against the axis is drawn as 0
    body += [
        "    line [" + ", ".join(mermaid_number(_drawn(line.y[i], tiny)) for i in keep) + "]"
        for line in lines
    ]
    named = [f"{style.square} {markdown_text(style.text)}" for style in styles]
    return DrawnChart(chart, "\n".join(body), " · ".join(named))


def _drawn(value: float, tiny: float) -> float:
    """``value``, or 0 where it is below ``tiny`` (a part in a billion of the axis): no
    250-digit decimals for a value of 1e-246 beside ones of 1e9."""
    return 0.0 if math.isfinite(tiny) and abs(value) < tiny else value


def confusion_rows(confusion: Any) -> list[list[str]]:
    """The confusion matrix as markdown table rows (actual by predicted)."""
    return [
        [f"**{markdown_text(label)}**", *(text for text, _ in cells)]
        for label, cells in _confusion_cells(confusion)
    ]


def _confusion_cells(confusion: Any) -> list[tuple[str, list[tuple[str, bool]]]]:
    """Each actual class and its row: per predicted class, the head's count with the change
    from the baseline's where it differs ("12 (−3, was 15)"), and whether it does."""
    rows = []
    for i, label in enumerate(confusion.labels):
        cells = []
        for j in range(len(confusion.labels)):
            count = confusion.head[i][j]
            was = confusion.baseline[i][j] if confusion.baseline is not None else count
            change = f"{count} ({'+' if count > was else '−'}{abs(count - was)}, was {was})"
            cells.append((change if was != count else str(count), was != count))
        rows.append((label, cells))
    return rows


def json_quote(text: str) -> str:
    return '"' + mermaid_text(text) + '"'


# Everything a pull request controls (metric and param names and values,
# branch names, notes) reaches markdown through one of these: it cannot break
# a table, a code span, the hidden marker or the Mermaid block, inject HTML,
# or @-mention anyone.
_MD_SPECIAL = re.compile(r"[|`\[\]*\\]|&(?=#?\w+;)|<(?=[A-Za-z/!?])|(?<!\w)@(?=\w)")
_MD_REPLACEMENTS = {"&": "&amp;", "<": "&lt;", "@": "&#64;", "`": "&#96;"}
_MAX_CELL = 200


def markdown_text(value: object) -> str:
    """Plain text in markdown: no markup, no HTML tag, no mention, one line."""
    text = " ".join(str(value).split())[:_MAX_CELL]
    return _MD_SPECIAL.sub(lambda m: _MD_REPLACEMENTS.get(m[0], "\\" + m[0]), text)


def inline_code(value: object) -> str:
    """Text as an inline code span that survives any content, in a table too.

    GitHub does not mention or link inside code; a pipe still splits a table
    cell there, so it is escaped; the fence is one backtick longer than any
    run of backticks in the text."""
    text = " ".join(str(value).split())[:_MAX_CELL].replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def link_target(value: object) -> str:
    """A URL as a markdown link target: http(s) only, nothing that ends the link."""
    import urllib.parse

    text = str(value)
    if not text.startswith(("http://", "https://")):
        return "#"
    return urllib.parse.quote(text, safe=":/#?&=%~+@,;!$.-_")


_RELATIVE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


def image_target(value: object) -> str:
    """An image's address in markdown: an http(s) URL (``link_target``), or a plain relative
    path beside the report (letters, digits, ``._-/``, no ``..``); else ``#``."""
    text = str(value)
    if text.startswith(("http://", "https://")):
        return link_target(text)
    return text if _RELATIVE.fullmatch(text) and ".." not in text.split("/") else "#"


def figure_rows(figures: Any) -> list[tuple[str, list[Any]]]:
    """The project's plots by name, in the head's order: each with the head's figure and
    the baselines' beside it."""
    rows: dict[str, list[Any]] = {}
    for f in figures:
        rows.setdefault(f.name, []).append(f)
    return list(rows.items())


def mermaid_text(value: object) -> str:
    """A label inside a Mermaid string: letters, digits and a few safe marks only, and
    never empty (Mermaid's grammar refuses ``title ""``)."""
    text = re.sub(r"[^A-Za-z0-9 ._#:+/=-]", "_", str(value))[:60]
    return text if text.strip() else "_"


def _terminal_table(report: Any, color: bool) -> str:
    from mlci import report as rpt

    header = ["metric", report.head.label, *(c.baseline.label for c in report.comparisons)]
    rows = []
    for name in report.metric_names:
        cells = [
            f"{name} {'↑' if report.goals[name] == 'maximize' else '↓'}",
            _head_cell(report, name),
        ]
        for c in report.comparisons:
            row = next((r for r in c.rows if r.name == name), None)
            if not c.baseline.found or row is None or row.base is None:
                cells.append("—")
                continue
            text = _num(row.base)
            if row.delta is not None and row.verdict in ("better", "worse"):
                text += f" ({_signed(row.delta)})"
                # Coloured as the comment marks it: by the gate, else by the interval.
                shade = _TERMINAL_COLOURS.get(rpt.mark(report, c, name))
                if color and shade:
                    text = f"{_ANSI[shade]}{text}\033[0m"
            cells.append(text)
        rows.append(cells)

    def width(text: str) -> int:
        return len(_ANSI_RE.sub("", text))

    widths = [max(width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        lines.append("  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths, strict=True)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


MAX_TEMPLATE = 256 * 1024  # bytes of one report template or include
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){0,7}")


@dataclass(frozen=True)
class TemplateSource:
    """A report template the repository provides (``report.template``), and where it and
    its includes are read from: the work tree (a laptop, a job that writes nothing) or a
    commit of the base branch (a job that posts). ``read`` takes a name relative to the
    template's folder and returns its text, None where there is no such file, and raises
    ``MlciError`` for a file it refuses (a symbolic link, too large, not text)."""

    name: str
    read: Callable[[str], str | None]
    where: str  # for messages: a path, or REF:path


def template_name_ok(name: str) -> bool:
    """A name an include may use: relative, no ``..``, no hidden part, bounded."""
    return bool(_TEMPLATE_NAME.fullmatch(name)) and ".." not in name.split("/")


def files_template(path: Path) -> TemplateSource:
    """``path`` and its includes from the work tree, beside it: regular files only, never
    through a symbolic link (in the name or any folder under the template's), bounded."""
    from mlci import safeinput

    folder = path.parent

    def read(name: str) -> str | None:
        if not template_name_ok(name):
            return None
        here = folder
        for part in name.split("/"):
            here = here / part
            if here.is_symlink():
                raise MlciError(
                    f"report template {here} is a symbolic link, which mlci never follows",
                    hint="make it a regular file in the repository",
                )
        try:
            return safeinput.read_text(here, limit=MAX_TEMPLATE, what=f"report template {name}", follow=False)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except safeinput.BadInput as exc:
            raise MlciError(
                f"report template {here}: {exc.problem}",
                hint=f"a report template is a UTF-8 text file of at most {MAX_TEMPLATE} bytes",
            ) from None

    return TemplateSource(path.name, read, str(path))


def render_report(
    report: Any,
    fmt: str,
    *,
    template: TemplateSource | None = None,
    color: bool = False,
    limit: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """A report as ``markdown`` (the PR comment) or ``table`` (the terminal).

    The markdown never exceeds ``limit`` characters: long sections are cut
    with a note, and as a last resort the text itself is cut.
    """
    import jinja2

    root = templates_root() / "report"
    env = _report_environment(template, color)
    name = "comment.md.j2" if fmt == "markdown" else "table.txt.j2"
    if template is not None and fmt == "markdown":
        name = template.name
    where = template.where if template is not None and fmt == "markdown" else str(root / name)
    try:
        tmpl = env.get_template(name)
    except jinja2.TemplateError as exc:
        raise MlciError(
            f"report template {where}: {exc}",
            hint="fix report.template in mlci.yaml, or remove it to use the built-in one",
        ) from exc
    names = list(report.metric_names)
    max_params = 50
    keep = len(names)
    plots = getattr(report, "plots", None)
    figures_shown = True
    # Drawn once; the loop below only drops them, as it cuts params and metric rows.
    chart = _chart(report)
    drawn = [d for d in (mermaid_chart(c) for c in plots.charts) if d is not None] if plots else []
    matrix = confusion_rows(plots.confusion) if plots and plots.confusion else []
    figures = figure_rows(getattr(report, "figures", ()))
    table = _terminal_table(report, color) if fmt != "markdown" else ""
    while True:
        shown = names[:keep]
        cols = columns(report, shown)
        try:
            text: str = tmpl.render(
                report=report,
                metric_rows=shown,
                cut_metrics=len(names) - keep,
                columns=cols,
                legend=legend(cols),
                cell=_cell,
                head_cell=lambda name: _head_cell(report, name),
                chart=chart,
                plots=plots,
                plot_charts=drawn if plots else [],
                confusion_rows=matrix if plots else [],
                notable_columns=notable_columns,
                figure_rows=figures if figures_shown else [],
                max_params=max_params,
                max_rows=MAX_SWEEP_ROWS,
                table=table,
            )
        except jinja2.TemplateError as exc:
            raise MlciError(
                f"report template {where} failed to render: {exc}",
                hint="fix report.template in mlci.yaml, or remove it to use the built-in one",
            ) from exc
        if fmt != "markdown" or len(text) <= limit:
            return text
        if max_params > 5:
            max_params = 5
        elif plots is not None or (figures_shown and figures):
            plots, figures_shown = None, False  # they are in the job summary and report.json
        elif keep > 20:
            keep = max(20, keep // 2)
        else:
            note = "\n\n_Report cut to fit GitHub's comment limit; the full report is in the job summary._\n"
            return text[: limit - len(note)] + note


def notable_columns(comparison: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A dataset comparison's columns worth a row (``mlci.data.ColumnChange.notable``)."""
    return [c for c in comparison.get("columns") or () if c.get("notable")]


def _bytecode_cache() -> Any:
    """mlci's own report templates, compiled once and kept in mlci's cache (compiling them
    is a third of a report on a cache hit). Not in CI: a runner is new each time, and
    compiled templates are code, which a job's earlier steps could have written."""
    import jinja2

    from mlci import local_cache

    if not local_cache.allowed():
        return None
    folder = local_cache.directory() / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


def _report_environment(template: TemplateSource | None, color: bool) -> Any:
    import jinja2
    import jinja2.sandbox

    root = templates_root() / "report"
    builtin = jinja2.FileSystemLoader(str(root))  # mlci's own templates, inside the wheel
    loaders: list[Any] = [builtin]
    if template is not None:

        def load(name: str) -> tuple[str, None, Callable[[], bool]] | None:
            text = template.read(name)
            return None if text is None else (text, None, lambda: False)

        # The repository's template and its includes through ``template.read`` alone (no
        # link followed, bounded); a name it does not have falls back to mlci's own.
        loaders.insert(0, jinja2.FunctionLoader(load))
    # Sandboxed: report.template is the repository's file, and the job that posts
    # the report holds a write token; a template must not reach Python.
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=False,
        bytecode_cache=_bytecode_cache() if template is None else None,
    )
    env.filters["num"] = _num
    env.filters["md"] = markdown_text
    env.filters["code"] = inline_code
    env.filters["mermaid"] = mermaid_text
    env.filters["url"] = link_target
    env.filters["image_url"] = image_target
    env.filters["color"] = lambda text, name: f"{_ANSI[name]}{text}\033[0m" if color else text
    return env


def render_sweep(board: Any) -> str:
    """A sweep's leaderboard alone (``mlci sweep report``): the section the comment includes."""
    import jinja2

    env = _report_environment(None, False)
    try:
        return str(env.get_template("sweep.md.j2").render(board=board, max_rows=MAX_SWEEP_ROWS))
    except jinja2.TemplateError as exc:  # pragma: no cover - the built-in template
        raise MlciError(f"the sweep template failed to render: {exc}") from exc


# --------------------------------------------------------------------------- the HTML report

_SVG_W, _SVG_H = 640, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 36, 48


def _tick(value: float) -> str:
    return f"{value:.3g}"


def svg_chart(chart: Any, labels: list[str] | None = None) -> str:
    """``chart`` (``mlci.plots.Chart``) as an inline SVG line chart: each series a line
    with a marker at each point, the reference dashed grey, a gap where a line has no
    value, axes with ticks; ``labels``: category names for the x positions. Every piece of
    text is escaped. Drawn by mlci, so the page needs no script and no network."""
    import html

    xs = [float(x) for x in chart.x]
    values = [y for style in _styles(chart) for y in style.line.y if y is not None and math.isfinite(y)]
    if not values or len(xs) < 1:
        return ""
    low, high = chart.y_range or axis_range(values)
    if not high > low:
        low, high = low - 1, high + 1
    x0, x1 = min(xs), max(xs)
    span_x = (x1 - x0) or 1.0
    plot_w, plot_h = _SVG_W - _LEFT - _RIGHT, _SVG_H - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x0) / span_x * plot_w if x1 > x0 else _LEFT + plot_w / 2

    def py(y: float) -> float:
        y = min(max(y, low), high)
        return _TOP + (1 - (y - low) / (high - low)) * plot_h

    e = html.escape
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {_SVG_W} {_SVG_H}" width="{_SVG_W}" height="{_SVG_H}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{e(chart.title)}</title>',
        f'<text x="{_SVG_W / 2}" y="20" text-anchor="middle" class="title">{e(chart.title)}</text>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}"/>',
    ]
    for i in range(5):
        y = low + (high - low) * i / 4
        out.append(
            f'<line class="grid" x1="{_LEFT}" y1="{py(y):.1f}" x2="{_LEFT + plot_w}" y2="{py(y):.1f}"/>'
            f'<text x="{_LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{e(_tick(y))}</text>'
        )
    if labels is not None:
        ticks = [(x, labels[i]) for i, x in enumerate(xs)]
    else:
        ticks = (
            [(x0 + span_x * i / 4, _tick(x0 + span_x * i / 4)) for i in range(5)]
            if x1 > x0
            else [(x0, _tick(x0))]
        )
    for x, text in ticks:
        out.append(
            f'<text x="{px(x):.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">{e(str(text)[:24])}</text>'
        )
    out.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{_SVG_H - 8}" text-anchor="middle" class="axis-title">'
        f"{e(chart.x_title)}</text>"
        f'<text transform="translate(14 {_TOP + plot_h / 2}) rotate(-90)" text-anchor="middle" '
        f'class="axis-title">{e(chart.y_title)}</text>'
    )
    for style in _styles(chart):
        segments: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(xs, style.line.y, strict=True):
            if y is None or not math.isfinite(y):
                segments.append([])  # a gap where the line has no value
            else:
                segments[-1].append((px(x), py(y)))
        dash = ' stroke-dasharray="6 4"' if style.reference else ""
        for points in (s for s in segments if s):
            drawn = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            out.append(
                f'<polyline class="series" data-series="{e(style.line.label)}" fill="none" '
                f'stroke="{style.colour}" stroke-width="2"{dash} points="{drawn}"/>'
            )
            if not style.reference:
                out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{style.colour}"/>' for x, y in points]
    out.append("</svg>")
    return "".join(out)


def legend_items(chart: Any) -> list[tuple[str, str]]:
    """(colour, text) for each line of ``chart``, as the legend under it shows them."""
    return [(style.colour, style.text) for style in _styles(chart)]


def history_chart(report: Any) -> Any:
    """The key metric across versions as a ``plots.Chart`` (the HTML report's), or None."""
    from mlci import plots

    points = _history(report)
    if not points:
        return None
    return plots.Chart(
        "history",
        f"{report.key_metric} across versions",
        "version",
        report.key_metric,
        tuple(float(i) for i in range(len(points))),
        (plots.Series(report.key_metric, tuple(x for _, x in points)),),
    ), [label for label, _ in points]


def render_html(report: Any) -> str:
    """The report as one self-contained HTML page (``mlci report --format html``): the
    comment's content, its charts drawn as inline SVG; no script, no network. Autoescaped:
    every name and value is text."""
    import jinja2
    import jinja2.sandbox
    from markupsafe import Markup

    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(templates_root() / "report")),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
    )
    env.filters["num"] = _num
    names = list(report.metric_names)
    cols = columns(report, names)
    history = history_chart(report)
    plots = getattr(report, "plots", None)
    charts = [(c, Markup(svg_chart(c)), legend_items(c)) for c in (plots.charts if plots else ())]
    sweep = render_sweep(report.sweep) if report.sweep is not None else None
    figures = [(name, [(f, _data_uri(f)) for f in row]) for name, row in figure_rows(report.figures)]
    return env.get_template("report.html.j2").render(
        figures=figures,
        report=report,
        metric_rows=names,
        columns=cols,
        legend=legend(cols),
        head_cell=lambda name: _head_cell(report, name),
        history=None if history is None else (Markup(svg_chart(history[0], history[1])), history[0]),
        plots=plots,
        charts=charts,
        confusion_rows=_confusion_cells(plots.confusion) if plots and plots.confusion else [],
        notable_columns=notable_columns,
        sweep=sweep,
    )


def _data_uri(figure: Any) -> str | None:
    """A figure's file as a ``data:`` URI (the page needs no network), checked as an image
    again; None where there is no such file here, or it is not one."""
    import base64

    from mlci import images, safeinput

    if figure.path is None:
        return None
    try:
        data = safeinput.read_bytes(figure.path, limit=images.MAX_BYTES, what="a plot", follow=False)
        image = images.checked(figure.name, data)
    except (OSError, safeinput.BadInput, images.BadImage):
        return None
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"
