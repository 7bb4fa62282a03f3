"""mlci's caches on this machine: where they live, and where they may be read.

What is kept there is a shortcut (the empty store of an MLflow schema revision,
compiled report templates, intervals already bootstrapped), as is the registry
``mlci show`` keeps in ``.git``: a missing or damaged entry costs time, never a
result. Where a job's earlier steps could have written an entry (GitHub Actions:
a pull request's code runs on the runner before mlci reads anything), the
shortcuts that could change what mlci says are not read (``allowed``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def directory(environ: Mapping[str, str] | None = None) -> Path:
    """mlci's cache: $MLCI_CACHE_DIR, else $XDG_CACHE_HOME/mlci, else ~/.cache/mlci."""
    env = os.environ if environ is None else environ
    if env.get("MLCI_CACHE_DIR"):
        return Path(env["MLCI_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlci"


def allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process may read what an earlier process kept: not in GitHub Actions
    (a runner is new each time, so a kept entry there is one this job's own steps wrote)."""
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS") != "true"
