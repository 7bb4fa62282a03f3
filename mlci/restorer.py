"""Puts back the files a training run changed, from ``mlci.swap``'s journal.

The standard library only, and no import of mlci: the guard (``mlci.guard``) runs it
after mlci died, in a Python started with ``-I -S`` that cannot import the package.
mlci imports it as any module (``mlci.swap``); the guard loads it by its path.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Collection


def restore_journal(journal: str, allowed: Collection[str] | None = None) -> tuple[list[str], list[str]]:
    """Put back what ``journal`` (``mlci.swap``'s) names; return the paths kept as they are
    (changed by someone else meanwhile) and those refused.

    Only what the journal's own run could have recorded: files inside the project the
    journal belongs to (two folders above .mlci/restore/), outside .git and .mlci, and
    backups in the journal's own folder, regular files; with ``allowed`` (the paths the
    project's config lets mlci change), only those. Anything else is refused, untouched."""
    folder = os.path.dirname(os.path.realpath(journal))
    root = os.path.dirname(os.path.dirname(folder))
    try:
        if os.path.getsize(journal) > 64 * 1024 * 1024:
            raise ValueError("too large")
        with open(journal, encoding="utf-8") as f:
            entries = json.load(f)["entries"]
        if not isinstance(entries, list):
            raise TypeError("not a list")
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return [], []
    kept: list[str] = []
    refused: list[str] = []
    for entry in entries[:1000]:
        try:
            path, backup, written = entry["path"], entry.get("backup"), entry.get("written")
            if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
                raise ValueError(path)
            real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
            inside = real[len(root) :].split(os.sep)
            if (
                not real.startswith(root + os.sep)
                or ".git" in inside
                or ".mlci" in inside
                or os.path.basename(path) in ("", ".", "..")
                or (allowed is not None and real not in allowed)
            ):
                raise ValueError(path)
            if backup is not None:
                if not isinstance(backup, str) or (
                    os.path.dirname(backup) != folder and os.path.realpath(os.path.dirname(backup)) != folder
                ):
                    raise ValueError(path)
                if os.path.lexists(backup) and not stat.S_ISREG(os.lstat(backup).st_mode):
                    raise ValueError(path)
            if written is not None and not isinstance(written, str):
                raise ValueError(path)
        except (KeyError, TypeError, ValueError, AttributeError, OSError):
            refused.append(str(entry.get("path") if isinstance(entry, dict) else entry)[:200])
            continue
        try:
            if written is not None and os.path.exists(real):
                with open(real, "rb") as f:
                    if f.read(len(written) // 2 + 1).hex() != written:
                        kept.append(path)  # changed by someone else meanwhile: theirs wins
                        continue
            if backup is None:
                if os.path.lexists(real) and not os.path.isdir(real):
                    os.unlink(real)
            elif os.path.exists(backup):
                os.replace(backup, real)
        except OSError:
            kept.append(path)
    with contextlib.suppress(OSError):
        os.unlink(journal)
    return kept, refused
