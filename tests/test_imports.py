"""Start-up weight is a tested property: `mlci --help` must stay light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("mlflow", "git", "github", "jinja2", "sklearn", "pandas", "numpy", "yaml", "rich")

PROBE = """
import json, sys
from mlci.cli import main
code = main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules})
print("\\n" + json.dumps({"code": code, "modules": loaded}))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["init", "--help"], ["config", "--help"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    heavy = sorted(set(HEAVY) & set(report["modules"]))
    assert not heavy, f"`mlci {' '.join(args)}` imported {heavy}"
    assert "typer" in report["modules"]  # the probe really ran the CLI


def test_probe_detects_a_heavy_import() -> None:
    """Guard against a probe that can never fail."""
    proc = subprocess.run(
        [sys.executable, "-c", "import jinja2\n" + PROBE, "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "jinja2" in report["modules"]
