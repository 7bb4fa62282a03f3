"""git: the one module that talks to it (through GitPython's command runner).

Every failure becomes a ``GitError`` that shows the command, its exit code and
what git printed, plus a hint where the cause is a common one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import GitError

if TYPE_CHECKING:
    import git


def _hint_for(stderr: str) -> str | None:
    if "Please tell me who you are" in stderr or "empty ident" in stderr:
        return (
            'set your identity: git config --global user.name "Your Name" && '
            "git config --global user.email you@example.com"
        )
    if "not a git repository" in stderr:
        return "run the command inside a git repository (or use `mlci init DIR --git`)"
    return None


@contextmanager
def _translated(what: str) -> Iterator[None]:
    import git

    try:
        yield
    except git.GitCommandError as exc:
        stderr = str(exc.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
        command = (
            " ".join(str(a) for a in exc.command)
            if isinstance(exc.command, list)
            else str(exc.command)
        )
        raise GitError(
            f"{what} failed: `{command}` exited with {exc.status}: {stderr}",
            hint=_hint_for(stderr),
        ) from exc


def _open(path: Path) -> git.Repo:
    try:
        import git
    except ImportError as exc:  # GitPython raises this when no git executable is found
        raise GitError(
            f"git is not usable: {exc}", hint="install git and make sure it is on PATH"
        ) from exc
    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise GitError(
            f"{path} is not a git repository",
            hint="run the command inside a git repository (or use `mlci init DIR --git`)",
        ) from exc


def is_repository(path: Path) -> bool:
    return (path / ".git").exists()


def init_repository(
    path: Path, *, initial_branch: str, message: str, branches: Iterable[str]
) -> str:
    """``git init``, commit everything in ``path``, create ``branches`` there; returns the sha."""
    import git

    with _translated("git init"):
        repo = git.Repo.init(path, initial_branch=initial_branch)
    with _translated("the first commit"):
        repo.git.add("--all")
        repo.git.commit("--quiet", "--message", message)
        for branch in branches:
            if branch != initial_branch:
                repo.git.branch(branch)
        return str(repo.head.commit.hexsha)


def branches(path: Path) -> list[str]:
    repo = _open(path)
    with _translated("listing branches"):
        return [head.name for head in repo.heads]
