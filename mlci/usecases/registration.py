"""``mlci register``: record the current inputs' run as a model version (git tag + MLflow)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlci.context import Context
    from mlci.tracking import RunRecord, Tracking

from mlci import archive, gitrepo, project, registry, stores, tags
from mlci import config as cfg
from mlci import fingerprint as fp
from mlci.errors import GitError, MlciError
from mlci.stores import bundle


@dataclass
class RegisterResult:
    model: str
    version: str
    tag: str
    commit: str
    fingerprint: str
    run_id: str | None
    mlflow_model_version: str | None
    created: bool
    pushed: bool
    model_sha256: str | None = None
    store: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


_LISTED = 20


def inputs_digest(files: Mapping[str, str]) -> str:
    """One digest for the input files' contents (the data and code, without params)."""
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()


@dataclass
class _Registering:
    """One registration's inputs, shared by its steps."""

    ctx: Context
    resolved: project.Resolved
    ws: registry.Workspace
    commit: str

    @property
    def config(self) -> cfg.Config:
        return self.resolved.config

    @property
    def model(self) -> str:
        return self.config.model.name

    @property
    def fingerprint(self) -> str:
        return self.resolved.fingerprint.digest


@dataclass(frozen=True)
class _Bytes:
    """What a version keeps besides its tag: the model's archive and digest, the run's
    predictions, repeats and data profiles, each where the store needs it."""

    choice: cfg.StoreChoice
    store: stores.ModelStore
    model_digest: str | None
    archive_path: Path
    predictions: dict[str, Any] | None
    profile: dict[str, Any] | None
    kept: dict[str, Path]
    repeats: Any


def register(
    ctx: Context,
    *,
    bump: str,
    version: str | None,
    push: bool | None,
    pr_number: int | None = None,
) -> RegisterResult:
    """The current inputs' finished run as the next version (or ``version``): its bytes
    in the store ``registry.store`` chooses, an MLflow model version, and the git tag,
    published together or not at all. Inputs that are a version already are that version.

    The steps: the inputs (committed, one version per commit), the run, the bytes, and
    the version published."""
    reg = _inputs(ctx, version, push)
    known = _known(reg)
    if known is not None:
        return known
    run, model_id = _the_run(reg)
    kept = _the_bytes(reg, run, model_id)
    return _publish(reg, run, model_id, kept, version=version, bump=bump, pr_number=pr_number)


def _inputs(ctx: Context, version: str | None, push: bool | None) -> _Registering:
    """The inputs to register: resolved, committed (a version must be reproducible from
    its commit), with the registry made whole."""
    resolved = ctx.resolve()
    config = resolved.config
    ws = registry.open_workspace(config.root, ctx.environ, push)
    registry.ensure_complete(ws, ctx.log)
    head = gitrepo.head_info(config.root)
    if head is None or head.commit is None:
        raise GitError(f"{ws.root} has no commit to register", hint="commit the project first (git commit)")
    uncommitted = project.uncommitted_inputs(resolved)
    if uncommitted:
        raise GitError(
            "uncommitted changes to the model's inputs: a version must be reproducible from its commit:\n"
            + "\n".join(
                f"  {'untracked' if u.untracked else 'changed  '}  {u.path}" for u in uncommitted[:_LISTED]
            )
            + (f"\n  … and {len(uncommitted) - _LISTED} more" if len(uncommitted) > _LISTED else ""),
            hint="commit (or stash) the files the model is made from; a file that is not an input "
            "(an output, a scratch file) belongs in .gitignore, or out of train.inputs",
        )
    if version is not None and tags.SemVer.parse(version) is None:
        raise MlciError(
            f"--version {version!r} is not a version like v1.2.3",
            hint="use semver with a lowercase v: v1.2.3",
        )
    return _Registering(ctx, resolved, ws, head.commit)


