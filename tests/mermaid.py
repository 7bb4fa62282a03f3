"""Mermaid's own parser (the version GitHub renders with, under Node on jsdom): what it
says of each chart mlci writes. A chart GitHub cannot parse is an error box in the comment."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests import tools

SCRIPT = Path(__file__).with_name("mermaid_parse.mjs")
_BLOCK = re.compile(r"```mermaid\n(.*?)\n```", re.S)


def blocks(markdown: str) -> list[str]:
    """Every Mermaid block of a markdown text."""
    return _BLOCK.findall(markdown)


def parse(charts: list[str]) -> list[str | None]:
    """Each chart's parse error (None: it parses as an xychart)."""
    tools.require("mermaid")
    node = shutil.which("node")
    assert node is not None, "node is needed for Mermaid's parser"
    proc = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(charts),
        capture_output=True,
        text=True,
        timeout=300,
        env={"MERMAID_MODULES": str(tools.MERMAID_MODULES), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found: list[str | None] = json.loads(proc.stdout)
    assert len(found) == len(charts)
    return found


def assert_parses(charts: list[str]) -> None:
    bad = [(c, e) for c, e in zip(charts, parse(charts), strict=True) if e is not None]
    assert not bad, "\n\n".join(f"{e}\n---\n{c}" for c, e in bad[:5])


def render_in_chromium(charts: list[str], themes: tuple[str, ...] = ("default", "dark")) -> list[dict]:  # type: ignore[type-arg]
    """Each chart drawn by Mermaid in Chromium under each theme: its lines' colours and
    widths, and the background (one entry per theme and chart, theme by theme)."""
    tools.require("mermaid")
    tools.require("browser")
    script = tools.MERMAID_MODULES / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
    proc = subprocess.run(
        [
            "node",
            str(Path(__file__).with_name("mermaid_render.mjs")),
            str(script),
            str(tools.CHROMIUM),
            ",".join(themes),
        ],
        input=json.dumps(charts),
        capture_output=True,
        text=True,
        timeout=300,
        env={"BROWSER_MODULES": str(tools.BROWSER_MODULES), "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found: list[dict] = json.loads(proc.stdout)  # type: ignore[type-arg]
    assert found[-1] == {"errors": []}, found[-1]
    return found[:-1]
