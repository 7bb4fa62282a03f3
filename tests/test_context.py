"""One context per invocation (mlci.context): the tracking store is opened once per
command, however many layers the command crosses. Counted, not timed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mlci import tracking
from mlci.context import Context
from tests.helpers import run
from tests.lifecycle import commit, project, set_params


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each Tracking made, by its URI."""
    made: list[str] = []
    original = tracking.Tracking.__init__

    def counting(self: Any, uri: str, *args: Any, **kwargs: Any) -> None:
        made.append(uri)
        original(self, uri, *args, **kwargs)

    monkeypatch.setattr(tracking.Tracking, "__init__", counting)
    return made


def test_every_command_opens_the_tracking_store_once(cli, tmp_path: Path, opened: list[str]) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    counts = {}
    for args in (
        ("train",),
        ("register",),
        ("promote", "staging"),
        ("gate", "--env", "staging"),
        ("diff",),
        ("report",),
    ):
        opened.clear()
        done = cli(*args, cwd=root)
        assert done.code == 0, done.err
        counts[" ".join(args)] = len(opened)
    set_params(root, accuracy=0.91)
    commit(root, "a better model")
    run(["git", "push", "-q", "origin", "staging"], root)
    opened.clear()
    pushed = cli("ci", "--event", "push", "--branch", "staging", "--json", cwd=root)
    assert pushed.code == 0, pushed.err
    assert '"outcome": "promoted"' in pushed.out  # trained, judged, registered, promoted
    counts["ci push (train, gate, register, promote)"] = len(opened)
    assert counts == dict.fromkeys(counts, 1)


def test_a_context_opens_each_store_once_and_anew_for_other_credentials(
    tmp_path: Path, opened: list[str]
) -> None:
    root = project(tmp_path, remote=False)
    ctx = Context(root, dict(os.environ))
    first = ctx.tracking()
    assert ctx.tracking() is first and ctx.tracking(ctx.config) is first and len(opened) == 1
    other = ctx.with_environ({**ctx.environ, "GITHUB_TOKEN": "ghs_other"})
    assert other.tracking() is not first and len(opened) == 2
    assert ctx.tracking() is first  # the first context keeps its own