def _known(reg: _Registering) -> RegisterResult | None:
    """The version these inputs are already (its tag pushed where it is missing), or None."""
    existing_state = registry.read_state(reg.ws.root).get(reg.model)
    known = existing_state.version_of_fingerprint(reg.fingerprint) if existing_state else None
    if existing_state is None or known is None:
        return None
    event = existing_state.versions[known]
    pushed = _push_if_missing(reg.ws, event.tag, reg.ctx.log)
    reg.ctx.log(f"{reg.model} {known} is already registered for these inputs ({event.tag}); nothing to do")
    return _existing(reg.model, known, event, reg.fingerprint, pushed)


def _the_run(reg: _Registering) -> tuple[RunRecord, str | None]:
    """The finished run of these inputs, trained from files in git, and its logged model."""
    from mlci.tracking import MODEL_ID_TAG

    tracking = reg.ctx.tracking(reg.config)
    run = tracking.find_finished_run(reg.fingerprint)
    if run is None:
        raise MlciError(
            f"no finished MLflow run for the current inputs (fingerprint {reg.fingerprint[:12]}) "
            f"in {tracking.uri}",
            hint="train first: mlci train",
        )
    if run.tags.get(project.OVERRIDES_TAG):
        raise MlciError(
            f"run {run.run_id} was trained with --set overrides "
            f"({run.tags[project.OVERRIDES_TAG]}): its inputs are not in git",
            hint="put the params in the params file, commit, and run `mlci train --no-cache`",
        )
    model_id = run.tags.get(MODEL_ID_TAG)
    if not model_id and reg.config.train.model:
        raise MlciError(
            f"run {run.run_id} has no logged model, although train.model is {reg.config.train.model!r}",
            hint="train again (mlci train --no-cache) and register that run",
        )
    return run, model_id


def _the_bytes(reg: _Registering, run: RunRecord, model_id: str | None) -> _Bytes:
    """The store for the version's bytes, and what goes into it: the model's archive (and
    its digest), the run's predictions, repeats and data profiles."""
    from mlci.evidence import repeats_of_run

    config, environ, log = reg.config, reg.ctx.environ, reg.ctx.log
    tracking = reg.ctx.tracking(config)
    if model_id:
        choice = cfg.choose_store(config, environ)
    else:
        choice = cfg.StoreChoice(stores.NO_MODEL, "train.model is not set: the version records its run")
    if choice.name == "github" and not reg.ws.push:
        raise MlciError(
            f"the version's bytes go to a GitHub release ({choice.why}), which needs the tag on GitHub, "
            "and this registration would not push it",
            hint="drop --no-push (and add the GitHub remote as origin), or set registry.store: local",
        )
    store = stores.open_store(choice.name, config, environ, log, tracking)
    need_file = choice.name == "github"
    model_digest: str | None = None
    archive_path = config.root / fp.STATE_DIR / "no-model"
    if model_id:
        model_digest, archive_path = _model_archive(
            config, tracking, run, model_id, need_file=need_file, log=log
        )
    predictions, predictions_path = _predictions(config, tracking, run, need_file=need_file, log=log)
    profile, profile_path = _data_profile(config, tracking, run, need_file=need_file, log=log)
    kept = {
        kind: path
        for kind, path in (("predictions", predictions_path), ("data-profile", profile_path))
        if path is not None
    }
    return _Bytes(
        choice, store, model_digest, archive_path, predictions, profile, kept, repeats_of_run(run.tags)
    )


