from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mlci import __version__, cli
from mlci.errors import ExitCode, MlciError


def test_version(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--version")
    assert result.code == ExitCode.OK
    assert result.out.strip() == f"mlci {__version__}"


def test_no_arguments_shows_help(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli()
    assert result.code == ExitCode.USAGE
    assert "Usage: mlci" in result.out + result.err
    assert "init" in result.out + result.err


def _walk(command, path):  # type: ignore[no-untyped-def]
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, [*path, name])


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(cli.app)
    missing = []
    seen = 0
    for path, command in _walk(root, ["mlci"]):
        seen += 1
        if not (command.help or "").strip():
            missing.append(" ".join(path))
        for param in command.params:
            if param.name in {"help"}:
                continue
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{' '.join(path)} {param.name}")
    assert seen >= 4  # mlci, init, config, config show, config validate
    assert not missing, f"commands or options without help: {missing}"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--version"], ExitCode.OK),
        (["--help"], ExitCode.OK),
        (["no-such-command"], ExitCode.USAGE),
        (["init"], ExitCode.USAGE),  # missing DIR
        (["init", "x", "--template", "nonsense"], ExitCode.USAGE),
        (["config", "validate", "--no-such-flag"], ExitCode.USAGE),
    ],
)
def test_exit_codes_for_usage(cli, tmp_path: Path, args: list[str], code: int) -> None:  # type: ignore[no-untyped-def]
    assert cli(*args, cwd=tmp_path).code == code


def test_mlci_error_prints_message_and_hint_without_traceback(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("config", "validate", cwd=tmp_path)
    assert result.code == ExitCode.ERROR
    assert "mlci: error: no mlci.yaml in" in result.err
    assert "hint: run `mlci init DIR`" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_traceback_on_request(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:  # type: ignore[no-untyped-def]
    args = ["config", "validate"]
    if how == "flag":
        args.insert(0, "--traceback")
    else:
        monkeypatch.setenv("MLCI_DEBUG", "1")
    result = cli(*args, cwd=tmp_path)
    assert result.code == ExitCode.ERROR
    assert "Traceback" in result.err
    assert "mlci: error: no mlci.yaml" in result.err


def test_unexpected_exception_is_exit_4_with_traceback(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from mlci.commands import config as command

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(command, "validate", broken)
    result = cli("config", "validate", cwd=tmp_path)
    assert result.code == ExitCode.INTERNAL
    assert "Traceback" in result.err
    assert "RuntimeError: boom" in result.err
    assert "this is a bug in mlci" in result.err


def test_mlci_error_str_includes_hint() -> None:
    assert str(MlciError("bad", hint="fix it")) == "bad\nhint: fix it"
    assert str(MlciError("bad")) == "bad"


def test_python_dash_m_and_console_script_agree(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlci", "config", "validate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == ExitCode.ERROR
    assert proc.stderr.startswith("mlci: error: no mlci.yaml")
    assert "Traceback" not in proc.stderr


def test_mlci_ui_names_the_projects_embedded_store(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from tests.lifecycle import make_project

    root = make_project(tmp_path)
    result = cli("ui", "--print", "--port", "5123", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert result.out.strip() == (
        f"mlflow ui --backend-store-uri sqlite:///{root}/.mlci/mlflow.db --host 127.0.0.1 --port 5123"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:secret@mlflow.example:5000")
    refused = cli("ui", cwd=root)
    assert refused.code == ExitCode.ERROR
    assert "tracks to a server, http://***@mlflow.example:5000" in refused.err  # redacted
    assert "secret" not in refused.err


@pytest.mark.slow
def test_mlci_ui_serves_the_projects_runs(tmp_path: Path) -> None:
    """One command, and MLflow's UI shows the runs of the embedded store; Ctrl-C ends it."""
    import json
    import os
    import signal
    import socket
    import time
    import urllib.request

    from tests import tools
    from tests.helpers import run
    from tests.lifecycle import make_project

    tools.require("mlflow-full")  # `mlci[full]`: mlci with MLflow's UI
    root = make_project(tmp_path)
    run([str(tools.full_python()), "-m", "mlci", "train"], root)  # one MLflow makes and serves the store
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen(
        [str(tools.full_python()), "-m", "mlci", "ui", "--port", str(port)],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10"
        deadline = time.monotonic() + 240
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    body = json.load(answer)
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, (tmp_path / "ui.log").read_text()
        assert "demo" in {e["name"] for e in body["experiments"]}
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    assert code in (0, 130), (tmp_path / "ui.log").read_text()


def test_the_program_ends_normally_with_mlflow_loaded(tmp_path: Path) -> None:
    """`mlci` ends as any Python program does: exit handlers run (MLflow's flush its
    asynchronous logging and remove temporary folders), MLflow loaded or not."""
    import subprocess
    import sys

    marker = tmp_path / "handlers-ran"
    probe = (
        "import atexit, sys, mlflow\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
        "sys.argv = ['mlci', '--version']\n"
        "from mlci.cli import run\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mlci ") and marker.read_text() == "ran"
