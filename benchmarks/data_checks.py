"""What the data checks and profile cost on a large dataset, and what the profile weighs.

Writes a 1,000,000-row, 20-column Parquet file (ints, floats, strings, booleans,
some nulls), declares checks on every column, then measures in a fresh process:
read + check + profile (what `mlci train` does before training, and
`mlci data check`), its peak memory (ru_maxrss), the size of the profile as
stored with the run and of the diff `mlci data diff --json` prints, and the size
of the pull request comment's Data section for that diff (GitHub's limit for a
whole comment is 65,536 characters).

Targets: under 5 s and under 1 GiB here.

    python benchmarks/data_checks.py [--rows 1000000] [--runs 3]
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

COLUMNS = 20

CONFIG = """\
model: {{name: bench}}
train: {{command: "true"}}
data:
  big:
    path: big.parquet
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
from mlci.commands import data as data_cmd
config = cfg.load(Path(sys.argv[1]) / "mlci.yaml")
checked = data_cmd.check_all(config, lambda _: None)
seconds = time.perf_counter() - start
assert not data_cmd.failed(checked), data_cmd.failed(checked)
profile = json.dumps(checked[0].profile, separators=(",", ":"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "profile_bytes": len(profile)}))
Path(sys.argv[2]).write_text(profile)
"""


def comment_sizes(config, head, found) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """The pull request comment's Data section for this diff, and the whole comment."""
    from mlci import render
    from mlci import report as rpt
    from mlci.commands import data as data_cmd
    from mlci.commands import report as report_cmd

    checked = data_cmd.Checked(config.data[0], head, ())
    report = rpt.build(
        config,
        rpt.Head("0" * 32, "0" * 64, "0" * 40, "feature", {"accuracy": 0.9}, {}, cached=False),
        [],
        pr=1,
    )
    report = report_cmd.with_data(report, [checked], {"staging": [found]}, trained=True)
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
        write(root / "big.parquet", args.rows)
        (root / "mlci.yaml").write_text(CONFIG.format(columns=columns()))
        results = []
        for _ in range(args.runs):
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(root), str(root / "head.json")],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(proc.stdout))
        # The diff a pull request's comment would be built from: a shifted copy against this one.
        from mlci import config as cfg
        from mlci import data

        write(root / "shifted.parquet", args.rows, shift=0.6)
        base = json.loads((root / "head.json").read_text())
        config = cfg.load(root / "mlci.yaml")
        located = data.Located(config.data[0], (root / "shifted.parquet",), root)
        started = time.perf_counter()
        head = data.profile(located, data.read(located))
        found = data.diff(config.data[0], head, base, "staging v0.0.1")
        diff = found.to_json()
        diff_seconds = time.perf_counter() - started
        section, whole = comment_sizes(config, head, found)
        seconds = statistics.median(r["seconds"] for r in results)
        peak = max(r["peak_mb"] for r in results)
        print(
            f"{args.rows:,} rows x {COLUMNS} columns (Parquet, {(root / 'big.parquet').stat().st_size / 1e6:.1f} MB):"
        )
        print(
            f"  read + check + profile   {seconds:.2f} s (median of {args.runs}, fresh process, imports included)"
        )
        print(f"  peak memory              {peak:.0f} MB")
        print(f"  profile stored with run  {results[0]['profile_bytes'] / 1024:.1f} KB")
        print(
            f"  diff JSON (shifted copy) {len(json.dumps(diff)) / 1024:.1f} KB, {len(diff['drifted'])} columns drifted, {diff_seconds:.2f} s"
        )
        print(
            f"  comment Data section     {section:,} characters (the whole comment {whole:,} of GitHub's 65,536)"
        )
        print(f"  target < 5 s and < 1024 MB: {'ok' if seconds < 5 and peak < 1024 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
