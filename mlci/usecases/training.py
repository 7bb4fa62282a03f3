"""``mlci train`` and ``mlci fingerprint``: train reproducibly, never twice for the same inputs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import posixpath
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlci import archive, dvc, gitrepo, reads, redact, safeinput, swap, trainer
from mlci import fingerprint as fp
from mlci import params as prm
from mlci.errors import MetricsError, MlciError, TrainingError, TrainingInterrupted
from mlci.metrics import metrics_from
from mlci.project import OVERRIDES_TAG, Resolved
from mlci.stores import bundle

if TYPE_CHECKING:
    from mlci import config as cfg
    from mlci.context import Context
    from mlci.tracking import Tracking


class RunSource(Protocol):
    """A home of the run cache besides the tracking store (``mlci.stores``)."""

    def find(self, model: str, fingerprint: str, dest: Path) -> bundle.Restored | None: ...


RUNS_DIR = "runs"
_STDERR_TAIL_LINES = 20


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    fingerprint: str
    cached: bool
    metrics: dict[str, float]
    params: dict[str, Any]
    git_commit: str | None
    run_git_commit: str | None
    tracking_uri: str
    run_url: str | None
    train_seconds: float | None = None
    model_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    model_sha256: str | None = None
    bundle: str | None = None  # the run bundle this job wrote, to upload (GitHub Actions)
    restored_from: str | None = None  # where a run made elsewhere came from

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "fingerprint": self.fingerprint,
            "cached": self.cached,
            "metrics": self.metrics,
            "params": self.params,
            "git_commit": self.git_commit,
            "run_git_commit": self.run_git_commit,
            "tracking_uri": self.tracking_uri,
            "run_url": self.run_url,
            "train_seconds": self.train_seconds,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "bundle": self.bundle,
            "restored_from": self.restored_from,
        }


def _signature(path: Path) -> tuple[Any, ...] | None:
    """What identifies one state of a file or folder, to tell a fresh output from a stale one."""
    if path.is_file():
        st = path.stat()
        return (st.st_size, st.st_mtime_ns, st.st_ino)
    if path.is_dir():
        return (
            tuple(
                sorted(
                    (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                    for p in path.rglob("*")
                    if p.is_file()
                )
            )
            or None
        )
    return None


def _output(
    name: str,
    key: str,
    output_dir: Path,
    root: Path,
    before: tuple[Any, ...] | None,
    *,
    file_only: bool,
    own_cache: bool,
    log: Callable[[str], None],
) -> Path:
    """Where the command wrote an output (a file, or with ``file_only`` False a file or
    a folder): MLCI_OUTPUT_DIR first, then the project folder, where an output left
    over from an earlier run counts only for a command with its own cache."""

    def right_kind(path: Path) -> bool:
        return path.is_file() if file_only else path.exists()

    fresh = output_dir / name
    if right_kind(fresh):
        return fresh
    legacy = root / name
    now = _signature(legacy) if right_kind(legacy) else None
    if now is not None and now != before:
        return legacy
    what = "file" if file_only else "output"
    if now is not None and own_cache:
        log(f"{name} is unchanged: the command found it up to date (train.own_cache), so it is current")
        return legacy
    if now is not None:
        raise TrainingError(
            f"the training command did not write its {what} {name!r} ({key} in mlci.yaml): "
            f"{legacy} is left over from an earlier run",
            hint=f"if the command has its own cache and skipped work that was up to date (dvc repro, make), "
            f"set `train.own_cache: true` in mlci.yaml; otherwise make it write {name} "
            f"(under $MLCI_OUTPUT_DIR or the project folder), or fix {key}",
        )
    raise TrainingError(
        f"the training command finished but wrote no {what} {name!r} ({key} in mlci.yaml); "
        f"looked in {output_dir} and {root}",
        hint=f"make the command write {name} under $MLCI_OUTPUT_DIR, or fix {key} in mlci.yaml",
    )


def _as_folder(path: Path, work: Path) -> Path:
    """A model that is one file, as a folder holding it (linked, not copied, where possible):
    a version's bytes are always a folder, whatever the model's format."""
    if path.is_dir():
        return path
    folder = work / "model-file"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)
    return folder


MAX_METRICS_BYTES = 8 * 1024 * 1024


def _read_metrics(path: Path) -> dict[str, float]:
    """The metrics file the command wrote: bounded, strict (a duplicate key is an error)."""
    try:
        text = safeinput.read_text(path, limit=MAX_METRICS_BYTES, what="the metrics file")
        data = safeinput.load_json(text) if path.suffix == ".json" else safeinput.load_yaml(text)[0]
    except safeinput.BadInput as exc:
        raise MetricsError(
            f"{exc.where(str(path))}: {exc.problem}",
            hint="write the metrics as one flat or nested mapping of names to numbers",
        ) from None
    except OSError as exc:
        raise MetricsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return metrics_from(data, str(path))


@dataclass
class _Job:
    """One training's inputs and the stores it reads and writes, shared by its steps."""

    resolved: Resolved
    ctx: Context
    tracking: Tracking
    head: gitrepo.HeadInfo | None

    @property
    def config(self) -> cfg.Config:
        return self.resolved.config

    @property
    def digest(self) -> str:
        return self.resolved.fingerprint.digest

    @property
    def git_commit(self) -> str | None:
        return self.head.commit if self.head else None

    @property
    def command(self) -> str:
        """The command as it runs: placeholders filled, Hydra overrides added."""
        return self.resolved.command or self.config.train.command


