"""What `train.repeats` costs beyond its trainings, on the scaffolded classifier.

Scaffolds the classifier in a temporary folder with `train.repeats: 5`, then
measures the training command alone five times (MLCI_SEED 0..4, each in its own
process, as mlci runs it) and `mlci train --no-cache --json` (five child runs and
their parent), and a cache hit of the group. Overhead = mlci's wall time minus
the five commands' wall time as that same mlci measured them (`train_seconds`,
their sum), and per repeat: the commands alone, timed apart, vary by seconds
from run to run on a busy machine, more than the overhead being measured.

    python benchmarks/repeats.py [--runs 3] [--repeats 5]
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


def timed(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stderr}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="train.repeats")
    args = parser.parse_args()
    mlci = [sys.executable, "-m", "mlci"]
    with tempfile.TemporaryDirectory(prefix="mlci-bench-") as tmp:
        root = Path(tmp) / "churn"
        subprocess.run([*mlci, "init", str(root), "--git"], check=True, capture_output=True)
        config = root / "mlci.yaml"
        config.write_text(config.read_text().replace("# repeats: 5", f"repeats: {args.repeats}"))
        subprocess.run(["git", "commit", "-qam", "repeats"], cwd=root, check=True)
        timed([*mlci, "train"], root)  # the store exists from here on
        alone, total, commands, hits = [], [], [], []
        for _ in range(args.runs):
            seconds = 0.0
            for seed in range(args.repeats):
                env = {**os.environ, "MLCI_SEED": str(seed), "MLCI_OUTPUT_DIR": str(Path(tmp) / "out")}
                seconds += timed([sys.executable, "train.py"], root, env)
            alone.append(seconds)
            start = time.perf_counter()
            proc = subprocess.run(
                [*mlci, "train", "--no-cache", "--json"], cwd=root, capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise SystemExit(f"mlci train --no-cache failed:\n{proc.stderr}")
            total.append(time.perf_counter() - start)
            commands.append(float(json.loads(proc.stdout)["train_seconds"]))
        for _ in range(max(7, args.runs)):  # a hit is short: more of them for a steady median
            hits.append(timed([*mlci, "train"], root))
        overhead = statistics.median(t - c for t, c in zip(total, commands, strict=True))
        print(
            json.dumps(
                {
                    "repeats": args.repeats,
                    "commands_alone_s": round(statistics.median(alone), 2),
                    "mlci_train_s": round(statistics.median(total), 2),
                    "commands_in_mlci_s": round(statistics.median(commands), 2),
                    "overhead_s": round(overhead, 2),
                    "overhead_per_repeat_s": round(overhead / args.repeats, 3),
                    "cache_hit_s": round(statistics.median(hits), 2),
                },
                indent=2,
            )
        )
        figure(
            f"train.repeats {args.repeats}: overhead per repeat",
            overhead / args.repeats,
            0.5,
            "s",
            floor="over the training commands",
        )
        figure(f"train.repeats {args.repeats}: cache hit", statistics.median(hits), 0.5, "s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
