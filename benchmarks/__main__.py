"""Every benchmark, one table: each figure against its budget.

    python -m benchmarks [--only NAME ...] [--quick] [--json PATH]

Runs each script in ``benchmarks/`` in its own process (their own output goes to
the terminal as it comes), gathers the figures they report (``budget.figure``)
and prints one table: figure, measured, budget, ratio (of the budget used),
pass or fail. Exits 1 when a figure is past its budget or a script failed (a
script that fails is a row that fails), 0 when every figure passed.

Run it before resolving an issue, on a quiet machine: the budgets are ratios
against floors measured in the same run where one exists, but two busy cores
still move every figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name: (the arguments of a full run, of a --quick one)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "startup": ([], ["--runs", "7"]),
    "read_paths": ([], ["--rounds", "3"]),
    "registry": ([], ["--runs", "3"]),
    "train_overhead": ([], ["--runs", "2"]),
    "fingerprint": ([], ["--size-mb", "256", "--runs", "2"]),
    "bootstrap": ([], ["--runs", "2"]),
    "data_checks": ([], ["--runs", "1"]),
    "repeats": ([], ["--runs", "1"]),
    "adopt": ([], ["--runs", "2"]),
    "demo": ([], ["--runs", "1"]),
    "faults": ([], []),
    "restore": ([], ["--runs", "1"]),
    "install": ([], ["--runs", "1"]),
    "concurrency": ([], ["--jobs", "8", "--filler", "200"]),
}


def compile_mlci() -> None:
    """Measure mlci as an install runs it: pip and ``uv pip install --compile-bytecode``
    write every module's bytecode, where a checkout's editable install (and a shell
    with PYTHONDONTWRITEBYTECODE set) would compile each changed module on every run."""
    import compileall

    compileall.compile_dir(str(HERE.parent / "mlci"), quiet=1)


def run(name: str, args: list[str], out: Path) -> tuple[int, float]:
    print(f"\n=== {name} {' '.join(args)}".rstrip(), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py"), *args],
        cwd=HERE.parent,
        env={**__import__("os").environ, "MLCI_BENCH_OUT": str(out)},
    )
    return proc.returncode, time.perf_counter() - start


def table(rows: list[dict[str, object]]) -> str:
    header = ["benchmark", "figure", "measured", "budget", "ratio", "result"]
    lines = [header]
    for row in rows:
        lines.append([str(row[k]) for k in ("script", "figure", "measured", "budget", "ratio", "result")])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    out.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="run these benchmarks only")
    parser.add_argument("--quick", action="store_true", help="fewer runs each (a first look, not a verdict)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows: list[dict[str, object]] = []
    compile_mlci()
    with tempfile.TemporaryDirectory(prefix="mlci-budgets-") as tmp:
        for name in args.only or list(SCRIPTS):
            out = Path(tmp) / f"{name}.jsonl"
            code, seconds = run(name, SCRIPTS[name][1 if args.quick else 0], out)
            found = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
            for item in found:
                at_least = item["at_least"]
                measured, budget = item["measured"], item["budget"]
                passed = measured >= budget if at_least else measured <= budget
                ratio = (
                    (budget / measured if measured else float("inf"))
                    if at_least
                    else (measured / budget if budget else (0.0 if measured == 0 else float("inf")))
                )
                against = f" of {item['floor']}" if item["floor"] else ""
                rows.append(
                    {
                        "script": name,
                        "figure": item["name"],
                        "measured": f"{measured:.3g} {item['unit']}{against}",
                        "budget": f"{'>=' if at_least else '<='} {budget:g}",
                        "ratio": f"{ratio:.2f}",
                        "result": "pass" if passed else "FAIL",
                    }
                )
            if code != 0 or not found:
                rows.append(
                    {
                        "script": name,
                        "figure": f"the script itself ({seconds:.0f} s)",
                        "measured": f"exit {code}" + ("" if found else ", no figure"),
                        "budget": "exit 0",
                        "ratio": "-",
                        "result": "FAIL",
                    }
                )
    print("\n" + table(rows))
    failed = [r for r in rows if r["result"] != "pass"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} figures within budget")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
