"""What `mlci train` adds to the training command's own time, on the scaffolded classifier.

Scaffolds the classifier in a temporary folder, then measures:
- the training command alone (`python train.py`),
- `mlci train` on a fresh project (the embedded sqlite store is created),
- `mlci train --no-cache` with the store in place (a first run of new inputs),
- `mlci train` answered from the run cache.
Overhead = mlci's wall time minus the command's wall time in the same run.

Targets: overhead under 1 s with the store in place, under 2.5 s for a fresh
project; a cache hit under 2 s in total.

    python benchmarks/train_overhead.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]


def timed(args: list[str], cwd: Path) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stderr}")
    out = proc.stdout.strip()
    return seconds, json.loads(out) if out.startswith("{") else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement")
    args = parser.parse_args()
    mlci = [sys.executable, "-m", "mlci"]
    with tempfile.TemporaryDirectory(prefix="mlci-bench-") as tmp:
        root = Path(tmp) / "churn"
        subprocess.run([*mlci, "init", str(root), "--git"], check=True, capture_output=True)

        alone = statistics.median(timed([sys.executable, "train.py"], root)[0] for _ in range(args.runs))

        fresh_totals, fresh_overheads = [], []
        for i in range(args.runs):  # a new project each time: its store is made by this train
            other = Path(tmp) / f"fresh-{i}"
            subprocess.run([*mlci, "init", str(other), "--git"], check=True, capture_output=True)
            total, fresh = timed([*mlci, "train", "--json"], other)
            fresh_totals.append(total)
            fresh_overheads.append(total - float(fresh["train_seconds"]))  # type: ignore[arg-type]
        fresh_total, fresh_overhead = statistics.median(fresh_totals), statistics.median(fresh_overheads)
        timed([*mlci, "train", "--json"], root)

        overheads, totals = [], []
        for _ in range(args.runs):
            total, data = timed([*mlci, "train", "--json", "--no-cache"], root)
            totals.append(total)
            overheads.append(total - float(data["train_seconds"]))  # type: ignore[arg-type]
        hits = []
        for _ in range(max(5, args.runs)):
            total, data = timed([*mlci, "train", "--json"], root)
            assert data["cached"] is True
            hits.append(total)

    overhead = statistics.median(overheads)
    hit = statistics.median(hits)
    print(f"scaffolded classifier, median of {args.runs} runs:")
    print(f"  python train.py alone                   {alone:6.2f} s")
    print(f"  mlci train, fresh project (store made)  {fresh_total:6.2f} s  overhead {fresh_overhead:5.2f} s")
    print(
        f"  mlci train --no-cache, store exists     {statistics.median(totals):6.2f} s  "
        f"overhead {overhead:5.2f} s"
    )
    print(f"  mlci train, cache hit                   {hit:6.2f} s")
    figure("train overhead, store in place", overhead, 1.0, "s", floor="over the training command")
    figure("train overhead, fresh project", fresh_overhead, 1.5, "s", floor="over the training command")
    figure("train on a cache hit", hit, 0.5, "s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
