"""A promotion that restores a 100 MB model from its store, against training the scaffold's model.

Scaffolds the classifier with a bare remote, makes its model folder 100 MB
(a padding file beside the scikit-learn model), and in "GitHub Actions"
against the local GitHub stand-in (tests/github_stub.py, on 127.0.0.1):
registers and promotes it to staging (the archive goes to a release), then
in a fresh clone with an empty .mlci/ (a new runner) promotes it to
production: download, digest check, MLflow model version rebuilt, tag pushed.

Measured: the training command alone (`python train.py`, no padding), the
cold promotion's wall time, and how often and how much of the archive the
stand-in served (target: restoring is faster than training, and the archive
is read once: one download of exactly its size, unpacked while it streams).

    python benchmarks/restore.py [--size-mb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.github_stub import github_stub  # noqa: E402

PAD = """\
import os, pathlib
out = pathlib.Path(os.environ.get("MLCI_OUTPUT_DIR", ".")) / "model"
with open(out / "padding.bin", "wb") as handle:
    handle.write(os.urandom({size}))
"""


def sh(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="size of the model folder")
    parser.add_argument("--runs", type=int, default=3, help="cold promotions to time")
    args = parser.parse_args()
    mlci = [sys.executable, "-m", "mlci"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "churn"
        bare = base / "origin.git"
        sh([*mlci, "init", str(root), "--git"], base)
        sh(["git", "init", "-q", "--bare", str(bare)], base)
        sh(["git", "remote", "add", "origin", str(bare)], root)
        train_seconds = statistics.median(sh([sys.executable, "train.py"], root) for _ in range(args.runs))
        (root / "pad.py").write_text(PAD.format(size=args.size_mb * 2**20))
        config = root / "mlci.yaml"
        # The scaffold's production deploys through a hook, which mlci never runs in a job
        # that holds a token (the reusable workflow runs it in a job of its own): what is
        # measured here is the promotion that restores the bytes, so the hook goes.
        text = re.sub(r"\n    deploy:\n(?:      .*\n)+", "\n", config.read_text())
        config.write_text(
            text.replace("command: python train.py", "command: python train.py && python pad.py")
        )
        sh(["git", "add", "-A"], root)
        sh(["git", "commit", "-qm", "a 100 MB model"], root)
        sh(["git", "branch", "-f", "staging"], root)
        sh(["git", "branch", "-f", "production"], root)
        sh(["git", "push", "-q", "origin", "main", "staging", "production"], root)
        with github_stub() as gh:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_"))},
                "GITHUB_ACTIONS": "true",
                "GITHUB_API_URL": gh.base_url,
                "GITHUB_REPOSITORY": "octo/churn",
                "GITHUB_TOKEN": "ghs_benchmark",
            }
            sh(["git", "checkout", "-q", "staging"], root)
            sh([*mlci, "ci", "--event", "push", "--branch", "staging"], root, env)
            asset = next(a for a in gh.releases[0]["assets"] if a["name"].endswith(".tar"))
            laptop = {k: v for k, v in env.items() if k != "GITHUB_ACTIONS"}
            timings: dict[str, list[float]] = {"ci": [], "laptop": [], "pull": []}
            downloads: dict[str, int] = {}
            for i in range(args.runs):
                for kind, environ, command in (
                    ("ci", env, ["promote", "production", "--version", "v0.0.1", "--no-push"]),
                    ("laptop", laptop, ["promote", "production", "--version", "v0.0.1", "--no-push"]),
                    ("pull", laptop, ["pull", "churn@v0.0.1", "--output", "pulled"]),
                ):
                    clone = base / f"runner-{kind}-{i}"
                    sh(["git", "clone", "-q", "--branch", "staging", str(bare), str(clone)], base)
                    archive_path = f"/_blobs/asset/{asset['id']}"  # the model archive, not its predictions
                    before = len([r for r in gh.requests if r.path == archive_path])
                    timings[kind].append(sh([*mlci, *command], clone, environ))
                    downloads[kind] = len([r for r in gh.requests if r.path == archive_path]) - before
                    shutil.rmtree(clone)
        size = asset["size"]
        print(f"model archive: {size / 2**20:.1f} MiB ({size:,} bytes)")
        print(f"train the scaffold's model (python train.py, median of {args.runs}): {train_seconds:.2f} s")
        for kind, what in (
            ("ci", "cold CI promotion (download and sha256 while streaming, tag; no MLflow)"),
            (
                "laptop",
                "cold laptop promotion (download, sha256 and unpack in one pass, MLflow version rebuilt, tag)",
            ),
            ("pull", "mlci pull (download, sha256 and unpack in one pass)"),
        ):
            median = statistics.median(timings[kind])
            runs = ", ".join(f"{t:.2f}" for t in timings[kind])
            print(
                f"{what}: {median:.2f} s [{runs}]; archive downloads: {downloads[kind]}; / train: {median / train_seconds:.2f}"
            )
        for kind in ("ci", "laptop"):
            figure(
                f"restoring promotion, cold {kind}",
                statistics.median(timings[kind]) / train_seconds,
                1,
                "x",
                floor="training the model",
            )
            figure(f"restoring promotion, cold {kind}: archive downloads", downloads[kind], 1, "downloads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
