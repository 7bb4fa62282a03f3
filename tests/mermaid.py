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
