"""Reading the registry at scale: `mlci show` against `git for-each-ref` and `gto show`.

Builds repositories with 1,000 and 10,000 registry tags (half versions, half
assignments, annotated, with mlci's metadata) through `git fast-import`, then
prints the median wall time and peak memory of each reader. GTO is installed
into .tools/gto-venv on first use (see benchmarks/startup.py); it runs at
1,000 tags only unless --gto-everywhere (it takes minutes at 10,000).

Targets: `mlci show` under 0.5 s at 10,000 tags, and at least 50 times faster
than `gto show` at 1,000.

    python benchmarks/registry.py [--sizes 1000 10000] [--runs 5] [--gto-everywhere]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import gto_command  # type: ignore[import-not-found]

PEAK = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def build(root: Path, count: int) -> None:
    """count/2 versions, each on its own commit, and count/2 assignments."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    versions = count // 2
    lines: list[str] = []
    when = 1_700_000_000
    for i in range(1, versions + 1):
        msg = f"model {i}\n"
        lines += [
            "commit refs/heads/main",
            f"mark :{i}",
            f"committer Bench <bench@example.com> {when + i} +0000",
            f"data {len(msg.encode())}",
            msg.rstrip("\n"),
        ]
        if i > 1:
            lines.append(f"from :{i - 1}")
        lines.append("")
    counter = 0
    for i in range(1, versions + 1):
        version = f"v{i // 10000}.{(i // 100) % 100}.{i % 100}"
        meta = json.dumps(
            {"fingerprint": f"{i:064x}", "metrics": {"accuracy": 0.9 + i / 1e7}, "version": version}
        )
        for name, summary in (
            (f"churn@{version}", f"Registering artifact churn version {version}"),
            (
                f"churn#{'staging' if i % 2 else 'production'}#{counter + 1}",
                f"Assigning stage to artifact churn version {version}",
            ),
        ):
            if "#" in name:
                counter += 1
            body = f"{summary}\n\nmlci-metadata: {meta}\n"
            lines += [
                f"tag {name}",
                f"from :{i}",
                f"tagger Bench <bench@example.com> {when + versions + i} +0000",
                f"data {len(body.encode())}",
                body,
            ]
    stream = "\n".join(lines) + "\n"
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=stream.encode(), check=True)
    subprocess.run(["git", "pack-refs", "--all"], cwd=root, check=True)


def measure(command: list[str], cwd: Path, runs: int) -> tuple[float, float]:
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    peak_kb = int(
        subprocess.run(
            [sys.executable, "-c", PEAK, *command],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return statistics.median(times), peak_kb / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="tag counts")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement")
    parser.add_argument("--gto-everywhere", action="store_true", help="also time gto above 1,000 tags")
    args = parser.parse_args()
    mlci = shutil.which("mlci") or str(Path(sys.executable).parent / "mlci")
    gto = gto_command()
    results: dict[int, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="mlci-bench-") as tmp:
        for size in args.sizes:
            root = Path(tmp) / f"repo-{size}"
            build(root, size)
            found = len(
                subprocess.run(
                    ["git", "tag"], cwd=root, capture_output=True, text=True, check=True
                ).stdout.split()
            )
            row = {
                "git for-each-ref": measure(
                    [
                        "git",
                        "for-each-ref",
                        "--format=%(refname)%00%(*objectname)%00%(contents)",
                        "refs/tags",
                    ],
                    root,
                    args.runs,
                ),
                "mlci show": measure([mlci, "show"], root, args.runs),
            }
            if gto and (size <= 1000 or args.gto_everywhere):
                row["gto show"] = measure([gto[0], "show"], root, max(1, min(args.runs, 3)))
            results[size] = row
            print(f"{found} tags:")
            for name, (seconds, mib) in row.items():
                print(f"  {name:<18} {seconds * 1000:9.1f} ms   peak {mib:6.1f} MiB")
            if "gto show" in row:
                print(f"  mlci show is {row['gto show'][0] / row['mlci show'][0]:.0f}x faster than gto show")
    biggest = max(results)
    t = results[biggest]["mlci show"][0]
    print(f"target mlci show < 0.5 s at {biggest} tags: {'ok' if t < 0.5 else 'MISSED'} ({t:.3f} s)")
    small = [s for s in results if "gto show" in results[s] and s <= 1000]
    if small:
        s = max(small)
        ratio = results[s]["gto show"][0] / results[s]["mlci show"][0]
        print(
            f"target >= 50x faster than gto show at {s} tags: {'ok' if ratio >= 50 else 'MISSED'} ({ratio:.0f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
