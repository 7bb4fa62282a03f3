"""Helpers shared by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlci.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ("classifier", "regressor")
# What a scaffold's .gitignore keeps out of git: outputs, never compared.
GENERATED = {".mlci", "model", "metrics.json", "__pycache__"}


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a real subprocess; fail the test with its output if it fails."""
    proc = subprocess.run(args, cwd=cwd, env=env or dict(os.environ), capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


# One mlci command in a fresh process; the last line of its stderr is its exit code and the
# top-level modules it loaded, for tests that count what a path imports.
MODULES_PROBE = """
import json, sys
from mlci.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""


@dataclass
class Probed:
    code: int
    modules: set[str]
    err: str


def probe(
    args: list[str],
    cwd: Path,
    *,
    python: Path | None = None,
    env: dict[str, str] | None = None,
    before: str = "",
) -> Probed:
    """``mlci ARGS`` in a fresh process (``python``, this one's by default), with what it
    imported; ``before`` runs first (a probe's own test imports something there)."""
    proc = subprocess.run(
        [str(python or sys.executable), "-c", before + MODULES_PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = proc.stderr.strip().splitlines()
    assert lines, f"mlci {' '.join(args)} printed nothing to stderr: {proc.stdout}"
    found = json.loads(lines[-1])
    return Probed(found["code"], set(found["modules"]), proc.stderr)


def mlci_subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlci", *args], cwd=cwd, capture_output=True, text=True)


def project_files(root: Path) -> dict[str, bytes]:
    """Every file of a scaffolded project, minus training outputs."""
    out = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not GENERATED.intersection(relative.parts):
            out[relative.as_posix()] = path.read_bytes()
    return out
