"""The layers ARCHITECTURE.md describes, kept true: what may import what.

Every import counts, at the top of a module or inside a function (a lazy import is
still a dependency): the graph is read from the source with ``ast``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mlci"
ENTRY = {"mlci.cli", "mlci.__main__"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every mlci module ``name`` imports (``from mlci.x import y`` is mlci.x.y where
    that is a module, else mlci.x)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                yield target


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def _layer(name: str) -> str:
    if name in ENTRY:
        return "entry"
    if name.startswith("mlci.commands"):
        return "commands"
    if name.startswith("mlci.usecases"):
        return "usecases"
    return "core"


def test_the_graph_is_read() -> None:
    """The reader sees imports of every kind (a test that cannot fail is no test)."""
    assert "mlci.usecases.review" in GRAPH["mlci.usecases.ci"]  # a top-level `from mlci.usecases import`
    assert "mlci.usecases.training" in GRAPH["mlci.cli"]  # one inside a function
    assert "mlci.config" in GRAPH["mlci.verdict"]  # `from mlci.config import Config`
    assert len(GRAPH) > 60


def test_no_command_imports_another_command() -> None:
    crossing = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _layer(name) == "commands"
        for target in targets
        if _layer(target) == "commands" and target != "mlci.commands"
    ]
    assert crossing == []


def test_the_core_imports_no_use_case_command_or_entry() -> None:
    """The core (everything outside cli, commands and usecases) never reaches up."""
    upward = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _layer(name) == "core"
        for target in targets
        if _layer(target) != "core"
    ]
    assert upward == []


def test_use_cases_import_no_command_or_entry() -> None:
    upward = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _layer(name) == "usecases"
        for target in targets
        if _layer(target) in ("commands", "entry")
    ]
    assert upward == []


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    # A package's __init__ importing its own modules is not a circle of the code's making.
    assert _cycles() == []


def test_the_architecture_document_names_every_use_case_and_command() -> None:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [
        name
        for name in MODULES
        if _layer(name) in ("commands", "usecases")
        and name not in ("mlci.commands", "mlci.usecases")
        and f"`{name.rpartition('.')[2]}`" not in text
    ]
    assert missing == []


def test_no_code_in_strings_and_no_exit_that_skips_handlers() -> None:
    """No exec or eval of source text; os._exit only in a forked child (the guard's), where
    the parent's handlers are not the child's to run."""
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if called in ("exec", "eval") or (called == "_exit" and name != "mlci.guard"):
                found.append(f"{name}:{node.lineno} {called}")
    assert found == []
