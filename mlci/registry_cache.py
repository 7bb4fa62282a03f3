"""The registry as ``mlci show`` and ``mlci history`` display it, kept between calls.

Reading a registry means reading every tag object (git) and parsing every tag
(Python): at 10,000 tags most of a ``show``. Tag objects never change, so the
registry built from them is kept in ``.git/mlci-registry.json`` under a key: the
sha256 of every tag's name and object id (``git for-each-ref`` without reading
an object, milliseconds), mlci's version and this format. Any tag made, moved or
deleted changes the key, and the registry is built again from git.

Only the two display commands read it. Nothing that decides (gate, report,
promote, ci) does, and neither does anything in CI (``GITHUB_ACTIONS``), where
runners are new each time and a job's own code could have written the file.
The file is read as data: bounded, checked field by field; any surprise is a
miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlci import __version__, gitrepo, local_cache, registry, tags

FORMAT = 1
FILE = "mlci-registry.json"
MAX_BYTES = 256 * 1024 * 1024
_EVENT_FIELDS = 11


def _key(listing: str) -> str:
    source = Path(tags.__file__).stat().st_mtime_ns  # a changed parser in a checkout of mlci
    head = f"{FORMAT}\n{__version__}\n{source}\n".encode()
    return hashlib.sha256(head + listing.encode("utf-8", "surrogateescape")).hexdigest()


def display_state(
    root: Path, environ: Mapping[str, str], warn: Callable[[str], None]
) -> tuple[dict[str, tags.ModelState], list[str]]:
    """The registry of ``root`` (skipped tags warned about, as ``registry.state_of`` does)
    and its lightweight registry tags (which it ignores)."""
    git_dir = root / ".git"
    if not local_cache.allowed(environ) or not git_dir.is_dir():
        return _built(root, None, None)
    listing = gitrepo.run_git(
        ["for-each-ref", "--format=%(objectname) %(refname)", "refs/tags"], root, what="listing tags"
    ).stdout
    key = _key(listing)
    path = git_dir / FILE
    found = _load(path, key)
    if found is not None:
        state, skipped, lightweight = found
        registry.warn_skipped(skipped)
        return state, lightweight
    return _built(root, path, key)


def _built(root: Path, path: Path | None, key: str | None) -> tuple[dict[str, tags.ModelState], list[str]]:
    records = gitrepo.read_tags(root)
    lightweight = [r.name for r in records if not r.annotated and tags.parse_name(r.name)]
    state, skipped = registry.read_with_skipped(records)
    registry.warn_skipped(skipped)
    if path is not None and key is not None:
        _save(path, key, state, skipped, lightweight)
    return state, lightweight


def _event(event: tags.Event) -> list[Any]:
    return [
        event.tag,
        event.action.value,
        event.model,
        event.commit,
        event.version,
        event.environment,
        event.counter,
        event.tagger,
        event.tagger_email,
        event.timestamp,
        event.message,
    ]


def _save(
    path: Path,
    key: str,
    state: dict[str, tags.ModelState],
    skipped: list[tags.Skipped],
    lightweight: list[str],
) -> None:
    models = {}
    for name, model in state.items():
        index = {id(e): i for i, e in enumerate(model.events)}
        models[name] = {
            "events": [_event(e) for e in model.events],
            "versions": {v: index[id(e)] for v, e in model.versions.items()},
            "deregistered": {v: index[id(e)] for v, e in model.deregistered.items()},
            "assignments": {
                env: {k: index[id(e)] for k, e in held.items()} for env, held in model.assignments.items()
            },
            "deprecated": index[id(model.deprecated)] if model.deprecated is not None else None,
        }
    body = {
        "format": FORMAT,
        "key": key,
        "models": models,
        "skipped": [[s.tag, s.why] for s in skipped],
        "lightweight": lightweight,
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")
        os.replace(partial, path)
    except (OSError, KeyError):  # an optimisation: never fail a command over it
        partial.unlink(missing_ok=True)


def _load(path: Path, key: str) -> tuple[dict[str, tags.ModelState], list[tags.Skipped], list[str]] | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        body = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("key") != key:
            return None
        state = {name: _model(name, raw) for name, raw in _mapping(body["models"]).items()}
        skipped = [tags.Skipped(_str(t), _str(w)) for t, w in _list(body["skipped"])]
        lightweight = [_str(n) for n in _list(body["lightweight"])]
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None
    return state, skipped, lightweight


def _model(name: str, raw: Any) -> tags.ModelState:
    raw = _mapping(raw)
    events = [_event_of(item) for item in _list(raw["events"])]
    model = tags.ModelState(name, events=events)
    model.versions = {_str(v): events[_int(i)] for v, i in _mapping(raw["versions"]).items()}
    model.deregistered = {_str(v): events[_int(i)] for v, i in _mapping(raw["deregistered"]).items()}
    model.assignments = {
        _str(env): {_str(k): events[_int(i)] for k, i in _mapping(held).items()}
        for env, held in _mapping(raw["assignments"]).items()
    }
    deprecated = raw["deprecated"]
    model.deprecated = events[_int(deprecated)] if deprecated is not None else None
    return model


def _event_of(item: Any) -> tags.Event:
    fields = _list(item)
    if len(fields) != _EVENT_FIELDS:
        raise ValueError("an event of another shape")
    tag, action, model, commit, version, environment, counter, tagger, email, timestamp, message = fields
    return tags.Event(
        tag=_str(tag),
        action=tags.Action(action),
        model=_str(model),
        commit=_str(commit),
        version=None if version is None else _str(version),
        environment=None if environment is None else _str(environment),
        counter=None if counter is None else _int(counter),
        tagger=_str(tagger),
        tagger_email=_str(email),
        timestamp=_int(timestamp),
        message=_str(message),
    )


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value
