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


def register(
    ctx: Context,
    *,
    bump: str,
    version: str | None,
    push: bool | None,
    pr_number: int | None = None,
) -> RegisterResult:
    from mlci.evidence import REPEATS_KEY, repeats_of_run
    from mlci.tracking import MODEL_DIGEST_TAG, MODEL_ID_TAG, Registry
    from mlci.usecases import datasets

    environ, log = ctx.environ, ctx.log
    resolved = project.resolve(ctx.config_path, ctx.cwd, [], warn=log)
    config = resolved.config
    ws = registry.open_workspace(config.root, environ, push)
    ensure = registry.ensure_complete
    ensure(ws, log)
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
    fingerprint = resolved.fingerprint.digest
    model = config.model.name

    existing_state = registry.read_state(ws.root).get(model)
    if existing_state is not None:
        known = existing_state.version_of_fingerprint(fingerprint)
        if known is not None:
            event = existing_state.versions[known]
            pushed = _push_if_missing(ws, event.tag, log)
            log(f"{model} {known} is already registered for these inputs ({event.tag}); nothing to do")
            return _existing(model, known, event, fingerprint, pushed)

    tracking = ctx.tracking(config)
    run = tracking.find_finished_run(fingerprint)
    if run is None:
        raise MlciError(
            f"no finished MLflow run for the current inputs (fingerprint {fingerprint[:12]}) "
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
    if not model_id and config.train.model:
        raise MlciError(
            f"run {run.run_id} has no logged model, although train.model is {config.train.model!r}",
            hint="train again (mlci train --no-cache) and register that run",
        )
    if model_id:
        choice = cfg.choose_store(config, environ)
    else:
        choice = cfg.StoreChoice(stores.NO_MODEL, "train.model is not set: the version records its run")
    if choice.name == "github" and not ws.push:
        raise MlciError(
            f"the version's bytes go to a GitHub release ({choice.why}), which needs the tag on GitHub, "
            "and this registration would not push it",
            hint="drop --no-push (and add the GitHub remote as origin), or set registry.store: local",
        )
    store = stores.open_store(choice.name, config, environ, log, tracking)
    model_digest: str | None = None
    archive_path = config.root / fp.STATE_DIR / "no-model"
    if model_id:
        model_digest, archive_path = _model_archive(
            config, tracking, run, model_id, need_file=choice.name == "github", log=log
        )
    repeats = repeats_of_run(run.tags)
    predictions, predictions_path = _predictions(
        config, tracking, run, need_file=choice.name == "github", log=log
    )
    profile, profile_path = _data_profile(config, tracking, run, need_file=choice.name == "github", log=log)
    kept = {
        kind: path
        for kind, path in (("predictions", predictions_path), ("data-profile", profile_path))
        if path is not None
    }
    mlflow_registry = Registry(tracking, model)
    commit = head.commit
    created: dict[str, str] = {}

    def make_plan(state: dict[str, tags.ModelState]) -> registry.Plan | None:
        current = state.get(model) or tags.ModelState(model)
        if current.version_of_fingerprint(fingerprint):
            return None  # another job registered these inputs meanwhile
        on_commit = current.version_on_commit(commit)
        if on_commit is not None:
            raise MlciError(
                f"commit {commit[:12]} already has version {on_commit} of {model}, for other "
                "inputs: one version per commit",
                hint="commit your change, then register",
            )
        taken = current.taken_versions()
        if version is not None:
            if version in taken:
                raise MlciError(
                    f"{model} {version} exists already: a version name is never reused",
                    hint="pick another, or omit --version for the next one "
                    f"({tags.next_version(taken, bump)})",
                )
            name = version
        else:
            name = tags.next_version(taken, bump)
        planned = registry.PlannedTag(tags.version_tag(model, name), commit)

        def prepare(planned_tags: list[registry.PlannedTag]) -> None:
            version_tags = {
                "mlci.git_tag": planned.name,
                "mlci.git_commit": commit,
                "mlci.fingerprint": fingerprint,
                "mlci.version": name,
            }
            if model_digest:
                version_tags[MODEL_DIGEST_TAG] = model_digest
            mv = mlflow_registry.create_version(
                run_id=run.run_id,
                model_id=model_id,
                tags=version_tags,
                description=f"{model} {name} (git tag {planned.name}, commit {commit[:12]})",
            )
            created["mlflow"] = mv
            metadata: dict[str, object] = {
                "version": name,
                "fingerprint": fingerprint,
                "metrics": run.metrics,
                "params": run.params,
                "commit": commit,
                "run_commit": run.tags.get("mlci.git.commit"),
                "mlflow_run_id": run.run_id,
                "mlflow_model_version": mv,
                "mlflow_model_id": model_id,
                "inputs_digest": inputs_digest(resolved.fingerprint.files),
                "pr": pr_number if pr_number is not None else _int(run.tags.get("mlci.pr")),
                stores.DIGEST_KEY: model_digest,
                stores.STORE_KEY: choice.name,
            }
            if model_digest is None:
                del metadata[stores.DIGEST_KEY]
            if predictions is not None:
                metadata[stores.PREDICTIONS_KEY] = predictions
            if repeats is not None:
                metadata[REPEATS_KEY] = repeats.to_json()
            made_from = datasets.lineage(run.tags)
            if made_from:
                metadata["data"] = {name: {"digest": d} for name, d in sorted(made_from.items())}
            if profile is not None:
                metadata["data_profile"] = profile
            version_info = stores.version_of(model, name, planned.name, metadata)
            metadata.update(store.stage(version_info, archive_path, model_card(version_info), kept))
            planned_tags[0].summary = tags.register_summary(model, name)
            planned_tags[0].metadata = metadata

        def undo() -> None:
            store.abort()
            if "mlflow" in created:
                mlflow_registry.delete_version(created.pop("mlflow"))

        return registry.Plan(
            [planned],
            prepare=prepare,
            undo=undo,
            fixed_names=version is not None,
            info={"version": name},
        )

    published = registry.publish(ws, make_plan, log)
    if published is None:
        state = registry.read_state(ws.root)[model]
        known = state.version_of_fingerprint(fingerprint)
        assert known is not None
        return _existing(model, known, state.versions[known], fingerprint, ws.push)
    name = str(published.plan.info["version"])
    tag = published.plan.tags[0].name
    try:
        store.commit()
    except MlciError as exc:
        raise MlciError(
            f"{tag} is published and its bytes are stored, but finishing the {store.name} store's "
            f"record failed: {exc.message}",
            hint="`mlci doctor --fix` finishes it; the bytes are safe in a draft release",
        ) from exc
    where = f" and pushed to {registry.REMOTE}" if published.pushed else " (local only: not pushed)"
    log(
        f"registered {model} {name}: tag {tag} on {commit[:12]}{where}; "
        f"MLflow version {created.get('mlflow')}"
    )
    return RegisterResult(
        model,
        name,
        tag,
        commit,
        fingerprint,
        run.run_id,
        created.get("mlflow"),
        created=True,
        pushed=published.pushed,
        model_sha256=model_digest,
        store=choice.name,
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
