"""What the training read, against what the fingerprint takes as its inputs.

The training command's Python notes each file under the project it opens for reading
(``mlci/observe/sitecustomize.py``, loaded through PYTHONPATH); here those notes are read
back (bounded: they come from the project's code) and a file git or DVC tracks that the
training read, but that is not an input, is named: a change to it would not retrain, so
the run cache would serve the old result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlci import safeinput
from mlci.globs import glob_regex

HOOK_DIR = Path(__file__).with_name("observe")
MAX_RECORDS = 256  # processes whose reads are read back
MAX_RECORD_BYTES = 1024 * 1024
MAX_SHOWN = 10
# What a tool reads for itself (git's and DVC's settings): never the training's input.
_PLUMBING = (".git/", ".dvc/", ".mlci/")
_PLUMBING_FILES = (".gitignore", ".dvcignore", ".gitattributes")


def environ(env: Mapping[str, str], root: Path, out_dir: Path) -> dict[str, str]:
    """``env`` with the read-noting hook loaded by every Python the command starts."""
    path = env.get("PYTHONPATH")
    return {
        **env,
        "PYTHONPATH": str(HOOK_DIR) + (os.pathsep + path if path else ""),
        "MLCI_AUDIT_DIR": str(out_dir),
        "MLCI_AUDIT_ROOT": str(root),
    }


@dataclass(frozen=True)
class Read:
    reader: str  # the script that read it: relative to the project, or the program's name
    path: str  # relative to the project, '/'-separated


def collect(out_dir: Path, root: Path) -> list[Read]:
    """The reads the hook noted under ``out_dir``, each file once (its first reader)."""
    return observe(out_dir, root)[0]


def observe(out_dir: Path, root: Path) -> tuple[list[Read], bool]:
    """The reads the hook noted, and whether any process imported MLflow."""
    try:
        records = sorted(out_dir.glob("*.json"))[:MAX_RECORDS]
    except OSError:
        return [], False
    mlflow = False
    reads: dict[str, Read] = {}
    for record in records:
        try:
            data = safeinput.load_json(safeinput.read_text(record, limit=MAX_RECORD_BYTES, what=record.name))
        except (OSError, safeinput.BadInput):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            continue
        mlflow = mlflow or data.get("mlflow") is True
        reader = _reader(data.get("argv0"), root)
        for name in data["files"]:
            if isinstance(name, str) and name and not name.startswith(("/", "../")) and name not in reads:
                reads[name] = Read(reader, name)
    return list(reads.values()), mlflow


def _reader(argv0: object, root: Path) -> str:
    if not isinstance(argv0, str) or not argv0:
        return "the training command"
    path = Path(argv0)
    for base in (root, root.resolve()):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return path.name or "the training command"


@dataclass(frozen=True)
class Unlisted:
    read: Read
    excluded_by: str | None  # the train.exclude pattern that leaves it out, if one does

    def message(self) -> str:
        why = (
            f"which train.exclude leaves out ({self.excluded_by})"
            if self.excluded_by
            else "which is not in train.inputs"
        )
        return f"{self.read.reader} read {self.read.path}, {why}: a change to it would not retrain"


def unlisted(
    reads: Iterable[Read],
    *,
    tracked: Collection[str],
    dvc_tracked: Iterable[str],
    inputs: Collection[str],
    not_inputs: Sequence[str],
    exclude: Sequence[str],
) -> list[Unlisted]:
    """The reads of files git (``tracked``) or DVC (``dvc_tracked``: files and folders)
    tracks that are not ``inputs``; ``not_inputs`` (outputs, the params file, mlci.yaml,
    prefixes) never count. Pure."""
    folders = [d.rstrip("/") for d in dvc_tracked]
    skipped = [(p, glob_regex(p)) for p in exclude]
    found: list[Unlisted] = []
    for read in reads:
        name = read.path
        if name in inputs or name.startswith(_PLUMBING) or name.rsplit("/", 1)[-1] in _PLUMBING_FILES:
            continue
        if any(name == n or name.startswith(n.rstrip("/") + "/") for n in not_inputs):
            continue
        in_dvc = next((d for d in folders if name == d or name.startswith(d + "/")), None)
        if name not in tracked and in_dvc is None:
            continue
        if in_dvc is not None and in_dvc in inputs:
            continue
        pattern = next((p for p, regex in skipped if regex.fullmatch(name)), None)
        found.append(Unlisted(read, pattern))
    return found


def warn(found: Sequence[Unlisted], log: Callable[[str], None]) -> None:
    for item in found[:MAX_SHOWN]:
        log(f"warning: {item.message()}")
    if len(found) > MAX_SHOWN:
        log(f"warning: and {len(found) - MAX_SHOWN} more tracked files the training read are not inputs")
    if found:
        log(
            "add them (or a pattern) to train.inputs in mlci.yaml, or the run cache may serve a "
            "result they no longer give; `mlci fingerprint --explain` lists the inputs and why"
        )
