"""Fingerprint speed: hashing throughput against sha256sum, and the stat cache.

1. Generates an input set of about --size-mb MiB (files of 16 MiB) and hashes it
   with mlci's hasher and with `sha256sum` (page cache warm for both).
   Target: mlci at least 0.8 of sha256sum's throughput.
2. Generates 10,000 small files in a git repository, fingerprints them once,
   then times re-fingerprinting the unchanged tree (stat cache warm).
   Target: under 0.5 s.

    python benchmarks/fingerprint.py [--size-mb 1024] [--files 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

from mlci import config as cfg
from mlci import fingerprint as fp

CONFIG = "model:\n  name: bench\ntrain:\n  command: 'true'\n  inputs: ['data/**']\n"
OLD_NS = 1_600_000_000 * 10**9  # outside the stat cache's racy window


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(work: Path, size_mb: int, runs: int) -> None:
    data = work / "big" / "data"
    data.mkdir(parents=True)
    chunk = 16
    count = max(1, size_mb // chunk)
    block = os.urandom(1 << 20)
    for i in range(count):
        with open(data / f"part-{i:04d}.bin", "wb") as f:
            for j in range(chunk):
                f.write(block[j:] + block[:j])  # distinct content per MiB
    names = [f"data/{p.name}" for p in sorted(data.iterdir())]
    total_mb = sum((data.parent / n).stat().st_size for n in names) / (1 << 20)
    subprocess.run(["cat", *[str(data.parent / n) for n in names]], stdout=subprocess.DEVNULL, check=True)

    ours = timed(lambda: fp.hash_files(data.parent, names, None), runs)
    single = timed(lambda: [fp._sha256(data.parent / n) for n in names], runs)
    theirs = timed(
        lambda: subprocess.run(["sha256sum", *names], cwd=data.parent, stdout=subprocess.DEVNULL, check=True),
        runs,
    )
    ratio = theirs / ours
    print(f"hashing {total_mb:.0f} MiB in {len(names)} files (median of {runs}):")
    print(f"  mlci       {ours:6.2f} s  {total_mb / ours:7.0f} MiB/s  ({os.cpu_count()} threads)")
    print(f"  mlci       {single:6.2f} s  {total_mb / single:7.0f} MiB/s  (1 thread)")
    print(f"  sha256sum  {theirs:6.2f} s  {total_mb / theirs:7.0f} MiB/s")
    figure(
        f"hash {total_mb:,.0f} MiB in {len(names)} files", ours / theirs, 1.25, "x", floor="sha256sum's time"
    )
    del ratio
    shutil.rmtree(work / "big")


def stat_cache(work: Path, files: int, runs: int) -> None:
    root = work / "many"
    data = root / "data"
    for i in range(files):
        folder = data / f"d{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.csv").write_text(f"{i},{i * i}\n")
    (root / "mlci.yaml").write_text(CONFIG)
    for path in root.rglob("*"):
        os.utime(path, ns=(OLD_NS, OLD_NS))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "data"], cwd=root, check=True, env=env)
    config = cfg.load(root / "mlci.yaml")

    start = time.perf_counter()
    cold = fp.compute(config, {})
    cold_s = time.perf_counter() - start
    warm_s = timed(lambda: fp.compute(config, {}), runs)
    assert fp.compute(config, {}).digest == cold.digest
    no_cache_s = timed(lambda: fp.compute(config, {}, use_stat_cache=False), runs)
    cli = timed(
        lambda: subprocess.run(
            [sys.executable, "-m", "mlci", "fingerprint"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            check=True,
        ),
        runs,
    )
    print(f"fingerprint of {len(cold.files)} unchanged files in a git repository (median of {runs}):")
    print(f"  first (reads every file)      {cold_s:6.3f} s")
    print(f"  again, stat cache warm        {warm_s:6.3f} s")
    print(f"  again, stat cache off         {no_cache_s:6.3f} s")
    print(f"  `mlci fingerprint` end to end {cli:6.3f} s")
    status = timed(
        lambda: subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, stdout=subprocess.DEVNULL, check=True
        ),
        runs,
    )
    print(f"  git status (the floor)        {status:6.3f} s")
    figure(f"re-fingerprint {len(cold.files):,} unchanged files", warm_s / status, 5, "x", floor="git status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the hashing input set")
    parser.add_argument("--files", type=int, default=10_000, help="file count for the stat cache test")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlci-bench-") as tmp:
        throughput(Path(tmp), args.size_mb, args.runs)
        stat_cache(Path(tmp), args.files, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
