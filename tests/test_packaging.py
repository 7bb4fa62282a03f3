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

from tests.helpers import REPO_ROOT, run


def test_wheel_installs_and_scaffolds(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(REPO_ROOT),
        ],
        tmp_path,
    )
    (wheel,) = dist.glob("mlci-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("classifier", "regressor"):
        assert f"mlci/_templates/{template}/mlci.yaml.j2" in names
        assert f"mlci/_templates/{template}/train.py.j2" in names
    assert "mlci/_templates/_common/dot-github/workflows/mlci-pr.yml.j2" in names
    assert not any("__pycache__" in n for n in names)

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
