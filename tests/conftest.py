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


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1: sqlite backend, artifacts proxied to a temp folder."""
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            mlflow,
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
