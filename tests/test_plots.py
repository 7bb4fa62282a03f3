"""Model plots from predictions (mlci.plots), how they are drawn (Mermaid), and Mermaid's own
parser over every chart mlci can write."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci import plots, render, stats
from mlci import report as rpt
from tests import mermaid
from tests.report_parts import CONFIG, HEAD, STAGING


def _predictions(tmp_path: Path, name: str, rows: list[dict[str, object]]) -> stats.Predictions:
    path = tmp_path / name
    columns = list(rows[0])
    path.write_text(
        ",".join(columns) + "\n" + "".join(",".join(str(r[c]) for c in columns) + "\n" for r in rows)
    )
    return stats.read_predictions(path)


def _binary(tmp_path: Path, name: str = "p.csv", seed: int = 0, n: int = 400) -> stats.Predictions:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = np.clip(truth * 0.35 + rng.random(n) * 0.65, 0, 1)
    rows = [
        {"id": i, "y_true": int(t), "y_pred": int(s > 0.5), "y_score": round(float(s), 6)}
        for i, (t, s) in enumerate(zip(truth, score, strict=True))
    ]
    return _predictions(tmp_path, name, rows)


# --------------------------------------------------------------------------- the numbers


def test_a_binary_classifiers_plots_agree_with_scikit_learn(tmp_path: Path) -> None:
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

    head, base = _binary(tmp_path, "h.csv", 0), _binary(tmp_path, "b.csv", 1)
    made = plots.build("PR #1", head, [("staging v1", base)])
    assert made is not None and made.kind == "classifier"
    assert [c.kind for c in made.charts] == ["roc", "pr", "calibration"]
    roc, pr, calibration = made.charts
    assert [s.label for s in roc.series] == ["PR #1", "staging v1"]
    truth, score = head.y_true.astype(int), head.y_score
    assert roc.series[0].note == f"AUC {roc_auc_score(truth, score):.3f}"
    assert pr.series[0].note == f"AP {average_precision_score(truth, score):.3f}"
    # The ROC on the grid: at each false positive rate, the best true positive rate reached.
    fpr, tpr, _ = roc_curve(truth, score)
    for x, y in zip(roc.x, roc.series[0].y, strict=True):
        assert y == pytest.approx(max(t for f, t in zip(fpr, tpr, strict=True) if f <= x + 1e-12))
    assert roc.x[0] == 0 and roc.x[-1] == 1 and len(roc.x) == 21 and roc.series[0].y[-1] == 1
    assert roc.reference is not None and roc.reference.y == roc.x  # chance
    # Calibration: the share of positives in each score bin.
    bins = np.minimum((score * 10).astype(int), 9)
    for i, share in enumerate(calibration.series[0].y):
        rows = truth[bins == i]
        assert share == (pytest.approx(rows.mean()) if rows.size else None)
    # The confusion matrix, the head's and the baseline's, on the same rows.
    assert made.confusion is not None and made.confusion.labels == ("0", "1")
    expected = confusion_matrix(truth, head.y_pred.astype(int)).tolist()
    assert [list(r) for r in made.confusion.head] == expected
    assert made.confusion.baseline_label == "staging v1" and made.confusion.same_rows is False


def test_multiclass_regression_and_what_predictions_cannot_give(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(300):
        scores = rng.dirichlet([1, 1, 1])
        rows.append(
            {
                "y_true": "abc"[i % 3],
                "y_pred": "abc"[int(scores.argmax())],
                **{f"y_score_{c}": round(float(s), 6) for c, s in zip("abc", scores, strict=True)},
            }
        )
    made = plots.build("head", _predictions(tmp_path, "m.csv", rows), [])
    assert made is not None and [c.kind for c in made.charts] == ["roc", "pr", "calibration"]
    assert made.charts[0].note == "micro-average over the classes"
    assert made.confusion is not None and made.confusion.labels == ("a", "b", "c")
    assert sum(map(sum, made.confusion.head)) == 300

    labels_only = _predictions(tmp_path, "l.csv", [{"y_true": i % 2, "y_pred": i % 3 % 2} for i in range(50)])
    made = plots.build("head", labels_only, [])
    assert made is not None and made.charts == () and made.confusion is not None
    assert made.notes == ("no curves: the predictions have labels but no scores (write y_score)",)

    margins = _predictions(
        tmp_path, "s.csv", [{"y_true": i % 2, "y_score": (i % 7) - 3.5} for i in range(60)]
    )  # a decision function, not a probability
    made = plots.build("head", margins, [])
    assert made is not None and [c.kind for c in made.charts] == ["roc", "pr"]
    assert any("not probabilities" in n for n in made.notes)

    truth = rng.normal(100, 30, 500)
    regression = _predictions(
        tmp_path,
        "r.csv",
        [{"y_true": round(t, 3), "y_pred": round(t + rng.normal(0, 5), 3)} for t in truth],
    )
    made = plots.build("head", regression, [("staging", regression)])
    assert made is not None and made.kind == "regressor" and made.confusion is None
    predicted, residuals = made.charts
    assert predicted.kind == "predicted" and residuals.kind == "residuals"
    assert len(predicted.x) == plots.REGRESSION_BINS and predicted.reference is not None
    assert sum(residuals.series[0].y) == pytest.approx(100)  # shares of rows, in %
    assert residuals.series[0].note.startswith("RMSE ")
    assert [s.label for s in residuals.series] == ["head", "staging"]


def test_plots_read_back_as_data_and_refuse_anything_else(tmp_path: Path) -> None:
    made = plots.build("PR #1", _binary(tmp_path, "h.csv"), [("staging", _binary(tmp_path, "b.csv", 2))])
    assert made is not None
    data = json.loads(json.dumps(made.to_json()))
    assert plots.from_json(data) == made
    for doctor in (
        lambda d: d.update(kind="pie"),
        lambda d: d["charts"][0].update(x=list(range(500))),
        lambda d: d["charts"][0]["series"][0].update(y=["0.5"] * 21),
        lambda d: d["charts"][0]["series"][0].update(y=[1e999] * 21),
        lambda d: d["charts"][0].update(series=[]),
        lambda d: d["charts"][0].update(kind="<script>"),
        lambda d: d["confusion"].update(head=[[1, -1], [0, 0]]),
        lambda d: d["confusion"].update(labels=["x"] * 11),
        lambda d: d["confusion"].update(head=[[True, 0], [0, 0]]),
        lambda d: d.update(notes="x"),
        lambda d: d.update(head="x" * 1000),
    ):
        bad = json.loads(json.dumps(data))
        doctor(bad)
        with pytest.raises(plots.BadPlots):
            plots.from_json(bad)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (0.5, "0.5"),
        (-0.25, "-0.25"),
        (1.03057e-07, "0.000000103057"),
        (1e-9, "0.000000001"),
        (1.004e6, "1004000"),
        (1e9, "1000000000"),
        (-1.73472e-18, "-0.00000000000000000173472"),
        (0.123456789, "0.123457"),
        (123456789.0, "123457000"),
    ],
)
def test_a_number_mermaid_reads_never_has_an_exponent(value: float, text: str) -> None:
    assert render.mermaid_number(value) == text


@pytest.mark.parametrize(
    ("values", "axis"),
    [
        ([0.01, 0.11], (0.0, 0.12)),  # never -1.7e-18 for a zero
        ([0.91, 0.94, 0.95, 0.93], (0.906, 0.954)),
        ([0.5, 0.5], (0.45, 0.55)),
        ([0.0, 0.0], (0.0, 1.0)),
        ([-5.0, 5.0], (-6.0, 6.0)),
        ([1e9, 1.5e9], (9.5e8, 1.55e9)),
        ([1e-9, 2e-9], (9e-10, 2.1e-9)),
    ],
)
def test_a_y_axis_pads_and_rounds_outward(values: list[float], axis: tuple[float, float]) -> None:
    low, high = render.axis_range(values)
    assert (low, high) == pytest.approx(axis)
    assert low <= min(values) and high >= max(values)


def test_a_chart_leaves_out_what_it_cannot_draw() -> None:
    chart = plots.Chart(
        "calibration",
        "Calibration",
        "x",
        "y",
        (0.05, 0.15, 0.25, 0.35),
        (plots.Series("head", (0.1, None, 0.3, 0.4)), plots.Series("base", (0.1, 0.2, 0.3, math.inf))),
    )
    drawn = render.mermaid_chart(chart)
    assert drawn is not None
    assert 'x-axis "x" 0.05 --> 0.25' in drawn.mermaid  # what is left is evenly spaced: a numeric axis
    assert drawn.mermaid.count("line [0.1, 0.3]") == 2
    uneven = dataclasses.replace(chart, series=(plots.Series("head", (0.1, None, 0.3, 0.4)),))
    drawn = render.mermaid_chart(uneven)
    assert drawn is not None and 'x-axis ["0.05", "0.25", "0.35"]' in drawn.mermaid  # labels
    one = plots.Chart("roc", "ROC", "x", "y", (0.0, 1.0), (plots.Series("head", (None, 1.0)),))
    assert render.mermaid_chart(one) is None  # a single point is no line


# --------------------------------------------------------------------------- Mermaid's parser

_NAMES = st.text(min_size=0, max_size=40) | st.sampled_from(
    ['"]\n  line [1]', "--> 1", "%%{init: {}}%%", "<script>", "`x`", "a|b", "é ✓", ";", "\\", "#"]
)
_VALUES = (
    st.floats(allow_nan=True, allow_infinity=True, width=64)
    | st.floats(min_value=-1e9, max_value=1e9)
    | st.sampled_from([1e-9, -1e-9, 1e9, -1e9, 0.0, -0.0, 1.03057e-07, 1.004e6, math.nan])
)


def _charts_of(names: list[str], values: list[float]) -> list[str]:
    """Every kind of chart mlci writes, from these names and values."""
    out: list[str] = []
    history = tuple((name or "v", value) for name, value in zip(names, values, strict=False))
    head = rpt.Head("r", "f" * 64, None, None, {"m": values[-1]}, {}, False, label=names[0] or "x")
    config = CONFIG.__class__(**{**CONFIG.__dict__, "report": CONFIG.report.__class__(key_metric="m")})
    report = rpt.build(config, head, [], history=history[:-1])
    chart = render._chart(report)
    if chart is not None:
        text = render.render_report(report, "markdown")
        out += mermaid.blocks(text)
    x = tuple(i / (len(values) - 1) for i in range(len(values))) if len(values) > 1 else (0.0,)
    for kind, xs in (("roc", x), ("predicted", tuple(sorted(values)))):
        made = plots.Chart(
            kind,
            names[0],
            names[-1],
            names[len(names) // 2],
            xs,
            (plots.Series(names[0], tuple(values)), plots.Series(names[-1], tuple(reversed(values)))),
            reference=plots.Series(names[1 % len(names)], tuple(values)),
        )
        drawn = render.mermaid_chart(made)
        if drawn is not None:
            out.append(drawn.mermaid)
    return out


def test_every_chart_mlci_can_write_parses_with_mermaids_own_parser(tmp_path: Path) -> None:
    charts: list[str] = []

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        names=st.lists(_NAMES, min_size=1, max_size=6),
        values=st.lists(_VALUES, min_size=1, max_size=25),
    )
    def collect(names: list[str], values: list[float]) -> None:
        charts.extend(_charts_of(names, values))

    collect()
    # The goldens' charts, and plots from real predictions, classifier and regressor.
    golden = Path(__file__).parent / "golden"
    for path in sorted(golden.glob("*.md")):
        charts += mermaid.blocks(path.read_text())
    made = plots.build("PR #1", _binary(tmp_path, "h.csv"), [("staging", _binary(tmp_path, "b.csv", 4))])
    assert made is not None
    charts += [d.mermaid for d in map(render.mermaid_chart, made.charts) if d is not None]
    assert len(charts) > 300
    mermaid.assert_parses(charts)


def test_the_parser_check_catches_a_chart_github_cannot_draw() -> None:
    bad = (
        'xychart-beta\n    x-axis ["a", "b"]\n    y-axis "y" -1.73472e-18 --> 1\n    line [1.03057e-07, 0.7]'
    )
    (error,) = mermaid.parse([bad])
    assert error is not None and "Expecting" in error


def test_a_report_carries_its_plots_in_its_json(tmp_path: Path) -> None:
    made = plots.build("PR #12", _binary(tmp_path, "h.csv"), [])
    report = rpt.build(CONFIG, HEAD, [STAGING])
    data = rpt.to_json(dataclasses.replace(report, plots=made))
    assert data["plots"]["kind"] == "classifier" and data["plots"]["charts"][0]["kind"] == "roc"
    assert rpt.to_json(report)["plots"] is None


# --------------------------------------------------------------------------- the scaffolds, end to end


def _scaffold_pull_request(cli, tmp_path: Path, template: str, edit: tuple[str, str]) -> Path:  # type: ignore[no-untyped-def]
    """A scaffold with its first model in staging, and a branch that changes a param."""
    from tests.helpers import run

    root = tmp_path / template
    assert cli("init", str(root), "--template", template, "--git").code == 0
    run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "remote.git")], tmp_path)
    run(["git", "remote", "add", "origin", str(tmp_path / "remote.git")], root)
    run(["git", "push", "-q", "origin", "main", "staging", "production"], root)
    for step in (("train",), ("register",), ("promote", "staging")):
        result = cli(*step, cwd=root)
        assert result.code == 0, (step, result.err)
    run(["git", "checkout", "-q", "-b", "feature"], root)
    params = root / "params.yaml"
    assert edit[0] in params.read_text()
    params.write_text(params.read_text().replace(*edit))
    run(["git", "commit", "-qam", "a change to review"], root)
    return root


def _plot_sections(body: str) -> dict[str, str]:
    """Each plot's legend line, by its title."""
    return {
        line.split("**")[1]: line
        for line in body.split("#### Model plots", 1)[1].split("<details>", 1)[0].splitlines()
        if line.startswith("**") and "**:" in line
    }


