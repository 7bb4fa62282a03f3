"""The registry engine shared by register, promote, rollback and deprecate.

Reads the git-tag registry (repairing a CI checkout first), and publishes new
tags safely: a tag is made locally, pushed atomically, and on a rejected push
(another job took the name) the remote's tags are fetched, the next version or
counter is planned again, and the push retried, a bounded number of times.
A published tag is never moved, deleted or force-pushed; a tag this process
made and failed to publish is removed, with whatever was prepared for it.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlci import gitrepo, tags
from mlci.errors import GitError

REMOTE = "origin"
MAX_ATTEMPTS = 8
FETCH_DEPTH_HINT = (
    "check out the full history and tags: in GitHub Actions, give actions/checkout "
    "`fetch-depth: 0`; elsewhere run `git fetch --unshallow --tags origin`"
)


@dataclass(frozen=True)
class Workspace:
    root: Path  # the git work tree
    environ: Mapping[str, str]
    has_remote: bool
    push: bool


def open_workspace(path: Path, environ: Mapping[str, str], push: bool | None) -> Workspace:
    root = gitrepo.toplevel(path)
    if root is None:
        raise GitError(
            f"{path} is not in a git repository: the model registry lives in git tags",
            hint="run the command inside a git repository (or use `mlci init DIR --git`)",
        )
    has_remote = gitrepo.has_remote(root, REMOTE)
    if push and not has_remote:
        raise GitError(
            f"--push: the repository has no remote {REMOTE!r}",
            hint=f"add one (git remote add {REMOTE} URL) or use --no-push",
        )
    return Workspace(root, environ, has_remote, has_remote if push is None else push)


def ensure_complete(ws: Workspace, log: Callable[[str], None]) -> None:
    """Make the local registry whole: a shallow clone is deepened, tags the remote
    has and this clone lacks are fetched, and a registry tag that a CI checkout
    rewrote as lightweight is fetched again as the annotated tag it is. Without a
    remote, a shallow clone is an error with the exact fix."""
    if gitrepo.is_shallow(ws.root):
        if not ws.has_remote:
            raise GitError(
                f"{ws.root} is a shallow clone and has no remote {REMOTE!r} to deepen it from",
                hint=FETCH_DEPTH_HINT,
            )
        log("shallow clone: fetching the full history and tags from origin")
        try:
            gitrepo.unshallow(ws.root, REMOTE)
        except GitError as exc:
            raise GitError(exc.message, hint=FETCH_DEPTH_HINT) from exc
    if not ws.has_remote:
        return
    remote = gitrepo.remote_tags(ws.root, REMOTE)
    local = {r.name: r for r in gitrepo.read_tags(ws.root)}
    missing = [n for n in remote if n not in local and tags.parse_name(n)]
    lightweight = [
        n
        for n, (_, peeled) in remote.items()
        if peeled is not None and n in local and not local[n].annotated and tags.parse_name(n)
    ]
    if missing:
        log(f"fetching {len(missing)} registry tag{'s' if len(missing) != 1 else ''} from origin")
        gitrepo.fetch_tags(ws.root, REMOTE, missing)
    if lightweight:
        names = ", ".join(lightweight[:5])
        log(f"re-fetching {len(lightweight)} lightweight registry tag(s) as annotated: {names}")
        gitrepo.fetch_tags(ws.root, REMOTE, lightweight, force=True)


_warned: set[str] = set()


def read_state(root: Path) -> dict[str, tags.ModelState]:
    """The registry; each tag it has to skip is named once per process on stderr."""
    return state_of(gitrepo.read_tags(root))


def state_of(records: Sequence[tags.TagRecord]) -> dict[str, tags.ModelState]:
    """``read_state`` of tags already read."""
    state, skipped = read_with_skipped(records)
    warn_skipped(skipped)
    return state


def warn_skipped(skipped: Sequence[tags.Skipped]) -> None:
    """One warning per tag the registry leaves out, once per process."""
    for item in skipped:
        if item.tag not in _warned:
            _warned.add(item.tag)
            print(
                f"mlci: warning: skipping tag {item.tag}: {item.why} (`mlci doctor` lists such tags)",
                file=sys.stderr,
                flush=True,
            )


def read_with_skipped(
    records: Sequence[tags.TagRecord],
) -> tuple[dict[str, tags.ModelState], list[tags.Skipped]]:
    """The registry, and the registry tags it leaves out with why (no warning: for
    ``mlci doctor``, which lists them)."""
    skipped: list[tags.Skipped] = []
    return tags.build_state(records, skipped), skipped


def lightweight_registry_tags(root: Path) -> list[str]:
    return [r.name for r in gitrepo.read_tags(root) if not r.annotated and tags.parse_name(r.name)]


@dataclass
class PlannedTag:
    name: str
    commit: str
    summary: str = ""
    metadata: dict[str, object] = field(default_factory=dict)

    def message(self, now: float) -> str:
        # Tag dates have one-second resolution; the precise time orders events
        # made within the same second.
        return tags.message(self.summary, {**self.metadata, "time": round(now, 6)})


@dataclass
class Plan:
    """What to publish, made from the registry as it is now; ``prepare`` runs
    before the tags are made (and may set their messages), ``undo`` reverses
    it when the tags cannot be published."""

    tags: list[PlannedTag]
    prepare: Callable[[list[PlannedTag]], None] | None = None
    undo: Callable[[], None] | None = None
    fixed_names: bool = False  # a name the user chose: a race cannot be retried
    info: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    plan: Plan
    pushed: bool
    attempts: int


def publish(
    ws: Workspace,
    make_plan: Callable[[dict[str, tags.ModelState]], Plan | None],
    log: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Published | None:
    """Plan, tag, push; on a lost race, refresh and plan again. None: nothing to do."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        plan = make_plan(read_state(ws.root))
        if plan is None:
            return None
        if plan.prepare:
            plan.prepare(plan.tags)
        made: list[str] = []
        try:
            for tag in plan.tags:
                message = tag.message(time.time())
                gitrepo.create_tag(ws.root, tag.name, tag.commit, message, ws.environ)
                made.append(tag.name)
            if not ws.push:
                return Published(plan, pushed=False, attempts=attempt)
            result = gitrepo.push_tags(ws.root, REMOTE, [t.name for t in plan.tags])
        except BaseException:
            _discard(ws, made, plan)
            raise
        if result.ok:
            return Published(plan, pushed=True, attempts=attempt)
        _discard(ws, made, plan)
        if not result.rejected:
            raise GitError(
                f"pushing {', '.join(made)} to {REMOTE} failed: {result.error}",
                hint="nothing was published; check access to the remote and try again",
            )
        if plan.fixed_names:
            raise GitError(
                f"{', '.join(result.rejected)} already exists on {REMOTE}: another job published it first",
                hint="choose another name, or fetch the tags (git fetch --tags) and look",
            )
        log(f"{', '.join(result.rejected)} was taken on {REMOTE} meanwhile; refreshing and retrying")
        gitrepo.fetch_tags(ws.root, REMOTE, result.rejected)
        ensure_complete(ws, log)
        sleep(random.uniform(0.05, 0.25) * attempt)
    raise GitError(
        f"gave up publishing after {MAX_ATTEMPTS} attempts: other jobs kept taking the names first",
        hint="run the command again",
    )


def _discard(ws: Workspace, made: Sequence[str], plan: Plan) -> None:
    for name in made:
        with contextlib.suppress(GitError):
            gitrepo.delete_local_tag(ws.root, name)
    if plan.undo:
        plan.undo()
