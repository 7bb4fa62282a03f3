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

import functools
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import local_cache, stats, stores
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
    from mlci import tags
    from mlci.plots import Plots
    from mlci.tracking import Tracking


class RunPredictions:
    """A run's predictions, with the metrics that recompute from them to the run's
    reported value. A file fetched from a store (its sha256 checked) is parsed only when
    an interval is not already in the memo (``Memo``): parsing imports numpy, and a report
    on a cache hit has its intervals from the last one."""

    def __init__(
        self,
        run_id: str,
        predictions: stats.Predictions | Path,
        metrics: frozenset[str],
        *,
        sha256: str | None = None,
        log: Callable[[str], None] | None = None,
        where: str = "",
    ) -> None:
        self.run_id, self.metrics = run_id, metrics
        self._parsed: stats.Predictions | None = None if isinstance(predictions, Path) else predictions
        self._path = predictions if isinstance(predictions, Path) else None
        # What names the file's bytes for the memo: its checked sha256 and its format.
        self.key = f"{sha256}{self._path.suffix.lower()}" if sha256 and self._path is not None else None
        self._log = log
        self._where = where or f"the predictions of run {run_id}"  # for read_predictions' errors
        self._label = where or f"run {run_id}'s predictions"  # for the log
        self._samples: dict[str, stats.Samples] | None = None

    @property
    def predictions(self) -> stats.Predictions | None:
        """The parsed rows (None, said in the log, where the file does not parse)."""
        if self._parsed is None and self._path is not None:
            path, self._path = self._path, None
            try:
                self._parsed = stats.read_predictions(path, where=self._where)
            except MlciError as exc:
                if self._log is not None:
                    self._log(f"no intervals from {self._label}: {exc.message.splitlines()[0]}")
        return self._parsed

    def samples(self) -> dict[str, stats.Samples]:
        """Each of its metrics bootstrapped, once however many verdicts and columns ask."""
        if self._samples is None:
            found = self.predictions
            self._samples = (
                stats.bootstrap(found, sorted(self.metrics)) if found is not None and self.metrics else {}
            )
        return self._samples