@dataclass(frozen=True)
class _Started:
    """The MLflow run a training records into (``_claim``)."""

    run_id: str
    experiment_id: str
    tags: dict[str, str]
    fast_start: bool  # created without MLflow's client
    shared: bool  # on a shared server: the run is also this job's claim on the inputs


def train(
    resolved: Resolved,
    ctx: Context,
    *,
    use_cache: bool = True,
    pr_number: int | None = None,
    command_stdout: Any = None,
    run_sources: Sequence[RunSource] = (),
    write_bundle: bool = False,
    allow_training: bool = True,
    data_checked: Sequence[Any] | None = None,
) -> TrainResult:
    """Reuse the FINISHED run with this fingerprint (the tracking store first, then
    ``run_sources``), or run the training command and record it. With
    ``write_bundle``, a run trained here is also written as a bundle to upload.

    The steps: the cache lookup, the data's checks, the claim on the inputs (a run in the
    tracking store; on a shared server, the job that trains them), the run of the
    command, and the record of what it made."""
    job = _Job(resolved, ctx, ctx.tracking(resolved.config), gitrepo.head_info(resolved.config.root))
    if use_cache:
        found = _lookup(job, run_sources)
        if found is not None:
            return found
    if not allow_training:
        where = redact.url(job.tracking.uri) + (" or in workflow artifacts" if run_sources else "")
        raise TrainingError(
            f"no run of these inputs (fingerprint {job.digest[:12]}) in {where}, and this job never "
            "runs the training command (--no-train: it holds a write token)",
            hint="the job that trains for this event records the run first (a tracking server, "
            "or its workflow artifact mlci-run-*): check that it ran and uploaded it",
        )
    checked = _check_data(job, data_checked)
    started = _claim(job, _run_tags(job, pr_number), use_cache)
    if isinstance(started, TrainResult):
        return started  # another job trained these inputs meanwhile
    return _run_and_record(job, started, checked, command_stdout, write_bundle)


def _reuse(job: _Job, found: Any) -> TrainResult:
    """A finished run of these inputs, as this training's result."""
    from mlci.tracking import MODEL_DIGEST_TAG, RESTORED_TAG

    return TrainResult(
        run_id=found.run_id,
        experiment_id=found.experiment_id,
        fingerprint=job.digest,
        cached=True,
        metrics=found.metrics,
        params=job.resolved.params,
        git_commit=job.git_commit,
        run_git_commit=found.tags.get("mlci.git.commit"),
        tracking_uri=redact.url(job.tracking.uri),
        run_url=job.tracking.run_url(found.run_id, found.experiment_id),
        model_id=found.tags.get("mlci.model_id"),
        tags=found.tags,
        model_sha256=found.tags.get(MODEL_DIGEST_TAG),
        restored_from=found.tags.get(RESTORED_TAG),
    )


def _lookup(job: _Job, run_sources: Sequence[RunSource]) -> TrainResult | None:
    """The run cache: a finished run of these inputs in the tracking store, else one a
    run source holds (a workflow artifact), imported."""
    found = job.tracking.find_finished_run(job.digest)
    if found is not None:
        job.ctx.log(
            f"cache hit: run {found.run_id} has fingerprint {job.digest[:12]}; not training "
            "(--no-cache trains anyway)"
        )
        return _reuse(job, found)
    root = job.config.root
    for source in run_sources:
        restored = source.find(
            job.config.model.name, job.digest, bundle.folder(root / fp.STATE_DIR, job.digest)
        )
        if restored is not None:
            return _import(job.tracking, job.resolved, restored, job.git_commit, job.ctx.log)
    return None


def _check_data(job: _Job, data_checked: Sequence[Any] | None) -> list[Any]:
    """The declared datasets checked before anything is trained: as the caller checked
    them, as a run recorded them for these very files, or anew. Raises if one fails."""
    if not job.config.data:
        return list(data_checked or [])
    from mlci.usecases import datasets

    checked = (
        list(data_checked)
        if data_checked is not None
        else datasets.check_all(job.config, job.ctx.log, job.tracking)
    )
    datasets.raise_if_failed(checked)
    return checked


def _run_tags(job: _Job, pr_number: int | None) -> dict[str, str]:
    """What the run records about where it comes from: the fingerprint, the command, the
    overrides, the commit and branch, the pull request."""
    from mlci.tracking import FINGERPRINT_TAG

    config, resolved, head = job.config, job.resolved, job.head
    tags = {
        FINGERPRINT_TAG: job.digest,
        "mlci.command": config.train.command,
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": config.model.name,
    }
    if resolved.overrides:
        tags[OVERRIDES_TAG] = json.dumps(list(resolved.overrides))
    if head is not None:
        tags["mlci.git.dirty"] = "true" if head.dirty else "false"
        if head.commit:
            tags["mlci.git.commit"] = head.commit
            tags["mlflow.source.git.commit"] = head.commit
        if head.branch:
            tags["mlci.git.branch"] = head.branch
            tags["mlflow.source.git.branch"] = head.branch
    if pr_number is not None:
        tags["mlci.pr"] = str(pr_number)
    return tags


