from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CliResult, run_cli

_LEAKY_PREFIXES = ("GITHUB_", "MLFLOW_", "RUNNER_", "MLCI_", "ACTIONS_", "GIT_")


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A developer's shell (or a CI runner's) must not leak into a test.

    Scrubs GITHUB_*, MLFLOW_*, RUNNER_*, CI and friends; points HOME at an
    empty folder so no test reads or writes the real home directory; and
    gives git a fixed identity, since the empty home has no git config.
    """
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES) or name == "CI":
            monkeypatch.delenv(name)
    real_home = Path.home()
    # Toolchain managers (rustup, cargo) keep their state in the real home;
    # name it for them so that moving HOME does not make them create it anew.
    for name, folder in (("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")):
        if name not in os.environ and (real_home / folder).is_dir():
            monkeypatch.setenv(name, str(real_home / folder))
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # `python train.py` in a test's project is the interpreter running the tests,
    # whether or not its virtual environment is activated.
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # A scaffold's deploy hook serves the model on 127.0.0.1: in a test, not for long.
    monkeypatch.setenv("MLCI_SERVE_SECONDS", "60")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    yield
    leftovers = [p.name for p in home.iterdir() if p.name not in {".config", ".cache"}]
    assert not leftovers, f"a test wrote into HOME: {leftovers}"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run mlci in-process: ``cli("init", "x", cwd=path)`` -> CliResult."""

    def invoke(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        return run_cli(list(args), capsys)

    return invoke


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def mlflow_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with artifacts proxied to a temp folder: once on a
    sqlite backend, once on PostgreSQL (what a team runs), so each test using it runs on both."""
    from contextlib import ExitStack

    from tests.servers import mlflow_server as serve
    from tests.servers import postgres

    folder = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    with ExitStack() as stack:
        if request.param == "postgresql":  # a team's server: more than one worker
            yield stack.enter_context(serve(folder, stack.enter_context(postgres()), workers=2))
        else:
            yield stack.enter_context(serve(folder, f"sqlite:///{folder / 'mlflow.db'}"))
