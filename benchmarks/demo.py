"""`mlci demo`: the whole story on one machine, and what mlci itself adds to it.

Runs `mlci demo` in a temporary folder (as the README's first command does) and
takes from its log how long the project's own commands ran, as mlci measured them
(each from its start to its exit, the interpreter's start-up and shutdown
included): every training (``trained in Ns``) and every deploy hook and smoke
test (``deploy ... done in Ns``). Everything else is mlci: scaffolding, git, the
run cache, MLflow, data checks, reports, registration and promotion.

Budget: the demo's wall time minus its commands' under 3 s.

    python benchmarks/demo.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

TRAINED = re.compile(r"trained in ([0-9.]+)s")
HOOK = re.compile(r"^\s*(deploy|smoke) \S+ to \S+: (?:done|failed) in ([0-9.]+)s", re.MULTILINE)


def once(tmp: Path) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlci", "demo", str(tmp / "demo")], capture_output=True, text=True, check=True
    )
    total = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    by = {"trainings": sum(float(s) for s in TRAINED.findall(log))}
    for name, seconds in HOOK.findall(log):
        by[f"{name} hook"] = by.get(f"{name} hook", 0.0) + float(seconds)
    return total, by


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="demos to run (the median is reported)")
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="mlci-bench-demo-") as tmp:
            results.append(once(Path(tmp)))
    total = statistics.median(r[0] for r in results)
    own = statistics.median(r[0] - sum(r[1].values()) for r in results)
    print(f"mlci demo, median of {args.runs}:")
    print(f"  wall time                       {total:6.2f} s")
    for name, seconds in sorted(results[0][1].items()):
        print(f"  the project's {name:<17} {seconds:6.2f} s (first run)")
    print(f"  mlci's own                      {own:6.2f} s")
    figure("mlci demo: everything but the project's commands", own, 3, "s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
