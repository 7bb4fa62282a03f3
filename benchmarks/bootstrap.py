"""How long mlci's bootstrap takes, and how much memory: 2,000 resamples of 100,000
rows across four metrics (accuracy, f1, ROC AUC, log loss), one model and a paired
difference of two.

Target: under 3 s for one model, vectorised (Poisson weights, scores sorted once).

    python benchmarks/bootstrap.py [--rows 100000] [--resamples 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np
from budget import figure  # type: ignore[import-not-found]

from mlci import stats

METRICS = ["accuracy", "f1", "roc_auc", "log_loss"]


def simulated(rows: int, seed: int) -> stats.Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    score = np.clip(0.55 * y + rng.normal(0.22, 0.2, rows), 0.001, 0.999)
    return stats.Predictions(y, (score >= 0.5).astype(int), score, None, (0, 1), False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of predictions")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each")
    args = parser.parse_args()
    head, base = simulated(args.rows, 1), simulated(args.rows, 2)
    base = stats.Predictions(head.y_true, base.y_pred, base.y_score, None, (0, 1), False)  # the same rows

    def one() -> object:
        return stats.intervals(head, METRICS, resamples=args.resamples)

    def paired() -> object:
        return stats.differences(head, base, METRICS, resamples=args.resamples)

    print(f"{args.resamples} resamples of {args.rows:,} rows, metrics {', '.join(METRICS)}:")
    rows = []
    for label, work in (("one model's intervals", one), ("a paired difference", paired)):
        work()  # warm-up
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        work()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rows.append((label, statistics.median(times), peak))
        print(f"  {label:<24} {statistics.median(times):6.2f} s (median of {args.runs})  peak {peak:6.1f} MB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  process peak RSS          {rss:6.0f} MB")
    example = stats.intervals(head, METRICS, resamples=args.resamples)["accuracy"]
    print(f"  e.g. accuracy {example.value:.4f} [{example.low:.4f}, {example.high:.4f}]")
    figure(f"bootstrap {args.resamples:,} x {args.rows:,} rows x {len(METRICS)} metrics", rows[0][1], 3, "s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