def _claim(job: _Job, tags: dict[str, str], use_cache: bool) -> _Started | TrainResult:
    """The run this training records into. On a shared server the run is also this job's
    claim on the fingerprint: of the jobs that claim it at once, one trains and the others
    wait for its run and reuse it (``mlci.claims``), up to ``tracking.wait``.

    The run is created without MLflow where a fast path can (its import and store cost
    seconds); MLflow then loads in the background while the command trains, unless the
    results too go into the store without it (the embedded store) and nothing later in
    this process needs it (a registration: ``tracking.client_ahead``)."""
    from mlci import claims
    from mlci.tracking import client_ahead, is_http, owner_tags

    tracking, config, digest, log = job.tracking, job.config, job.digest, job.ctx.log
    run_name = f"{config.model.name}-{digest[:8]}"
    shared = use_cache and is_http(tracking.uri)
    deadline = time.monotonic() + config.tracking.wait
    warming = False
    while True:
        run_tags = {**tags, **(claims.claim_tags() if shared else owner_tags())}
        started = tracking.start_run_fast(run_name=run_name, tags=run_tags)
        fast_start = started is not None
        if started is None:
            tracking.reap_abandoned(log)
            run_id = tracking.start_run(run_name=run_name, tags=run_tags)
            created = tracking.experiment_id(create=True)
            assert created is not None
            started = (run_id, created)
        elif not warming and not shared and (client_ahead() or not tracking.logs_without_client()):
            tracking.warm_up()
            warming = True
        run_id, experiment_id = started
        if not shared:
            break
        leader = claims.contest(tracking, digest, run_id, log)
        if leader is None and fast_start and not warming:
            tracking.warm_up()  # only the job that trains needs MLflow loaded (a waiter may never)
            warming = True
        if leader is None or time.monotonic() >= deadline:
            break  # this job trains (past the deadline, wait_for said why)
        tracking.discard_run(run_id)
        log(
            f"MLflow run {leader.run_id} of {claims.who(leader)} is training these inputs "
            f"(fingerprint {digest[:12]}): waiting for it, up to {config.tracking.wait:.0f}s "
            "(tracking.wait), to reuse its run"
        )
        found = claims.wait_for(tracking, leader, digest, deadline, log)
        if found is not None:
            log(f"reusing run {found.run_id} (fingerprint {digest[:12]}); not training")
            return _reuse(job, found)
    return _Started(run_id, experiment_id, tags, fast_start, shared)


def _run_and_record(
    job: _Job, started: _Started, checked: Sequence[Any], command_stdout: Any, write_bundle: bool
) -> TrainResult:
    """Run the command (``train.repeats`` times) with the params it reads and the files it
    sees, then record what it made in the run; the run ends FAILED (or KILLED) if either
    fails, and the files the command saw go back as they were either way."""
    from mlci import claims
    from mlci.tracking import MODEL_DIGEST_TAG

    config, tracking, log = job.config, job.tracking, job.ctx.log
    run_id = started.run_id
    work = config.root / fp.STATE_DIR / RUNS_DIR / run_id
    work.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.json"
    params_file.write_text(prm.yaml_safe_json(job.resolved.params), encoding="utf-8")
    child_env = {
        **trainer.withheld(job.ctx.environ, config.train.withhold_env, log),
        "MLCI_PARAMS_FILE": str(params_file),
        "MLFLOW_TRACKING_URI": tracking.uri,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_ID": started.experiment_id,
        "PYTHONUNBUFFERED": "1",
    }
    child_env = reads.environ(child_env, config.root, work / "reads")
    repeats = config.train.repeats
    times = f" {repeats} times (train.repeats, MLCI_SEED 0 to {repeats - 1})" if repeats > 1 else ""
    log(f"training{times}: {job.command}  (MLflow run {run_id}, fingerprint {job.digest[:12]})")
    changes = ExitStack()  # the params file and rewritten files, as they were, when it closes
    if started.shared:
        changes.enter_context(claims.Heartbeat(tracking, run_id))
    try:
        journal = changes.enter_context(_code_sees(job.resolved, log))
    except BaseException:
        changes.close()
        tracking.end_run(run_id, "FAILED")
        raise
    with changes:  # outputs are read and logged before the files go back
        try:
            produced, metrics, seconds, repeat_tags = _run_command(
                job, started, child_env, work, journal, command_stdout
            )
            seen, imported = reads.observe(work / "reads", config.root)
            reads.warn(_unlisted_reads(job, seen), log)
            recorded = _record(
                job,
                started,
                produced,
                metrics,
                repeat_tags,
                checked,
                work,
                params_file,
                write_bundle,
                imported,
            )
        except BaseException as exc:
            tracking.end_run(run_id, _failed(exc))
            raise
    if started.fast_start:
        tracking.reap_abandoned(log)  # after the run, with the client MLflow loaded meanwhile
    shutil.rmtree(work, ignore_errors=True)  # everything is in MLflow now
    log(f"trained in {seconds:.1f}s; recorded MLflow run {run_id}")
    model_id, tags, bundle_path = recorded
    return TrainResult(
        run_id=run_id,
        experiment_id=started.experiment_id,
        fingerprint=job.digest,
        cached=False,
        metrics=metrics,
        params=job.resolved.params,
        git_commit=job.git_commit,
        run_git_commit=job.git_commit,
        tracking_uri=redact.url(tracking.uri),
        run_url=tracking.run_url(run_id, started.experiment_id),
        train_seconds=round(seconds, 3),
        model_id=model_id,
        tags=tags,
        model_sha256=tags.get(MODEL_DIGEST_TAG),
        bundle=str(bundle_path) if bundle_path else None,
    )


