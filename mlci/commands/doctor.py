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
from typing import Any

from mlci import config as cfg
from mlci import project, registry


@dataclass
class Problem:
    kind: str
    message: str
    fixed: bool = False


@dataclass
class DoctorReport:
    model: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(p.fixed for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "healthy": self.healthy,
            "problems": [p.__dict__ for p in self.problems],
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
    state = registry.read_state(ws.root).get(model)
    report = DoctorReport(model)
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
        run_id, model_id = meta.get("mlflow_run_id"), meta.get("mlflow_model_id")
        if fix and (run_id or model_id):
            new = mlflow.create_version(
                run_id=str(run_id) if run_id else "",
                model_id=str(model_id) if model_id else None,
                tags={
                    GIT_TAG_TAG: event.tag,
                    "mlci.git_commit": event.commit,
                    "mlci.fingerprint": str(meta.get("fingerprint", "")),
                    "mlci.version": version,
                },
                description=f"{model} {version} (re-created from git tag {event.tag})",
            )
            expected[version] = new
            versions[new] = None  # type: ignore[assignment]  # taken; not an orphan
            problem.fixed = True
            problem.message += f"; created MLflow version {new}"
            log(problem.message)

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


def format_report(report: DoctorReport) -> str:
    if not report.problems:
        return f"{report.model}: git tags and MLflow agree"
    lines = [f"{report.model}: {len(report.problems)} problem(s)"]
    for p in report.problems:
        mark = "fixed" if p.fixed else "drift"
        lines.append(f"  [{mark}] {p.message}")
    if not report.healthy:
        lines.append("run `mlci doctor --fix` to bring MLflow in step with git")
    return "\n".join(lines)
