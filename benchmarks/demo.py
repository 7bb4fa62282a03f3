"""`mlci demo`: the whole story on one machine, and what mlci itself adds to it.

Runs `mlci demo` in a temporary folder (as the README's first command does) with a
``sitecustomize`` on PYTHONPATH that records how long each of the project's own
commands ran: the trainings (``train.py``), the deploy hook (``deploy/serve.py``,
until the server it starts answers) and the smoke test (``deploy/smoke.py``).
Everything else is mlci: scaffolding, git, the run cache, MLflow, reports,
registration and promotion.

Budget: the demo's wall time minus its commands' under 3 s.

    python benchmarks/demo.py [--runs 1]
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

from budget import figure  # type: ignore[import-not-found]

# Loaded by every Python process the demo starts (PYTHONPATH): the project's own
# commands append their name, their argument count and their wall time to a log.
SITE = """
import atexit, os, sys, time
_start = time.perf_counter()
_name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
_log = os.environ.get("BENCH_USER_COMMANDS")
if _log and _name in ("train.py", "serve.py", "smoke.py"):
    def _done():
        with open(_log, "a") as handle:
            handle.write(f"{_name} {len(sys.argv) - 1} {time.perf_counter() - _start}\\n")
    atexit.register(_done)
"""


def once(tmp: Path) -> tuple[float, float, dict[str, float]]:
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    log = tmp / "commands.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p),
        "BENCH_USER_COMMANDS": str(log),
    }
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlci", "demo", str(tmp / "demo")], env=env, capture_output=True, check=True
    )
    total = time.perf_counter() - start
    by: dict[str, float] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        name, arguments, seconds = line.split()
        if name == "serve.py" and arguments != "0":
            continue  # the server it left running, not the hook mlci waited for
        by[name] = by.get(name, 0.0) + float(seconds)
    return total, sum(by.values()), by


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="demos to run (the median is reported)")
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="mlci-bench-demo-") as tmp:
            results.append(once(Path(tmp)))
    total = statistics.median(r[0] for r in results)
    commands = statistics.median(r[1] for r in results)
    print(f"mlci demo, median of {args.runs}:")
    print(f"  wall time                       {total:6.2f} s")
    for name, seconds in sorted(results[0][2].items()):
        print(f"  the project's {name:<17} {seconds:6.2f} s (first run)")
    print(f"  mlci's own                      {total - commands:6.2f} s")
    figure("mlci demo: everything but the project's commands", total - commands, 3, "s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