def _unlisted_reads(job: _Job, observed: Sequence[reads.Read]) -> list[reads.Unlisted]:
    """The tracked files the training read that are not inputs (``mlci.reads``)."""
    config, fingerprint = job.config, job.resolved.fingerprint
    root = config.root
    seen = [r for r in observed if r.path not in fingerprint.files]
    if not seen:
        return []  # the usual case: no git call
    candidates = fp.candidate_files(root)
    text_of = _project_text(root)
    tracked_by_dvc = dvc.parse(candidates, text_of) if any(dvc.is_record(c) for c in candidates) else {}
    not_inputs = [*fp.outputs(config), config.path.name]
    not_inputs += [config.train.params.removeprefix("./")] if config.train.params else []
    return reads.unlisted(
        seen,
        tracked=set(candidates),
        dvc_tracked=tracked_by_dvc,
        inputs={*fingerprint.files, *fingerprint.dvc},
        not_inputs=not_inputs,
        exclude=config.train.exclude,
    )


def _run_command(
    job: _Job,
    started: _Started,
    child_env: Mapping[str, str],
    work: Path,
    journal: str | None,
    command_stdout: Any,
) -> tuple[_Produced, dict[str, float], float, dict[str, str]]:
    """The training command, once or ``train.repeats`` times: what it made, its metrics
    (the mean across repeats), how long it took, and the repeats' tags."""
    config, log = job.config, job.ctx.log
    if config.train.repeats == 1:
        produced = _produce(
            config,
            job.command,
            job.tracking,
            child_env,
            work / "outputs",
            journal,
            command_stdout,
            log,
            run_words=f"MLflow run {started.run_id}",
        )
        return produced, produced.metrics, produced.seconds, {}
    run_name = f"{config.model.name}-{job.digest[:8]}"
    flat_params = prm.flatten(job.resolved.params)
    return _repeat(
        config,
        job.command,
        job.tracking,
        child_env,
        work,
        journal,
        command_stdout,
        run_name,
        flat_params,
        log,
    )


def _record(
    job: _Job,
    started: _Started,
    produced: _Produced,
    metrics: dict[str, float],
    repeat_tags: dict[str, str],
    checked: Sequence[Any],
    work: Path,
    params_file: Path,
    write_bundle: bool,
    imported_mlflow: bool = False,
) -> tuple[str | None, dict[str, str], Path | None]:
    """What the command made, into its run: params, metrics, the model (and its digest),
    the data's profiles, the predictions; with ``write_bundle``, also a bundle of it all to
    upload. Returns the logged model's id, the run's tags and the bundle."""
    from mlci.tracking import MODEL_DIGEST_TAG, MODEL_ID_TAG, param_value

    config, tracking, log = job.config, job.tracking, job.ctx.log
    flat_params = prm.flatten(job.resolved.params)
    code_model: tuple[str, Path] | None = None
    if imported_mlflow or produced.metrics_path is None:
        flat_params = _not_logged_yet(tracking, started.run_id, flat_params, log)
        if produced.model is None and config.train.repeats == 1:
            code_model = _code_model(tracking, started, work, log)
    model_path = _as_folder(produced.model, work) if produced.model is not None else None
    if code_model is not None:
        model_path = code_model[1]
    elif model_path is not None and not (model_path / "MLmodel").is_file():
        log(f"{config.train.model}: not an MLflow model (no MLmodel file); kept as plain files")
    extra_files = [f for f in (produced.metrics_path, params_file) if f is not None]
    digest_tags: dict[str, str] = dict(repeat_tags)
    profiles = None
    if checked:
        from mlci.usecases import datasets

        data_tags, profiles = datasets.run_records(checked, work)
        digest_tags.update(data_tags)
        extra_files += [profiles] if profiles else []
    predictions_path = produced.predictions
    if predictions_path is not None and config.train.predictions:
        # With repeats, the first repeat's predictions are kept; the gates' intervals
        # come from the repeats (their spread across seeds), not from these.
        digest_tags.update(
            _predictions_tags(
                predictions_path,
                config.train.predictions,
                produced.metrics,
                log,
                intervals=config.train.repeats == 1,
            )
        )
        extra_files.append(predictions_path)
    plot_files: list[Path] = []
    if produced.plots:
        from mlci import images

        plot_files = _plot_files(produced.plots, work)
        extra_files += plot_files
        digest_tags[images.PLOTS_TAG] = json.dumps(
            [{"name": i.name, "sha256": i.sha256} for i in produced.plots], separators=(",", ":")
        )
    bundle_path = None
    model_digest: archive.Digest | None = None
    if write_bundle:
        bundle_path = bundle.folder(config.root / fp.STATE_DIR, job.digest)
        model_digest = bundle.write(
            bundle_path,
            model=config.model.name,
            fingerprint=job.digest,
            run_id=started.run_id,
            metrics=metrics,
            params={k: param_value(v) for k, v in flat_params.items()},
            tags={**started.tags, **digest_tags},
            model_dir=model_path,
            predictions=predictions_path,
            data_profile=profiles,
            plots=plot_files,
        )
    elif model_path is not None:
        model_digest = archive.digest_folder(model_path)
    if model_digest is not None:
        digest_tags[MODEL_DIGEST_TAG] = model_digest.sha256
    if code_model is not None:
        digest_tags[MODEL_ID_TAG] = code_model[0]  # the code's own logged model is the version's
    model_id = tracking.log_results(
        started.run_id,
        params=flat_params,
        metrics=metrics,
        files=extra_files,
        model_dir=model_path if code_model is None else None,
        model_name=config.model.name,
        tags=digest_tags,
    )
    if code_model is not None:
        model_id = code_model[0]
    return model_id, {**started.tags, **digest_tags}, bundle_path


