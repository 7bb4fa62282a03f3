"""What a gate with a confidence is judged on: the runs' predictions, bootstrapped.

A run trained with ``train.predictions`` carries its predictions file as an
artifact and four tags (``mlci.tracking.PREDICTIONS_TAG`` and friends): the
file's name, its sha256, the digest of the rows, and the metrics that recompute
from it to the value the run reported. ``load`` finds a run's file through those
tags; ``of_version`` finds a registered version's, which its tag records (and a
GitHub release keeps beside the model, so it outlives the job that trained it);
``RunEvidence`` answers ``gates.Evidence`` from the head's and a baseline's: each
metric's interval, and each difference's (paired on the same rows). ``Certainty``
serves a whole report, bootstrapping the head once and each baseline's
differences once, for its verdicts and its table alike.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import archive, stats, stores
from mlci.errors import MlciError
from mlci.tracking import PREDICTIONS_METRICS_TAG, PREDICTIONS_TAG, sqlite_path

if TYPE_CHECKING:
    from mlci import config as cfg
    from mlci.tracking import Tracking


@dataclass(frozen=True)
class RunPredictions:
    run_id: str
    predictions: stats.Predictions
    metrics: frozenset[str]  # the metrics that recompute from them to the run's reported value
    _samples: dict[str, stats.Samples] = field(default_factory=dict, repr=False, compare=False)

    def samples(self) -> dict[str, stats.Samples]:
        """Each of its metrics bootstrapped, once however many verdicts and columns ask."""
        if not self._samples and self.metrics:
            self._samples.update(stats.bootstrap(self.predictions, sorted(self.metrics)))
        return self._samples


def _download(tracking: Tracking, run_id: str, name: str) -> Path:
    """A run's predictions artifact, copied into a temporary folder."""
    path = tracking.download(f"runs:/{run_id}/{name}", Path(tempfile.mkdtemp(prefix="mlci-predictions-")))
    return path / name if path.is_dir() else path


def load(
    tracking: Tracking, run_id: str, tags: Mapping[str, str], log: Callable[[str], None]
) -> RunPredictions | None:
    """The predictions a run recorded; None, said in the log, where the run has none or
    they cannot be had."""
    name = tags.get(PREDICTIONS_TAG)
    if not name:
        return None
    metrics = frozenset(m for m in tags.get(PREDICTIONS_METRICS_TAG, "").split(",") if m)
    try:
        path = _download(tracking, run_id, name)
        predictions = stats.read_predictions(path, where=f"the predictions of run {run_id}")
    except MlciError as exc:
        log(f"no intervals from run {run_id}'s predictions: {exc.message.splitlines()[0]}")
        return None
    return RunPredictions(run_id, predictions, metrics)


def _has_runs(tracking: Tracking) -> bool:
    """Whether asking ``tracking`` for a run can find one: a CI job's embedded store that
    was never made has none, and opening it would make it (MLflow's import, seconds)."""
    path = sqlite_path(tracking.uri)
    return path is None or path.exists()


def of_version(
    config: cfg.Config,
    environ: Mapping[str, str],
    version: stores.Version,
    tracking: Tracking,
    log: Callable[[str], None],
) -> RunPredictions | None:
    """The predictions a registered version recorded, where they are kept: its GitHub
    release (the store that outlives a CI job), else its run in ``tracking``; the
    sha256 its tag records is checked either way. None, said in the log, where there
    are none to be had (then its rules keep their point comparison)."""
    meta = version.metadata
    record = meta.get(stores.PREDICTIONS_KEY)
    run_id = str(meta.get("mlflow_run_id") or "")
    if not isinstance(record, dict):
        # Registered before versions recorded their predictions: its run may have them.
        if not run_id or not _has_runs(tracking):
            return None
        try:
            tags = tracking.get_run(run_id).tags
        except MlciError:
            return None
        return load(tracking, run_id, tags, log)
    name, sha256 = str(record.get("name") or ""), str(record.get("sha256") or "")
    metrics = frozenset(m for m in record.get("metrics") or () if isinstance(m, str))
    reasons: list[str] = []
    path: Path | None = None
    if meta.get(stores.STORE_KEY) == "github" and meta.get(stores.PREDICTIONS_ASSET_KEY):
        from mlci.stores.github import ReleaseStore

        try:
            store = ReleaseStore.from_environ(config, environ, log)
            path = store.fetch_predictions(version, Path(tempfile.mkdtemp(prefix="mlci-predictions-")))
        except MlciError as exc:
            reasons.append(exc.message.splitlines()[0])
    if path is None and run_id and name and _has_runs(tracking):
        try:
            path = _download(tracking, run_id, name)
            archive.verify(archive.file_chunks(path), expected=sha256, source=f"{version.tag}'s predictions")
        except MlciError as exc:
            path = None
            reasons.append(exc.message.splitlines()[0])
    if path is None:
        why = "; ".join(reasons) or f"its run is not in {tracking.uri} and no release keeps them"
        log(f"no intervals from {version.tag}'s predictions: {why}")
        return None
    try:
        predictions = stats.read_predictions(path, where=f"{version.tag}'s predictions")
    except MlciError as exc:
        log(f"no intervals from {version.tag}'s predictions: {exc.message.splitlines()[0]}")
        return None
    return RunPredictions(run_id or version.tag, predictions, metrics)


