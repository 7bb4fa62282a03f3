"""Data that DVC tracks: its paths and the hashes DVC recorded, read from git.

DVC keeps data out of git (the path is git-ignored) and records its hash in a
``.dvc`` file (``dvc add``) or in ``dvc.lock`` (a pipeline stage's ``outs``).
Both files are in git, so mlci can count such data as an input through the
recorded hash, without the data itself and without DVC installed: when the
data changes, ``dvc add`` or ``dvc repro`` records a new hash, and the
fingerprint changes with it. Pure apart from reading the files it is given.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mlci import safeinput

LOCK_FILE = "dvc.lock"
PIPELINE_FILE = "dvc.yaml"
_HASH_KEYS = ("md5", "etag", "checksum")
MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Tracked:
    path: str  # relative to the project root, '/'-separated
    hash: str  # as DVC recorded it ("….dir" for a folder)
    source: str  # the file that records it, e.g. "data/data.xml.dvc" or "dvc.lock (stage train)"


def is_record(name: str) -> bool:
    return name.endswith(".dvc") or (
        name.endswith(LOCK_FILE) and (name == LOCK_FILE or name.endswith("/" + LOCK_FILE))
    )


def _hash(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    for key in _HASH_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value:
            return f"{key}:{value}"
    return None


def _joined(folder: str, path: Any) -> str | None:
    if not isinstance(path, str) or not path or "\x00" in path:
        return None
    joined = posixpath.normpath(posixpath.join(folder, path.replace("\\", "/")))
    if joined.startswith(("../", "/")) or joined in ("..", "."):
        return None  # outside the project: not an input mlci can name
    return joined


def parse(names: Iterable[str], text_of: Callable[[str], str | None]) -> dict[str, Tracked]:
    """Every path DVC tracks, from the ``.dvc`` and ``dvc.lock`` files among ``names``,
    whose text ``text_of`` gives (from the working tree, or from a commit).

    A ``.dvc`` file wins over a ``dvc.lock`` entry for the same path; a file
    that cannot be read is skipped (DVC itself reports it).
    """
    out: dict[str, Tracked] = {}
    for name in sorted(n for n in names if is_record(n)):
        try:
            text = text_of(name)
            if text is None:
                continue
            data = safeinput.load_yaml(text)[0]
        except (safeinput.BadInput, OSError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict):
            continue
        folder = posixpath.dirname(name)
        if name.endswith(".dvc"):
            entries = [(o, name) for o in data.get("outs") or [] if isinstance(o, dict)]
        else:
            stages = data.get("stages")
            entries = []
            for stage, spec in stages.items() if isinstance(stages, dict) else ():
                outs = spec.get("outs") if isinstance(spec, dict) else None
                entries += [(o, f"{name} (stage {stage})") for o in outs or [] if isinstance(o, dict)]
        for entry, source in entries:
            path, digest = _joined(folder, entry.get("path")), _hash(entry)
            if path is None or digest is None:
                continue
            if path in out and out[path].source.endswith(".dvc") and not source.endswith(".dvc"):
                continue
            out[path] = Tracked(path, digest, source)
    return out


def covers(tracked: str, pattern: str) -> bool:
    """Whether a glob's fixed part lies inside the tracked folder ``tracked``
    (``data/raw/*.csv`` inside a DVC-tracked ``data/raw``)."""
    fixed = pattern.strip().removeprefix("./").strip("/")
    for i, c in enumerate(fixed):
        if c in "*?[":
            fixed = fixed[:i]
            break
    return fixed.startswith(tracked + "/")