@pytest.mark.slow
def test_a_classifiers_pull_request_shows_its_plots_and_staging_s_and_so_does_the_fork_safe_comment(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh
) -> None:  # type: ignore[no-untyped-def]
    from tests.github_helpers import TOKEN, ci, pr_event
    from tests.helpers import run

    root = _scaffold_pull_request(cli, tmp_path, "classifier", ("C: 1.0", "C: 0.05"))
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code in (0, 1), result.err
    body = gh.comments[12][0]["body"]
    assert "| actual ╲ predicted | 0 | 1 |" in body and "was " in body  # the change from staging's counts
    sections = _plot_sections(body)
    assert set(sections) == {"ROC curve", "Precision-recall curve", "Calibration"}
    for line in sections.values():
        assert "🟦 PR #12" in line and "🟧 staging v0.0.1" in line
    assert "(AUC 0." in sections["ROC curve"] and "(AP 0." in sections["Precision-recall curve"]
    charts = mermaid.blocks(body)
    assert len(charts) == 4  # the key metric across versions, and the three curves
    assert all(
        chart.count("\n    line [")
        == (1 if "across versions" in chart else 2 + ("ROC" in chart or "Calibration" in chart))
        for chart in charts
    )
    mermaid.assert_parses(charts)
    data = json.loads((root / ".mlci" / "report.json").read_text())
    assert [c["kind"] for c in data["plots"]["charts"]] == ["roc", "pr", "calibration"]
    assert [s["label"] for s in data["plots"]["charts"][0]["series"]] == ["PR #12", "staging v0.0.1"]
    assert data["plots"]["confusion"]["baseline_label"] == "staging v0.0.1"

    # The fork-safe flow: the untrusted job's artifact carries the head's predictions, the
    # trusted job reads them as data and draws the same plots (staging's from its version).
    gh.comments.clear()
    monkeypatch.delenv("GITHUB_TOKEN")
    made = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert made.code in (0, 1), made.err
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    gh.pulls[12] = head
    posted = cli("publish", str(root / ".mlci"), "--head-sha", head, cwd=root)
    assert posted.code == 0, posted.err
    trusted = gh.comments[12][0]["body"]
    assert "mlci judged them in a job that ran none of its code" in trusted
    assert _plot_sections(trusted) == sections
    assert (
        trusted.split("#### Model plots")[1].split("<details>")[0]
        == body.split("#### Model plots")[1].split("<details>")[0]
    )


