"""git: the one module that runs it.

Every git call goes through ``run_git``, whose failure is a ``GitError`` that
shows the command, its exit code and what git printed, with a hint where the
cause is a common one. git is run as a subprocess rather than through
GitPython: the calls mlci needs are few, ``git for-each-ref`` and ``git
ls-files`` are the fast paths anyway, and it keeps 0.1-0.2 s of imports off
every command.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlci.errors import GitError
from mlci.tags import TagRecord


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
    git = _git_executable()
    if git is None:
        raise GitError("git is not installed or not on PATH", hint="install git")
    proc = subprocess.run(
        [git, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",  # a tag message or file name in another encoding is data, not a crash
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


@functools.cache
def _git_executable() -> str | None:
    return shutil.which("git")


def is_repository(path: Path) -> bool:
    return (path / ".git").exists()


def toplevel_and_shallow(path: Path) -> tuple[Path, bool] | None:
    """The work tree's root and whether the clone is shallow, in one git call;
    None outside git."""
    proc = run_git(["rev-parse", "--show-toplevel", "--is-shallow-repository"], path, check=False)
    if proc.returncode != 0:
        return None
    lines = proc.stdout.splitlines()
    return Path(lines[0]), len(lines) > 1 and lines[1].strip() == "true"


_TOPLEVELS: dict[str, Path] = {}  # a folder -> its work tree's root, as git said it this process


def toplevel(path: Path) -> Path | None:
    """The root of the work tree containing ``path``, or None outside git. Asked of git
    once per folder and process (a command asks for it about 20 times); the answer is
    kept only while that root still has its .git."""
    key = os.fspath(path)
    known = _TOPLEVELS.get(key)
    if known is not None and os.path.lexists(os.path.join(known, ".git")):
        return known
    proc = run_git(["rev-parse", "--show-toplevel"], path, check=False)
    if proc.returncode != 0:
        _TOPLEVELS.pop(key, None)
        return None
    found = _TOPLEVELS[key] = Path(proc.stdout.strip())
    return found


def init_repository(path: Path, *, initial_branch: str, message: str, branches: Iterable[str]) -> str:
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


def list_files(path: Path, *, present: bool = True) -> list[str] | None:
    """Files under ``path`` that git tracks or would track (not ignored), relative
    to ``path``; None when ``path`` is not in a git work tree. ``present=False`` keeps
    tracked files deleted from the work tree in the list, for a caller that stats each
    file it uses anyway (git's own check of every file is most of this call's cost)."""
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
    if not present:
        return [name for name in dict.fromkeys(proc.stdout.split("\0")) if name]
    # A tracked file deleted from the work tree is still listed: git names those too (one
    # more git call, where a check of each file would cost 10,000 system calls).
    deleted = run_git(["ls-files", "--deleted", "-z", "--", "."], path, check=False)
    gone = set(deleted.stdout.split("\0")) if deleted.returncode == 0 else None
    names = dict.fromkeys(proc.stdout.split("\0"))
    if gone is None:
        return [name for name in names if name and os.path.lexists(path / name)]
    return [name for name in names if name and name not in gone]


@dataclass(frozen=True)
class HeadInfo:
    commit: str | None
    branch: str | None
    dirty: bool


def head_info(path: Path) -> HeadInfo | None:
    """Commit, branch and dirty flag of the work tree at ``path``; None outside git."""
    proc = run_git(["status", "--porcelain=v2", "--branch", "--untracked-files=normal"], path, check=False)
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


def is_ignored(path: Path, name: str) -> bool:
    """Whether git ignores ``name`` (relative to ``path``); False outside git."""
    return run_git(["check-ignore", "-q", "--", name], path, check=False).returncode == 0


def changed_files(path: Path) -> dict[str, bool]:
    """Files under ``path`` that differ from HEAD (changed, staged, deleted) or are
    untracked and not ignored, relative to ``path``: name -> whether it is untracked."""
    tracked = run_git(["diff", "--name-only", "--relative", "-z", "HEAD", "--", "."], path)
    untracked = run_git(["ls-files", "--others", "--exclude-standard", "-z", "--", "."], path)
    out = {name: False for name in tracked.stdout.split("\0") if name}
    out.update({name: True for name in untracked.stdout.split("\0") if name})
    return dict(sorted(out.items()))


def tree_files(path: Path, commit: str) -> dict[str, str] | None:
    """The files of ``commit`` under ``path`` (relative to it): name -> blob id; None
    if ``commit`` is not here."""
    proc = run_git(
        ["ls-tree", "-r", "-z", "--format=%(objecttype) %(objectname) %(path)", commit], path, check=False
    )
    if proc.returncode != 0:
        return None
    out = {}
    for line in proc.stdout.split("\0"):
        kind, _, rest = line.partition(" ")
        oid, _, name = rest.partition(" ")
        if kind == "blob" and name:
            out[name] = oid
    return out


def blob_digests(path: Path, oids: Sequence[str]) -> dict[str, str]:
    """sha256 of each blob's content, streamed through one ``git cat-file --batch``."""
    import hashlib
    import threading

    git = _git_executable()
    if git is None:
        raise GitError("git is not installed or not on PATH", hint="install git")
    wanted = list(dict.fromkeys(oids))
    if not wanted:
        return {}
    proc = subprocess.Popen(
        [git, "cat-file", "--batch"], cwd=path, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:
        try:
            stdin.write("".join(f"{oid}\n" for oid in wanted).encode())
        finally:
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out: dict[str, str] = {}
    try:
        for oid in wanted:
            header = proc.stdout.readline().decode().split()
            if len(header) != 3:
                raise GitError(f"reading blob {oid} failed: git cat-file said {' '.join(header)!r}")
            remaining = int(header[2])
            digest = hashlib.sha256()
            while remaining:
                chunk = proc.stdout.read(min(remaining, 1 << 20))
                if not chunk:
                    raise GitError(f"reading blob {oid} failed: git cat-file ended early")
                digest.update(chunk)
                remaining -= len(chunk)
            proc.stdout.read(1)  # the newline after each object
            out[oid] = digest.hexdigest()
    finally:
        writer.join(timeout=5)
        proc.stdout.close()
        proc.wait()
    return out


# --------------------------------------------------------------------------- tags and remotes

# One record per tag: fields split by NUL (which no ref name or message holds).
_TAG_FORMAT = (
    "%00".join(
        [
            "%(refname)",
            "%(objecttype)",
            "%(*objecttype)",
            "%(*objectname)",
            "%(objectname)",
            "%(taggername)",
            "%(taggeremail)",
            "%(taggerdate:unix)",
            "%(contents)",
        ]
    )
    + "%00"
)
_TAG_FIELDS = 9
_MISSING_RE = re.compile(r"missing object \S+ for (refs/tags/\S+)")
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z: what Python's datetime can show


def read_tags(path: Path) -> list[TagRecord]:
    """Every tag with its target, tagger, date and message: one ``git for-each-ref`` call.

    A tag whose object is missing (a broken clone, a hand-made ref) would fail the
    whole listing: it is recorded with its problem and the others are read again.
    """
    args = ["for-each-ref", f"--format={_TAG_FORMAT}"]
    proc = run_git([*args, "refs/tags"], path, check=False)
    broken: list[str] = []
    if proc.returncode != 0 and _MISSING_RE.search(proc.stderr):
        names = run_git(["for-each-ref", "--format=%(refname)", "refs/tags"], path, what="listing tags")
        remaining = names.stdout.split()
        while proc.returncode != 0 and remaining:
            match = _MISSING_RE.search(proc.stderr)
            if not match or match[1] not in remaining:
                break
            broken.append(match[1])
            remaining.remove(match[1])
            proc = run_git([*args, *remaining], path, check=False) if remaining else proc
        if not remaining:
            proc = subprocess.CompletedProcess(proc.args, 0, "", "")
    if proc.returncode != 0:
        run_git([*args, "refs/tags"], path, what="reading tags")  # raises, saying why
    records = [
        TagRecord(
            name=ref.removeprefix("refs/tags/"),
            commit="",
            annotated=True,
            problem="points at a missing object",
        )
        for ref in broken
    ]
    fields = proc.stdout.split("\0")
    for i in range(0, len(fields) - _TAG_FIELDS + 1, _TAG_FIELDS):
        ref, kind, target_kind, peeled, obj, tagger, email, date, message = fields[i : i + _TAG_FIELDS]
        ref = ref.lstrip("\n")
        annotated = kind == "tag"
        problem = ""
        if annotated and target_kind != "commit":
            problem = f"points at a {target_kind or 'tag of a tag'}, not a commit"
        timestamp = int(date) if date.isdigit() else 0
        if timestamp > MAX_TIMESTAMP:
            problem = problem or f"has a tagger date past the year 9999 ({date})"
            timestamp = MAX_TIMESTAMP
        records.append(
            TagRecord(
                name=ref.removeprefix("refs/tags/"),
                commit=peeled if annotated else obj,
                annotated=annotated,
                tagger=tagger,
                tagger_email=email.strip("<>"),
                timestamp=timestamp,
                message=message,
                problem=problem,
            )
        )
    return records


def _identity_env(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for a command that records a tagger: the user's identity
    when git has one, else the Actions bot or a plain mlci identity."""
    env = dict(environ)
    if run_git(["var", "GIT_COMMITTER_IDENT"], path, check=False, env=env).returncode == 0:
        return env
    actor = environ.get("GITHUB_ACTOR")
    if environ.get("GITHUB_ACTIONS") == "true":
        env["GIT_COMMITTER_NAME"] = "github-actions[bot]"
        env["GIT_COMMITTER_EMAIL"] = "41898282+github-actions[bot]@users.noreply.github.com"
    else:
        env["GIT_COMMITTER_NAME"] = actor or "mlci"
        env["GIT_COMMITTER_EMAIL"] = f"{actor or 'mlci'}@localhost"
    return env


def create_tag(path: Path, name: str, commit: str, message: str, environ: Mapping[str, str]) -> None:
    """An annotated tag, its message kept verbatim (machine-readable lines included)."""
    run_git(
        ["tag", "--annotate", "--cleanup=verbatim", "--file=-", name, commit],
        path,
        what=f"creating tag {name}",
        env=_identity_env(path, environ),
        input=message,
    )


def delete_local_tag(path: Path, name: str) -> None:
    """Only for a tag this process just made and never published."""
    run_git(["tag", "--delete", name], path, what=f"removing unpublished tag {name}")


def has_remote(path: Path, remote: str) -> bool:
    return run_git(["remote", "get-url", remote], path, check=False).returncode == 0


def remote_url(path: Path, remote: str) -> str | None:
    proc = run_git(["remote", "get-url", remote], path, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _remote_env() -> dict[str, str] | None:
    """In GitHub Actions with a token: git's environment for one command that talks
    to the remote, carrying the token as an HTTP header for the server's URLs only.

    The token lives in that command's environment and nowhere else: never in
    ``.git/config`` (where a later step, or training code, would find it), never
    in argv (visible to every process). ``actions/checkout`` runs with
    ``persist-credentials: false``, so without this a private repository could
    not be read or pushed.
    """
    environ = os.environ
    token = environ.get("GITHUB_TOKEN")
    server = environ.get("GITHUB_SERVER_URL")
    if not token or not server or environ.get("GITHUB_ACTIONS") != "true":
        return None
    import base64

    header = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    env = dict(environ)
    count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    env[f"GIT_CONFIG_KEY_{count}"] = f"http.{server.rstrip('/')}/.extraheader"
    env[f"GIT_CONFIG_VALUE_{count}"] = f"AUTHORIZATION: basic {header}"
    env["GIT_CONFIG_COUNT"] = str(count + 1)
    return env


@dataclass(frozen=True)
class PushResult:
    ok: bool
    rejected: tuple[str, ...]  # tags the remote already has
    error: str


def push_tags(path: Path, remote: str, names: Sequence[str]) -> PushResult:
    """Push tags atomically: all land or none. Never forced.

    A lost race shows up in several ways (a "[rejected] (already exists)", or
    the remote failing to lock a ref another push just took), so on failure
    the remote is asked which of the names it now has.
    """
    refs = [f"refs/tags/{n}:refs/tags/{n}" for n in names]
    proc = run_git(["push", "--atomic", "--porcelain", remote, *refs], path, check=False, env=_remote_env())
    if proc.returncode == 0:
        return PushResult(True, (), "")
    error = "\n".join(
        line for line in (proc.stderr + proc.stdout).splitlines() if line.strip() and line != "Done"
    ).strip()
    try:
        taken = remote_tags(path, remote)
    except GitError:
        taken = {}
    rejected = tuple(n for n in names if n in taken)
    return PushResult(False, rejected, error)


def remote_tags(path: Path, remote: str) -> dict[str, tuple[str, str | None]]:
    """name -> (object id, peeled commit for an annotated tag, else None)."""
    out = run_git(
        ["ls-remote", "--tags", remote], path, what=f"listing tags on {remote}", env=_remote_env()
    ).stdout
    found: dict[str, tuple[str, str | None]] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            base = name[:-3]
            found[base] = (found.get(base, (sha, None))[0], sha)
        else:
            found[name] = (sha, found.get(name, ("", None))[1])
    return found


def fetch_tags(path: Path, remote: str, names: Iterable[str], *, force: bool = False) -> None:
    """Fetch these tags from ``remote`` (force: replace local copies, e.g. a
    lightweight tag that a CI checkout made of an annotated one)."""
    plus = "+" if force else ""
    refspecs = "".join(f"{plus}refs/tags/{n}:refs/tags/{n}\n" for n in names)
    if refspecs:
        run_git(
            ["fetch", "--quiet", "--no-tags", "--stdin", remote],
            path,
            what=f"fetching tags from {remote}",
            input=refspecs,
            env=_remote_env(),
        )


def is_shallow(path: Path) -> bool:
    out = run_git(["rev-parse", "--is-shallow-repository"], path, check=False).stdout.strip()
    return out == "true"


def unshallow(path: Path, remote: str) -> None:
    # History only: tags are reconciled one by one afterwards (a bulk --tags
    # fetch refuses to replace a local lightweight copy of a tag).
    run_git(
        ["fetch", "--quiet", "--unshallow", remote], path, what="deepening a shallow clone", env=_remote_env()
    )


def rev_parse(path: Path, rev: str) -> str | None:
    proc = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], path, check=False)
    return proc.stdout.strip() or None


def merge_base(path: Path, a: str, b: str) -> str | None:
    proc = run_git(["merge-base", a, b], path, check=False)
    return proc.stdout.strip() or None


def show_file(path: Path, rev: str, relative: str) -> str | None:
    """The content of ``relative`` (from the top of the work tree, or from ``path`` when it
    starts with ``./``) at ``rev``; None if absent."""
    proc = run_git(["show", f"{rev}:{relative}"], path, check=False)
    return proc.stdout if proc.returncode == 0 else None


class BlobRefused(Exception):
    """A file at a commit that mlci will not read as one: a link, a submodule, too large."""


def regular_blob(path: Path, rev: str, relative: str, *, limit: int) -> str | None:
    """The text of ``relative`` at ``rev`` when it is a regular file of at most ``limit``
    bytes; None if absent. A symbolic link (its target would be read as the file by
    ``git show``), a submodule or a folder raises ``BlobRefused``, as does a larger file."""
    proc = run_git(["ls-tree", "-l", "-z", rev, "--", relative], path, check=False)
    if proc.returncode != 0 or not proc.stdout:
        return None
    meta, _, name = proc.stdout.split("\0")[0].partition("\t")
    if name != relative:
        return None
    mode, kind, oid, size = meta.split()
    if kind != "blob" or mode not in ("100644", "100755"):
        what = "a symbolic link" if mode == "120000" else f"not a regular file (mode {mode})"
        raise BlobRefused(f"{relative} at {rev} is {what}")
    if int(size) > limit:
        raise BlobRefused(f"{relative} at {rev} is {size} bytes, more than the limit of {limit}")
    return run_git(["cat-file", "blob", oid], path).stdout


def is_ancestor(path: Path, ancestor: str, descendant: str) -> bool:
    return run_git(["merge-base", "--is-ancestor", ancestor, descendant], path, check=False).returncode == 0
