"""``mlci init``'s engine: render a template into files, then write them safely.

Rendering happens in memory first, so a broken template or an invalid
generated ``mlci.yaml`` never leaves a half-written project behind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci import config as cfg
from mlci import render
from mlci.errors import ScaffoldError

COMMON = "_common"
DEFAULT_ACTIONS_REF = "mlci-dev/mlci@v0.1.0"
_ACTIONS_REF_RE = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<ref>[\w./-]+)$")


def templates() -> list[str]:
    root = render.templates_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "mlci.yaml.j2").is_file())


def model_name_from(directory: Path) -> str:
    """A valid model name from a folder name: 'My Project!' -> 'My-Project'."""
    name = re.sub(r"[^a-zA-Z0-9\-_]+", "-", directory.resolve().name)
    return re.sub(r"^[^a-zA-Z0-9]+|[^a-zA-Z0-9]+$", "", name)


def parse_actions_ref(value: str) -> tuple[str, str]:
    match = _ACTIONS_REF_RE.match(value)
    if not match:
        raise ScaffoldError(
            f"--actions-ref {value!r} is not of the form OWNER/REPO@REF",
            hint=f"for example --actions-ref {DEFAULT_ACTIONS_REF}",
        )
    return match["repo"], match["ref"]


def schema_line(actions_ref: str) -> str:
    """The comment that points editors (the YAML language server) at mlci.yaml's schema,
    as published in the mlci repository at the ref the workflows pin."""
    repo, ref = parse_actions_ref(actions_ref)
    return f"# yaml-language-server: $schema=https://raw.githubusercontent.com/{repo}/{ref}/mlci/schemas/mlci.schema.json"


def render_project(template: str, name: str, actions_ref: str, fork_safe: bool = False) -> dict[Path, str]:
    """Every file of a new project, as {relative path: text}."""
    available = templates()
    if template not in available:
        raise ScaffoldError(f"no template named {template!r}", hint=f"use one of: {', '.join(available)}")
    if not cfg.MODEL_NAME_RE.match(name):
        raise ScaffoldError(
            f"{name!r} is not a valid model name (letters, digits, '-', '_' and '/', "
            "starting and ending with a letter or digit)",
            hint="pass --name NAME",
        )
    repo, ref = parse_actions_ref(actions_ref)
    root = render.templates_root()
    context: dict[str, Any] = {
        "name": name,
        "template": template,
        "actions_repo": repo,
        "actions_version": ref,
        "fork_safe": fork_safe,
        "schema_line": schema_line(actions_ref),
    }
    files = render.render_tree([root / template], context)
    # The generated config is checked with the same validator users get, and
    # the shared files (workflows, README) are rendered from what it says.
    config = cfg.parse(files[Path(cfg.CONFIG_FILE)], Path(cfg.CONFIG_FILE))
    context.update(
        description=config.model.description,
        environments=config.environments,
        branches=[env.branch for env in config.environments],
    )
    common = render.render_tree([root / COMMON], context)
    return {**common, **files}


@dataclass(frozen=True)
class Written:
    path: Path
    action: str  # "create", "overwrite" or "unchanged"


def write_project(
    directory: Path,
    files: Mapping[Path, str],
    *,
    force: bool,
    on_write: Callable[[Written], None] = lambda _: None,
) -> list[Written]:
    """Write ``files`` under ``directory``; refuse a non-empty folder unless ``force``."""
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} exists and is not a folder", hint="choose another path")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ScaffoldError(
            f"{directory} is not empty",
            hint="choose an empty or new folder, or pass --force to write into it "
            "(files that differ are overwritten and listed)",
        )
    for relative in files:
        target = directory / relative
        for parent in [target, *target.parents]:
            if parent == directory:
                break
            if parent.exists() and parent != target and not parent.is_dir():
                raise ScaffoldError(f"cannot create {target}: {parent} is a file", hint="move that file away")
        if target.is_dir():
            raise ScaffoldError(f"cannot write {target}: it is a folder", hint="move it away")
    written = []
    for relative in sorted(files):
        target = directory / relative
        text = files[relative]
        if target.is_file():
            if target.read_text(encoding="utf-8", errors="replace") == text:
                action = "unchanged"
            else:
                action = "overwrite"
        else:
            action = "create"
        if action != "unchanged":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        item = Written(relative, action)
        written.append(item)
        on_write(item)
    return written