class Memo:
    """Intervals already bootstrapped, in mlci's cache (``intervals/``): keyed by what
    decides them (the predictions' sha256 and format, the metrics, the confidence, the
    resamples and seed, mlci's version and the bootstrap's own source), so a report on a
    cache hit neither parses predictions nor imports numpy. Off in GitHub Actions: a
    runner's cache can hold what a pull request's code wrote, and a verdict there is
    computed, never read back. Each entry is read as data (bounded, every field checked);
    one that does not read is computed again."""

    MAX_BYTES = 64 * 1024

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        import os

        env = os.environ if environ is None else environ
        self.on = local_cache.allowed(env) and env.get("MLCI_NO_MEMO") != "1"
        self._environ = env

    def _path(self, parts: Mapping[str, Any]) -> Path:
        import hashlib
        import json

        from mlci import __version__

        key = json.dumps({**parts, "mlci": __version__, "method": _method()}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()
        return local_cache.directory(self._environ) / "intervals" / f"{digest}.json"

    def get(self, parts: Mapping[str, Any], names: frozenset[str]) -> dict[str, stats.Interval | None] | None:
        """Each of ``names``' interval (None where it has none), or None if not kept."""
        import json

        if not self.on:
            return None
        try:
            path = self._path(parts)
            with path.open("rb") as f:
                raw = f.read(self.MAX_BYTES + 1)
            found = json.loads(raw) if len(raw) <= self.MAX_BYTES else None
        except (OSError, ValueError):
            return None
        if not isinstance(found, dict) or set(found) != names:
            return None
        out: dict[str, stats.Interval | None] = {}
        for name, fields in found.items():
            if fields is None:
                out[name] = None
                continue
            interval = _interval_from(fields, parts["confidence"])
            if interval is None:
                return None
            out[name] = interval
        return out

    def get_json(self, parts: Mapping[str, Any]) -> Any:
        """What ``put_json`` kept under ``parts`` (None if nothing, or it does not read):
        the caller checks it as data."""
        import json

        if not self.on:
            return None
        try:
            with self._path(parts).open("rb") as f:
                raw = f.read(self.MAX_BYTES + 1)
            return json.loads(raw) if len(raw) <= self.MAX_BYTES else None
        except (OSError, ValueError):
            return None

    def put(self, parts: Mapping[str, Any], intervals: Mapping[str, stats.Interval | None]) -> None:
        body = {
            n: None if i is None else [i.value, i.low, i.high, i.resamples, i.paired]
            for n, i in intervals.items()
        }
        self.put_json(parts, body)

    def put_json(self, parts: Mapping[str, Any], body: Any) -> None:
        import json
        import os
        import tempfile

        if not self.on:
            return
        try:
            path = self._path(parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".interval-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(body, f)
            os.replace(tmp, path)
        except OSError:
            pass  # a memo is only ever a shortcut


@functools.cache
def _plots_method() -> str:
    """``plots.py``'s source, hashed: a change to how plots are computed is a new memo key."""
    import hashlib

    from mlci import plots

    return hashlib.sha256(Path(plots.__file__).read_bytes()).hexdigest()


@functools.cache
def _method() -> str:
    """The bootstrap's own source (``stats.py``), hashed once per process: a change to how
    intervals are computed is a new key, whatever mlci's version says."""
    import hashlib

    return hashlib.sha256(Path(stats.__file__).read_bytes()).hexdigest()


def _interval_from(fields: object, confidence: float) -> stats.Interval | None:
    import math

    if not isinstance(fields, list) or len(fields) != 5:
        return None
    value, low, high, resamples, paired = fields
    numbers = (value, low, high)
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers):
        return None
    if not isinstance(resamples, int) or isinstance(resamples, bool) or not isinstance(paired, bool):
        return None
    if math.isnan(low) != math.isnan(high) or (not math.isnan(low) and not low <= high):
        return None
    return stats.Interval(float(value), float(low), float(high), confidence, resamples, paired)


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
        sha256 = tags.get(PREDICTIONS_DIGEST_TAG)
        path = _download(tracking, run_id, name, sha256)
    except MlciError as exc:
        log(f"no intervals from run {run_id}'s predictions: {exc.message.splitlines()[0]}")
        return None
    return RunPredictions(run_id, path, metrics, sha256=sha256, log=log)


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
    return RunPredictions(
        run_id or version.tag,
        path,
        metrics,
        sha256=sha256 or None,
        log=log,
        where=f"{version.tag}'s predictions",
    )


class RunEvidence:
    """``gates.Evidence`` from a head's and (for differences) a baseline's predictions:
    every metric's interval at a confidence computed at once, or read from the memo."""

    def __init__(
        self, head: RunPredictions | None, base: RunPredictions | None, memo: Memo | None = None
    ) -> None:
        self.head, self.base = head, base
        self.memo = memo or Memo()
        self._found: dict[tuple[str, float], dict[str, stats.Interval | None]] = {}
        self._differences: dict[str, stats.Samples] | None = None

    def interval(self, metric: str, confidence: float) -> stats.Interval | None:
        if self.head is None:
            return None
        return self._all("one", confidence, [self.head]).get(metric)

    def difference(self, metric: str, confidence: float) -> stats.Interval | None:
        if self.head is None or self.base is None:
            return None
        return self._all("difference", confidence, [self.head, self.base]).get(metric)

    def _all(
        self, kind: str, confidence: float, runs: list[RunPredictions]
    ) -> dict[str, stats.Interval | None]:
        """Every metric's interval (``runs``: the head) or difference (the head and the
        base) at ``confidence``: from the memo where it keeps them, else bootstrapped."""
        if (kind, confidence) in self._found:
            return self._found[kind, confidence]
        names = frozenset.intersection(*(r.metrics for r in runs))
        parts = {
            "kind": kind,
            "runs": [r.key for r in runs],
            "metrics": sorted(names),
            "confidence": confidence,
            "resamples": stats.DEFAULT_RESAMPLES,
            "seed": stats.DEFAULT_SEED,
        }
        keyed = all(r.key for r in runs)
        found = self.memo.get(parts, names) if keyed else None
        if found is None:
            samples = runs[0].samples() if kind == "one" else self._bootstrap_differences()
            found = {n: samples[n].interval(confidence) if n in samples else None for n in sorted(names)}
            if keyed and all(r.predictions is not None for r in runs):
                self.memo.put(parts, found)
        self._found[kind, confidence] = found
        return found

    def _bootstrap_differences(self) -> dict[str, stats.Samples]:
        assert self.head is not None and self.base is not None
        if self._differences is None:
            head, base = self.head.predictions, self.base.predictions
            names = sorted(self.head.metrics & self.base.metrics)
            self._differences = (
                stats.bootstrap_differences(head, base, names)
                if head is not None and base is not None
                else {}
            )
        return self._differences


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

    def plots(self, head_label: str, baselines: Sequence[Any], memo: Memo | None = None) -> Plots | None:
        """The model plots (``mlci.plots``) of the head's predictions and each found
        baseline's (one line per run: two baselines that hold the same run give one), from
        the memo where it keeps them (a report on a cache hit parses nothing). None where
        the head has no predictions (a run of repeats, or none written)."""
        from mlci import plots

        head = self.head if isinstance(self.head, RunPredictions) else None
        if head is None:
            return None
        runs: list[tuple[str, RunPredictions]] = []
        for baseline in baselines:
            found = self.gate(None, baseline) if baseline.found else None
            base = found.base if isinstance(found, RunEvidence) else None
            if base is not None and all(base is not r for _, r in runs):
                runs.append((baseline.label, base))
        memo = memo or Memo()
        parts = {
            "kind": "plots",
            "runs": [head.key, *(r.key for _, r in runs)],
            "labels": [head_label, *(label for label, _ in runs)],
            "code": _plots_method(),
        }
        keyed = all(parts["runs"])
        if keyed:
            kept = memo.get_json(parts)
            if kept is not None:
                try:
                    return None if kept == {} else plots.from_json(kept)
                except plots.BadPlots:
                    pass
        parsed = head.predictions
        if parsed is None:
            return None
        bases = [(label, r.predictions) for label, r in runs]
        made = plots.build(head_label, parsed, [(label, b) for label, b in bases if b is not None])
        if keyed:
            memo.put_json(parts, made.to_json() if made is not None else {})
        return made

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


def for_named_version(
    config: cfg.Config,
    environ: Mapping[str, str],
    state: tags.ModelState | None,
    name: str | None,
    tracking: Tracking,
    log: Callable[[str], None],
) -> Source | None:
    """``for_version`` of the registered version ``name`` of ``state`` (None: no such version)."""
    if state is None or name is None or name not in state.versions:
        return None
    event = state.versions[name]
    version = stores.version_of(config.model.name, name, event.tag, event.metadata)
    return for_version(config, environ, version, tracking, log)


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
