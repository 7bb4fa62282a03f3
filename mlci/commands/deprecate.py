"""``mlci deprecate``: GTO's deprecate, deregister and unassign tags."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlci import config as cfg
from mlci import gitrepo, registry, tags
from mlci.errors import MlciError


def deprecate(
    config_path: Path | None,
    cwd: Path,
    *,
    environ: Mapping[str, str],
    model: str | None,
    version: str | None,
    environment: str | None,
    reason: str,
    push: bool | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``environment``: unassign it; ``version``: deregister it; neither: deprecate the model."""
    if version and environment:
        raise MlciError(
            "give --version (deregister a version) or --env (unassign an environment), not both",
            hint="run the command once for each",
        )
    if model is None:
        model = cfg.load_for(config_path, cwd).model.name
    ws = registry.open_workspace(cwd, environ, push)
    registry.ensure_complete(ws, log)
    state = registry.read_state(ws.root).get(model)
    if state is None:
        raise MlciError(f"no model {model!r} in the registry of {ws.root}", hint="check the name")

    def make_plan(fresh: dict[str, tags.ModelState]) -> registry.Plan | None:
        now = fresh.get(model) or state
        names = [n for n in (tags.parse_name(e.tag) for e in now.events) if n is not None]
        counter = tags.next_counter(names, model)
        metadata = {"reason": reason}
        if environment:
            current = now.current(environment)
            if current is None:
                return None
            name = tags.unassign_tag(model, environment, counter)
            summary = f"Unassigning stage {environment} from artifact {model} version {current.version}"
            commit = current.commit
        elif version:
            if version not in now.versions:
                raise MlciError(f"{model} has no version {version}", hint="mlci show lists them")
            if version in now.deregistered:
                return None
            name = tags.deregister_tag(model, version)
            summary = f"Deregistering artifact {model} version {version}"
            commit = now.versions[version].commit
        else:
            if now.deprecated is not None:
                return None
            name = tags.deprecate_tag(model)
            summary = f"Deprecating artifact {model}"
            latest = now.latest
            commit = now.versions[latest].commit if latest else (gitrepo.rev_parse(ws.root, "HEAD") or "")
        return registry.Plan([registry.PlannedTag(name, commit, summary, dict(metadata))])

    published = registry.publish(ws, make_plan, log)
    if published is None:
        log("nothing to do: already in effect")
        return {"model": model, "tag": None, "changed": False, "pushed": False}
    tag = published.plan.tags[0].name
    log(f"created {tag}" + (f", pushed to {registry.REMOTE}" if published.pushed else ""))
    if environment:
        _drop_alias(config_path, cwd, environ, model, environment, log)
    return {"model": model, "tag": tag, "changed": True, "pushed": published.pushed}


def _drop_alias(
    config_path: Path | None,
    cwd: Path,
    environ: Mapping[str, str],
    model: str,
    alias: str,
    log: Callable[[str], None],
) -> None:
    from mlci.project import make_tracking
    from mlci.tracking import Registry

    try:
        config = cfg.load_for(config_path, cwd)
    except MlciError:
        return  # no mlci.yaml: no MLflow store to keep in step
    reg = Registry(make_tracking(config, environ), model)
    if alias in reg.aliases():
        reg.delete_alias(alias)
        log(f"removed MLflow alias {alias!r}")
