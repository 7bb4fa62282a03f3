"""What a gate with a confidence is judged on: the runs' predictions, bootstrapped.

A run trained with ``train.predictions`` carries its predictions file as an
artifact and four tags (``mlci.tracking.PREDICTIONS_TAG`` and friends): the
file's name, its sha256, the digest of the rows, and the metrics that recompute
from it to the value the run reported. ``load`` finds a run's file through those
tags; ``of_version`` finds a registered version's, which its tag records (and a
GitHub release keeps beside the model, so it outlives the job that trained it);
``Repeats`` (a run of ``train.repeats``: each metric's value per training seed, in
its run's tag and its version's) answers the same questions across seeds;
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

from mlci import stats, stores
from mlci.errors import MlciError
from mlci.tracking import (
    PREDICTIONS_DIGEST_TAG,
    PREDICTIONS_METRICS_TAG,
    PREDICTIONS_TAG,
    REPEATS_TAG,
    sqlite_path,
)

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


@dataclass(frozen=True)
class Repeats:
    """A run of ``train.repeats``: its seeds, and each metric's value per seed."""

    seeds: tuple[int, ...]
    values: Mapping[str, tuple[float, ...]]

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(self.values)

    def to_json(self) -> dict[str, Any]:
        return {"seeds": list(self.seeds), "metrics": {m: list(v) for m, v in sorted(self.values.items())}}


MAX_REPEATS_RECORD = 64 * 1024


def repeats_from(raw: object, reported: Mapping[str, float] | None = None) -> Repeats | None:
    """The repeats a run's tag, a version's metadata or a report records (JSON text or
    its object), checked as data: whole-number seeds, and for each metric one finite
    number per seed. With ``reported``, only the metrics whose mean is the reported value
    count (a report's numbers and its repeats must agree). None for anything else."""
    import json
    import math

    if isinstance(raw, str):
        if len(raw) > MAX_REPEATS_RECORD:
            return None
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict):
        return None
    seeds, metrics = raw.get("seeds"), raw.get("metrics")
    if (
        not isinstance(seeds, list)
        or not 2 <= len(seeds) <= 1000
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)
        or not isinstance(metrics, dict)
    ):
        return None
    values: dict[str, tuple[float, ...]] = {}
    for name, found in metrics.items():
        if not isinstance(name, str) or not isinstance(found, list) or len(found) != len(seeds):
            continue
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in found
        ):
            continue
        numbers = tuple(float(v) for v in found)
        if reported is not None:
            claimed = reported.get(name)
            mean = math.fsum(numbers) / len(numbers)
            if claimed is None or not math.isclose(mean, claimed, rel_tol=1e-6, abs_tol=1e-9):
                continue
        values[name] = numbers
    return Repeats(tuple(seeds), values) if values else None


def _download(tracking: Tracking, run_id: str, name: str, sha256: str | None) -> Path:
    """A run's predictions artifact, copied into a temporary folder and checked against
    the sha256 the run recorded (read without MLflow where a fast path can)."""
    run = tracking.get_run(run_id)
    return tracking.read_artifact(
        run, name, Path(tempfile.mkdtemp(prefix="mlci-predictions-")), sha256=sha256
    )


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
        path = _download(tracking, run_id, name, tags.get(PREDICTIONS_DIGEST_TAG))
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
            path = store.fetch_kept(
                version, "predictions", sha256, Path(tempfile.mkdtemp(prefix="mlci-predictions-"))
            )
        except MlciError as exc:
            reasons.append(exc.message.splitlines()[0])
    if path is None and run_id and name and _has_runs(tracking):
        try:
            path = _download(tracking, run_id, name, sha256)
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