def _plot_files(plots: Sequence[Any], work: Path) -> list[Path]:
    """Each checked plot's bytes as a file to log with the run (``mlci-plot-<name>``)."""
    from mlci import images

    folder = work / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for image in plots:
        path = folder / f"{images.PLOT_PREFIX}{image.name}"
        path.write_bytes(image.data)
        out.append(path)
    return out


def _not_logged_yet(
    tracking: Tracking, run_id: str, params: dict[str, Any], log: Callable[[str], None]
) -> dict[str, Any]:
    """``params`` but those the code already logged to the run (MLflow refuses a param logged
    twice with two values: the code's ``alpha`` 1.0 against mlci's 1)."""
    from mlci.tracking import param_value

    logged = tracking.get_run(run_id).params
    differ = [k for k in params if k in logged and logged[k] != param_value(params[k])]
    if differ:
        shown = ", ".join(f"{k}={logged[k]}" for k in differ)
        log(f"the code logged {shown} itself: the run keeps the code's values")
    return {k: v for k, v in params.items() if k not in logged}


def _code_model(
    tracking: Tracking, started: _Started, work: Path, log: Callable[[str], None]
) -> tuple[str, Path] | None:
    """The model the code logged to the run itself (``mlflow.<flavor>.log_model``), read into
    ``work``: its id, and its files, which become the version's bytes."""
    models = tracking.models_of_run(started.run_id, started.experiment_id)
    if not models:
        return None
    model_id, name = models[-1]
    if len(models) > 1:
        log(f"the code logged {len(models)} models; the last, {name!r} ({model_id}), is the run's")
    folder = tracking.download(tracking.model_source(model_id), work / "logged-model")
    log(f"the model is the one the code logged to MLflow: {name!r} ({model_id})")
    return model_id, folder


@dataclass(frozen=True)
class _Produced:
    """What one run of the command wrote, found where it wrote it."""

    metrics_path: Path | None  # None: the metrics the code logged to MLflow itself
    metrics: dict[str, float]
    model: Path | None  # the file or folder of train.model
    predictions: Path | None
    seconds: float
    plots: tuple[Any, ...] = ()  # mlci.images.Image: report.plots, read and checked


def _failed(exc: BaseException) -> str:
    """The status a run ends with when ``exc`` stopped its training."""
    return str(getattr(exc, "run_status", "FAILED"))


