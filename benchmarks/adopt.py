"""What `mlci train` adds over an adopted project's own command.

Builds the two project shapes of the tests (``tests/shapes.py``: a CML-style
script and a DVC pipeline, DVC from ``python -m tests.tools``), adopts each
with ``mlci init --adopt`` (no edits to their code), commits, and measures:

- the project's own command alone (``python train.py``; ``dvc repro --force``),
- ``mlci train --no-cache --set …`` (a real training run, the params file
  overridden and put back), where overhead = mlci's wall time minus the
  command's own time inside it (``train_seconds``),
- ``mlci train`` answered from the run cache.

    python benchmarks/adopt.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import shapes


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stdout}\n{proc.stderr}")
    out = proc.stdout.strip()
    return seconds, json.loads(out) if out.startswith("{") else {}


def measure(name: str, root: Path, own: list[str], key: str, values: list[object], runs: int) -> None:
    env = {**os.environ, "PATH": shapes.path_with_dvc()}
    mlci = [sys.executable, "-m", "mlci"]
    timed([*mlci, "init", "--adopt", "--json"], root, env)
    shapes.commit_all(root, "Adopt mlci")
    alone = statistics.median(timed(own, root, env)[0] for _ in range(runs))
    timed([*mlci, "train", "--json"], root, env)  # the store exists from here on
    totals, overheads = [], []
    for i in range(runs):
        value = values[i % len(values)]
        total, data = timed([*mlci, "train", "--json", "--no-cache", "--set", f"{key}={value}"], root, env)
        totals.append(total)
        overheads.append(total - float(data["train_seconds"]))  # type: ignore[arg-type]
    hits = [timed([*mlci, "train", "--json"], root, env)[0] for _ in range(runs)]
    status = shapes.git(root, "status", "--porcelain")
    print(f"{name}, median of {runs} runs:")
    print(f"  {' '.join(own):<38} {alone:6.2f} s")
    print(
        f"  {'mlci train --no-cache --set ' + key:<38} {statistics.median(totals):6.2f} s  "
        f"overhead {statistics.median(overheads):5.2f} s"
    )
    print(f"  {'mlci train (cache hit)':<38} {statistics.median(hits):6.2f} s")
    print(f"  working tree after all runs: {'clean' if not status else status.strip()}")
    figure(
        f"adopted {name}: train overhead",
        statistics.median(overheads),
        1.0,
        "s",
        floor="over its own command",
    )
    figure(f"adopted {name}: cache hit", statistics.median(hits), 0.5, "s")
    figure(f"adopted {name}: files changed by training", float(bool(status)), 0, "files")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement")
    args = parser.parse_args()
    shapes.dvc_binary()
    with tempfile.TemporaryDirectory(prefix="mlci-adopt-") as tmp:
        cml = shapes.cml_project(Path(tmp) / "cml")
        measure("CML-style script", cml, [sys.executable, "train.py"], "depth", [3, 4, 5], args.runs)
        os.environ["PATH"] = shapes.path_with_dvc()
        pipeline = shapes.dvc_project(Path(tmp) / "pipeline")
        measure(
            "DVC pipeline",
            pipeline,
            ["dvc", "repro", "--force", "-q"],
            "train.n_est",
            [20, 30, 40],
            args.runs,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
