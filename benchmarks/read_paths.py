"""`mlci diff` on a cache hit, against `mlci --version` and `dvc metrics diff`.

One DVC pipeline (``tests/shapes.py``, DVC from ``python -m tests.tools``) adopted
with ``mlci init --adopt``: main trained, a branch with other params trained.
Then, interleaved round by round so that machine noise hits all alike:
``mlci --version``, ``mlci diff --base main`` (both runs in the run cache,
the base found by its inputs) and ``dvc metrics diff main``.

Targets: `mlci diff` at most 4x `mlci --version`, and faster than `dvc metrics diff`.

    python benchmarks/read_paths.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import shapes


def seconds(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stdout}\n{proc.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    args = parser.parse_args()
    shapes.dvc_binary()
    os.environ["PATH"] = shapes.path_with_dvc()
    mlci = [sys.executable, "-m", "mlci"]
    with tempfile.TemporaryDirectory(prefix="mlci-read-") as tmp:
        root = shapes.dvc_project(Path(tmp) / "pipeline")
        seconds([*mlci, "init", "--adopt"], root)
        shapes.commit_all(root, "Adopt mlci")
        seconds([*mlci, "train"], root)
        shapes.git(root, "checkout", "-q", "-b", "fewer-trees")
        params = root / "params.yaml"
        params.write_text(params.read_text().replace("n_est: 50", "n_est: 10"))
        seconds(["dvc", "repro", "-q"], root)
        shapes.commit_all(root, "Fewer trees")
        seconds([*mlci, "train"], root)
        timings: dict[str, list[float]] = {"version": [], "diff": [], "dvc": []}
        for _ in range(args.rounds):
            timings["version"].append(seconds([*mlci, "--version"], root))
            timings["diff"].append(seconds([*mlci, "diff", "--base", "main"], root))
            timings["dvc"].append(seconds(["dvc", "metrics", "diff", "main"], root))
    version, diff, dvc = (statistics.median(timings[k]) for k in ("version", "diff", "dvc"))
    print(f"median of {args.rounds} interleaved rounds:")
    print(f"  mlci --version                 {version:6.2f} s")
    print(f"  mlci diff --base main          {diff:6.2f} s  ({diff / version:.1f}x --version)")
    print(f"  dvc metrics diff main          {dvc:6.2f} s")
    print(f"  target diff <= 4x --version:   {'ok' if diff <= 4 * version else 'MISSED'}")
    print(f"  target diff faster than dvc:   {'ok' if diff < dvc else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
