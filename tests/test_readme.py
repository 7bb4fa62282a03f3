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
    assert main_job.startswith("python -m pip install '.[sklearn]' && mlci init")
    assert tests == "python -m pip install -e '.[test]' && python -m pytest"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = _commands()
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in lines


def test_readme_main_job_runs(tmp_path: Path) -> None:
    main_job, _ = _commands()
    # The install step is what the test environment already did; run the rest.
    install, rest = main_job.split(" && ", 1)
    assert install.startswith("python -m pip install")
    proc = subprocess.run(["bash", "-c", f"set -e; {rest}"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mlci.yaml: valid (model 'mlci-example'" in proc.stdout
    assert (tmp_path / "mlci-example" / "metrics.json").is_file()
