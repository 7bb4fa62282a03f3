"""The README and docs/ are true: their commands run, their output is what mlci prints,
their links lead somewhere, and the configuration reference is the schema's."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import tools
from tests.helpers import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

MAIN_JOB = "python3 -m venv .venv && . .venv/bin/activate && python -m pip install '.[sklearn]' && mlci demo"
TEST_COMMAND = "python -m pip install -e '.[test]' && python -m tests.tools && python -m pytest"


def _fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _first_commands() -> list[str]:
    commands = []
    for block in _fenced(README.read_text(), "bash")[:2]:
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
        assert len(lines) == 1, block
        commands.append(lines[0])
    return commands


def test_readme_starts_with_the_two_commands() -> None:
    assert _first_commands() == [MAIN_JOB, TEST_COMMAND]
    head = README.read_text().split("## ", 1)[0]
    assert head.count("```bash") == 2  # nothing else before the first section


def test_ci_runs_exactly_the_readme_test_command_then_the_linters() -> None:
    lines = [
        ln for ln in (REPO_ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    assert TEST_COMMAND in lines
    assert lines.index(TEST_COMMAND) < lines.index(".ci/lint")  # lint after the tests, as its own step
    lint = (REPO_ROOT / ".ci" / "lint").read_text()
    for tool in ("ruff check", "ruff format --check", "mypy"):
        assert tool in lint


# ---------------------------------------------------------------------------- console blocks


# Run ids, fingerprints and commits: 8 to 64 hex digits (a commit's may all be decimal
# digits), or 7 with a letter among them (`staging@8caa4db`).
# Hashes: 8 to 64 hex digits, 7 with a letter among them (a short number is not a hash), and
# any 7 after "@" (a short commit, as in base staging@6537303: all digits 1 time in 27).
_HEX = re.compile(
    r"\b(?=[0-9a-f]*[0-9])(?:[0-9a-f]{8,64}|(?=[0-9a-f]*[a-f])[0-9a-f]{7})\b|(?<=@)[0-9a-f]{7}\b"
)
_SECONDS = re.compile(r"\b\d+(\.\d+)?s\b")


def _normal(line: str, home: str) -> str:
    line = line.replace(home, "/home/you").rstrip()
    return _SECONDS.sub("<t>s", _HEX.sub("<hex>", line))


def _matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` against ``actual`` line by line, where a line ``...`` stands for any lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and _matches(expected[1:], actual[1:])


def _session(block: str) -> list[tuple[str, list[str]]]:
    """A console block as (command, expected output lines)."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1][1].append(line)
    return steps


def _run_session(steps: list[tuple[str, list[str]]], cwd: Path, env: dict[str, str], home: str) -> None:
    """Run the commands in one shell (a `cd` carries over) and match each one's output
    (a command may fail, as `mlci config validate` on a bad file does: its output says so)."""
    script = []
    for i, (command, _) in enumerate(steps):
        script += [f"echo '@@step {i}'", f"{command} 2>&1"]
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    outputs = re.split(r"^@@step \d+\n", proc.stdout, flags=re.M)[1:]
    assert len(outputs) == len(steps), proc.stdout
    for (command, expected), output in zip(steps, outputs, strict=True):
        actual = [_normal(ln, home) for ln in output.rstrip("\n").splitlines()]
        wanted = [_normal(ln, "/home/you") for ln in expected]
        assert _matches(wanted, actual), f"`{command}` printed what the README does not show:\n" + "\n".join(
            actual
        )


def _quick_start_blocks() -> tuple[str, str]:
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    local, github = _fenced(section, "console")
    return local, github


def _quick_start(cwd: Path, env: dict[str, str]) -> None:
    local, github = _quick_start_blocks()
    _run_session(_session(local), cwd, env, str(cwd))
    # The GitHub part, with a local bare repository standing in for github.com.
    bare = cwd / "churn.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    steps = [
        (cmd.replace("https://github.com/YOU/churn.git", str(bare)), out) for cmd, out in _session(github)
    ]
    _run_session(steps, cwd / "churn", env, str(cwd))
    branches = subprocess.run(
        ["git", "branch", "--format=%(refname:short)"], cwd=bare, capture_output=True, text=True
    )
    assert set(branches.stdout.split()) == {"main", "staging", "production", "smaller-c"}
    params = subprocess.run(
        ["git", "show", "smaller-c:params.yaml"], cwd=bare, capture_output=True, text=True
    )
    assert "\nC: 0.5\n" in params.stdout


def _shell_env(tmp_path: Path, path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH=path, PYTHONUNBUFFERED="1", NO_COLOR="1", TMPDIR=str(tmp_path))
    return env