def _produce(
    config: cfg.Config,
    command: str,
    tracking: Tracking,
    env: Mapping[str, str],
    output_dir: Path,
    journal: str | None,
    command_stdout: Any,
    log: Callable[[str], None],
    *,
    run_words: str,
) -> _Produced:
    """Run the command once, writing under ``output_dir``, and find its outputs. A failure
    raises, its ``run_status`` (KILLED for a timeout or an interrupt, else FAILED) saying
    how the caller ends the run; ``run_words`` names that run in the message."""
    root = config.root
    output_dir.mkdir(parents=True, exist_ok=True)
    before = {
        key: _signature(root / name) if name else None
        for key, name in (
            ("metrics", config.train.metrics),
            ("model", config.train.model),
            ("predictions", config.train.predictions),
            *((f"plot:{path}", path) for path in config.report.plots),
        )
    }
    outcome = trainer.run_command(
        command,
        cwd=root,
        env={**env, "MLCI_OUTPUT_DIR": str(output_dir)},
        stdout=command_stdout,
        timeout=config.train.timeout,
        restore_journal=journal,
    )
    if outcome.timed_out:
        error: MlciError = TrainingError(
            f"the training command `{command}` ran past train.timeout "
            f"({config.train.timeout:g}s) and was killed after {outcome.seconds:.1f}s; "
            f"{run_words} marked KILLED",
            hint=f"make training faster, or raise train.timeout in {config.path.name}",
        )
        error.run_status = "KILLED"  # type: ignore[attr-defined]
        raise error
    if outcome.interrupted:
        error = TrainingInterrupted(
            f"training interrupted after {outcome.seconds:.1f}s; {run_words} marked KILLED",
            hint="run `mlci train` again to start over",
        )
        error.run_status = "KILLED"  # type: ignore[attr-defined]
        raise error
    if outcome.returncode != 0:
        lines = outcome.stderr_tail.rstrip().splitlines()[-_STDERR_TAIL_LINES:]
        tail = "\n".join(f"  | {line}" for line in lines) or "  | (nothing on stderr)"
        raise TrainingError(
            f"the training command `{command}` exited with {outcome.returncode} "
            f"after {outcome.seconds:.1f}s; {run_words} marked FAILED. "
            f"Last lines of its stderr:\n{tail}",
            hint="fix the training code and run `mlci train` again",
        )

    def found(name: str, key: str, *, file_only: bool) -> Path:
        return _output(
            name,
            f"train.{key}",
            output_dir,
            root,
            before[key],
            file_only=file_only,
            own_cache=config.train.own_cache,
            log=log,
        )

    metrics_path, metrics = _metrics_of(config, found, tracking, env["MLFLOW_RUN_ID"], log)
    model = found(config.train.model, "model", file_only=False) if config.train.model else None
    if model is None and (output_dir / "model").exists():
        log(
            "warning: the command wrote model/ under $MLCI_OUTPUT_DIR, but train.model is not set, "
            "so it is not kept: set `train.model: model` in mlci.yaml to version it"
        )
    predictions = (
        found(config.train.predictions, "predictions", file_only=True) if config.train.predictions else None
    )
    plots = _plots_of(config, output_dir, before, log)
    return _Produced(metrics_path, metrics, model, predictions, outcome.seconds, plots)


def _plots_of(
    config: cfg.Config, output_dir: Path, before: Mapping[str, Any], log: Callable[[str], None]
) -> tuple[Any, ...]:
    """``report.plots`` as the command wrote them, each read (bounded) and checked as an
    image (mlci.images). A plot that is missing, stale or not an image is a warning, never
    a failed run: plots are for the reviewer; the gates do not read them."""
    from mlci import images

    out = []
    for path in config.report.plots:
        name = posixpath.basename(path)
        try:
            where = _output(
                path,
                "report.plots",
                output_dir,
                config.root,
                before.get(f"plot:{path}"),
                file_only=True,
                own_cache=config.train.own_cache,
                log=log,
            )
            data = safeinput.read_bytes(where, limit=images.MAX_BYTES, what=f"plot {path}", follow=False)
            out.append(images.checked(name, data))
        except MlciError as exc:
            log(f"warning: plot {path}: {exc.message.splitlines()[0]}")
        except safeinput.BadInput as exc:
            log(f"warning: plot {path}: {exc.problem}")
        except images.BadImage as exc:
            log(f"warning: plot {path} is not published: {exc}")
    return tuple(out)


def _metrics_of(
    config: cfg.Config,
    found: Callable[..., Path],
    tracking: Tracking,
    run_id: str,
    log: Callable[[str], None],
) -> tuple[Path | None, dict[str, float]]:
    """The metrics file the command wrote and its metrics; without one, the metrics the
    code logged to the run itself (its ``mlflow.start_run()`` joins mlci's run)."""
    try:
        path = found(config.train.metrics, "metrics", file_only=True)
    except TrainingError as exc:
        if (config.root / config.train.metrics).exists():
            raise  # a left-over file: the command wrote none this time
        logged = tracking.get_run(run_id).metrics
        if not logged:
            raise TrainingError(
                exc.message,
                hint=f"{exc.hint}; or log them to MLflow (mlflow.log_metric): the code's "
                "mlflow.start_run() joins mlci's run",
            ) from None
        metrics = metrics_from(dict(logged), f"the metrics of MLflow run {run_id}")
        log(
            f"no {config.train.metrics}: the run's metrics are those the code logged to MLflow "
            f"({', '.join(sorted(metrics))})"
        )
        return None, metrics
    return path, _read_metrics(path)


def _kept(path: Path | None, output_dir: Path, keep: Path) -> Path | None:
    """An output the next repeat would overwrite (one in the project folder), moved aside."""
    if path is None or path.is_relative_to(output_dir):
        return path
    keep.mkdir(parents=True, exist_ok=True)
    target = keep / path.name
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copy2(path, target)
    return target