def _metadata(
    reg: _Registering,
    run: RunRecord,
    model_id: str | None,
    kept: _Bytes,
    name: str,
    mlflow_version: str,
    pr_number: int | None,
) -> dict[str, object]:
    """What the version tag records: the inputs, the run, the metrics and params, where
    its bytes are and their digest, its predictions, repeats and data."""
    from mlci.evidence import REPEATS_KEY
    from mlci.usecases import datasets, figures

    metadata: dict[str, object] = {
        "version": name,
        "fingerprint": reg.fingerprint,
        "metrics": run.metrics,
        "params": run.params,
        "commit": reg.commit,
        "run_commit": run.tags.get("mlci.git.commit"),
        "mlflow_run_id": run.run_id,
        "mlflow_model_version": mlflow_version,
        "mlflow_model_id": model_id,
        "inputs_digest": inputs_digest(reg.resolved.fingerprint.files),
        "pr": pr_number if pr_number is not None else _int(run.tags.get("mlci.pr")),
        stores.DIGEST_KEY: kept.model_digest,
        stores.STORE_KEY: kept.choice.name,
    }
    if kept.model_digest is None:
        del metadata[stores.DIGEST_KEY]
    if kept.predictions is not None:
        metadata[stores.PREDICTIONS_KEY] = kept.predictions
    if kept.repeats is not None:
        metadata[REPEATS_KEY] = kept.repeats.to_json()
    made_from = datasets.lineage(run.tags)
    if made_from:
        metadata["data"] = {dataset: {"digest": d} for dataset, d in sorted(made_from.items())}
    if kept.profile is not None:
        metadata["data_profile"] = kept.profile
    plots = figures.recorded(run.tags)
    if plots:  # report.plots: what a later pull request shows beside its own
        metadata[figures.METADATA_KEY] = [{"name": n, "sha256": s} for n, s in plots]
    return metadata


def _publish(
    reg: _Registering,
    run: RunRecord,
    model_id: str | None,
    kept: _Bytes,
    *,
    version: str | None,
    bump: str,
    pr_number: int | None,
) -> RegisterResult:
    """The version published: its MLflow model version and its bytes staged, then the tag
    pushed (``registry.publish``: a race with another job takes the next name; a failed
    push undoes the model version and the staged bytes), then the store's record finished."""
    from mlci.tracking import MODEL_DIGEST_TAG, Registry

    model, commit, log = reg.model, reg.commit, reg.ctx.log
    mlflow_registry = Registry(reg.ctx.tracking(reg.config), model)
    created: dict[str, str] = {}

    def make_plan(state: dict[str, tags.ModelState]) -> registry.Plan | None:
        current = state.get(model) or tags.ModelState(model)
        if current.version_of_fingerprint(reg.fingerprint):
            return None  # another job registered these inputs meanwhile
        on_commit = current.version_on_commit(commit)
        if on_commit is not None:
            raise MlciError(
                f"commit {commit[:12]} already has version {on_commit} of {model}, for other "
                "inputs: one version per commit",
                hint="commit your change, then register",
            )
        taken = current.taken_versions()
        if version is not None and version in taken:
            raise MlciError(
                f"{model} {version} exists already: a version name is never reused",
                hint=f"pick another, or omit --version for the next one ({tags.next_version(taken, bump)})",
            )
        name = version if version is not None else tags.next_version(taken, bump)
        planned = registry.PlannedTag(tags.version_tag(model, name), commit)

        def prepare(planned_tags: list[registry.PlannedTag]) -> None:
            version_tags = {
                "mlci.git_tag": planned.name,
                "mlci.git_commit": commit,
                "mlci.fingerprint": reg.fingerprint,
                "mlci.version": name,
            }
            if kept.model_digest:
                version_tags[MODEL_DIGEST_TAG] = kept.model_digest
            created["mlflow"] = mlflow_registry.create_version(
                run_id=run.run_id,
                model_id=model_id,
                tags=version_tags,
                description=f"{model} {name} (git tag {planned.name}, commit {commit[:12]})",
            )
            metadata = _metadata(reg, run, model_id, kept, name, created["mlflow"], pr_number)
            version_info = stores.version_of(model, name, planned.name, metadata)
            metadata.update(
                kept.store.stage(version_info, kept.archive_path, model_card(version_info), kept.kept)
            )
            planned_tags[0].summary = tags.register_summary(model, name)
            planned_tags[0].metadata = metadata

        def undo() -> None:
            kept.store.abort()
            if "mlflow" in created:
                mlflow_registry.delete_version(created.pop("mlflow"))

        return registry.Plan(
            [planned], prepare=prepare, undo=undo, fixed_names=version is not None, info={"version": name}
        )

    published = registry.publish(reg.ws, make_plan, log)
    if published is None:
        state = registry.read_state(reg.ws.root)[model]
        known = state.version_of_fingerprint(reg.fingerprint)
        assert known is not None
        return _existing(model, known, state.versions[known], reg.fingerprint, reg.ws.push)
    name = str(published.plan.info["version"])
    tag = published.plan.tags[0].name
    try:
        kept.store.commit()
    except MlciError as exc:
        raise MlciError(
            f"{tag} is published and its bytes are stored, but finishing the {kept.store.name} store's "
            f"record failed: {exc.message}",
            hint="`mlci doctor --fix` finishes it; the bytes are safe in a draft release",
        ) from exc
    where = f" and pushed to {registry.REMOTE}" if published.pushed else " (local only: not pushed)"
    mlflow_version = created.get("mlflow")
    log(f"registered {model} {name}: tag {tag} on {commit[:12]}{where}; MLflow version {mlflow_version}")
    return RegisterResult(
        model,
        name,
        tag,
        commit,
        reg.fingerprint,
        run.run_id,
        created.get("mlflow"),
        created=True,
        pushed=published.pushed,
        model_sha256=kept.model_digest,
        store=kept.choice.name,
    )