@pytest.mark.slow
@pytest.mark.timeout(3000)  # beyond the install's 1500 s and the quick start's 2 x 600 s
def test_the_readme_followed_word_for_word_in_a_fresh_virtual_environment(tmp_path: Path) -> None:
    """The first command as a newcomer types it, in a copy of the checkout (pip reads the
    wheels `python -m tests.tools` downloaded instead of PyPI), then the quick start in
    that environment."""
    try:
        tools.require("wheels")
    except tools.MissingTool as exc:
        pytest.fail(str(exc))
    checkout = tmp_path / "mlci"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    # The venv module must be on the python3 the README names: the interpreter running the tests.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = _shell_env(tmp_path, os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"]))
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tools.wheels()), PIP_DISABLE_PIP_VERSION_CHECK="1")
    # Compile only what runs, once (pip compiles every module it installs; and where
    # PYTHONDONTWRITEBYTECODE is set, each process would compile everything again).
    env["PIP_NO_COMPILE"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        ["bash", "-c", MAIN_JOB], cwd=checkout, env=env, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "churn v0.0.1 promoted to production" in proc.stdout
    mlci = checkout / ".venv" / "bin" / "mlci"
    assert mlci.is_file()
    where = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-c", "import mlci; print(mlci.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(checkout / ".venv")), where
    # The quick start, in the environment the first command made.
    work = tmp_path / "work"
    work.mkdir()
    env["PATH"] = os.pathsep.join([str(checkout / ".venv" / "bin"), env["PATH"]])
    env["VIRTUAL_ENV"] = str(checkout / ".venv")
    _quick_start(work, env)


def _docs_sessions() -> list[tuple[str, str]]:
    """The ```console blocks of docs/: each runs as shown, in an empty folder."""
    return [
        (page.relative_to(REPO_ROOT).as_posix(), block)
        for page in DOCS
        for block in _fenced(page.read_text(), "console")
    ]


DOCS_SESSIONS = _docs_sessions()


@pytest.mark.parametrize(
    ("page", "block"), DOCS_SESSIONS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(DOCS_SESSIONS)]
)
def test_the_console_sessions_in_docs_run_as_shown(page: str, block: str, tmp_path: Path) -> None:
    env = _shell_env(tmp_path, os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    _run_session(_session(block), tmp_path, env, str(tmp_path))


# ---------------------------------------------------------------------------- every command parses


def _mlci_lines() -> list[tuple[str, str, bool]]:
    """Every mlci command in the README and docs/: (page, command, whole). In a fenced block
    a command is whole (its arguments are all there); in running text (`mlci train --set`)
    it may name only the command and an option."""
    found = []
    for page in PAGES:
        name = page.relative_to(REPO_ROOT).as_posix()
        text = page.read_text()
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                line = line.strip()
                if line.startswith("$ "):
                    line = line[2:]
                elif not line.startswith("mlci "):
                    continue
                for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line.split(" #", 1)[0]):
                    if part.startswith("mlci "):
                        found.append((name, part, True))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for span in re.findall(r"`(mlci [^`]+)`", prose):
            span = " ".join(span.split())
            if not any(mark in span for mark in ("[", "\\|", "…", "...")):  # a synopsis, not a command
                found.append((name, span, False))
    return found


MLCI_LINES = _mlci_lines()


def test_the_pages_show_commands() -> None:
    assert len(MLCI_LINES) >= 80
    assert {page for page, _, _ in MLCI_LINES} >= {"README.md", "docs/cli.md", "docs/github-actions.md"}


def _click() -> Any:
    """The click typer parses with (recent typer carries its own copy, ``typer._click``)."""
    import importlib

    try:
        return importlib.import_module("typer._click")
    except ImportError:
        return importlib.import_module("click")


def _parse(args: list[str]) -> None:
    """What the CLI makes of ``args``, without running the command: click raises on an
    unknown command or option, a missing argument or a bad choice."""
    import typer

    from mlci.cli import app

    command = typer.main.get_command(app)
    ctx = command.make_context("mlci", list(args))
    while hasattr(command, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]  # type: ignore[attr-defined]
        if not rest:
            return
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub


@pytest.mark.parametrize(
    ("page", "line", "whole"), MLCI_LINES, ids=[f"{p}:{c[:60]}" for p, c, _ in MLCI_LINES]
)
def test_every_command_in_the_docs_is_one_mlci_takes(page: str, line: str, whole: bool) -> None:
    import typer

    click = _click()
    args = shlex.split(line)[1:]
    try:
        _parse(args)
    except typer.Exit:
        pass  # --help, --version
    except click.ClickException as exc:
        # Running text may name a command without its arguments, or with a placeholder (N).
        mention = isinstance(exc, (click.exceptions.MissingParameter, click.exceptions.BadParameter)) or (
            "requires an argument" in exc.format_message()
        )
        if whole or not mention:
            pytest.fail(f"{page}: `{line}`: {exc.format_message()}")


def test_the_parser_check_can_fail() -> None:
    click = _click()
    for bad in (["trian"], ["train", "--no-cash"], ["gate", "--env"], ["report", "--format", "pdf"]):
        with pytest.raises(click.ClickException):
            _parse(bad)


# ---------------------------------------------------------------------------- links and the reference


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO_ROOT).as_posix() for p in PAGES])
def test_every_link_leads_somewhere(page: str | Path) -> None:
    page = Path(page)
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.is_file(), f"{page.name}: link to {target} leads nowhere"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file.read_text()), f"{page.name}: no heading #{anchor} in {file.name}"


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_configuration_reference_is_the_schemas() -> None:
    from mlci.commands import config as command

    page = REPO_ROOT / "docs" / "configuration.md"
    assert page.read_text() == command.schema_markdown(), (
        "docs/configuration.md is not what the schema says: mlci config schema --markdown > docs/configuration.md"
    )
