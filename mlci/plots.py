"""Model plots from predictions: what a reviewer of a classifier or a regressor expects
to see, computed from the rows every run already records (``train.predictions``).

For a classifier: the confusion matrix, and the ROC, precision-recall and calibration
curves; for a regressor: predicted against actual and the residuals. Each curve is
sampled on a fixed grid (what a chart in a comment needs, whatever the number of rows),
so the head and a baseline overlay point for point. Pure: numbers in, numbers out; how
they are drawn (Mermaid, SVG) is ``mlci.render``'s.

A ``Plots`` value is also read back as data (the memo in mlci's cache): ``from_json``
checks every field and bounds every size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlci.stats import Predictions

GRID = tuple(round(i / 20, 2) for i in range(21))  # rates: 0, 0.05, ..., 1
CALIBRATION_BINS = 10
REGRESSION_BINS = 10
RESIDUAL_BINS = 15
MAX_CONFUSION = 10  # classes shown as a matrix; more are in the JSON's per-class counts only
MAX_SERIES = 4  # the head and up to three baselines on one chart
_MAX_LABEL = 60


@dataclass(frozen=True)
class Series:
    """One run's line: ``y`` at each of the chart's x positions (None: no rows there)."""

    label: str
    y: tuple[float | None, ...]
    note: str = ""  # what the legend adds: "AUC 0.991"


@dataclass(frozen=True)
class Chart:
    kind: str  # "roc", "pr", "calibration", "predicted", "residuals"
    title: str
    x_title: str
    y_title: str
    x: tuple[float, ...]  # positions, evenly spaced
    series: tuple[Series, ...]
    reference: Series | None = None  # chance, perfect calibration, the actual value
    y_range: tuple[float, float] | None = None  # fixed (rates: 0 to 1), else from the values
    note: str = ""  # one line under the chart


@dataclass(frozen=True)
class Confusion:
    """Counts by actual (rows) and predicted (columns) class, the head's and a baseline's."""

    labels: tuple[str, ...]
    head: tuple[tuple[int, ...], ...]
    baseline_label: str | None = None
    baseline: tuple[tuple[int, ...], ...] | None = None
    same_rows: bool = False  # the baseline was evaluated on the same rows


@dataclass(frozen=True)
class Plots:
    kind: str  # "classifier" or "regressor"
    head_label: str
    charts: tuple[Chart, ...] = ()
    confusion: Confusion | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "head": self.head_label,
            "confusion": None if self.confusion is None else _confusion_json(self.confusion),
            "charts": [_chart_json(c) for c in self.charts],
            "notes": list(self.notes),
        }


def _series_json(s: Series) -> dict[str, Any]:
    return {"label": s.label, "y": list(s.y), "note": s.note}


def _chart_json(c: Chart) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "title": c.title,
        "x_title": c.x_title,
        "y_title": c.y_title,
        "x": list(c.x),
        "series": [_series_json(s) for s in c.series],
        "reference": None if c.reference is None else _series_json(c.reference),
        "y_range": None if c.y_range is None else list(c.y_range),
        "note": c.note,
    }


def _confusion_json(c: Confusion) -> dict[str, Any]:
    return {
        "labels": list(c.labels),
        "head": [list(r) for r in c.head],
        "baseline_label": c.baseline_label,
        "baseline": None if c.baseline is None else [list(r) for r in c.baseline],
        "same_rows": c.same_rows,
    }


# --------------------------------------------------------------------------- computing


def build(head_label: str, head: Predictions, baselines: Sequence[tuple[str, Predictions]]) -> Plots | None:
    """The plots of ``head`` and each baseline (label, predictions) of the same kind;
    None where the predictions give none (a classifier with neither labels nor scores)."""
    same_kind = [(label, b) for label, b in baselines if b.regression == head.regression][: MAX_SERIES - 1]
    runs = [(head_label, head), *same_kind]
    if head.regression:
        return Plots("regressor", head_label, charts=_regression(runs))
    notes: list[str] = []
    charts = _classification(runs, notes)
    confusion = _confusion(runs, notes)
    if not charts and confusion is None:
        return None
    return Plots("classifier", head_label, charts=tuple(charts), confusion=confusion, notes=tuple(notes))


def _binary(p: Predictions) -> tuple[Any, Any, str] | None:
    """(is positive, score, what) for a curve: the positive class's score for two classes,
    micro-averaged one-vs-rest over every class's score for more; None without scores."""
    import numpy as np

    if p.y_score is None or not p.classes:
        return None
    if p.y_score.ndim == 1:
        if len(p.classes) != 2:
            return None
        return p.y_true == p.classes[1], p.y_score, f"positive class {_text(p.classes[1])}"
    truth = np.stack([p.y_true == c for c in p.classes], axis=1)
    return truth.ravel(), p.y_score.ravel(), "micro-average over the classes"


