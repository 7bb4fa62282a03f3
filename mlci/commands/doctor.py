"""``mlci doctor``: drift between the git-tag registry and MLflow's, and its repair.

git is the source of truth. Checked: every active version has its MLflow model
version, pointing back at its tag; every environment's alias names the version
git assigns; no alias is left for an environment git has unassigned; and no
MLflow version claims a git tag that does not exist (a half-made registration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlci.tracking import Registry

from mlci import config as cfg
from mlci import gitrepo, models, project, registry, stores, tags
from mlci.errors import MlciError


@dataclass
class Problem:
    kind: str
    message: str
    fixed: bool = False
    hint: str | None = None


@dataclass
class DoctorReport:
    model: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(p.fixed for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "healthy": self.healthy,
            "problems": [p.__dict__ for p in self.problems],
            "notes": self.notes,
        }


def doctor(
    config_path: Path | None,
    cwd: Path,
    *,
    environ: Mapping[str, str],
    fix: bool,
    log: Callable[[str], None],
) -> DoctorReport:
    from mlci.tracking import GIT_TAG_TAG, Registry

    config = cfg.load_for(config_path, cwd)
    model = config.model.name
    ws = registry.open_workspace(config.root, environ, push=False)
    states, skipped = registry.read_with_skipped(gitrepo.read_tags(ws.root))
    state = states.get(model)
    report = DoctorReport(model)
    for item in skipped:
        parsed = tags.parse_name(item.tag)
        if parsed is not None and parsed.model == model:
            report.problems.append(
                Problem(
                    "skipped_tag",
                    f"{item.tag}: skipped by the registry: {item.why}",
                    hint="a published tag is never rewritten; if it is not wanted, delete it where it was "
                    f"made (git tag -d {item.tag} && git push origin :refs/tags/{item.tag})",
                )
            )
    mlflow = Registry(project.make_tracking(config, environ), model)
    versions = {v.version: v for v in mlflow.versions()}
    aliases = mlflow.aliases()
    git_tags = {e.tag for e in state.events} if state else set()

    # Each active git version -> its MLflow version (recorded in the tag message).
    expected: dict[str, str] = {}  # git version -> MLflow version number
    for version in state.active_versions() if state else []:
        event = state.versions[version] if state else None
        assert event is not None
        meta = event.metadata
        number = str(meta.get("mlflow_model_version") or "")
        pointing = [n for n, v in versions.items() if v is not None and v.tags.get(GIT_TAG_TAG) == event.tag]
        if pointing:
            expected[version] = number if number in pointing else max(pointing, key=int)
            continue
        problem = Problem(
            "missing_model_version",
            f"{event.tag}: no MLflow model version points back at it"
            + (f" (the tag names version {number})" if number else ""),
        )
        report.problems.append(problem)
        if fix:
            try:
                new = _recreate(config, environ, mlflow, event, log)
            except MlciError as exc:
                problem.message += f"; not fixed: {exc.message}"
                problem.hint = exc.hint
                continue
            expected[version] = new
            versions[new] = None  # type: ignore[assignment]  # taken; not an orphan
            problem.fixed = True
            problem.message += f"; created MLflow version {new}"
            log(problem.message)

    # Bytes kept in GitHub releases: published, and holding the archive.
    for version in state.active_versions() if state else []:
        assert state is not None
        info = models.version_of(model, state.versions[version])
        if info.metadata.get(stores.STORE_KEY) == "github":
            _check_release(config, environ, info, fix, report, log)

    # Aliases follow the environments' current assignments.
    envs = {e.name for e in config.environments} | (set(state.environments) if state else set())
    for env in sorted(envs):
        current = state.current(env) if state else None
        want = expected.get(current.version) if current and current.version else None
        have = aliases.get(env)
        if current is not None and current.version and want is None:
            report.problems.append(
                Problem(
                    "alias_mismatch",
                    f"alias {env!r} -> {have or 'nothing'}, but git assigns {current.version}, "
                    "which has no MLflow version to point at",
                )
            )
            continue
        if want == have:
            continue
        if want is None and have is not None:
            problem = Problem("stale_alias", f"alias {env!r} -> {have}, but git assigns nothing to {env}")
            if fix:
                mlflow.delete_alias(env)
                problem.fixed = True
                problem.message += "; removed"
        elif want is not None:
            assigned = current.version if current else "?"
            problem = Problem(
                "alias_mismatch",
                f"alias {env!r} -> {have or 'nothing'}, but git assigns {assigned} "
                f"(MLflow version {want}) to {env}",
            )
            if fix:
                mlflow.set_alias(env, want)
                problem.fixed = True
                problem.message += f"; set to {want}"
        else:
            continue
        report.problems.append(problem)
        if problem.fixed:
            log(problem.message)

    # MLflow versions that claim a tag git does not have: a registration that
    # never got published.
    for number, mv in sorted(versions.items()):
        if mv is None:
            continue
        tag = mv.tags.get(GIT_TAG_TAG)
        if tag and tag not in git_tags:
            problem = Problem(
                "orphan_model_version",
                f"MLflow version {number} claims git tag {tag}, which does not exist",
            )
            if fix:
                mlflow.delete_version(number)
                problem.fixed = True
                problem.message += "; deleted"
                log(problem.message)
            report.problems.append(problem)
    return report


def _recreate(
    config: cfg.Config,
    environ: Mapping[str, str],
    mlflow: Registry,
    event: tags.Event,
    log: Callable[[str], None],
) -> str:
    """The MLflow version of a git version: from its run's logged model when this
    store has it, else rebuilt from the version's stored bytes."""
    from mlci.tracking import GIT_TAG_TAG, MODEL_DIGEST_TAG

    meta = event.metadata
    run_id, model_id = meta.get("mlflow_run_id"), meta.get("mlflow_model_id")
    assert event.version is not None
    if model_id:
        try:
            mlflow.tracking.model_source(str(model_id))
        except MlciError:
            model_id = None  # not in this store: a fresh checkout, or another store
    if model_id:
        return mlflow.create_version(
            run_id=str(run_id) if run_id else "",
            model_id=str(model_id),
            tags={
                GIT_TAG_TAG: event.tag,
                "mlci.git_commit": event.commit,
                "mlci.fingerprint": str(meta.get("fingerprint", "")),
                "mlci.version": event.version,
                MODEL_DIGEST_TAG: str(meta.get(stores.DIGEST_KEY) or ""),
            },
            description=f"{config.model.name} {event.version} (re-created from git tag {event.tag})",
        )
    info = models.version_of(config.model.name, event)
    resolved = models.resolve_for_promotion(config, environ, info, log)
    if resolved.mlflow_version is None:
        raise MlciError(
            f"{event.tag} records no model digest, and its run's model is not in this store",
            hint="run `mlci doctor --fix` where the version was registered",
        )
    return resolved.mlflow_version


