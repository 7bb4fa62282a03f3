"""Start-up time of `mlci --help`, against `python -c pass` and `gto --help`.

Prints the median wall time of each over N runs. GTO is installed into its
own virtual environment under .tools/ on first use (it pins libraries that
would clash with mlci's), so the comparison runs on this machine as is.

    python benchmarks/startup.py [--runs 21]

Budget: `mlci --help` at most half of `gto --help`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent
GTO_ENV = ROOT / ".tools" / "gto-venv"


def gto_command() -> list[str] | None:
    gto = GTO_ENV / "bin" / "gto"
    if not gto.exists():
        print("installing gto into .tools/gto-venv (first run only) ...", file=sys.stderr)
        venv.create(GTO_ENV, with_pip=True, clear=True)
        proc = subprocess.run(
            [str(GTO_ENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "gto"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"could not install gto: {proc.stderr.strip()[-500:]}", file=sys.stderr)
            shutil.rmtree(GTO_ENV, ignore_errors=True)
            return None
    return [str(gto), "--help"]


def median_seconds(command: list[str], runs: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default 21)")
    args = parser.parse_args()

    mlci = shutil.which("mlci") or str(Path(sys.executable).parent / "mlci")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mlci --help": [mlci, "--help"],
        "mlci --version": [mlci, "--version"],
    }
    gto = gto_command()
    if gto:
        commands["gto --help"] = gto
    results = {name: median_seconds(cmd, args.runs) for name, cmd in commands.items()}

    print(f"median of {args.runs} runs on this machine:")
    for name, seconds in results.items():
        print(f"  {name:<16} {seconds * 1000:8.1f} ms")
    help_time = results["mlci --help"]
    if "gto --help" not in results:
        print("gto --help: not measured (gto could not be installed)")
    ratio = help_time / results["gto --help"] if "gto --help" in results else float("inf")
    figure("mlci --help", ratio, 0.5, "x", floor="gto --help")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
