"""git: the one module that runs it.

Every git call goes through ``run_git``, whose failure is a ``GitError`` that
shows the command, its exit code and what git printed, with a hint where the
cause is a common one. git is run as a subprocess rather than through
GitPython: the calls mlci needs are few, ``git for-each-ref`` and ``git
ls-files`` are the fast paths anyway, and it keeps 0.1-0.2 s of imports off
every command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlci.errors import GitError


def _hint_for(stderr: str) -> str | None:
    if "Please tell me who you are" in stderr or "empty ident" in stderr:
        return (
            'set your identity: git config --global user.name "Your Name" && '
            "git config --global user.email you@example.com"
        )
    if "not a git repository" in stderr:
        return "run the command inside a git repository (or use `mlci init DIR --git`)"
    return None


def run_git(
    args: Sequence[str],
    cwd: Path,
    *,
    what: str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``cwd``; on failure raise a GitError that says it all."""
    git = shutil.which("git")
    if git is None:
        raise GitError("git is not installed or not on PATH", hint="install git")
    proc = subprocess.run(
        [git, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        input=input,
    )
    if check and proc.returncode != 0:
        stderr = proc.stderr.strip()
        detail = stderr or proc.stdout.strip()
        raise GitError(
            f"{what or 'git'} failed: `git {' '.join(args)}` in {cwd} exited with "
            f"{proc.returncode}: {detail}",
            hint=_hint_for(stderr),
        )
    return proc


def is_repository(path: Path) -> bool:
    return (path / ".git").exists()


def toplevel(path: Path) -> Path | None:
    """The root of the work tree containing ``path``, or None outside git."""
    proc = run_git(["rev-parse", "--show-toplevel"], path, check=False)
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


def init_repository(
    path: Path, *, initial_branch: str, message: str, branches: Iterable[str]
) -> str:
    """``git init``, commit everything in ``path``, create ``branches`` there; returns the sha."""
    run_git(["init", "--quiet", "--initial-branch", initial_branch], path, what="git init")
    run_git(["add", "--all"], path, what="the first commit")
    run_git(["commit", "--quiet", "--message", message], path, what="the first commit")
    for branch in branches:
        if branch != initial_branch:
            run_git(["branch", branch], path, what=f"creating branch {branch}")
    return run_git(["rev-parse", "HEAD"], path).stdout.strip()


def branches(path: Path) -> list[str]:
    out = run_git(["branch", "--format=%(refname:short)"], path, what="listing branches").stdout
    return out.split()


def list_files(path: Path) -> list[str] | None:
    """Files under ``path`` that git tracks or would track (not ignored), relative
    to ``path``; None when ``path`` is not in a git work tree."""
    proc = run_git(
        ["ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."],
        path,
        check=False,
    )
    if proc.returncode != 0:
        if "not a git repository" in proc.stderr:
            return None
        raise GitError(
            f"listing files failed: `git ls-files` in {path} exited with "
            f"{proc.returncode}: {proc.stderr.strip()}"
        )
    # A tracked file deleted from the work tree is still listed: skip it.
    return [
        name
        for name in dict.fromkeys(proc.stdout.split("\0"))
        if name and os.path.lexists(path / name)
    ]


@dataclass(frozen=True)
class HeadInfo:
    commit: str | None
    branch: str | None
    dirty: bool


def head_info(path: Path) -> HeadInfo | None:
    """Commit, branch and dirty flag of the work tree at ``path``; None outside git."""
    proc = run_git(
        ["status", "--porcelain=v2", "--branch", "--untracked-files=normal"], path, check=False
    )
    if proc.returncode != 0:
        return None
    commit = branch = None
    dirty = False
    for line in proc.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split()[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(maxsplit=2)[2]
            branch = None if head == "(detached)" else head
        elif not line.startswith("#"):
            dirty = True
    return HeadInfo(commit=commit, branch=branch, dirty=dirty)