def _ranked(positive: Any, score: Any) -> tuple[Any, Any, int, int]:
    """Cumulative true and false positives at each distinct threshold, highest first."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    last = np.r_[np.nonzero(np.diff(score))[0], score.size - 1]  # the end of each tie
    tp = np.cumsum(positive)[last]
    fp = (last + 1) - tp
    return tp, fp, int(positive.sum()), int(positive.size - positive.sum())


def _roc(positive: Any, score: Any) -> tuple[tuple[float, ...], float] | None:
    import numpy as np

    tp, fp, pos, neg = _ranked(positive, score)
    if pos == 0 or neg == 0:
        return None
    tpr, fpr = np.r_[0.0, tp / pos], np.r_[0.0, fp / neg]
    at = np.searchsorted(fpr, np.asarray(GRID), side="right") - 1
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return tuple(float(x) for x in tpr[at]), auc


def _pr(positive: Any, score: Any) -> tuple[tuple[float, ...], float] | None:
    import numpy as np

    tp, fp, pos, _ = _ranked(positive, score)
    if pos == 0:
        return None
    precision, recall = tp / (tp + fp), tp / pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    # Interpolated precision: the best precision at this recall or more.
    best = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, np.asarray(GRID), side="left")
    y = tuple(float(best[i]) if i < best.size else 0.0 for i in at)
    return y, ap


def _calibration(p: Predictions) -> tuple[tuple[float | None, ...], str] | None:
    """Fraction positive by score bin (two classes), or accuracy by the top class's score
    (more); None where the scores are not probabilities."""
    import numpy as np

    if p.y_score is None or not p.classes:
        return None
    if p.y_score.ndim == 1:
        if len(p.classes) != 2:
            return None
        score, hit = p.y_score, (p.y_true == p.classes[1]).astype(float)
        what = f"share of rows of class {_text(p.classes[1])}"
    else:
        top = p.y_score.argmax(axis=1)
        score = p.y_score[np.arange(p.rows), top]
        hit = (np.asarray(p.classes, dtype=object)[top] == p.y_true).astype(float)
        what = "accuracy (top class)"
    if score.size == 0 or float(score.min()) < 0 or float(score.max()) > 1:
        return None
    bins = np.minimum((score * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    hits = np.bincount(bins, weights=hit, minlength=CALIBRATION_BINS)
    return tuple(float(h / c) if c else None for h, c in zip(hits, counts, strict=True)), what


def _classification(runs: list[tuple[str, Predictions]], notes: list[str]) -> list[Chart]:
    roc: list[Series] = []
    pr: list[Series] = []
    calibration: list[Series] = []
    what = ""
    calibration_what = ""
    for label, p in runs:
        found = _binary(p)
        if found is None:
            continue
        positive, score, what_here = found
        what = what or what_here
        curve = _roc(positive, score)
        if curve is not None:
            roc.append(Series(label, curve[0], f"AUC {curve[1]:.3f}"))
        precision = _pr(positive, score)
        if precision is not None:
            pr.append(Series(label, precision[0], f"AP {precision[1]:.3f}"))
        calibrated = _calibration(p)
        if calibrated is not None:
            calibration.append(Series(label, calibrated[0]))
            calibration_what = calibration_what or calibrated[1]
    if not runs or runs[0][1].y_score is None:
        notes.append("no curves: the predictions have labels but no scores (write y_score)")
        return []
    charts: list[Chart] = []
    if roc and roc[0].label == runs[0][0]:
        charts.append(
            Chart(
                "roc",
                "ROC curve",
                "false positive rate",
                "true positive rate",
                GRID,
                tuple(roc),
                reference=Series("chance", GRID),
                y_range=(0.0, 1.0),
                note=what,
            )
        )
    if pr and pr[0].label == runs[0][0]:
        charts.append(
            Chart(
                "pr",
                "Precision-recall curve",
                "recall",
                "precision",
                GRID,
                tuple(pr),
                y_range=(0.0, 1.0),
                note=f"{what}; precision interpolated (the best at this recall or more)",
            )
        )
    if calibration and calibration[0].label == runs[0][0]:
        mids = tuple(round((i + 0.5) / CALIBRATION_BINS, 3) for i in range(CALIBRATION_BINS))
        charts.append(
            Chart(
                "calibration",
                "Calibration",
                "predicted probability",
                calibration_what,
                mids,
                tuple(calibration),
                reference=Series("perfectly calibrated", mids),
                y_range=(0.0, 1.0),
                note=f"rows binned by score in {CALIBRATION_BINS} equal bins",
            )
        )
    elif runs[0][1].y_score is not None and not calibration:
        notes.append("no calibration curve: the scores are not probabilities (some lie outside 0 to 1)")
    return charts


def _confusion(runs: list[tuple[str, Predictions]], notes: list[str]) -> Confusion | None:
    import numpy as np

    head = runs[0][1]
    predicted = _predicted(head)
    if predicted is None:
        return None
    if len(head.classes) > MAX_CONFUSION:
        notes.append(f"no confusion matrix: {len(head.classes)} classes, more than a comment shows")
        return None
    labels = tuple(_text(c) for c in head.classes)
    matrix = _counts(head.y_true, predicted, head.classes)
    for label, base in runs[1:]:
        base_predicted = _predicted(base)
        if base_predicted is None or tuple(_text(c) for c in base.classes) != labels:
            continue
        same = base.rows == head.rows and bool(np.array_equal(base.y_true, head.y_true))
        return Confusion(labels, matrix, label, _counts(base.y_true, base_predicted, base.classes), same)
    return Confusion(labels, matrix)


def _predicted(p: Predictions) -> Any:
    import numpy as np

    if p.y_pred is not None:
        return p.y_pred
    if p.y_score is not None and p.y_score.ndim == 2:
        return np.asarray(p.classes, dtype=object)[p.y_score.argmax(axis=1)]
    return None


def _counts(truth: Any, predicted: Any, classes: tuple[Any, ...]) -> tuple[tuple[int, ...], ...]:
    index = {_text(c): i for i, c in enumerate(classes)}
    n = len(classes)
    out = [[0] * n for _ in range(n)]
    for t, p in zip(truth.tolist(), predicted.tolist(), strict=True):
        i, j = index.get(_text(t)), index.get(_text(p))
        if i is not None and j is not None:
            out[i][j] += 1
    return tuple(tuple(r) for r in out)


def _regression(runs: list[tuple[str, Predictions]]) -> tuple[Chart, ...]:
    import numpy as np

    head = runs[0][1]
    assert head.y_pred is not None
    # Bins of the actual value, by the head's quantiles: every run's rows fall in the same bins.
    edges = np.unique(np.quantile(head.y_true.astype(float), np.linspace(0, 1, REGRESSION_BINS + 1)))
    if edges.size < 2:
        edges = np.array([float(head.y_true[0]) - 0.5, float(head.y_true[0]) + 0.5])
    inner = edges[1:-1]

    def by_bin(truth: Any, values: Any) -> tuple[float | None, ...]:
        bins = np.searchsorted(inner, truth.astype(float), side="right")
        counts = np.bincount(bins, minlength=edges.size - 1)
        sums = np.bincount(bins, weights=values.astype(float), minlength=edges.size - 1)
        return tuple(float(s / c) if c else None for s, c in zip(sums, counts, strict=True))

    centres = tuple(v if v is not None else 0.0 for v in by_bin(head.y_true, head.y_true))
    predicted = [Series(label, by_bin(p.y_true, p.y_pred)) for label, p in runs if p.y_pred is not None]
    residuals = {
        label: p.y_pred.astype(float) - p.y_true.astype(float) for label, p in runs if p.y_pred is not None
    }
    spread = max(float(np.max(np.abs(r))) for r in residuals.values()) or 1.0
    width = 2 * spread / RESIDUAL_BINS
    mids = tuple(-spread + width * (i + 0.5) for i in range(RESIDUAL_BINS))
    shares = []
    for label, r in residuals.items():
        bins = np.minimum(((r + spread) / width).astype(int), RESIDUAL_BINS - 1)
        counts = np.bincount(np.maximum(bins, 0), minlength=RESIDUAL_BINS)
        rmse = float(np.sqrt(np.mean(r**2)))
        shares.append(Series(label, tuple(float(c / r.size * 100) for c in counts), f"RMSE {rmse:.4g}"))
    return (
        Chart(
            "predicted",
            "Predicted against actual",
            "actual (mean of each bin)",
            "predicted (mean)",
            centres,
            tuple(predicted),
            reference=Series("actual", centres),
            note=f"rows binned by the actual value into {edges.size - 1} bins of equal count",
        ),
        Chart(
            "residuals",
            "Residuals",
            "predicted - actual",
            "% of rows",
            mids,
            tuple(shares),
            note=f"{RESIDUAL_BINS} equal bins from {-spread:.4g} to {spread:.4g}",
        ),
    )


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)[:_MAX_LABEL]


# --------------------------------------------------------------------------- read back


class BadPlots(ValueError):
    """A stored ``Plots`` that does not read: computed again."""


_KINDS = {"roc", "pr", "calibration", "predicted", "residuals"}
_MAX_POINTS = 64


def _str(value: object, limit: int = 200) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise BadPlots("a text field")
    return value


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadPlots("a number")
    return float(value)


def _series_from(raw: object, points: int) -> Series:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("y"), list) or len(raw["y"]) != points:
        raise BadPlots("a series")
    y = tuple(None if v is None else _finite(v) for v in raw["y"])
    return Series(_str(raw.get("label"), _MAX_LABEL * 2), y, _str(raw.get("note", "")))


def _matrix(raw: object, n: int) -> tuple[tuple[int, ...], ...]:
    if not isinstance(raw, list) or len(raw) != n:
        raise BadPlots("a matrix")
    out = []
    for row in raw:
        if not isinstance(row, list) or len(row) != n:
            raise BadPlots("a matrix row")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in row):
            raise BadPlots("a count")
        out.append(tuple(row))
    return tuple(out)


def from_json(raw: object) -> Plots:
    """A ``Plots`` from ``to_json``'s form, every field checked (``BadPlots`` if not)."""
    if not isinstance(raw, Mapping) or raw.get("kind") not in ("classifier", "regressor"):
        raise BadPlots("not plots")
    charts = []
    found = raw.get("charts")
    if not isinstance(found, list) or len(found) > len(_KINDS):
        raise BadPlots("charts")
    for c in found:
        if not isinstance(c, Mapping) or c.get("kind") not in _KINDS:
            raise BadPlots("a chart")
        x = c.get("x")
        if not isinstance(x, list) or not 1 <= len(x) <= _MAX_POINTS:
            raise BadPlots("a chart's x")
        xs = tuple(_finite(v) for v in x)
        series = c.get("series")
        if not isinstance(series, list) or not 1 <= len(series) <= MAX_SERIES:
            raise BadPlots("a chart's series")
        y_range = c.get("y_range")
        if y_range is not None and (not isinstance(y_range, list) or len(y_range) != 2):
            raise BadPlots("a chart's y range")
        charts.append(
            Chart(
                str(c["kind"]),
                _str(c.get("title")),
                _str(c.get("x_title")),
                _str(c.get("y_title")),
                xs,
                tuple(_series_from(s, len(xs)) for s in series),
                None if c.get("reference") is None else _series_from(c.get("reference"), len(xs)),
                None if y_range is None else (_finite(y_range[0]), _finite(y_range[1])),
                _str(c.get("note", "")),
            )
        )
    confusion = None
    raw_confusion = raw.get("confusion")
    if raw_confusion is not None:
        if not isinstance(raw_confusion, Mapping) or not isinstance(raw_confusion.get("labels"), list):
            raise BadPlots("a confusion matrix")
        labels = tuple(_str(v, _MAX_LABEL) for v in raw_confusion["labels"])
        if not 1 <= len(labels) <= MAX_CONFUSION:
            raise BadPlots("a confusion matrix's classes")
        base = raw_confusion.get("baseline")
        confusion = Confusion(
            labels,
            _matrix(raw_confusion.get("head"), len(labels)),
            None if base is None else _str(raw_confusion.get("baseline_label"), _MAX_LABEL * 2),
            None if base is None else _matrix(base, len(labels)),
            raw_confusion.get("same_rows") is True,
        )
    notes = raw.get("notes", [])
    if not isinstance(notes, list) or len(notes) > 10:
        raise BadPlots("notes")
    return Plots(
        str(raw["kind"]),
        _str(raw.get("head"), _MAX_LABEL * 2),
        tuple(charts),
        confusion,
        tuple(_str(n) for n in notes),
    )
