"""``mlci show`` and ``mlci history``: read the git-tag registry (with or without mlci.yaml)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlci import config as cfg
from mlci import gitrepo, registry, registry_cache, tags
from mlci.errors import ConfigError, GitError, MlciError


def _state(
    cwd: Path, model: str | None, warn: Callable[[str], None], environ: Mapping[str, str]
) -> tuple[dict[str, tags.ModelState], list[str]]:
    found = gitrepo.toplevel_and_shallow(cwd)
    if found is None:
        raise GitError(
            f"{cwd} is not in a git repository: the model registry lives in git tags",
            hint="run the command inside the model's repository",
        )
    root, shallow = found
    state, lightweight = registry_cache.display_state(root, environ, warn)
    if lightweight:
        warn(
            f"{len(lightweight)} registry tag(s) are lightweight and ignored (a CI checkout "
            f"rewrites tags so): {', '.join(lightweight[:3])}; fetch them: git fetch --tags --force"
        )
    if shallow:
        warn(f"{root} is a shallow clone: the registry may be incomplete; {registry.FETCH_DEPTH_HINT}")
    env_order: list[str] = []
    # mlci.yaml is optional here: any GTO registry can be shown.
    with contextlib.suppress(ConfigError):
        env_order = [e.name for e in cfg.load(cfg.find_config(cwd)).environments]
    if model is not None:
        if model not in state:
            known = ", ".join(sorted(state)) or "none"
            raise MlciError(f"no model {model!r} in the registry of {root}", hint=f"models: {known}")
        state = {model: state[model]}
    for s in state.values():
        for env in s.environments:
            if env not in env_order:
                env_order.append(env)
    return state, env_order


def _when(timestamp: int) -> str:
    # time.gmtime, not datetime: a 10,000-tag history formats 10,000 of these.
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def show(
    cwd: Path,
    model: str | None,
    warn: Callable[[str], None],
    detail: bool = True,
    *,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """The registry; ``detail`` adds every version (for --json)."""
    state, env_order = _state(cwd, model, warn, environ)
    models = []
    for name in sorted(state):
        s = state[name]
        environments = {}
        pins = {}
        for env in env_order:
            event = s.current(env)
            environments[env] = event.version if event else None
            pin = s.pin(env)
            if pin is not None:
                pins[env] = {
                    "version": pin.version,
                    "since": _when(pin.timestamp),
                    "reason": pin.metadata.get("reason"),
                    "tag": pin.tag,
                }
        active = s.active_versions()
        models.append(
            {
                "name": name,
                "latest": active[0] if active else None,
                "deprecated": s.deprecated is not None,
                "environments": environments,
                "pinned": pins,
                "versions": [_version(v, s.versions[v]) for v in (active if detail else [])],
            }
        )
    return {"models": models, "environments": env_order}


def _version(version: str, event: tags.Event) -> dict[str, Any]:
    metadata = event.metadata
    return {
        "version": version,
        "tag": event.tag,
        "commit": event.commit,
        "created_at": _when(event.timestamp),
        "author": event.tagger,
        "metrics": metadata.get("metrics"),
        "mlflow_model_version": metadata.get("mlflow_model_version"),
        "data": _data(metadata),
    }


def format_show(data: dict[str, Any]) -> str:
    if not data["models"]:
        return "no models registered (no GTO-format tags in this repository)"
    envs = data["environments"]
    header = ["model", "latest", *envs]
    rows = [
        [
            m["name"] + (" (deprecated)" if m["deprecated"] else ""),
            m["latest"] or "-",
            *[
                (m["environments"].get(e) or "-") + (" (pinned)" if e in m.get("pinned", {}) else "")
                for e in envs
            ],
        ]
        for m in data["models"]
    ]
    notes = [
        f"{m['name']}: {env} pinned to {p['version']} by a rollback on {p['since']}: {p['reason']} "
        f"(`mlci unpin {env}` resumes automatic promotion)"
        for m in data["models"]
        for env, p in m.get("pinned", {}).items()
    ]
    return "\n".join([_table(header, rows), *notes])


def history(
    cwd: Path, model: str | None, warn: Callable[[str], None], *, environ: Mapping[str, str]
) -> list[dict[str, Any]]:
    state, _ = _state(cwd, model, warn, environ)
    events = [e for s in state.values() for e in s.events]
    events.sort(
        key=lambda e: (tags.event_time(e), e.counter if e.counter is not None else -1),
        reverse=True,
    )
    out = []
    for e in events:
        kind = e.action.value
        if e.metadata.get("rollback"):
            kind = "rollback"
        elif e.metadata.get("unpinned"):
            kind = "unpin"
        out.append(
            {
                "when": _when(e.timestamp),
                "timestamp": e.timestamp,
                "action": kind,
                "model": e.model,
                "version": e.version,
                "environment": e.environment,
                "tag": e.tag,
                "commit": e.commit,
                "author": e.tagger,
                "author_email": e.tagger_email,
                "reason": e.metadata.get("reason"),
                "replaced": e.metadata.get("replaced"),
                "data": _data(s.versions[e.version].metadata)
                if e.version is not None and (s := state.get(e.model)) is not None and e.version in s.versions
                else {},
            }
        )
    return out


def _data(metadata: dict[str, Any]) -> dict[str, str]:
    """Which data made a version: each declared dataset's digest, as its tag records."""
    recorded = metadata.get("data")
    if not isinstance(recorded, dict):
        return {}
    return {str(k): str(v["digest"]) for k, v in recorded.items() if isinstance(v, dict) and v.get("digest")}


def format_history(events: list[dict[str, Any]]) -> str:
    if not events:
        return "no registry events"
    rows = []
    for e in events:
        what = e["version"] or "-"
        if e["environment"]:
            what = f"{what} -> {e['environment']}"
        note = ""
        if e["action"] == "rollback":
            note = f"replaced {e['replaced'] or '-'}: {e['reason']} (pins {e['environment']})"
        elif e["action"] == "unpin":
            note = "pin lifted: automatic promotion resumes"
        rows.append([e["when"], e["model"], e["action"], what, e["author"], e["tag"], note])
    return _table(["when", "model", "action", "version", "by", "tag", "note"], rows)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
