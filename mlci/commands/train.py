"""``mlci train`` and ``mlci fingerprint``: train reproducibly, never twice for the same inputs."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlci import archive, gitrepo, redact, safeinput, trainer
from mlci import fingerprint as fp
from mlci import params as prm
from mlci.errors import MetricsError, TrainingError, TrainingInterrupted
from mlci.metrics import metrics_from
from mlci.project import OVERRIDES_TAG, Resolved, make_tracking
from mlci.stores import bundle

if TYPE_CHECKING:
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


def fingerprint_report(resolved: Resolved, as_json: bool) -> str:
    if not as_json:
        return resolved.fingerprint.digest
    return json.dumps(
        {
            "fingerprint": resolved.fingerprint.digest,
            "files": dict(sorted(resolved.fingerprint.files.items())),
            "params": resolved.params,
            "command": resolved.config.train.command,
            "unmatched_inputs": list(resolved.fingerprint.unmatched),
        },
        indent=2,
    )


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
    folder: bool,
) -> Path:
    """Where the command wrote an output: MLCI_OUTPUT_DIR first, then the project folder,
    where a file left over from an earlier run does not count."""
    fresh = output_dir / name
    if fresh.is_dir() if folder else fresh.is_file():
        return fresh
    legacy = root / name
    now = _signature(legacy)
    if now is not None and now != before:
        return legacy
    what = "folder" if folder else "file"
    if now is not None:
        raise TrainingError(
            f"the training command did not write its {what} {name!r} ({key} in mlci.yaml): "
            f"{legacy} is left over from an earlier run",
            hint=f"make the command write {name} under $MLCI_OUTPUT_DIR (or the project folder), "
            f"or fix {key}",
        )
    raise TrainingError(
        f"the training command finished but wrote no {what} {name!r} ({key} in mlci.yaml); "
        f"looked in {output_dir} and {root}",
        hint=f"make the command write {name} under $MLCI_OUTPUT_DIR, or fix {key} in mlci.yaml",
    )


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


def train(
    resolved: Resolved,
    *,
    environ: Mapping[str, str],
    use_cache: bool = True,
    pr_number: int | None = None,
    log: Callable[[str], None],
    command_stdout: Any = None,
    run_sources: Sequence[RunSource] = (),
    write_bundle: bool = False,
    allow_training: bool = True,
) -> TrainResult:
    """Reuse the FINISHED run with this fingerprint (the tracking store first, then
    ``run_sources``), or run the training command and record it. With
    ``write_bundle``, a run trained here is also written as a bundle to upload."""
    from mlci.tracking import FINGERPRINT_TAG, MODEL_DIGEST_TAG, RESTORED_TAG, owner_tags, param_value

    config = resolved.config
    root = config.root
    tracking = make_tracking(config, environ)
    uri = tracking.uri
    digest = resolved.fingerprint.digest
    head = gitrepo.head_info(root)
    git_commit = head.commit if head else None

    if use_cache:
        found = tracking.find_finished_run(digest)
        if found is not None:
            log(
                f"cache hit: run {found.run_id} has fingerprint {digest[:12]}; not training "
                "(--no-cache trains anyway)"
            )
            return TrainResult(
                run_id=found.run_id,
                experiment_id=found.experiment_id,
                fingerprint=digest,
                cached=True,
                metrics=found.metrics,
                params=resolved.params,
                git_commit=git_commit,
                run_git_commit=found.tags.get("mlci.git.commit"),
                tracking_uri=redact.url(uri),
                run_url=tracking.run_url(found.run_id, found.experiment_id),
                model_id=found.tags.get("mlci.model_id"),
                tags=found.tags,
                model_sha256=found.tags.get(MODEL_DIGEST_TAG),
                restored_from=found.tags.get(RESTORED_TAG),
            )
        for source in run_sources:
            restored = source.find(config.model.name, digest, bundle.folder(root / fp.STATE_DIR, digest))
            if restored is not None:
                return _import(tracking, resolved, restored, git_commit, log)
    if not allow_training:
        where = redact.url(uri) + (" or in workflow artifacts" if run_sources else "")
        raise TrainingError(
            f"no run of these inputs (fingerprint {digest[:12]}) in {where}, and this job never "
            "runs the training command (--no-train: it holds a write token)",
            hint="the job that trains for this event records the run first (a tracking server, "
            "or its workflow artifact mlci-run-*): check that it ran and uploaded it",
        )

    tags = {
        FINGERPRINT_TAG: digest,
        "mlci.command": config.train.command,
        OVERRIDES_TAG: json.dumps(list(resolved.overrides)) if resolved.overrides else "",
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": config.model.name,
    }
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
    if not tags[OVERRIDES_TAG]:
        del tags[OVERRIDES_TAG]

    tracking.reap_abandoned(log)
    run_id = tracking.start_run(run_name=f"{config.model.name}-{digest[:8]}", tags={**tags, **owner_tags()})
    experiment_id = tracking.experiment_id(create=True)
    assert experiment_id is not None
    work = root / fp.STATE_DIR / RUNS_DIR / run_id
    output_dir = work / "outputs"
    output_dir.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.json"
    params_file.write_text(json.dumps(resolved.params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    metrics_before = _signature(root / config.train.metrics)
    model_before = _signature(root / config.train.model)

    child_env = {
        **trainer.withheld(environ, config.train.withhold_env, log),
        "MLCI_PARAMS_FILE": str(params_file),
        "MLCI_OUTPUT_DIR": str(output_dir),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_ID": experiment_id,
        "PYTHONUNBUFFERED": "1",
    }
    log(f"training: {config.train.command}  (MLflow run {run_id}, fingerprint {digest[:12]})")
    try:
        outcome = trainer.run_command(
            config.train.command,
            cwd=root,
            env=child_env,
            stdout=command_stdout,
            timeout=config.train.timeout,
        )
    except BaseException:
        tracking.end_run(run_id, "FAILED")
        raise
    if outcome.timed_out:
        tracking.end_run(run_id, "KILLED")
        raise TrainingError(
            f"the training command `{config.train.command}` ran past train.timeout "
            f"({config.train.timeout:g}s) and was killed after {outcome.seconds:.1f}s; "
            f"MLflow run {run_id} marked KILLED",
            hint=f"make training faster, or raise train.timeout in {config.path.name}",
        )
    if outcome.interrupted:
        tracking.end_run(run_id, "KILLED")
        raise TrainingInterrupted(
            f"training interrupted after {outcome.seconds:.1f}s; MLflow run {run_id} marked KILLED",
            hint="run `mlci train` again to start over",
        )
    if outcome.returncode != 0:
        tracking.end_run(run_id, "FAILED")
        lines = outcome.stderr_tail.rstrip().splitlines()[-_STDERR_TAIL_LINES:]
        tail = "\n".join(f"  | {line}" for line in lines) or "  | (nothing on stderr)"
        raise TrainingError(
            f"the training command `{config.train.command}` exited with {outcome.returncode} "
            f"after {outcome.seconds:.1f}s; MLflow run {run_id} marked FAILED. "
            f"Last lines of its stderr:\n{tail}",
            hint="fix the training code and run `mlci train` again",
        )
    try:
        metrics_path = _output(
            config.train.metrics, "train.metrics", output_dir, root, metrics_before, folder=False
        )
        metrics = _read_metrics(metrics_path)
        model_path: Path | None = _output(
            config.train.model, "train.model", output_dir, root, model_before, folder=True
        )
        assert model_path is not None
        if not (model_path / "MLmodel").is_file():
            log(
                f"warning: {model_path} has no MLmodel file, so it is not an MLflow model; "
                "logged as plain files (save it with an MLflow flavour to register it)"
            )
            extra_files = [metrics_path, params_file, model_path]
            model_path = None
        else:
            extra_files = [metrics_path, params_file]
        flat_params = prm.flatten(resolved.params)
        digest_tags: dict[str, str] = {}
        bundle_path = None
        if model_path is not None:
            if write_bundle:
                bundle_path = bundle.folder(root / fp.STATE_DIR, digest)
                model_digest = bundle.write(
                    bundle_path,
                    model=config.model.name,
                    fingerprint=digest,
                    run_id=run_id,
                    metrics=metrics,
                    params={k: param_value(v) for k, v in flat_params.items()},
                    tags=tags,
                    model_dir=model_path,
                )
            else:
                model_digest = archive.digest_folder(model_path)
            digest_tags[MODEL_DIGEST_TAG] = model_digest.sha256
        model_id = tracking.log_results(
            run_id,
            params=flat_params,
            metrics=metrics,
            files=extra_files,
            model_dir=model_path,
            model_name=config.model.name,
            tags=digest_tags,
        )
    except BaseException:
        tracking.end_run(run_id, "FAILED")
        raise
    shutil.rmtree(work, ignore_errors=True)  # everything is in MLflow now
    log(f"trained in {outcome.seconds:.1f}s; recorded MLflow run {run_id}")
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        fingerprint=digest,
        cached=False,
        metrics=metrics,
        params=resolved.params,
        git_commit=git_commit,
        run_git_commit=git_commit,
        tracking_uri=redact.url(uri),
        run_url=tracking.run_url(run_id, experiment_id),
        train_seconds=round(outcome.seconds, 3),
        model_id=model_id,
        tags={**tags, **digest_tags},
        model_sha256=digest_tags.get(MODEL_DIGEST_TAG),
        bundle=str(bundle_path) if bundle_path else None,
    )


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
            MODEL_DIGEST_TAG: restored.digest.sha256,
            RESTORED_TAG: restored.source,
            "mlci.origin_run_id": restored.run_id,
        },
        params=restored.params,
        metrics=restored.metrics,
        model_dir=restored.model_dir,
        model_name=config.model.name,
    )
    shutil.rmtree(restored.model_dir, ignore_errors=True)  # in MLflow now; the archive stays for a release
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
        model_sha256=restored.digest.sha256,
        restored_from=restored.source,
    )


def format_result(result: TrainResult) -> str:
    width = max((len(k) for k in result.metrics), default=0)
    lines = [
        f"run        {result.run_id}{'  (cached)' if result.cached else ''}",
        f"fingerprint {result.fingerprint}",
        f"tracking   {result.tracking_uri}",
    ]
    if result.run_url:
        lines.append(f"url        {result.run_url}")
    lines.append("metrics:")
    lines += [f"  {name:<{width}}  {value:.6g}" for name, value in sorted(result.metrics.items())]
    return "\n".join(lines)


def stderr_log(message: str) -> None:
    print(f"mlci: {redact.text(message)}", file=sys.stderr, flush=True)