class SeedEvidence:
    """``gates.Evidence`` across training seeds: the head's repeats, and the baseline's
    (paired by seed where both ran the same seeds) or, for a baseline trained once, its
    value."""

    def __init__(self, head: Repeats, base: Repeats | None, base_metrics: Mapping[str, float]) -> None:
        self.head, self.base, self.base_metrics = head, base, base_metrics

    def interval(self, metric: str, confidence: float) -> stats.Interval | None:
        found = self.head.values.get(metric)
        return stats.seed_interval(found, confidence) if found else None

    def difference(self, metric: str, confidence: float) -> stats.Interval | None:
        head = self.head.values.get(metric)
        if head is None:
            return None
        base = self.base.values.get(metric) if self.base is not None else None
        if base is not None:
            paired = self.base is not None and self.base.seeds == self.head.seeds
            return stats.seed_difference(head, base, confidence, paired=paired)
        point = self.base_metrics.get(metric)
        return None if point is None else stats.seed_difference(head, point, confidence)


Source = RunPredictions | Repeats  # what a run's intervals come from


class Certainty:
    """A report's intervals: the head's predictions, and each baseline's as ``base_of``
    finds them (once per baseline run). A verdict and the table's column against the same
    baseline share one ``RunEvidence``, so nothing is bootstrapped twice."""

    def __init__(
        self,
        head: Source | None,
        confidence: float,
        base_of: Callable[[Any], Source | None],
    ) -> None:
        self.head, self.confidence, self._base_of = head, confidence, base_of
        self._evidence: dict[str | None, RunEvidence | SeedEvidence] = {}

    def gate(self, env: Any, baseline: Any) -> RunEvidence | SeedEvidence:
        """``gates.Evidence`` for ``env``'s verdict against ``baseline`` (or none)."""
        key = (baseline.run_id or baseline.version or None) if baseline is not None else None
        if key not in self._evidence:
            self._evidence[key] = evidence_of(
                self.head,
                self._base_of(baseline) if key else None,
                baseline.metrics if baseline is not None else {},
            )
        return self._evidence[key]

    def repeats(self) -> dict[str, Any] | None:
        """The head's repeats, for the report's JSON (a job that judges it again reads them)."""
        return self.head.to_json() if isinstance(self.head, Repeats) else None

    def table(self, baseline: Any) -> dict[str, stats.Interval]:
        """The head's intervals (``baseline`` None), or its differences from ``baseline``."""
        if self.head is None:
            return {}
        found = self.gate(None, baseline)
        pick = found.interval if baseline is None else found.difference
        intervals = {n: pick(n, self.confidence) for n in sorted(self.head.metrics)}
        return {n: i for n, i in intervals.items() if i is not None}


def evidence_of(
    head: Source | None, base: Source | None, base_metrics: Mapping[str, float]
) -> RunEvidence | SeedEvidence:
    """The evidence two runs give: across seeds where the head ran repeats, else from
    predictions (a baseline of the other kind gives what it can: its value, or nothing)."""
    if isinstance(head, Repeats):
        return SeedEvidence(head, base if isinstance(base, Repeats) else None, base_metrics)
    return RunEvidence(head, base if isinstance(base, RunPredictions) else None)


def repeats_of_run(tags: Mapping[str, str]) -> Repeats | None:
    return repeats_from(tags.get(REPEATS_TAG)) if tags.get(REPEATS_TAG) else None


def repeats_of_version(version: stores.Version) -> Repeats | None:
    found = version.metadata.get(REPEATS_KEY)
    return repeats_from(found) if found is not None else None


REPEATS_KEY = "repeats"  # in a version tag's metadata: what REPEATS_TAG says of its run


def for_run(
    tracking: Tracking, run_id: str, tags: Mapping[str, str], log: Callable[[str], None]
) -> Source | None:
    """What a run's intervals come from: its repeats, else its predictions."""
    return repeats_of_run(tags) or load(tracking, run_id, tags, log)


def for_version(
    config: cfg.Config,
    environ: Mapping[str, str],
    version: stores.Version,
    tracking: Tracking,
    log: Callable[[str], None],
) -> Source | None:
    """What a version's intervals come from: its repeats (in its tag), else its predictions."""
    return repeats_of_version(version) or of_version(config, environ, version, tracking, log)


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
        found = _download(tracking, run_id, name, tags.get(PREDICTIONS_DIGEST_TAG))
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
