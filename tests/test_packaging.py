"""The installed wheel works on its own: templates shipped outside mlci/ are inside it."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests import tools
from tests.helpers import REPO_ROOT, run


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlci's wheel, built once for the tests of this module."""
    dist = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO_ROOT)],
        dist,
    )
    (built,) = dist.glob("mlci-*.whl")
    return built


@pytest.mark.slow
def test_wheel_installs_and_scaffolds(tmp_path: Path, wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("classifier", "regressor"):
        assert f"mlci/_templates/{template}/mlci.yaml.j2" in names
        assert f"mlci/_templates/{template}/train.py.j2" in names
    assert "mlci/_templates/_common/dot-github/workflows/mlci-pr.yml.j2" in names
    assert not any("__pycache__" in n for n in names)
    # The schemas a fresh project's store is made from without MLflow's migrations.
    from mlci.store_template import bundled_schemas

    assert {f"mlci/schemas/mlflow-sqlite-{r}.sql" for r in bundled_schemas()} <= names

    # A fresh environment that borrows the dependencies from this one (no
    # network), with mlci itself only from the wheel. The borrowing is a .pth
    # file naming this interpreter's site-packages: system_site_packages would
    # name the base interpreter's, which lacks them when the tests run in a venv.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    target = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    Path(target.strip(), "borrowed.pth").write_text("".join(f"{p}\n" for p in sorted(borrowed)))
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
        tmp_path,
    )
    where = run([str(python), "-c", "import mlci, sys; print(mlci.__file__)"], tmp_path).strip()
    assert where.startswith(str(env_dir)), where

    work = tmp_path / "elsewhere"
    work.mkdir()
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = run([str(env_dir / "bin" / "mlci"), "init", "proj", "--template", "regressor"], work, environ)
    assert "Created regressor project 'proj'" in out
    assert (work / "proj" / ".github" / "workflows" / "mlci-pr.yml").is_file()
    assert (work / "proj" / ".gitignore").is_file()
    proc = subprocess.run(
        [str(env_dir / "bin" / "mlci"), "config", "validate"],
        cwd=work / "proj",
        capture_output=True,
        text=True,
        env=environ,
    )
    assert proc.returncode == 0, proc.stderr


LEAN_TRAIN = """\
import json, yaml
p = yaml.safe_load(open("params.yaml"))
json.dump({"accuracy": p["acc"]}, open("metrics.json", "w"))
open("model.bin", "w").write("weights %s" % p["acc"])
"""


@pytest.mark.slow
def test_the_lean_install_runs_the_whole_lifecycle(tmp_path: Path, wheel: Path) -> None:
    """mlci's own dependencies (mlflow-skinny, not full mlflow) train, gate, register,
    promote, show, check and pull; the UI's and the data stack's packages are not there."""
    env_dir = tmp_path / "lean"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    # Its dependencies come from the wheels `python -m tests.tools` downloaded: no registry.
    try:
        tools.require("wheels")
    except tools.MissingTool as exc:
        pytest.fail(str(exc))
    run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(tools.wheels()),
            str(wheel),
        ],
        tmp_path,
    )
    present = run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.util as u; "
            "print(' '.join(m for m in ('mlflow', 'sqlalchemy', 'alembic', 'flask', 'pandas', 'pyarrow', "
            "'scipy', 'sklearn') if u.find_spec(m)))",
        ],
        tmp_path,
    )
    assert present.split() == ["mlflow", "sqlalchemy", "alembic"]  # mlflow-skinny: no UI, no data stack
    size = sum(p.stat().st_size for p in env_dir.rglob("*") if p.is_file() and not p.is_symlink())
    assert size < 300 * 1024 * 1024, f"the lean install is {size / 2**20:.0f} MB"

    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text(LEAN_TRAIN)
    (root / "params.yaml").write_text("acc: 0.9\n")
    (root / "mlci.yaml").write_text(
        "model: {name: lean}\ntrain: {command: python train.py, params: params.yaml, model: model.bin}\n"
        "environments:\n  staging:\n    gates: [{metric: accuracy, min: 0.5}]\n"
    )
    (root / ".gitignore").write_text("metrics.json\nmodel.bin\n")
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "lean"], root)
    run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "remote.git")], root)
    run(["git", "remote", "add", "origin", str(tmp_path / "remote.git")], root)
    run(["git", "push", "-q", "origin", "main"], root)
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ["PATH"] = os.pathsep.join([str(bin_dir), environ.get("PATH", "")])
    mlci = str(bin_dir / "mlci")
    for args in (
        ["train"],
        ["train", "--no-cache"],
        ["diff"],
        ["gate", "--env", "staging"],
        ["register"],
        ["promote", "staging"],
        ["show"],
        ["doctor"],
        ["pull", "lean@v0.0.1", "--output", str(tmp_path / "pulled")],
    ):
        run([mlci, *args], root, environ)
    assert (tmp_path / "pulled" / "model.bin").read_text() == "weights 0.9"