def _model_archive(
    config: cfg.Config,
    tracking: Tracking,
    run: RunRecord,
    model_id: str,
    *,
    need_file: bool,
    log: Callable[[str], None],
) -> tuple[str, Path]:
    """The run's model archive digest, and (with ``need_file``) the archive on disk:
    the bundle this job wrote or restored, else made from the run's logged model."""
    from mlci.tracking import MODEL_DIGEST_TAG

    recorded = run.tags.get(MODEL_DIGEST_TAG)
    fingerprint = run.tags.get("mlci.fingerprint", "")
    path = bundle.folder(config.root / fp.STATE_DIR, fingerprint) / bundle.ARCHIVE_FILE
    if recorded and (not need_file or path.is_file()):
        return recorded, path
    scratch = config.root / fp.STATE_DIR / "pulled" / f"run-{run.run_id}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        log(f"reading the model of run {run.run_id} from {tracking.uri}")
        folder = tracking.download(tracking.model_source(model_id), scratch)
        digest = archive.pack(folder, path) if need_file else archive.digest_folder(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if recorded and digest.sha256 != recorded:
        raise archive.ArchiveError(
            f"the model of run {run.run_id} in {tracking.uri} has sha256 {digest.sha256}, the run "
            f"records {recorded}: its files changed after training",
            hint="train again (mlci train --no-cache) and register that run",
        )
    return digest.sha256, path


def _predictions(
    config: cfg.Config, tracking: Tracking, run: RunRecord, *, need_file: bool, log: Callable[[str], None]
) -> tuple[dict[str, object] | None, Path | None]:
    """What the version's tag records of the run's predictions (``stores.PREDICTIONS_KEY``:
    name, sha256, the rows' digest, the metrics that recompute from them), and with
    ``need_file`` the file, for a store that keeps its own copy. (None, None) for a run
    without."""
    from mlci.tracking import PREDICTIONS_DIGEST_TAG, PREDICTIONS_METRICS_TAG, PREDICTIONS_TAG, ROWS_TAG

    name = run.tags.get(PREDICTIONS_TAG)
    sha256 = run.tags.get(PREDICTIONS_DIGEST_TAG)
    if not name or not sha256:
        return None, None  # no predictions, or recorded before their digest was
    record: dict[str, object] = {
        "name": name,
        "sha256": sha256,
        "rows_sha256": run.tags.get(ROWS_TAG),
        "metrics": [m for m in run.tags.get(PREDICTIONS_METRICS_TAG, "").split(",") if m],
    }
    path = _run_file(config, tracking, run, name, sha256, bundle.PREDICTIONS_DIR, log) if need_file else None
    return record, path


def _data_profile(
    config: cfg.Config, tracking: Tracking, run: RunRecord, *, need_file: bool, log: Callable[[str], None]
) -> tuple[dict[str, object] | None, Path | None]:
    """What the version's tag records of the run's data profiles (their sha256), and with
    ``need_file`` the file. (None, None) for a run without declared data."""
    from mlci.usecases.datasets import PROFILE_DIGEST_TAG

    sha256 = run.tags.get(PROFILE_DIGEST_TAG)
    if not sha256:
        return None, None
    name = bundle.PROFILE_NAME
    path = _run_file(config, tracking, run, name, sha256, bundle.DATA_DIR, log) if need_file else None
    return {"sha256": sha256}, path


def _run_file(
    config: cfg.Config,
    tracking: Tracking,
    run: RunRecord,
    name: str,
    sha256: str,
    folder: str,
    log: Callable[[str], None],
) -> Path:
    """One of the run's files, for a store that keeps its own copy: from the bundle this
    job wrote or restored, else downloaded from the run; its sha256 checked."""
    fingerprint = run.tags.get("mlci.fingerprint", "")
    path = bundle.folder(config.root / fp.STATE_DIR, fingerprint) / folder / name
    if not path.is_file():
        scratch = config.root / fp.STATE_DIR / "pulled" / f"{folder}-{run.run_id}"
        shutil.rmtree(scratch, ignore_errors=True)
        log(f"reading {name} of run {run.run_id} from {tracking.uri}")
        found = tracking.download(f"runs:/{run.run_id}/{name}", scratch)
        path = found / name if found.is_dir() else found
    archive.verify(archive.file_chunks(path), expected=sha256, source=f"{name} of run {run.run_id}")
    return path


def model_card(version: stores.Version) -> str:
    """The release notes of a version: what it is, how well it does, where it came from."""
    from mlci.render import inline_code as code  # the report's escape: any text, safe in a table

    meta = version.metadata
    lines = [
        f"# {version.model} {version.version}",
        "",
        f"Registered by mlci as git tag `{version.tag}`. Model archive sha256: `{version.digest}`.",
        "",
    ]
    metrics = tags.recorded_metrics(meta)
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|:--|--:|"]
        lines += [f"| {code(k)} | {v:.6g} |" for k, v in sorted(metrics.items())]
        lines.append("")
    params = meta.get("params")
    if isinstance(params, dict) and params:
        lines += ["## Params", "", "| param | value |", "|:--|:--|"]
        lines += [f"| {code(k)} | {code(v)} |" for k, v in sorted(params.items())]
        lines.append("")
    lines += ["## Lineage", ""]
    for label, key in (
        ("commit", "commit"),
        ("trained at commit", "run_commit"),
        ("inputs fingerprint", "fingerprint"),
        ("inputs digest", "inputs_digest"),
        ("pull request", "pr"),
        ("MLflow run", "mlflow_run_id"),
    ):
        if meta.get(key) not in (None, ""):
            lines.append(f"- {label}: {code(meta[key])}")
    lines += ["", "Get it with `mlci pull " + version.tag + "`; it checks the digest."]
    return "\n".join(lines) + "\n"


def _existing(model: str, version: str, event: tags.Event, fingerprint: str, pushed: bool) -> RegisterResult:
    """The result for inputs that already have a version."""
    return RegisterResult(
        model,
        version,
        event.tag,
        event.commit,
        fingerprint,
        event.metadata.get("mlflow_run_id"),
        _str(event.metadata.get("mlflow_model_version")),
        created=False,
        pushed=pushed,
        model_sha256=_str(event.metadata.get(stores.DIGEST_KEY)),
        store=_str(event.metadata.get(stores.STORE_KEY)),
    )


def _push_if_missing(ws: registry.Workspace, tag: str, log: Callable[[str], None]) -> bool:
    """A version tagged earlier with --no-push is published now, if asked to push."""
    if not ws.push:
        return False
    if tag in gitrepo.remote_tags(ws.root, registry.REMOTE):
        return True
    result = gitrepo.push_tags(ws.root, registry.REMOTE, [tag])
    if not result.ok:
        raise GitError(f"pushing {tag} to {registry.REMOTE} failed: {result.error}")
    log(f"pushed {tag} to {registry.REMOTE}")
    return True


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
