"""The read paths on a cache hit (`mlci diff`, `gate`, `report`), against `mlci --version`.

The project `mlci init` writes (predictions, data checks and profiles): main
trained, a branch with other params trained. Then, interleaved round by round
so that machine noise hits all alike: ``mlci --version``, ``mlci diff --base
main``, ``mlci gate --env staging`` and ``mlci report`` (both runs in the run
cache, each read path answering without MLflow). And one DVC pipeline
(``tests/shapes.py``, DVC from ``python -m tests.tools``) adopted with ``mlci
init --adopt``: ``mlci diff --base main`` against ``dvc metrics diff main``.

Budgets: each read path at most 4x `mlci --version`; diff faster than `dvc metrics diff`.

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

from budget import figure  # type: ignore[import-not-found]

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
    mlci = [sys.executable, "-m", "mlci"]
    reads = {
        "diff": ["diff", "--base", "main"],
        "gate": ["gate", "--env", "staging"],
        "report": ["report"],
    }
    with tempfile.TemporaryDirectory(prefix="mlci-read-") as tmp:
        seconds([*mlci, "init", "churn", "--git"], Path(tmp))
        root = Path(tmp) / "churn"
        seconds([*mlci, "train"], root)
        shapes.git(root, "checkout", "-q", "-b", "change")
        params = root / "params.yaml"
        params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
        shapes.commit_all(root, "C 0.5")
        seconds([*mlci, "train"], root)
        timings: dict[str, list[float]] = {"version": [], **{k: [] for k in reads}}
        for _ in range(args.rounds):
            timings["version"].append(seconds([*mlci, "--version"], root))
            for name, command in reads.items():
                timings[name].append(seconds([*mlci, *command], root))
        found = {k: statistics.median(v) for k, v in timings.items()}

        shapes.dvc_binary()
        os.environ["PATH"] = shapes.path_with_dvc()
        pipeline = shapes.dvc_project(Path(tmp) / "pipeline")
        seconds([*mlci, "init", "--adopt"], pipeline)
        shapes.commit_all(pipeline, "Adopt mlci")
        seconds([*mlci, "train"], pipeline)
        shapes.git(pipeline, "checkout", "-q", "-b", "fewer-trees")
        dvc_params = pipeline / "params.yaml"
        dvc_params.write_text(dvc_params.read_text().replace("n_est: 50", "n_est: 10"))
        seconds(["dvc", "repro", "-q"], pipeline)
        shapes.commit_all(pipeline, "Fewer trees")
        seconds([*mlci, "train"], pipeline)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(seconds([*mlci, "diff", "--base", "main"], pipeline))
            theirs.append(seconds(["dvc", "metrics", "diff", "main"], pipeline))
    print(f"median of {args.rounds} interleaved rounds (the scaffold, predictions and data checks on):")
    print(f"  mlci --version                 {found['version']:6.2f} s")
    for name, command in reads.items():
        print(
            f"  mlci {' '.join(command):<25} {found[name]:6.2f} s  ({found[name] / found['version']:.1f}x --version)"
        )
    print("an adopted DVC pipeline:")
    print(f"  mlci diff --base main          {statistics.median(ours):6.2f} s")
    print(f"  dvc metrics diff main          {statistics.median(theirs):6.2f} s")
    for name, command in reads.items():
        figure(
            f"mlci {' '.join(command)} on a cache hit",
            found[name] / found["version"],
            4,
            "x",
            floor="mlci --version",
        )
    figure(
        "mlci diff on an adopted DVC pipeline",
        statistics.median(ours) / statistics.median(theirs),
        1,
        "x",
        floor="dvc metrics diff",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