def _check_release(
    config: cfg.Config,
    environ: Mapping[str, str],
    info: stores.Version,
    fix: bool,
    report: DoctorReport,
    log: Callable[[str], None],
) -> None:
    from mlci.stores.github import GitHubUnavailable, ReleaseStore

    try:
        store = ReleaseStore.from_environ(config, environ, log)
        release = store.api.release(info.tag)
        if release is None:  # a tag pushed whose release was never published: still a draft
            release = next(iter(store.api.stale_drafts(info.tag)), None)
    except GitHubUnavailable as exc:
        report.notes.append(f"{info.tag}: its bytes are in a GitHub release, not checked: {exc.message}")
        return
    name = str(info.metadata.get(stores.ASSET_KEY) or stores.archive_name(info.model, info.version))
    if release is None or release.asset(name) is None:
        report.problems.append(
            Problem(
                "bytes_missing",
                f"{info.tag}: {store.repository} has no release asset {name} on this tag, where its bytes "
                "were stored; promoting it will fail",
                hint="restore the release, or register the model again (a new version); mlci never retrains "
                "to fill the gap",
            )
        )
        return
    if release.draft:
        problem = Problem(
            "release_draft", f"{info.tag}: its release is still a draft (a registration that did not finish)"
        )
        if fix:
            store.api.publish_release(release)
            problem.fixed = True
            problem.message += "; published"
            log(problem.message)
        report.problems.append(problem)


def format_report(report: DoctorReport) -> str:
    notes = [f"  note: {n}" for n in report.notes]
    if not report.problems:
        return "\n".join([f"{report.model}: git tags, MLflow and the stored bytes agree", *notes])
    lines = [f"{report.model}: {len(report.problems)} problem(s)"]
    for p in report.problems:
        mark = "fixed" if p.fixed else "drift"
        lines.append(f"  [{mark}] {p.message}")
        if p.hint and not p.fixed:
            lines.append(f"          hint: {p.hint}")
    lines += notes
    if not report.healthy:
        lines.append("run `mlci doctor --fix` to bring MLflow in step with git")
    return "\n".join(lines)