def _repeat(
    config: cfg.Config,
    command: str,
    tracking: Tracking,
    env: Mapping[str, str],
    work: Path,
    journal: str | None,
    command_stdout: Any,
    run_name: str,
    flat_params: Mapping[str, Any],
    log: Callable[[str], None],
) -> tuple[_Produced, dict[str, float], float, dict[str, str]]:
    """``train.repeats`` runs of the command, MLCI_SEED 0, 1, ..., each recorded as a child
    run of the parent (``env``'s MLFLOW_RUN_ID). Returns the first repeat's outputs (its
    model is the version's), the mean of each metric every repeat reported, the total
    time, and the parent's tags: the seeds and each metric's value per seed
    (``REPEATS_TAG``), which the gates' intervals across seeds are computed from."""
    from mlci import stats
    from mlci.tracking import REPEAT_OF_TAG, REPEATS_TAG, SEED_TAG, owner_tags

    parent = env["MLFLOW_RUN_ID"]
    seeds = list(range(config.train.repeats))
    runs: list[_Produced] = []
    for seed in seeds:
        child_tags = {
            "mlflow.parentRunId": parent,
            REPEAT_OF_TAG: parent,
            SEED_TAG: str(seed),
            **owner_tags(),
        }
        name = f"{run_name}-seed{seed}"
        started = tracking.start_run_fast(run_name=name, tags=child_tags)
        child = started[0] if started else tracking.start_run(run_name=name, tags=child_tags)
        log(f"repeat {seed + 1} of {len(seeds)}: MLCI_SEED={seed} (MLflow run {child})")
        output_dir = work / f"repeat-{seed}"
        try:
            produced = _produce(
                config,
                command,
                tracking,
                {**env, "MLCI_SEED": str(seed), "MLFLOW_RUN_ID": child},
                output_dir,
                journal,
                command_stdout,
                log,
                run_words=f"MLflow run {child} (repeat {seed + 1} of {len(seeds)}) and its parent {parent}",
            )
            if not runs:  # the first repeat's model and predictions are the run's
                keep = work / "kept"
                produced = dataclasses.replace(
                    produced,
                    model=_kept(produced.model, output_dir, keep),
                    predictions=_kept(produced.predictions, output_dir, keep),
                )
            tracking.log_results(
                child,
                params={**flat_params, "mlci_seed": seed},
                metrics=produced.metrics,
                files=[],
                model_dir=None,
                model_name=config.model.name,
            )
        except BaseException as exc:
            tracking.end_run(child, _failed(exc))
            raise
        runs.append(produced)
    common = sorted(set.intersection(*(set(r.metrics) for r in runs)))
    dropped = sorted(set().union(*(set(r.metrics) for r in runs)) - set(common))
    if dropped:
        log(f"warning: {', '.join(dropped)} not reported by every repeat: left out of the run's metrics")
    per_seed = {m: [r.metrics[m] for r in runs] for m in common}
    means = {m: math.fsum(v) / len(v) for m, v in per_seed.items()}
    for m in common:
        shown = stats.seed_interval(per_seed[m])
        log(
            f"{m}: mean {shown.value:.6g} over {len(seeds)} seeds, 95% interval (Student's t) "
            f"[{shown.low:.6g}, {shown.high:.6g}]"
        )
    record = repeats_record(seeds, per_seed)
    return runs[0], means, math.fsum(r.seconds for r in runs), {REPEATS_TAG: record}


def repeats_record(seeds: Sequence[int], per_seed: Mapping[str, Sequence[float]]) -> str:
    """The seeds and each metric's value per seed, as the parent run's tag and the version's
    metadata keep them: compact JSON (eight significant digits)."""
    values = {m: [float(f"{v:.8g}") for v in vs] for m, vs in sorted(per_seed.items())}
    return json.dumps({"seeds": list(seeds), "metrics": values}, separators=(",", ":"), allow_nan=False)


def _predictions_tags(
    path: Path, name: str, metrics: Mapping[str, float], log: Callable[[str], None], *, intervals: bool = True
) -> dict[str, str]:
    """The predictions checked as data (a bad file fails the run, saying what and where),
    and the tags that find them again: the artifact's name, the digest of the rows they
    were made on, and the metrics that recompute from them to metrics.json's value (those
    get intervals; a metric that does not, from another split or averaging, is named).
    Without ``intervals`` (a run of repeats, whose intervals come from the seeds), the
    file is checked and kept, and no metric's interval is taken from it."""
    from mlci import archive, stats
    from mlci.tracking import PREDICTIONS_DIGEST_TAG, PREDICTIONS_METRICS_TAG, PREDICTIONS_TAG, ROWS_TAG

    predictions = stats.read_predictions(path, where=f"train.predictions ({name})")
    agreeing, differing = stats.check_reported(predictions, metrics)
    for metric, value in differing.items() if intervals else ():
        log(
            f"warning: {metric} recomputed from {name} is {value:.6g}, "
            f"{metrics[metric]:.6g} in the metrics file: no interval for {metric} "
            "(are they from the same rows?)"
        )
    if not intervals:
        agreeing = []
        log(f"predictions: {predictions.rows} rows, the first repeat's; intervals come from the repeats")
    else:
        log(f"predictions: {predictions.rows} rows; intervals for {', '.join(agreeing) or 'no metric'}")
    return {
        PREDICTIONS_TAG: path.name,
        ROWS_TAG: predictions.digest(),
        PREDICTIONS_METRICS_TAG: ",".join(agreeing),
        PREDICTIONS_DIGEST_TAG: archive.verify(archive.file_chunks(path), expected=None, source=name).sha256,
    }


