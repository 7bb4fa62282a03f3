"""`mlci requirements`: the training code's requirements, from the files projects keep them in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlci import requirements as reqs
from mlci.errors import MlciError
from tests.helpers import run_cli

CONDA = """\
name: wine
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - numpy=1.26.4=py311h64a7726_0
  - conda-forge::scikit-learn>=1.4
  - pandas 2.2.*
  - pip:
      - mlflow==3.1.0
      - skops
"""


@pytest.mark.parametrize(
    ("name", "text", "lines"),
    [
        ("python_env.yaml", "python: '3.11'\ndependencies: [mlflow, scikit-learn>=1.4]\n", ["mlflow", "scikit-learn>=1.4"]),
        ("environment.yml", CONDA, ["numpy==1.26.4", "scikit-learn>=1.4", "pandas==2.2.*", "mlflow==3.1.0", "skops"]),
        ("pyproject.toml", '[project]\nname = "x"\ndependencies = ["typer>=0.29", "pyyaml"]\n', ["typer>=0.29", "pyyaml"]),
        ("pyproject.toml", '[build-system]\nrequires = ["hatchling"]\n', []),
    ],
)  # fmt: skip
def test_each_kind_of_file_reads_as_pip_requirements(
    tmp_path: Path, name: str, text: str, lines: list[str]
) -> None:
    if name == "pyproject.toml" and sys.version_info < (3, 11):
        pytest.skip("tomllib: Python 3.11+")
    (tmp_path / name).write_text(text)
    assert reqs.read(tmp_path, [name]).lines == lines


def test_a_requirements_file_is_included_by_its_absolute_path_and_the_notes_name_conda_packages(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "requirements.txt").write_text("-r base.txt\nscikit-learn\n")
    (tmp_path / "environment.yml").write_text(CONDA)
    found = reqs.read(tmp_path, ["src/requirements.txt", "environment.yml"])
    # pip reads -r relative to the file holding it: src/base.txt stays src's.
    assert found.lines[0] == f"-r {tmp_path / 'src' / 'requirements.txt'}"
    assert found.notes == [
        "environment.yml: conda packages installed with pip by their names: numpy, scikit-learn, pandas "
        "(a conda-only package fails to install: list it under pip: with its PyPI name)"
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("../outside.txt", None, "the path leaves the project"),
        ("missing.txt", None, "missing.txt (requirements) does not exist"),
        ("python_env.yaml", "dependencies: mlflow\n", "dependencies: expected a list of requirements"),
        ("python_env.yaml", "dependencies: ['--index-url https://x']\n", "pip options are not requirements"),
        ("python_env.yaml", 'dependencies: ["a\\nb"]\n', "is not one requirement"),
        ("python_env.yaml", "- a\n- b\n", "expected a mapping"),
        ("environment.yml", "dependencies: [{pip: [1, 2]}]\n", "expected a list of requirements"),
        ("python_env.yaml", "a: &x [*x]\n", "python_env.yaml"),
        ("pyproject.toml", "[project\n", "not TOML"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    if name == "pyproject.toml" and sys.version_info < (3, 11):
        message = "needs Python 3.11"
    with pytest.raises(MlciError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reqs.read(tmp_path, [name])


def test_the_command_prints_them_and_its_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "python_env.yaml").write_text("dependencies: [mlflow]\n")
    monkeypatch.chdir(tmp_path)
    plain = run_cli(["requirements", "python_env.yaml"], capsys)
    assert (plain.code, plain.out) == (0, "mlflow\n")
    as_json = run_cli(["requirements", "python_env.yaml", "--json"], capsys)
    assert json.loads(as_json.out) == {"requirements": ["mlflow"], "notes": []}
    missing = run_cli(["requirements", "nope.txt"], capsys)
    assert missing.code == 3 and "nope.txt (requirements) does not exist" in missing.err
