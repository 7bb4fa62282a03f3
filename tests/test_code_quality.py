"""The rule that keeps heavy imports off the start-up path is live.

ruff, ruff format and mypy themselves run as their own step of .ci/run (.ci/lint),
after the tests.
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO_ROOT


def _ruff_on(source: str, name: str) -> subprocess.CompletedProcess[str]:
    """ruff on ``source`` as if it were the file ``name``, read from stdin: nothing is written."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--stdin-filename", name, "-"],
        cwd=REPO_ROOT,
        input=source,
        capture_output=True,
        text=True,
    )


def test_heavy_imports_are_banned_at_module_level() -> None:
    proc = _ruff_on("from __future__ import annotations\n\nimport mlflow\n", "mlci/_probe.py")
    assert proc.returncode != 0
    assert "TID253" in proc.stdout


def test_heavy_imports_inside_a_function_are_fine() -> None:
    source = "from __future__ import annotations\n\n\ndef f() -> None:\n    import mlflow  # noqa: F401\n"
    assert _ruff_on(source, "mlci/_probe.py").returncode == 0


def test_the_source_tree_guard_sees_a_file_a_test_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import _source_tree
    from tests.helpers import run

    run(["git", "init", "-q"], tmp_path)
    (tmp_path / ".gitignore").write_text("model/\n__pycache__/\n")
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "x"], tmp_path)
    before = _source_tree(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.pyc").write_bytes(b"")
    assert _source_tree(tmp_path) == before  # Python's caches are not the tests' doing
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"")  # ignored by git, written all the same
    assert _source_tree(tmp_path) != before
    (tmp_path / "model" / "weights.bin").unlink()
    (tmp_path / "model").rmdir()
    (tmp_path / "new.py").write_text("")
    assert _source_tree(tmp_path) != before


def test_the_tests_reach_nothing_beyond_127_0_0_1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import socket

    import pytest

    from tests import conftest

    count = len(conftest.REFUSED)
    try:
        with socket.socket() as sock, pytest.raises(conftest.NetworkOff, match=r"nothing but 127\.0\.0\.1"):
            sock.connect(("192.0.2.1", 443))  # TEST-NET-1
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("pypi.org", 443)
        with pytest.raises(socket.gaierror):
            socket.create_connection(("192.0.2.1", 443), timeout=5)
        assert conftest.REFUSED[count:] == [
            "connect ('192.0.2.1', 443)",
            "resolve 'pypi.org'",
            "resolve '192.0.2.1'",
        ]
        with socket.create_server(("127.0.0.1", 0)) as server:  # the loopback is open
            socket.create_connection(server.getsockname(), timeout=5).close()
    finally:
        del conftest.REFUSED[count:]
    # A subprocess's package managers are offline, and its proxy is a closed port.
    assert os.environ["PIP_NO_INDEX"] == "1" and os.environ["UV_OFFLINE"] == "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path), "gto"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and not list(tmp_path.iterdir())
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import urllib.request; urllib.request.urlopen('http://pypi.org', timeout=20)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Connection refused" in proc.stderr