def _import(
    tracking: Tracking,
    resolved: Resolved,
    restored: bundle.Restored,
    git_commit: str | None,
    log: Callable[[str], None],
) -> TrainResult:
    """A run restored from elsewhere, recorded in this job's tracking store."""
    from mlci.tracking import FINGERPRINT_TAG, MODEL_DIGEST_TAG, RESTORED_TAG

    config = resolved.config
    record = tracking.import_run(
        run_name=f"{config.model.name}-{restored.fingerprint[:8]}",
        tags={
            **restored.tags,
            FINGERPRINT_TAG: restored.fingerprint,
            **({MODEL_DIGEST_TAG: restored.digest.sha256} if restored.digest else {}),
            RESTORED_TAG: restored.source,
            "mlci.origin_run_id": restored.run_id,
        },
        params=restored.params,
        metrics=restored.metrics,
        model_dir=restored.model_dir,
        model_name=config.model.name,
        files=[f for f in (restored.predictions, restored.data_profile, *restored.plots) if f is not None],
    )
    if restored.model_dir is not None:  # in MLflow now; the archive stays for a release
        shutil.rmtree(restored.model_dir, ignore_errors=True)
    log(f"recorded it as MLflow run {record.run_id}: not training")
    return TrainResult(
        run_id=record.run_id,
        experiment_id=record.experiment_id,
        fingerprint=restored.fingerprint,
        cached=True,
        metrics=restored.metrics,
        params=resolved.params,
        git_commit=git_commit,
        run_git_commit=restored.tags.get("mlci.git.commit"),
        tracking_uri=redact.url(tracking.uri),
        run_url=tracking.run_url(record.run_id, record.experiment_id),
        model_id=record.tags.get("mlci.model_id"),
        tags=record.tags,
        model_sha256=restored.digest.sha256 if restored.digest else None,
        restored_from=restored.source,
    )


@contextmanager
def _code_sees(resolved: Resolved, log: Callable[[str], None]) -> Iterator[str | None]:
    """The params file holds the overridden params while the command runs, and it and
    the files the command rewrites (``train.rewrites``) are put back afterwards, even if
    mlci is killed (``mlci.swap``). Yields the journal the guard restores from."""
    config = resolved.config
    if not resolved.overrides:
        yield None
        return
    with swap.Swap(config.root / fp.STATE_DIR, log) as changes:
        if resolved.params_text is not None:
            assert config.train.params is not None
            changes.write(config.root / config.train.params, resolved.params_text.encode("utf-8"))
        for name in config.train.rewrites:
            changes.keep(config.root / name)
        folders: list[str] = []
        for output in (config.train.metrics, config.train.model, config.train.predictions):
            # Outputs go back too, after mlci has read them, whether git ignores them or not: a
            # run with --set is an experiment, and leaves no trace in the working tree.
            path = config.root / output if output else None
            if path is not None and path.is_dir():
                folders.append(output or "")
            elif path is not None:
                changes.keep(path)
        folders += _pipeline_outputs(config, skip={config.train.metrics, config.train.model})
        before = {name: _signature(config.root / name) for name in folders}
        if resolved.params_text is not None:
            log(
                f"{config.train.params} holds the overridden params while the command runs "
                f"({', '.join(resolved.overrides)}); mlci puts it back afterwards"
            )
        yield changes.journal_path
        left = [name for name in folders if _signature(config.root / name) != before[name]]
        if left:
            dvc_hint = (
                f"; `dvc checkout` puts back what {dvc.LOCK_FILE} records"
                if (config.root / dvc.LOCK_FILE).is_file()
                else ""
            )
            log(
                f"warning: {', '.join(left)} now hold this experiment's files (--set "
                f"{' '.join(resolved.overrides)}), not the committed params'{dvc_hint}"
            )


def _pipeline_outputs(config: cfg.Config, skip: set[str | None]) -> list[str]:
    """The outputs of a DVC pipeline's stages (its lock file records them), which git ignores."""
    lock = config.root / dvc.LOCK_FILE
    if not lock.is_file() or dvc.LOCK_FILE not in config.train.rewrites:
        return []
    return [p for p in dvc.parse([dvc.LOCK_FILE], _project_text(config.root)) if p not in skip]


def _project_text(root: Path) -> Callable[[str], str | None]:
    """A project file's text by its relative path, bounded as DVC's records are (None:
    unreadable), for ``dvc.parse``."""

    def text_of(name: str) -> str | None:
        try:
            return safeinput.read_text(root / name, limit=dvc.MAX_BYTES, what=name)
        except (OSError, safeinput.BadInput):
            return None

    return text_of
