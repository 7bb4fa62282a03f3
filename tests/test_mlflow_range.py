"""mlci at both ends of the MLflow range pyproject.toml states.

The test extras install the newest MLflow the range admits (the whole suite runs on
it); the lowest runs here, in its own environment (``python -m tests.tools``): a new
project trains, hits its cache, and reads its runs without MLflow, as on the newest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlci import store_template
from tests import tools
from tests.helpers import probe

pytestmark = pytest.mark.slow


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def test_the_suite_runs_on_the_newest_mlflow_the_range_admits() -> None:
    from importlib.metadata import version

    low, cap = tools.mlflow_range()
    installed = version("mlflow-skinny")
    assert _version(low) <= _version(installed) < _version(cap)
    assert _version(installed)[:2] == (_version(cap)[0], _version(cap)[1] - 1), (
        f"mlflow-skinny {installed} is not the newest minor release below the cap {cap}"
    )
    assert store_template.installed_mlflow_schema() in store_template.bundled_schemas()


def _run(python: Path, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_oldest_mlflow_of_the_range_trains_and_reads_without_mlflow(tmp_path: Path) -> None:
    tools.require("mlflow-oldest")
    python = tools.oldest_python()
    low, _ = tools.mlflow_range()
    env = {
        **os.environ,
        "MLCI_CACHE_DIR": str(tmp_path / "cache"),
        # the scaffold's `python train.py` is this environment's Python
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
    }
    found = _run(python, ["-c", "import mlflow; print(mlflow.__version__)"], tmp_path, env).stdout.strip()
    assert _version(found) == _version(low) + (0,) * (3 - len(_version(low)))
    schema = _run(
        python,
        ["-c", "from mlci import store_template; print(store_template.installed_mlflow_schema())"],
        tmp_path,
        env,
    )
    assert (
        schema.stdout.strip() not in store_template.bundled_schemas()
    )  # the template path, not the bundled SQL

    for name in ("first", "second"):
        _run(python, ["-m", "mlci", "init", name, "--git"], tmp_path, env)
    first = _run(python, ["-m", "mlci", "train", "--json"], tmp_path / "first", env)
    assert json.loads(first.stdout)["cached"] is False
    assert first.stderr.count("making the empty MLflow store") == 1  # once for this MLflow
    second = _run(python, ["-m", "mlci", "train", "--json"], tmp_path / "second", env)
    assert "making the empty MLflow store" not in second.stderr  # a copy of the first's
    hit = _run(python, ["-m", "mlci", "train", "--json"], tmp_path / "first", env)
    assert json.loads(hit.stdout)["cached"] is True
    for args in (["train", "--json"], ["diff"], ["gate", "--env", "staging"], ["report"]):
        found = probe(args, tmp_path / "first", python=python, env=env)
        assert found.code == 0 and "mlflow" not in found.modules, (args, found.err)


def test_a_project_made_by_the_oldest_mlflow_is_read_by_the_newest(tmp_path: Path) -> None:
    """A team upgrades MLflow within the range: the store the old one made migrates, and
    the cache still answers (the same fingerprint, the same run)."""
    tools.require("mlflow-oldest")
    old = tools.oldest_python()
    env = {
        **os.environ,
        "MLCI_CACHE_DIR": str(tmp_path / "cache"),
        "PATH": f"{old.parent}{os.pathsep}{os.environ['PATH']}",
    }
    _run(old, ["-m", "mlci", "init", "churn", "--git"], tmp_path, env)
    trained = json.loads(_run(old, ["-m", "mlci", "train", "--json"], tmp_path / "churn", env).stdout)
    new_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    again = json.loads(
        _run(Path(sys.executable), ["-m", "mlci", "train", "--json"], tmp_path / "churn", new_env).stdout
    )
    assert again["cached"] is True and again["run_id"] == trained["run_id"]