class RunEvidence:
    """``gates.Evidence`` from a head's and (for differences) a baseline's predictions."""

    def __init__(self, head: RunPredictions | None, base: RunPredictions | None) -> None:
        self.head, self.base = head, base
        self._differences: dict[str, stats.Samples] | None = None

    def interval(self, metric: str, confidence: float) -> stats.Interval | None:
        found = self.head.samples().get(metric) if self.head is not None else None
        return found.interval(confidence) if found else None

    def difference(self, metric: str, confidence: float) -> stats.Interval | None:
        if self.head is None or self.base is None:
            return None
        if self._differences is None:
            names = sorted(self.head.metrics & self.base.metrics)
            self._differences = stats.bootstrap_differences(
                self.head.predictions, self.base.predictions, names
            )
        found = self._differences.get(metric)
        return found.interval(confidence) if found else None


class Certainty:
    """A report's intervals: the head's predictions, and each baseline's as ``base_of``
    finds them (once per baseline run). A verdict and the table's column against the same
    baseline share one ``RunEvidence``, so nothing is bootstrapped twice."""

    def __init__(
        self,
        head: RunPredictions | None,
        confidence: float,
        base_of: Callable[[Any], RunPredictions | None],
    ) -> None:
        self.head, self.confidence, self._base_of = head, confidence, base_of
        self._evidence: dict[str | None, RunEvidence] = {}

    def gate(self, env: Any, baseline: Any) -> RunEvidence:
        """``gates.Evidence`` for ``env``'s verdict against ``baseline`` (or none)."""
        key = (baseline.run_id or baseline.version or None) if baseline is not None else None
        if key not in self._evidence:
            self._evidence[key] = RunEvidence(self.head, self._base_of(baseline) if key else None)
        return self._evidence[key]

    def table(self, baseline: Any) -> dict[str, stats.Interval]:
        """The head's intervals (``baseline`` None), or its differences from ``baseline``."""
        if self.head is None:
            return {}
        found = self.gate(None, baseline)
        pick = found.interval if baseline is None else found.difference
        intervals = {n: pick(n, self.confidence) for n in sorted(self.head.metrics)}
        return {n: i for n, i in intervals.items() if i is not None}


HEAD_PREDICTIONS = "head-predictions"  # in a report folder: the head run's predictions (+ .csv/.parquet)


def copy_for_report(
    tracking: Tracking, run_id: str, tags: Mapping[str, str], folder: Path, log: Callable[[str], None]
) -> Path | None:
    """The head run's predictions next to its report (``head-predictions.<suffix>``), so a
    job that judges the report without the run (``mlci publish``) has the same evidence;
    an earlier run's copy goes, whether or not this run has one."""
    import shutil

    for stale in folder.glob(f"{HEAD_PREDICTIONS}.*"):
        stale.unlink()
    name = tags.get(PREDICTIONS_TAG)
    if not name:
        return None
    try:
        found = _download(tracking, run_id, name)
    except MlciError as exc:
        log(f"the report goes without run {run_id}'s predictions: {exc.message.splitlines()[0]}")
        return None
    target = folder / f"{HEAD_PREDICTIONS}{found.suffix.lower()}"
    shutil.copyfile(found, target)
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
    agreeing, _ = stats.check_reported(predictions, metrics)
    return RunPredictions("report", predictions, frozenset(agreeing))
