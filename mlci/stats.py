"""How sure a metric is: bootstrap confidence intervals from a run's predictions.

A metric in ``metrics.json`` is one number from one test set; the same model
on a different sample of rows would score differently. Given the rows'
predictions, mlci recomputes the metric under resampled row weights and reads
an interval off the spread:

- **Poisson bootstrap**: each resample gives every row a weight drawn from
  Poisson(1) (the large-sample limit of the classic multinomial resample),
  so a resample is a weight vector, not a copy of the rows. Weights come in
  chunks of resamples (a matrix, resamples x rows) and every metric is a few
  matrix products over the chunk: no Python loop over rows, and memory bounded
  by the chunk. The rows are sorted by score once; rank metrics (ROC AUC,
  average precision) are then cumulative sums over each resample's weights.
- **Paired**: when two runs were evaluated on the same rows (the same
  ``y_true``, and ``id`` where given), the difference between them is
  resampled with the same weights for both, which cancels the rows' shared
  difficulty and makes small real differences visible.
- **Percentile intervals** at the asked confidence (default 95%), from 2,000
  resamples with a fixed seed, so a report is the same every time it is made.

Metrics mlci can recompute are in ``METRICS`` (one table, documented in the
README); anything else keeps its point comparison.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlci.errors import ConfigError

if TYPE_CHECKING:
    from concurrent.futures import Future

    import numpy as np
    from numpy.typing import NDArray

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20261128
_Chunk = TypeVar("_Chunk")
_Result = TypeVar("_Result")
_CHUNK_CELLS = 4_000_000  # weights per chunk (resamples x rows): 16 MB as float32
# Bounds on a predictions file (a training command's output, or an artifact a pull
# request's job uploaded): checked as it is read, each past its bound an error that says so.
MAX_ROWS = 5_000_000
MAX_CLASSES = 1_000  # the bootstrap keeps three columns per class
MAX_CELLS = 60_000_000  # rows x classes: the bootstrap's table
MAX_FIELD = 4_096  # characters of one CSV field (a label, a score, an id)
MAX_COLUMNS = 3 + MAX_CLASSES
MAX_BYTES = 1024**3  # of the file: 60M cells of about ten characters, and room to spare
_RECOMPUTE_TOLERANCE = 1e-6  # a recomputed metric this close to metrics.json's is the same metric


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Predictions:
    """One run's predictions on its evaluation rows, as the training command wrote them.

    ``y_score`` is one column (the positive class's score, for two classes) or one per
    class (``classes`` order); ``classes`` are the sorted labels of ``y_true`` and
    ``y_pred`` together (as scikit-learn orders ``classes_``)."""

    y_true: NDArray[Any]
    y_pred: NDArray[Any] | None
    y_score: NDArray[np.float64] | None
    ids: NDArray[Any] | None
    classes: tuple[Any, ...]
    regression: bool

    @property
    def rows(self) -> int:
        return int(self.y_true.shape[0])

    def digest(self) -> str:
        """sha256 of the rows' identity (``id`` where given, then ``y_true``): two runs with
        the same digest were evaluated on the same rows, in the same order."""
        h = hashlib.sha256()
        if self.ids is not None:
            h.update(b"id\0" + "\0".join(map(str, self.ids.tolist())).encode())
        h.update(b"y_true\0" + "\0".join(map(_label_text, self.y_true.tolist())).encode())
        return h.hexdigest()

    def in_id_order(self) -> Predictions:
        """The rows sorted by ``id`` (unchanged without ids): two runs that wrote the same
        rows in different orders then line up."""
        import numpy as np

        if self.ids is None:
            return self
        order = np.argsort(self.ids, kind="stable")
        return Predictions(
            self.y_true[order],
            None if self.y_pred is None else self.y_pred[order],
            None if self.y_score is None else self.y_score[order],
            self.ids[order],
            self.classes,
            self.regression,
        )


def _label_text(value: Any) -> str:
    """A label as text, with integral floats as integers (1.0 and 1 are the same class)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_predictions(path: Path, *, where: str = "train.predictions") -> Predictions:
    """Read a predictions file (CSV, or Parquet where pyarrow is installed).

    Columns: ``y_true``; ``y_pred`` and/or scores (``y_score`` for two classes or a
    regression's prediction, or ``y_score_<class>`` per class); optional ``id``."""
    if not path.is_file():
        raise ConfigError(
            f"{where}: {path} was not written",
            hint="the training command must write its predictions there (columns y_true, y_pred/y_score)",
        )
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError(
            f"{where}: {path} is {size:,} bytes, more than mlci reads for predictions ({MAX_BYTES:,})",
            hint="evaluate on a sample of the rows (a fixed one, so runs compare)",
        )
    if path.suffix.lower() in (".parquet", ".pq"):
        columns = _read_parquet(path, where)
    else:
        columns = _read_csv(path, where)
    return _from_columns(columns, path, where)


def _read_csv(path: Path, where: str) -> dict[str, list[str]]:
    hint = "write one row per evaluated example: y_true, y_pred and/or scores, optionally id"
    number = 1
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(_bounded_lines(handle, path, where))
            header = next(reader, None)
            if not header:
                raise ConfigError(f"{where}: {path} is empty", hint="write a header row: y_true,y_pred,...")
            names = [h.strip() for h in header]
            if len(names) > MAX_COLUMNS:
                raise ConfigError(
                    f"{where}: {path} has {len(names)} columns, more than mlci reads ({MAX_COLUMNS}: "
                    f"y_true, y_pred, id and a score for each of up to {MAX_CLASSES} classes)",
                    hint=hint,
                )
            if len(set(names)) != len(names):
                raise ConfigError(f"{where}: {path} names a column twice in its header", hint=hint)
            columns: dict[str, list[str]] = {n: [] for n in names}
            for number, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(names):
                    raise ConfigError(
                        f"{where}: {path} line {number} has {len(row)} fields, the header {len(names)}",
                        hint="every row needs one value per column",
                    )
                if number > MAX_ROWS + 1:
                    raise ConfigError(
                        f"{where}: {path} has more than {MAX_ROWS:,} rows, mlci's limit for predictions",
                        hint="evaluate on a sample of at most that many rows (a fixed one, so runs compare)",
                    )
                for name, value in zip(names, row, strict=True):
                    columns[name].append(value.strip())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: {path} is not UTF-8 text", hint="write the predictions as CSV") from exc
    except csv.Error as exc:
        raise ConfigError(f"{where}: {path} line {number + 1} is not valid CSV ({exc})", hint=hint) from None
    return columns


def _bounded_lines(handle: Any, path: Path, where: str) -> Iterator[str]:
    """The file's lines, each at most a row's worth of bounded fields (csv's own limit
    would raise ``_csv.Error`` deep in the reader, and a line has no limit at all)."""
    limit = MAX_FIELD * MAX_COLUMNS
    for number, line in enumerate(iter(lambda: handle.readline(limit + 1), ""), start=1):
        if len(line) > limit:
            raise ConfigError(
                f"{where}: {path} line {number} is longer than {limit:,} characters",
                hint=f"a field is at most {MAX_FIELD:,} characters (a label, a score or an id)",
            )
        yield line


def _read_parquet(path: Path, where: str) -> dict[str, list[Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(
            f"{where}: {path} is Parquet, and pyarrow is not installed",
            hint="pip install pyarrow, or write the predictions as CSV",
        ) from exc
    try:
        meta = pq.read_metadata(path)
        if meta.num_rows > MAX_ROWS or meta.num_columns > MAX_COLUMNS:
            raise ConfigError(
                f"{where}: {path} has {meta.num_rows:,} rows and {meta.num_columns:,} columns, more than "
                f"mlci reads for predictions ({MAX_ROWS:,} rows, {MAX_COLUMNS:,} columns)",
                hint="evaluate on a sample of the rows, with one score column per class",
            )
        table = pq.read_table(path)
    except ConfigError:
        raise
    except Exception as exc:  # pyarrow raises its own error types
        raise ConfigError(f"{where}: {path} cannot be read as Parquet: {str(exc)[:300]}") from None
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _numbers(values: list[Any], column: str, path: Path, where: str) -> NDArray[np.float64]:
    import numpy as np

    try:
        array = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: {path} column {column} has a value that is not a number ({exc})",
            hint="scores are numbers (a probability for a class, or a regression's prediction)",
        ) from exc
    if not np.isfinite(array).all():
        raise ConfigError(f"{where}: {path} column {column} has NaN or infinite values")
    return array


def _labels(values: list[Any]) -> NDArray[Any]:
    """Labels as numbers where they all are (1 and 1.0 alike), else as text."""
    import numpy as np

    try:
        numbers = np.asarray([float(v) for v in values], dtype=np.float64)
        if np.isfinite(numbers).all():
            return numbers
    except (TypeError, ValueError):
        pass
    return np.asarray([_label_text(v) for v in values], dtype=object)


def _from_columns(columns: Mapping[str, list[Any]], path: Path, where: str) -> Predictions:
    import numpy as np

    if "y_true" not in columns:
        raise ConfigError(
            f"{where}: {path} has no y_true column (it has {', '.join(columns) or 'none'})",
            hint="columns: y_true, then y_pred and/or y_score (or y_score_<class>), optionally id",
        )
    rows = len(columns["y_true"])
    if rows == 0:
        raise ConfigError(f"{where}: {path} has no rows")
    class_scores = sorted(c for c in columns if c.startswith("y_score_"))
    if "y_pred" not in columns and "y_score" not in columns and not class_scores:
        raise ConfigError(
            f"{where}: {path} has y_true but no y_pred or y_score",
            hint="write y_pred (the predicted label) and/or y_score (a score per row, or y_score_<class>)",
        )
    y_true_raw = columns["y_true"]
    ids = np.asarray([str(v) for v in columns["id"]], dtype=object) if "id" in columns else None
    if ids is not None and len(set(ids.tolist())) != rows:
        raise ConfigError(f"{where}: {path} column id has repeated values", hint="id must name each row once")
    y_true = _labels(y_true_raw)
    y_pred = _labels(columns["y_pred"]) if "y_pred" in columns else None
    numeric = y_true.dtype != object and (y_pred is None or y_pred.dtype != object)
    # A regression: numeric y_true and y_pred that are not class labels (a fraction, or
    # more distinct values than a classifier has classes).
    regression = (
        numeric
        and y_pred is not None
        and (
            not bool(np.all(np.mod(y_true, 1) == 0) and np.all(np.mod(y_pred, 1) == 0))
            or len(set(y_true.tolist()) | set(y_pred.tolist())) > 100
        )
    )
    if regression:
        assert y_pred is not None
        return Predictions(y_true, y_pred.astype(np.float64), None, ids, (), True)
    if not numeric:  # text labels: compare as text
        y_true = np.asarray([_label_text(v) for v in y_true_raw], dtype=object)
        if y_pred is not None:
            y_pred = np.asarray([_label_text(v) for v in columns["y_pred"]], dtype=object)
    classes = tuple(sorted(set(y_true.tolist()) | (set(y_pred.tolist()) if y_pred is not None else set())))
    if len(classes) > MAX_CLASSES or len(classes) * rows > MAX_CELLS:
        raise ConfigError(
            f"{where}: {path} has {len(classes):,} classes over {rows:,} rows, more than mlci's limits "
            f"for interval estimates ({MAX_CLASSES:,} classes, {MAX_CELLS:,} rows x classes)",
            hint="report this model's metrics without train.predictions, or evaluate on fewer rows",
        )
    y_score: NDArray[np.float64] | None = None
    if class_scores:
        names = [c.removeprefix("y_score_") for c in class_scores]
        by_label = {_label_text(c): c for c in classes}
        unknown = [n for n in names if n not in by_label]
        if unknown:
            raise ConfigError(
                f"{where}: {path} has scores for {', '.join(unknown)}, which no row's label is",
                hint="name score columns y_score_<class> after the labels in y_true",
            )
        order = [f"y_score_{_label_text(c)}" for c in classes]
        missing = [o for o in order if o not in columns]
        if missing:
            raise ConfigError(
                f"{where}: {path} lacks {', '.join(missing)}", hint="one score column per class"
            )
        y_score = np.column_stack([_numbers(list(columns[o]), o, path, where) for o in order])
        if len(classes) == 2:
            y_score = y_score[:, 1]
    elif "y_score" in columns:
        y_score = _numbers(list(columns["y_score"]), "y_score", path, where)
        if len(classes) > 2:
            raise ConfigError(
                f"{where}: {path} has one y_score column for {len(classes)} classes",
                hint="write one score column per class: y_score_<class>",
            )
    return Predictions(y_true, y_pred, y_score, ids, classes, False)


# --------------------------------------------------------------------------- metrics


class _Prepared:
    """One run's predictions as the vectors its metrics need, rows sorted by score (a
    binary classifier's; the file's order otherwise): ``order[j]`` is the file row at
    position j. Weights are drawn in this order, so rank metrics (ROC AUC, average
    precision) are cumulative sums with no reordering; ``starts`` begins each run of equal
    scores (ties, summed as one group)."""

    def __init__(self, predictions: Predictions) -> None:
        import numpy as np

        p = predictions
        self.p = p
        n = p.rows
        score = p.y_score if p.y_score is not None and p.y_score.ndim == 1 else None
        self.columns: dict[str, NDArray[np.float32]] = {}
        self._matrices: dict[tuple[str, ...], NDArray[np.float32]] = {}
        ranked = score is not None and len(p.classes) == 2 and not p.regression
        self.order: NDArray[np.intp] = (
            np.argsort(score, kind="stable") if ranked and score is not None else np.arange(n)
        )
        self.starts: NDArray[np.intp] | None = None
        self.tied_positives: NDArray[np.intp] | None = None
        self.tied_before: NDArray[np.intp] | None = None
        self.tied_last: NDArray[np.intp] | None = None
        o = self.order
        if p.regression:
            assert p.y_pred is not None
            y, pred = p.y_true[o].astype(np.float64), p.y_pred[o].astype(np.float64)
            error = pred - y
            self._add("abs_error", np.abs(error))
            self._add("sq_error", error * error)
            self._add("y", y)
            self._add("y2", y * y)
            return
        classes = p.classes
        y = p.y_true[o]
        binary = len(classes) == 2
        positive = classes[-1] if classes else None
        if p.y_pred is not None:
            pred = p.y_pred[o]
            self._add("correct", pred == y)
            for index, label in enumerate(classes):
                self._add(f"true_{index}", y == label)
                self._add(f"pred_{index}", pred == label)
                self._add(f"hit_{index}", (pred == label) & (y == label))
        else:
            for index, label in enumerate(classes):
                self._add(f"true_{index}", y == label)
        if p.y_score is not None:
            eps = np.finfo(np.float64).eps
            if binary and score is not None:
                s = np.clip(score[o], eps, 1 - eps)
                is_pos = y == positive
                self._add("log_loss", np.where(is_pos, -np.log(s), -np.log1p(-s)))
                self._add("pos", is_pos)
                sorted_score = score[o]
                self.starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
                # Positives that share their score with another row: ROC AUC counts their
                # ties with negatives as half, a correction over these columns alone.
                ends = np.r_[self.starts[1:], n]
                sizes = ends - self.starts
                group_of = np.repeat(np.arange(len(self.starts)), sizes)
                tied = np.flatnonzero((sizes[group_of] > 1) & is_pos)
                self.tied_positives = tied
                self.tied_before = self.starts[group_of[tied]] - 1  # -1: nothing before
                self.tied_last = ends[group_of[tied]] - 1
            elif p.y_score.ndim == 2:
                probabilities = p.y_score[o]
                probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
                index_of = {label: i for i, label in enumerate(classes)}
                truth = np.asarray([index_of[v] for v in y.tolist()])
                picked = np.clip(probabilities[np.arange(len(truth)), truth], eps, 1 - eps)
                self._add("log_loss", -np.log(picked))

    def _add(self, name: str, vector: Any) -> None:
        import numpy as np

        self.columns[name] = np.asarray(vector, dtype=np.float32)

    def expand(self, needs: tuple[str, ...]) -> list[str]:
        """Column names, with ``x_*`` standing for ``x_<i>`` for every class i."""
        out: list[str] = []
        for need in needs:
            if need.endswith("_*"):
                out += [f"{need[:-1]}{i}" for i in range(len(self.p.classes))]
            else:
                out.append(need)
        return out

    def has(self, *needs: str) -> bool:
        if not self.p.classes and any(n.endswith("_*") for n in needs):
            return False  # a per-class column where there are no classes (a regression)
        return all(n in self.columns for n in self.expand(needs))

    def recomputable(self, names: list[str]) -> list[str]:
        """The names in METRICS that these predictions have the columns for, in order."""
        return [n for n in names if n in METRICS and self.has(*METRICS[n].needs)]

    def point(self, names: list[str]) -> dict[str, float]:
        """The metrics on the predictions as they are (every row weighing 1, in float64)."""
        import numpy as np

        values = _evaluate(names, self, np.ones((1, self.p.rows), dtype=np.float64))
        return {n: float(v[0]) for n, v in values.items()}

    def sums(self, weights: NDArray[np.float32], names: list[str]) -> dict[str, NDArray[np.float64]]:
        """The named columns' weighted sums under each resample's weights (one matrix product)."""
        import numpy as np

        key = tuple(names)
        matrix = self._matrices.get(key)
        if matrix is None:  # the same columns for every chunk: stacked once
            ones = np.ones(weights.shape[1], dtype=np.float32)  # the total weight, in the same product
            matrix = self._matrices[key] = np.column_stack([self.columns[n] for n in names] + [ones])
        products = (weights @ matrix).astype(np.float64)
        out = {n: products[:, i] for i, n in enumerate(names)}
        out["total"] = products[:, -1]
        return out


def _ratio(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def _classes(p: _Prepared) -> range:
    return range(len(p.p.classes))


def _per_class(s: Mapping[str, NDArray[np.float64]], p: _Prepared, kind: str) -> list[NDArray[np.float64]]:
    """Per-class precision, recall or f1 (scikit-learn's zero_division=0)."""
    out = []
    for i in _classes(p):
        hit = s[f"hit_{i}"]
        if kind == "precision":
            out.append(_ratio(hit, s[f"pred_{i}"]))
        elif kind == "recall":
            out.append(_ratio(hit, s[f"true_{i}"]))
        else:
            out.append(_ratio(2 * hit, s[f"pred_{i}"] + s[f"true_{i}"]))
    return out


def _averaged(kind: str) -> Callable[[Mapping[str, NDArray[np.float64]], _Prepared], NDArray[np.float64]]:
    """Binary: the positive class (the greater label); more classes: the macro average."""

    def metric(s: Mapping[str, NDArray[np.float64]], p: _Prepared) -> NDArray[np.float64]:
        import numpy as np

        values = _per_class(s, p, kind)
        if len(values) == 2:
            return values[1]
        return np.asarray(np.mean(values, axis=0), dtype=np.float64)

    return metric


def _balanced_accuracy(s: Mapping[str, NDArray[np.float64]], p: _Prepared) -> NDArray[np.float64]:
    import numpy as np

    present = [i for i in _classes(p) if p.columns[f"true_{i}"].any()]
    return np.asarray(
        np.mean([_ratio(s[f"hit_{i}"], s[f"true_{i}"]) for i in present], axis=0), dtype=np.float64
    )


def _r2(s: Mapping[str, NDArray[np.float64]], p: _Prepared) -> NDArray[np.float64]:
    import numpy as np

    total = s["total"]
    mean = _ratio(s["y"], total)
    sst = s["y2"] - total * mean * mean
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sst > 0, 1 - s["sq_error"] / np.where(sst > 0, sst, 1.0), np.nan)


def _rank_sums(weights: NDArray[np.float32], p: _Prepared) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Weighted positives and negatives per distinct score (ascending), per resample."""
    import numpy as np

    assert p.starts is not None
    pos = weights * p.columns["pos"]
    neg = weights - pos
    if len(p.starts) < weights.shape[1]:  # ties: one group per distinct score
        pos = np.add.reduceat(pos, p.starts, axis=1)
        neg = np.add.reduceat(neg, p.starts, axis=1)
    return pos.astype(np.float64), neg.astype(np.float64)


def _roc_auc(
    weights: NDArray[np.float32], p: _Prepared, sums: Mapping[str, NDArray[np.float64]]
) -> NDArray[np.float64]:
    """Weighted Mann-Whitney: each positive counts the negative weight scored below it,
    and half of that tied with it. In score order, a positive's inclusive cumulative
    negative weight is what lies below it, plus the tied negatives ahead of it in its
    group; the rows in tie groups are then corrected to half their group's negatives."""
    import numpy as np

    assert p.tied_positives is not None and p.tied_before is not None and p.tied_last is not None
    negative = 1 - p.columns["pos"]
    below = weights * negative
    np.cumsum(below, axis=1, out=below)  # inclusive cumulative negative weight
    # Each positive's weight times the negative weight below it (a negative's own term is
    # its weight times 0), in one pass. The cumulative sums are exact integers in float32;
    # the sum of products carries float32 rounding, about 1e-5 of the AUC at 100,000 rows
    # (under 1% of a 95% interval's width there). The point estimate is float64 throughout.
    area = np.einsum("ij,ij,j->i", weights, below, p.columns["pos"]).astype(np.float64)
    if len(p.tied_positives):
        at = below[:, p.tied_positives]
        before = np.where(p.tied_before >= 0, below[:, np.maximum(p.tied_before, 0)], 0.0)
        middle = 0.5 * (before + below[:, p.tied_last])
        area += (weights[:, p.tied_positives] * (middle - at)).sum(axis=1, dtype=np.float64)
    positives = sums["pos"]
    negatives = sums["total"] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(area / (positives * negatives), dtype=np.float64)


def _average_precision(
    weights: NDArray[np.float32], p: _Prepared, sums: Mapping[str, NDArray[np.float64]]
) -> NDArray[np.float64]:
    import numpy as np

    pos, neg = _rank_sums(weights, p)
    # Thresholds from the highest score down: cumulative sums from the right.
    tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]
    fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        return np.asarray((pos * precision).sum(axis=1) / pos.sum(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class Metric:
    """A metric mlci recomputes from predictions: what it needs, and how, from the
    weighted column sums (``summed``) or from the weights in score order (``ranked``)."""

    name: str
    needs: tuple[str, ...]  # columns of _Prepared
    summed: Callable[[Mapping[str, NDArray[np.float64]], _Prepared], NDArray[np.float64]] | None = None
    ranked: (
        Callable[[NDArray[np.float32], _Prepared, Mapping[str, NDArray[np.float64]]], NDArray[np.float64]]
        | None
    ) = None
    binary_only: bool = False


def _mean_of(column: str) -> Callable[[Mapping[str, NDArray[np.float64]], _Prepared], NDArray[np.float64]]:
    return lambda s, p: _ratio(s[column], s["total"])


def _root_mean_of(
    column: str,
) -> Callable[[Mapping[str, NDArray[np.float64]], _Prepared], NDArray[np.float64]]:
    def root_mean(s: Mapping[str, NDArray[np.float64]], p: _Prepared) -> NDArray[np.float64]:
        import numpy as np

        return np.asarray(np.sqrt(_ratio(s[column], s["total"])), dtype=np.float64)

    return root_mean


# The one table of what mlci recomputes (the README lists it): scikit-learn's definitions,
# with its defaults (binary: the greater label is positive; more classes: macro average).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", ("correct",), summed=_mean_of("correct")),
        Metric("balanced_accuracy", ("true_*", "hit_*"), summed=_balanced_accuracy),
        Metric("precision", ("pred_*", "hit_*"), summed=_averaged("precision")),
        Metric("recall", ("true_*", "hit_*"), summed=_averaged("recall")),
        Metric("f1", ("pred_*", "true_*", "hit_*"), summed=_averaged("f1")),
        Metric("roc_auc", ("pos",), ranked=_roc_auc, binary_only=True),
        Metric("average_precision", ("pos",), ranked=_average_precision, binary_only=True),
        Metric("log_loss", ("log_loss",), summed=_mean_of("log_loss")),
        Metric("rmse", ("sq_error",), summed=_root_mean_of("sq_error")),
        Metric("mae", ("abs_error",), summed=_mean_of("abs_error")),
        Metric("r2", ("y", "y2", "sq_error"), summed=_r2),
    )
}


def recomputable(name: str, predictions: Predictions) -> bool:
    return bool(_Prepared(predictions).recomputable([name]))


def _evaluate(
    names: list[str], prepared: _Prepared, weights: NDArray[np.float32]
) -> dict[str, NDArray[np.float64]]:
    """Each metric under each row of ``weights`` (resamples x rows, rows in ``prepared.order``)."""
    columns = sorted({c for n in names for c in prepared.expand(METRICS[n].needs)})
    sums = prepared.sums(weights, columns)
    out = {}
    for name in names:
        metric = METRICS[name]
        if metric.summed is not None:
            out[name] = metric.summed(sums, prepared)
        else:
            assert metric.ranked is not None
            out[name] = metric.ranked(weights, prepared, sums)
    return out


def point(name: str, predictions: Predictions) -> float:
    """The metric on the predictions as they are (every row weighing 1)."""
    return _Prepared(predictions).point([name])[name]


# --------------------------------------------------------------------------- the bootstrap


_POISSON_TABLE: Any = None


def _poisson_table() -> NDArray[np.float32]:
    """Poisson(1) by table lookup on 16 random bits: 65,536 entries whose counts follow
    Poisson(1)'s probabilities to 1/65,536 (values above 7, probability 1e-5, become 7)."""
    global _POISSON_TABLE
    import numpy as np

    if _POISSON_TABLE is None:
        cdf = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(8)])
        bounds = np.round(cdf * 65536).astype(np.int64)
        _POISSON_TABLE = (
            np.searchsorted(bounds, np.arange(65536), side="right").clip(max=7).astype(np.float32)
        )
    table: NDArray[np.float32] = _POISSON_TABLE
    return table


