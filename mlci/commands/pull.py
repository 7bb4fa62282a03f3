"""``mlci pull``: a registered model's files, from wherever they live, verified."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci import config as cfg
from mlci import models, registry, stores, tags
from mlci.errors import MlciError

_MODEL = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9\-/_]*[a-zA-Z0-9])?")


@dataclass
class PullResult:
    model: str
    version: str
    tag: str
    path: str
    sha256: str
    size: int
    verified: bool
    store: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``MODEL``, ``MODEL@vX.Y.Z`` or ``MODEL#ENV`` -> (model, version, environment)."""
    model, version, env = ref, None, None
    if "#" in ref:
        model, env = ref.split("#", 1)
    elif "@" in ref:
        model, version = ref.split("@", 1)
    if (
        not _MODEL.fullmatch(model)
        or (version is not None and not tags.VERSION_RE.match(version))
        or env == ""
    ):
        raise MlciError(
            f"{ref!r} is not a model reference",
            hint="use MODEL (its latest version), MODEL@vX.Y.Z, or MODEL#ENV (e.g. churn#production)",
        )
    return model, version, env


def pull(
    ref: str,
    cwd: Path,
    *,
    environ: Mapping[str, str],
    output: Path | None,
    config_path: Path | None,
    log: Callable[[str], None],
) -> PullResult:
    model, version, env = parse_ref(ref)
    config = cfg.load_for(config_path, cwd)
    ws = registry.open_workspace(config.root, environ, push=False)
    registry.ensure_complete(ws, log)
    state = registry.read_state(ws.root).get(model)
    if state is None or not state.versions:
        raise MlciError(
            f"{model} has no registered version in {ws.root}",
            hint=f"models here: {', '.join(sorted(registry.read_state(ws.root))) or 'none'}",
        )
    if env is not None:
        event = state.current(env)
        if event is None or event.version is None:
            raise MlciError(
                f"no version of {model} is in {env}",
                hint=f"environments with a version: {', '.join(state.environments) or 'none'}",
            )
        version = event.version
    elif version is None:
        version = state.latest
        if version is None:
            raise MlciError(f"every version of {model} is deregistered")
    models.active_version(state, version, "pull another version")
    info = models.version_of(model, state.versions[version])
    dest = (output or cwd / f"{model.replace('/', '-')}-{version}").resolve()
    store = stores.for_version(info, config, environ, log)
    digest = models.fetch(store, info, dest, log)
    if info.digest is None:
        log(f"warning: {info.tag} records no digest (registered by another tool?): not verified")
    return PullResult(
        model=model,
        version=version,
        tag=info.tag,
        path=str(dest),
        sha256=digest.sha256,
        size=digest.size,
        verified=info.digest is not None,
        store=store.where(info),
    )