@pytest.mark.slow
def test_a_regressors_pull_request_shows_predicted_against_actual_and_residuals(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh
) -> None:  # type: ignore[no-untyped-def]
    from tests.github_helpers import ci, pr_event

    root = _scaffold_pull_request(cli, tmp_path, "regressor", ("alpha: 1.0", "alpha: 5.0"))
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code in (0, 1), result.err
    body = gh.comments[12][0]["body"]
    sections = _plot_sections(body)
    assert set(sections) == {"Predicted against actual", "Residuals"}
    assert "🟦 PR #12 (RMSE " in sections["Residuals"] and "🟧 staging v0.0.1 (RMSE " in sections["Residuals"]
    assert "⬜ actual" in sections["Predicted against actual"]
    assert "Confusion matrix" not in body
    mermaid.assert_parses(mermaid.blocks(body))


# --------------------------------------------------------------------------- the HTML report


@pytest.mark.slow
def test_the_html_report_loads_in_chromium_with_every_chart_drawn_and_nothing_fetched(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tests import browser

    root = _scaffold_pull_request(cli, tmp_path, "classifier", ("C: 1.0", "C: 0.05"))
    result = cli("report", "--format", "html", "--base", "staging", cwd=root)
    assert result.code == 0, result.err
    page = root / ".mlci" / "report.html"
    assert result.out.strip() == str(page)
    seen = browser.open_page(page)
    assert seen["console"] == [] and seen["errors"] == [] and seen["requests"] == []
    titles = [c["title"] for c in seen["charts"]]
    assert titles == ["accuracy across versions", "ROC curve", "Precision-recall curve", "Calibration"]
    for chart in seen["charts"]:
        assert chart["width"] > 0 and chart["height"] > 0
        assert chart["lines"] and all(line["points"] >= 1 for line in chart["lines"])
        assert any(line["width"] > 0 for line in chart["lines"]), chart  # a line really drawn
    roc = seen["charts"][1]
    assert [line["series"] for line in roc["lines"]] == ["this change", "staging v0.0.1", "chance"]
    # The same content as the comment: the verdicts, the table, the confusion matrix.
    text = seen["text"]
    assert "staging: passes" in text and "production:" in text
    assert "staging v0.0.1 = base staging@" in text and "actual ╲ predicted" in text
    comment = cli("report", "--base", "staging", cwd=root)
    assert comment.code == 0
    markdown = (root / ".mlci" / "report.md").read_text()
    for line in markdown.splitlines():
        if line.startswith("| `"):  # every metric row's cells, in the page
            for cell in line.strip("|").split(" | ")[1:]:
                assert cell.strip() in text, cell


@pytest.mark.slow
def test_the_html_report_is_inert_for_hostile_names_and_opens_where_asked(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Names a pull request controls are text in the page: no tag, no script, no request."""
    hostile = "<img src=x onerror=alert(1)>"
    head = dataclasses.replace(
        HEAD, metrics={**HEAD.metrics, hostile: 0.5}, label="</title><script>alert(1)</script>"
    )
    base = dataclasses.replace(STAGING, metrics={**STAGING.metrics, hostile: 0.4})
    made = plots.build(
        hostile, _binary(tmp_path, "h.csv"), [("<b>staging</b>", _binary(tmp_path, "b.csv", 5))]
    )
    report = dataclasses.replace(
        rpt.build(CONFIG, head, [base], history=[("<svg onload=alert(1)>", 0.9)]), plots=made
    )
    page = render.render_html(report)
    assert "<img src=x" not in page and "<script>" not in page and "<b>staging" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    (tmp_path / "r.html").write_text(page)
    from tests import browser

    seen = browser.open_page(tmp_path / "r.html")
    assert seen["errors"] == [] and seen["requests"] == [] and seen["console"] == []
    assert hostile in seen["text"] and len(seen["charts"]) == 4

    # --open: the page, to the browser $BROWSER names.
    opened = tmp_path / "opened.txt"
    opener = tmp_path / "browser.sh"
    opener.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    opener.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(opener))
    root = _scaffold_only(cli, tmp_path)
    result = cli("report", "--open", cwd=root)
    assert result.code == 0, result.err
    assert opened.read_text().strip() == (root / ".mlci" / "report.html").resolve().as_uri()
    assert (root / ".mlci" / "report.html").read_text().startswith("<!doctype html>")


def _scaffold_only(cli, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "fresh"
    assert cli("init", str(root), "--git").code == 0
    return root


def _luminance(colour: str) -> float:
    named = {"white": "#ffffff", "black": "#000000"}
    colour = named.get(colour, colour).lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    channels = [int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.slow
def test_every_line_is_drawn_in_its_colour_and_visible_in_githubs_light_and_dark_themes(
    tmp_path: Path,
) -> None:
    """Mermaid draws each line in the colour mlci set, under the default theme (GitHub's
    light) and the dark one, with a contrast of 3:1 or more against the background (WCAG's
    for graphics), and against GitHub's own dark canvas."""
    made = plots.build(
        "PR #1",
        _binary(tmp_path, "h.csv"),
        [
            ("staging", _binary(tmp_path, "b.csv", 6)),
            ("production", _binary(tmp_path, "p.csv", 7)),
            ("base", _binary(tmp_path, "m.csv", 8)),
        ],
    )
    assert made is not None
    charts = [d.mermaid for d in map(render.mermaid_chart, made.charts) if d is not None]
    report = rpt.build(CONFIG, HEAD, [STAGING], history=[("v0.0.1", 0.91), ("v0.0.2", 0.94)])
    charts += mermaid.blocks(render.render_report(report, "markdown"))
    drawn = mermaid.render_in_chromium(charts)
    assert len(drawn) == 2 * len(charts)
    expected = [c for c, _ in render.PALETTE] + [render.REFERENCE_COLOUR[0]]
    for chart, seen in zip(charts * 2, drawn, strict=True):
        strokes = [line["stroke"] for line in seen["lines"]]
        assert strokes and all(line["width"] > 0 for line in seen["lines"]), seen
        assert set(strokes) <= set(expected), (strokes, chart)
        for stroke in strokes:
            for background in (seen["background"], "#0d1117" if seen["theme"] == "dark" else "#ffffff"):
                assert _contrast(stroke, background) >= 3, (stroke, background, seen["theme"])
    assert {s["theme"] for s in drawn} == {"default", "dark"}
