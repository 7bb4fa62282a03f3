"""What a gate with a confidence is judged on: the runs' predictions, bootstrapped.

A run trained with ``train.predictions`` carries its predictions file as an
artifact and three tags (``mlci.tracking.PREDICTIONS_TAG`` and friends): the
file's name, the digest of the rows, and the metrics that recompute from it to
the value the run reported. ``RunEvidence`` finds the head's and a baseline's
files through those tags and answers ``gates.Evidence``: each metric's interval,
and each difference's (paired on the same rows), bootstrapped once for all the
metrics a verdict asks about.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlci import stats
from mlci.errors import MlciError
from mlci.tracking import PREDICTIONS_METRICS_TAG, PREDICTIONS_TAG

if TYPE_CHECKING:
    from mlci.tracking import Tracking


@dataclass(frozen=True)
class RunPredictions:
    run_id: str
    predictions: stats.Predictions
    metrics: frozenset[str]  # the metrics that recompute from them to the run's reported value
    path: Path  # the file they were read from


def load(
    tracking: Tracking,
    run_id: str,
    tags: Mapping[str, str],
    log: Callable[[str], None],
    local: Path | None = None,
) -> RunPredictions | None:
    """The predictions a run recorded (``local``: the file the command just wrote, if it
    is that run's); None, said in the log, where the run has none or they cannot be had."""
    name = tags.get(PREDICTIONS_TAG)
    if not name:
        return None
    metrics = frozenset(m for m in tags.get(PREDICTIONS_METRICS_TAG, "").split(",") if m)
    try:
        if local is not None and local.is_file():
            path = local
        else:
            folder = Path(tempfile.mkdtemp(prefix="mlci-predictions-"))
            path = tracking.download(f"runs:/{run_id}/{name}", folder)
            if path.is_dir():
                path = path / name
        predictions = stats.read_predictions(path, where=f"the predictions of run {run_id}")
    except MlciError as exc:
        log(f"no intervals from run {run_id}'s predictions: {exc.message.splitlines()[0]}")
        return None
    return RunPredictions(run_id, predictions, metrics, path)


class RunEvidence:
    """``gates.Evidence`` from a head's and a baseline's predictions."""

    def __init__(
        self,
        head: RunPredictions | None,
        base: RunPredictions | None,
        names: list[str],
        *,
        resamples: int = stats.DEFAULT_RESAMPLES,
        seed: int = stats.DEFAULT_SEED,
    ) -> None:
        self.head, self.base = head, base
        self.names = names
        self.resamples, self.seed = resamples, seed
        self._values: dict[str, stats.Samples] | None = None
        self._differences: dict[str, stats.Samples] | None = None

    def interval(self, metric: str, confidence: float) -> stats.Interval | None:
        if self.head is None or metric not in self.head.metrics:
            return None
        if self._values is None:
            names = [n for n in self.names if n in self.head.metrics]
            self._values = stats.bootstrap(
                self.head.predictions, names, resamples=self.resamples, seed=self.seed
            )
        found = self._values.get(metric)
        return found.interval(confidence) if found else None

    def difference(self, metric: str, confidence: float) -> stats.Interval | None:
        if self.head is None or self.base is None:
            return None
        if metric not in self.head.metrics or metric not in self.base.metrics:
            return None
        if self._differences is None:
            names = [n for n in self.names if n in self.head.metrics and n in self.base.metrics]
            self._differences = stats.bootstrap_differences(
                self.head.predictions, self.base.predictions, names, resamples=self.resamples, seed=self.seed
            )
        found = self._differences.get(metric)
        return found.interval(confidence) if found else None


HEAD_PREDICTIONS = "head-predictions"  # in a report folder: the head run's predictions (+ .csv/.parquet)


def copy_for_report(
    tracking: Tracking, run_id: str, tags: Mapping[str, str], folder: Path, log: Callable[[str], None]
) -> Path | None:
    """The head run's predictions next to its report (``head-predictions.<suffix>``), so a
    job that judges the report without the run (``mlci publish``) has the same evidence."""
    import shutil

    for stale in folder.glob(f"{HEAD_PREDICTIONS}.*"):
        stale.unlink()
    found = load(tracking, run_id, tags, log)
    if found is None:
        return None
    target = folder / f"{HEAD_PREDICTIONS}{found.path.suffix.lower()}"
    shutil.copyfile(found.path, target)
    return target


_MAX_REPORT_PREDICTIONS = 256 * 1024 * 1024


def from_report(
    folder: Path, metrics: Mapping[str, float], log: Callable[[str], None]
) -> RunPredictions | None:
    """The head's predictions a report folder carries, read as data (a regular file, size
    capped, parsed, never run); the metrics that recompute to the report's own values
    are the ones that get intervals. None, said in the log, when there are none."""
    candidates = [
        p for p in folder.glob(f"{HEAD_PREDICTIONS}.*") if p.suffix.lower() in (".csv", ".parquet", ".pq")
    ]
    if not candidates:
        return None
    path = candidates[0]
    if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_REPORT_PREDICTIONS:
        log(
            f"no intervals: {path.name} in the report is not a regular file "
            f"under {_MAX_REPORT_PREDICTIONS} bytes"
        )
        return None
    try:
        predictions = stats.read_predictions(path, where=f"the report's {path.name}")
    except MlciError as exc:
        log(f"no intervals: {exc.message.splitlines()[0]}")
        return None
    agreeing = frozenset(
        name
        for name, value in metrics.items()
        if stats.recomputable(name, predictions) and stats.agrees(name, predictions, value)
    )
    return RunPredictions("report", predictions, agreeing, path)
