"""Files of the user's working tree that mlci changes for one training command,
put back exactly as they were afterwards, even if mlci is killed.

``mlci train --set`` writes the overridden params into the params file the
training code reads, and a command such as ``dvc repro`` rewrites its lock
file. Both are put back when the command ends. The sequence is crash-safe:

1. each file is copied (content, mode and mtime) to ``.mlci/restore/`` and the
   copy is synced, then the journal ``.mlci/restore/journal.json`` names it;
2. only then is the file changed, and the command runs;
3. afterwards each copy is renamed over its file and the journal is removed.

If mlci dies during step 2, even by SIGKILL, the training process group's
guard (``mlci.guard``) sees its lifeline close and restores from the journal. If
the guard dies too (power loss), the next mlci command in the project restores
from the journal before it does anything else. A lock held for the whole
sequence keeps two mlci processes of one checkout from changing the same files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlci.errors import MlciError
from mlci.restorer import restore_journal

RESTORE_DIR = "restore"
JOURNAL = "journal.json"
LOCK = "lock"


class Busy(MlciError):
    """Another mlci process of this checkout is changing files for a training run."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(folder: Path) -> int | None:
    """The exclusive lock of ``folder``'s swap, held by the returned descriptor (closing
    it releases the lock); None if a live mlci holds it."""
    import fcntl

    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def recover(state_dir: Path, log: Callable[[str], None], allowed: Iterable[Path] | None = None) -> None:
    """Put back what a killed mlci left changed (its journal), if no live mlci holds it;
    with ``allowed``, only those files (what the config lets a run change)."""
    journal = state_dir / RESTORE_DIR / JOURNAL
    if not journal.exists():
        return
    try:
        fd = _lock(journal.parent)
    except OSError:
        return
    if fd is None:
        return  # a live mlci owns it and restores it itself
    try:
        _restore_logged(journal, log, after_crash=True, allowed=allowed)
    finally:
        os.close(fd)


def _restore_logged(
    journal: Path, log: Callable[[str], None], *, after_crash: bool, allowed: Iterable[Path] | None = None
) -> None:
    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))["entries"]
        names = [e["path"] for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        names = []
    real = None if allowed is None else {os.path.join(os.path.realpath(p.parent), p.name) for p in allowed}
    kept, refused = restore_journal(str(journal), real)
    restored = [n for n in names if n not in kept and n not in refused]
    if after_crash and restored:
        log(f"restored {', '.join(restored)} as they were before an interrupted training run")
    for name in refused:
        log(
            f"warning: {journal} names {name!r}, which is no file a training run of this project "
            "changes: mlci left it alone (a journal mlci did not write?)"
        )
    for name in kept:
        backup_dir = journal.parent
        log(
            f"warning: {name} changed while training ran, so mlci left it as it is now; "
            f"the version from before training is in {backup_dir}"
        )


class Swap:
    """A context in which files are changed, and after which they are as they were."""

    def __init__(self, state_dir: Path, log: Callable[[str], None]) -> None:
        self.dir = state_dir / RESTORE_DIR
        self.journal = self.dir / JOURNAL
        self.log = log
        self.entries: list[dict[str, Any]] = []
        self._fd: int | None = None

    def __enter__(self) -> Swap:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fd = _lock(self.dir)
        if self._fd is None:
            raise Busy(
                f"another mlci process is training in {self.dir.parent.parent} with files changed "
                "for its run (params overridden with --set, or a lock file it restores)",
                hint="wait for it to finish, or train in a separate clone",
            )
        if self.journal.exists():
            _restore_logged(self.journal, self.log, after_crash=True)
        for stale in self.dir.iterdir():
            if stale.name not in (LOCK,):
                stale.unlink(missing_ok=True)
        return self

    def _backup(self, path: Path) -> str | None:
        if not path.exists():
            return None
        backup = self.dir / f"{len(self.entries)}-{path.name}"
        tmp = backup.with_name(backup.name + ".tmp")
        shutil.copy2(path, tmp)
        _fsync(tmp)
        os.replace(tmp, backup)
        return str(backup)

    def _record(self, path: Path, backup: str | None, written: bytes | None) -> None:
        self.entries.append(
            {"path": str(path), "backup": backup, "written": None if written is None else written.hex()}
        )
        tmp = self.journal.with_name(JOURNAL + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "entries": self.entries}), encoding="utf-8")
        _fsync(tmp)
        os.replace(tmp, self.journal)

    def write(self, path: Path, data: bytes) -> None:
        """Give ``path`` the content ``data`` until the context ends."""
        self._record(path, self._backup(path), data)
        tmp = path.with_name(f".{path.name}.mlci-{os.getpid()}.tmp")
        tmp.write_bytes(data)
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)

    def keep(self, path: Path) -> None:
        """Whatever the command does to ``path``, put it back as it is now when the context ends."""
        self._record(path, self._backup(path), None)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.journal.exists():
                _restore_logged(self.journal, self.log, after_crash=False)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    @property
    def journal_path(self) -> str | None:
        return str(self.journal) if self.entries else None
