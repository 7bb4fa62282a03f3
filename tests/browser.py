"""A page in headless Chromium, as a person's browser opens it: what it logged, what it
asked the network for (nothing is served: the page must need nothing), and its charts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests import tools

SCRIPT = Path(__file__).with_name("browser_check.mjs")


def open_page(path: Path) -> dict[str, Any]:
    tools.require("browser")
    node = shutil.which("node")
    assert node is not None, "node is needed to drive Chromium"
    proc = subprocess.run(
        [node, str(SCRIPT), path.resolve().as_uri(), str(tools.CHROMIUM)],
        capture_output=True,
        text=True,
        timeout=180,
        env={
            "BROWSER_MODULES": str(tools.BROWSER_MODULES),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
        },
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found: dict[str, Any] = json.loads(proc.stdout)
    return found
