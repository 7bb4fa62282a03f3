"""The training code's requirements, from the files projects keep them in, as one pip
requirements text: what CI installs into the project's own environment (mlci lives in an
environment of its own, so its pins never decide the project's). Pure but for reading files.

Read: pip requirements files (``requirements*.txt``, included with ``-r``), ``pyproject.toml``'s
``[project] dependencies``, MLflow's ``python_env.yaml`` (``dependencies``), and conda's
``environment.yml``/``conda.yaml`` (its ``pip:`` list; conda packages by name, which pip
installs where PyPI has them: named in a note).
"""

from __future__ import annotations

import posixpath
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlci import config as cfg
from mlci import safeinput
from mlci.errors import MlciError

MAX_BYTES = 1024 * 1024
# What conda names that pip must never install: the interpreter and the installers.
_CONDA_ONLY = {"python", "pip", "setuptools", "wheel", "conda", "mamba", "libgcc", "libstdcxx-ng"}
_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$")
_CONDA_FILES = ("environment.yml", "environment.yaml", "conda.yaml", "conda.yml")


@dataclass
class Requirements:
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def is_requirements_file(name: str) -> bool:
    """Whether a project file (relative path) holds requirements mlci can read."""
    base = posixpath.basename(name).lower()
    return (
        (base.startswith("requirements") and base.endswith(".txt"))
        or name == "pyproject.toml"
        or base == "python_env.yaml"
        or base in _CONDA_FILES
    )


def read(root: Path, names: Sequence[str]) -> Requirements:
    """The requirements of ``names`` (paths relative to ``root``), in order."""
    out = Requirements()
    for name in names:
        path = root / name
        where = f"{name} (requirements)"
        if not cfg.inside(name):
            raise MlciError(f"{where}: the path leaves the project", hint="name a file in the project")
        if not path.is_file():
            raise MlciError(
                f"{where} does not exist in {root}", hint="fix the requirements input of the workflow"
            )
        base = posixpath.basename(name).lower()
        if base.endswith(".txt"):
            out.lines.append(f"-r {path.resolve()}")  # pip reads -r relative to the file holding it
            continue
        try:
            text = safeinput.read_text(path, limit=MAX_BYTES, what=where)
        except safeinput.BadInput as exc:
            raise MlciError(f"{exc.where(name)}: {exc.problem}") from None
        if base == "pyproject.toml":
            out.lines += _pyproject(text, name)
        elif base == "python_env.yaml":
            out.lines += _strings(_yaml(text, name).get("dependencies"), name, "dependencies")
        else:
            _conda(_yaml(text, name), name, out)
    out.lines = list(dict.fromkeys(out.lines))
    return out


def _yaml(text: str, name: str) -> dict[str, object]:
    try:
        data = safeinput.load_yaml(text)[0]
    except safeinput.BadInput as exc:
        raise MlciError(f"{exc.where(name)}: {exc.problem}") from None
    if not isinstance(data, dict):
        raise MlciError(f"{name}: expected a mapping (dependencies: ...)")
    return data


def _strings(value: object, name: str, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MlciError(f"{name}: {key}: expected a list of requirements")
    return [_one_line(v, name) for v in value]


def _one_line(requirement: str, name: str) -> str:
    line = requirement.strip()
    if not line or "\n" in line or "\r" in line or len(line) > 500:
        raise MlciError(f"{name}: {requirement[:60]!r} is not one requirement")
    if line.startswith("-") and not line.startswith(("-r ", "--requirement")):
        raise MlciError(f"{name}: {line[:60]!r}: pip options are not requirements", hint="list packages only")
    return line


def _pyproject(text: str, name: str) -> list[str]:
    if sys.version_info < (3, 11):
        raise MlciError(
            f"{name}: reading [project] dependencies needs Python 3.11 or newer (tomllib)",
            hint="list the requirements in a requirements.txt instead",
        )
    import importlib

    tomllib = importlib.import_module("tomllib")  # 3.11+; mypy checks for 3.10, which lacks it
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MlciError(f"{name}: not TOML: {exc}") from None
    project = data.get("project")
    return _strings(project.get("dependencies") if isinstance(project, dict) else None, name, "dependencies")


def _conda(data: dict[str, object], name: str, out: Requirements) -> None:
    deps = data.get("dependencies")
    if not isinstance(deps, list):
        return
    by_name: list[str] = []
    for entry in deps:
        if isinstance(entry, dict) and "pip" in entry:
            out.lines += _strings(entry["pip"], name, "dependencies: pip")
        elif isinstance(entry, str):
            match = _CONDA_SPEC.match(entry.strip())
            if match is None or match.group(1).lower() in _CONDA_ONLY:
                continue
            package, version = match.group(1), _conda_version(match.group(2).strip())
            out.lines.append(_one_line(f"{package}{version}", name))
            by_name.append(package)
    if by_name:
        out.notes.append(
            f"{name}: conda packages installed with pip by their names: {', '.join(by_name)} "
            "(a conda-only package fails to install: list it under pip: with its PyPI name)"
        )


def _conda_version(spec: str) -> str:
    """A conda version spec as pip's: ``=1.4`` and ``1.4`` (and ``1.4=build``) are ``==1.4``,
    ``=1.4.*`` is ``==1.4.*``; comparisons stay as they are."""
    if not spec:
        return ""
    if spec.startswith(("==", ">=", "<=", "!=", ">", "<", "~=")):
        return spec.split()[0]
    version = spec.lstrip("=").split("=")[0].split()[0]
    return f"=={version}" if version else ""
