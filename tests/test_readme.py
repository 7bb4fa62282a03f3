"""The README's first two commands are true."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers import REPO_ROOT


def _commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks[:2]:
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
        assert len(lines) == 1, block
        commands.append(lines[0])
    return commands


def test_readme_starts_with_the_two_commands() -> None:
    main_job, tests = _commands()
    assert main_job == "python -m pip install '.[sklearn]' && mlci demo"
    assert tests == "python -m pip install -e '.[test]' && python -m pytest"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = _commands()
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in lines


def test_readme_main_job_runs(tmp_path: Path) -> None:
    import os

    main_job, _ = _commands()
    # The install step is what the test environment already did; run the rest.
    install, rest = main_job.split(" && ", 1)
    assert install.startswith("python -m pip install")
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the demo's default folder is a new temporary one
    proc = subprocess.run(
        ["bash", "-c", f"set -e; {rest}"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "churn v0.0.1 promoted to production" in proc.stdout
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("mlci-demo-")]
    assert (folder / "origin.git").is_dir()