def _per_chunk(rows: int, resamples: int) -> int:
    return max(1, min(resamples, _CHUNK_CELLS // max(rows, 1)))


def _resample_bits(rows: int, resamples: int, seed: int, per_chunk: int | None = None) -> Iterator[Any]:
    """The random bits of each chunk of weights (resamples x rows, uint16), in order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    per_chunk = per_chunk or _per_chunk(rows, resamples)
    done = 0
    while done < resamples:
        k = min(per_chunk, resamples - done)
        yield np.frombuffer(rng.bytes(2 * k * rows), dtype=np.uint16).reshape(k, rows)
        done += k


def _weights(bits: Any) -> NDArray[np.float32]:
    import numpy as np

    weights: NDArray[np.float32] = np.take(_poisson_table(), bits)
    return weights


def _in_order(work: Callable[[_Chunk], _Result], chunks: Iterator[_Chunk]) -> list[_Result]:
    """``work`` on every chunk, answers in the chunks' order, on up to two threads: numpy
    releases the GIL in the loops that make up a chunk's work (the weights, their products
    and cumulative sums), so two cores evaluate two chunks at once. The chunks are drawn
    in order here, so the answers are the same as one thread's."""
    from concurrent.futures import ThreadPoolExecutor

    threads = min(2, os.cpu_count() or 1)
    if threads == 1:
        return [work(chunk) for chunk in chunks]
    answers = []
    with ThreadPoolExecutor(threads, thread_name_prefix="mlci-bootstrap") as pool:
        pending: deque[Future[_Result]] = deque()
        for chunk in chunks:
            pending.append(pool.submit(work, chunk))
            if len(pending) > threads:  # at most one chunk waits: memory stays a few chunks
                answers.append(pending.popleft().result())
        answers += [future.result() for future in pending]
    return answers


@dataclass(frozen=True)
class Interval:
    """A metric (or a difference of two) with its bootstrap interval."""

    value: float
    low: float
    high: float
    confidence: float
    resamples: int  # bootstrap resamples; 0 for an interval across seeds
    paired: bool = False  # a difference on the same rows (or, across seeds, the same seeds) for both runs
    seeds: int = 0  # across training seeds (train.repeats): how many, for a Student t interval

    def excludes(self, bound: float) -> bool:
        return not (self.low <= bound <= self.high)

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "resamples": self.resamples,
            **({"paired": self.paired} if self.paired else {}),
            **({"seeds": self.seeds} if self.seeds else {}),
        }


