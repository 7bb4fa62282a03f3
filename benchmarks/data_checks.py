"""What the data checks and profile cost on a large dataset, and what the profile weighs.

Writes a 1,000,000-row, 20-column dataset (ints, floats, strings, booleans, some
nulls) as Parquet and as CSV, declares checks on every column, then measures in a
fresh process each: read + check + profile (what `mlci train` does before
training, and `mlci data check`), and the same plus the diff against a shifted
copy's profile (`mlci data diff`), with their CPU time and peak memory
(ru_maxrss); the size of the profile as stored with the run and of the diff
`mlci data diff --json` prints, and the size of the pull request comment's Data
section for that diff (GitHub's limit for a whole comment is 65,536 characters).

Budget: each under 5 s of CPU and 1 GiB, on CSV and on Parquet.

    python benchmarks/data_checks.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

COLUMNS = 20

CONFIG = """\
model: {{name: bench}}
train: {{command: "true"}}
data:
  big:
    path: {path}
    key: id
    rows: {{min: 1}}
    drift: 0.25
    columns:
{columns}
"""


def write(path: Path, rows: int, shift: float = 0.0) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0 if not shift else 1)
    frame = {"id": np.arange(rows)}
    for i in range(1, COLUMNS):
        kind = i % 4
        if kind == 0:
            frame[f"c{i}"] = rng.integers(0, 1000, rows)
        elif kind == 1:
            values = rng.normal(shift, 1.0, rows)
            values[rng.random(rows) < 0.01] = np.nan
            frame[f"c{i}"] = values
        elif kind == 2:
            frame[f"c{i}"] = rng.choice(["red", "green", "blue", "amber"], rows)
        else:
            frame[f"c{i}"] = rng.random(rows) < 0.3
    if path.suffix == ".csv":
        pd.DataFrame(frame).to_csv(path, index=False)
    else:
        pd.DataFrame(frame).to_parquet(path)


def columns() -> str:
    lines = ["      id: {type: int, nulls: 0}"]
    for i in range(1, COLUMNS):
        spec = {
            0: "{type: int, min: 0, max: 999}",
            1: "{type: float, nulls: 5%, min: -10, max: 10}",
            2: "{type: str, allowed: [red, green, blue, amber]}",
            3: "{type: bool}",
        }[i % 4]
        lines.append(f"      c{i}: {spec}")
    return "\n".join(lines)


CHILD = """
import json, resource, sys, time
from pathlib import Path
start = time.perf_counter()
from mlci import config as cfg
from mlci import data
from mlci.usecases import datasets
config = cfg.load(Path(sys.argv[1]))
checked = datasets.check_all(config, lambda _: None)
assert not datasets.failed(checked), datasets.failed(checked)
if sys.argv[3] != "-":  # the diff against a base profile, as `mlci data diff` makes it
    base = json.loads(Path(sys.argv[3]).read_text())
    data.diff(config.data[0], checked[0].profile, base, "base").to_json()
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
profile = json.dumps(checked[0].profile, separators=(",", ":"))
print(json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,
                  "profile_bytes": len(profile)}))
Path(sys.argv[2]).write_text(profile)
"""


def child(config: Path, out: Path, base: Path | None, runs: int) -> dict[str, float]:
    """The median of ``runs`` fresh processes (CPU and wall), and the highest peak."""
    results = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", CHILD, str(config), str(out), str(base) if base else "-"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(runs)
    ]
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "cpu": statistics.median(r["cpu"] for r in results),
        "peak_mb": max(r["peak_mb"] for r in results),
        "profile_bytes": results[0]["profile_bytes"],
    }


def comment_sizes(config, head, found) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """The pull request comment's Data section for this diff, and the whole comment."""
    from mlci import render, verdict
    from mlci import report as rpt
    from mlci.usecases import datasets

    checked = datasets.Checked(config.data[0], head, ())
    report = rpt.build(
        config,
        rpt.Head("0" * 32, "0" * 64, "0" * 40, "feature", {"accuracy": 0.9}, {}, cached=False),
        [],
        pr=1,
        data=verdict.Data([checked], {"staging": [found]}, trained=True),
    )
    body = render.render_report(report, "markdown")
    start = body.index("#### Data")
    end = body.index("\n| metric", start)
    return end - start, len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlci-bench-") as tmp:
        root = Path(tmp)
        measured: dict[tuple[str, str], dict[str, float]] = {}
        for suffix in ("parquet", "csv"):
            write(root / f"big.{suffix}", args.rows)
            write(root / f"shifted.{suffix}", args.rows, shift=0.6)
            (root / f"{suffix}.yaml").write_text(CONFIG.format(columns=columns(), path=f"big.{suffix}"))
            (root / f"shifted-{suffix}.yaml").write_text(
                CONFIG.format(columns=columns(), path=f"shifted.{suffix}")
            )
            base = root / f"base-{suffix}.json"
            measured[(suffix, "check")] = child(root / f"{suffix}.yaml", base, None, args.runs)
            measured[(suffix, "diff")] = child(
                root / f"shifted-{suffix}.yaml", root / "x.json", base, args.runs
            )
        # The diff a pull request's comment would be built from: the shifted copy against the first.
        from mlci import config as cfg
        from mlci import data

        base_profile = json.loads((root / "base-parquet.json").read_text())
        config = cfg.load(root / "shifted-parquet.yaml")
        located = data.Located(config.data[0], (root / "shifted.parquet",), root)
        head = data.profile(located, data.read(located))
        found = data.diff(config.data[0], head, base_profile, "staging v0.0.1")
        diff = found.to_json()
        section, whole = comment_sizes(config, head, found)
        print(
            f"{args.rows:,} rows x {COLUMNS} columns (Parquet {(root / 'big.parquet').stat().st_size / 1e6:.1f} MB,"
            f" CSV {(root / 'big.csv').stat().st_size / 1e6:.1f} MB), median of {args.runs} fresh processes:"
        )
        for (suffix, mode), found_figures in measured.items():
            print(
                f"  {mode:<5} {suffix:<8} {found_figures['seconds']:5.2f} s wall  {found_figures['cpu']:5.2f} s CPU"
                f"  peak {found_figures['peak_mb']:5.0f} MB"
            )
        print(f"  profile stored with run  {measured[('parquet', 'check')]['profile_bytes'] / 1024:.1f} KB")
        print(
            f"  diff JSON (shifted copy) {len(json.dumps(diff)) / 1024:.1f} KB, {len(diff['drifted'])} columns drifted"
        )
        print(
            f"  comment Data section     {section:,} characters (the whole comment {whole:,} of GitHub's 65,536)"
        )
        for (suffix, mode), found_figures in measured.items():
            figure(
                f"data {mode}, {args.rows:,} rows, {suffix.upper() if suffix == 'csv' else 'Parquet'}",
                found_figures["cpu"],
                5,
                "s CPU",
            )
            figure(f"data {mode}, {suffix}, peak memory", found_figures["peak_mb"], 1024, "MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
