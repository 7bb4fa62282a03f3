"""ruff and mypy are part of the test suite."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_ruff_check() -> None:
    proc = _run("ruff", "check", "mlci", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run("ruff", "format", "--check", "mlci", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy() -> None:
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_heavy_imports_are_banned_at_module_level(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Guard: the ruff rule that keeps mlflow & co. off the start-up path is live."""
    bad = REPO_ROOT / "mlci" / "_ruff_probe_tmp.py"
    bad.write_text("from __future__ import annotations\n\nimport mlflow\n")
    try:
        proc = _run("ruff", "check", "--no-cache", str(bad))
    finally:
        bad.unlink()
    assert proc.returncode != 0
    assert "TID253" in proc.stdout