def _interval(
    value: float, samples: NDArray[np.float64], confidence: float, resamples: int, paired: bool = False
) -> Interval:
    import numpy as np

    finite = samples[np.isfinite(samples)]
    if finite.size < max(10, resamples // 2):  # the metric is undefined on most resamples
        return Interval(value, math.nan, math.nan, confidence, resamples, paired)
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Interval(value, float(low), float(high), confidence, resamples, paired)


@dataclass(frozen=True)
class Samples:
    """A metric's value (or a difference's) and its bootstrap replicates: an interval at
    any confidence without resampling again."""

    value: float
    samples: NDArray[np.float64]
    resamples: int
    paired: bool = False

    def interval(self, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
        return _interval(self.value, self.samples, confidence, self.resamples, self.paired)


def bootstrap(
    predictions: Predictions,
    names: list[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Samples]:
    """Each named metric's value and bootstrap replicates (names mlci cannot recompute
    from these predictions are left out)."""
    import numpy as np

    prepared = _Prepared(predictions)
    names = prepared.recomputable(names)
    if not names:
        return {}
    values = prepared.point(names)
    chunks = _in_order(
        lambda bits: _evaluate(names, prepared, _weights(bits)),
        _resample_bits(predictions.rows, resamples, seed),
    )
    return {n: Samples(values[n], np.concatenate([c[n] for c in chunks]), resamples) for n in names}


def intervals(
    predictions: Predictions,
    names: list[str],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Interval]:
    """Each named metric's value and percentile interval (names mlci cannot recompute
    from these predictions are left out)."""
    found = bootstrap(predictions, names, resamples=resamples, seed=seed)
    return {n: s.interval(confidence) for n, s in found.items()}


def same_rows(a: Predictions, b: Predictions) -> bool:
    return a.in_id_order().digest() == b.in_id_order().digest()


def bootstrap_differences(
    head: Predictions,
    base: Predictions,
    names: list[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Samples]:
    """head minus base for each metric both can recompute, with its interval: paired (the
    same resampled rows for both) when the two were evaluated on the same rows, else the
    two resampled independently."""
    import numpy as np

    paired = same_rows(head, base)
    if paired:
        head, base = head.in_id_order(), base.in_id_order()
    h, b = _Prepared(head), _Prepared(base)
    names = [n for n in h.recomputable(names) if n in b.recomputable(names)]
    if not names:
        return {}
    head_values, base_values = h.point(names), b.point(names)

    def difference(hv: Mapping[str, Any], bv: Mapping[str, Any]) -> dict[str, NDArray[np.float64]]:
        return {n: hv[n] - bv[n] for n in names}

    if paired:
        # Weights are drawn in the head's row order; the base's rows are the same rows in
        # its own order: position j of the base is file row b.order[j], which the head
        # holds at position where[b.order[j]].
        where = np.empty(head.rows, dtype=np.intp)
        where[h.order] = np.arange(head.rows)
        to_base = where[b.order]
        same_order = bool(np.array_equal(h.order, b.order))

        def one(bits: Any) -> dict[str, NDArray[np.float64]]:
            weights = _weights(bits)
            base_weights = weights if same_order else weights[:, to_base]
            return difference(_evaluate(names, h, weights), _evaluate(names, b, base_weights))

        chunks = _in_order(one, _resample_bits(head.rows, resamples, seed))
    else:
        per_chunk = _per_chunk(max(head.rows, base.rows), resamples)
        both = zip(
            _resample_bits(head.rows, resamples, seed, per_chunk),
            _resample_bits(base.rows, resamples, seed + 1, per_chunk),
            strict=True,
        )
        chunks = _in_order(
            lambda pair: difference(
                _evaluate(names, h, _weights(pair[0])), _evaluate(names, b, _weights(pair[1]))
            ),
            both,
        )
    return {
        n: Samples(head_values[n] - base_values[n], np.concatenate([c[n] for c in chunks]), resamples, paired)
        for n in names
    }


def differences(
    head: Predictions,
    base: Predictions,
    names: list[str],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Interval]:
    """head minus base for each metric both can recompute, with its interval (see
    ``bootstrap_differences``)."""
    found = bootstrap_differences(head, base, names, resamples=resamples, seed=seed)
    return {n: s.interval(confidence) for n, s in found.items()}


def agrees(name: str, predictions: Predictions, reported: float) -> bool:
    """Whether the metric recomputed from the predictions is the one metrics.json reports
    (a file from another split, or another averaging, is not gated on)."""
    return _same(point(name, predictions), reported)


def check_reported(
    predictions: Predictions, metrics: Mapping[str, float]
) -> tuple[list[str], dict[str, float]]:
    """Of the reported ``metrics``, those the predictions recompute to (the ones that get
    intervals), and the recomputed value of each recomputable one that they do not."""
    prepared = _Prepared(predictions)
    values = prepared.point(prepared.recomputable(list(metrics)))
    agreeing = [n for n, v in values.items() if _same(v, metrics[n])]
    return agreeing, {n: v for n, v in values.items() if n not in agreeing}


def _same(value: float, reported: float) -> bool:
    """``value`` is ``reported``, to the precision it was reported with."""
    text = repr(float(reported))
    decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text else 0
    # metrics.json may round: 0.986014 stands for anything within half its last digit.
    tolerance = max(
        _RECOMPUTE_TOLERANCE * max(1.0, abs(reported)), 0.5 * 10.0**-decimals if decimals else 0.0
    )
    return math.isfinite(value) and abs(value - reported) <= tolerance + 1e-12


# --------------------------------------------------------------------------- across seeds (train.repeats)


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with ``df`` (a whole number) degrees of freedom: the
    closed forms of Abramowitz and Stegun 26.7.3-4, exact for every df."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):  # cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ...
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return (2 / math.pi) * (theta + s * total) if df > 1 else 2 * theta / math.pi
    term, total = 1.0, 0.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ...
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return s * total


def t_quantile(confidence: float, df: int) -> float:
    """The t such that P(|T| < t) = ``confidence`` (df >= 1), by bisection."""
    low, high = 0.0, 1.0
    while _t_two_sided(high, df) < confidence:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if _t_two_sided(mid, df) < confidence:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    mean = math.fsum(values) / len(values)
    var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def seed_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The mean of a metric over training seeds and its Student t interval (NaN bounds
    with fewer than two finite values)."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        value = finite[0] if finite else math.nan
        return Interval(value, math.nan, math.nan, confidence, 0, seeds=len(finite))
    mean, sd = _mean_sd(finite)
    half = t_quantile(confidence, len(finite) - 1) * sd / math.sqrt(len(finite))
    return Interval(mean, mean - half, mean + half, confidence, 0, seeds=len(finite))


def seed_difference(
    head: Sequence[float],
    base: Sequence[float] | float,
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    paired: bool = False,
) -> Interval:
    """head's mean minus base's, with its t interval: paired on the seeds where both ran
    the same ones (``paired``), Welch's where they ran others, and the head's own
    interval shifted where the base is one value (a run without repeats)."""
    if isinstance(base, (int, float)):
        own = seed_interval(head, confidence)
        return Interval(own.value - base, own.low - base, own.high - base, confidence, 0, seeds=own.seeds)
    if paired and len(head) == len(base):
        found = seed_interval([h - b for h, b in zip(head, base, strict=True)], confidence)
        return Interval(found.value, found.low, found.high, confidence, 0, paired=True, seeds=found.seeds)
    a = [v for v in head if math.isfinite(v)]
    b = [v for v in base if math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return Interval(math.nan, math.nan, math.nan, confidence, 0, seeds=len(a))
    (ma, sa), (mb, sb) = _mean_sd(a), _mean_sd(b)
    va, vb = sa**2 / len(a), sb**2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(ma - mb, ma - mb, ma - mb, confidence, 0, seeds=len(a))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    half = t_quantile(confidence, max(1, int(df))) * se  # df rounded down: a little wider
    return Interval(ma - mb, ma - mb - half, ma - mb + half, confidence, 0, seeds=len(a))
