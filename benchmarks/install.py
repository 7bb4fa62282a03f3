"""How long installing mlci takes, and how big it is: pip and uv, lean and full.

Builds mlci's wheel, then installs it into fresh virtual environments, each
measured after one warm-up install (so the package caches are warm, as in a
CI job with a cache):

- ``pip install mlci.whl`` (mlci's own dependencies: mlflow-skinny),
- ``uv pip install mlci.whl`` (uv from PyPI, into ``.tools/uv``),
- the step of ``actions/setup`` and the reusable workflow's training jobs: mlci
  into an environment of its own and a scaffold's ``requirements.txt`` into the
  project's (two resolutions: mlci's pins never decide the project's), with uv
  (and the same with pip, the fallback),
- with ``--full``, also ``mlci[full]`` (full mlflow) with pip, for comparison.

Then the first mlci command of a fresh CI job: the action's step (with uv's
``--compile-bytecode``, as the actions install) into a new environment, and its
first ``mlci diff`` on a trained project against the same command run again
(the import cost a job pays once). Without bytecode, the first command compiles
mlci and MLflow as it imports them.

Budgets: <= 5 s with uv (or <= 20 s with pip, the fallback), <= 300 MB for mlci itself, and the
first command of a fresh job at most 1.5x the same command warm.

    python benchmarks/install.py [--runs 3] [--full]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

REPO_ROOT = Path(__file__).resolve().parent.parent
UV_ENV = REPO_ROOT / ".tools" / "uv"
REQUIREMENTS = REPO_ROOT / "examples" / "classifier" / "requirements.txt"


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def uv_binary() -> Path:
    binary = UV_ENV / "bin" / "uv"
    if not binary.exists():
        venv.create(UV_ENV, with_pip=True, clear=True)
        subprocess.run([str(UV_ENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "uv"], check=True)
    return binary


def timed_install(kind: str, target: str | list[str], tmp: Path, n: int) -> tuple[float, float]:
    """Seconds to install ``target`` into a new venv (median of n), and the venv's size."""
    targets = [target] if isinstance(target, str) else target
    times, size = [], 0.0
    for i in range(n + 1):  # the first fills the cache
        env_dir = tmp / f"{kind}-{i}"
        if kind == "uv":
            uv = str(uv_binary())
            subprocess.run([uv, "venv", "--quiet", str(env_dir)], check=True)
            start = time.perf_counter()
            subprocess.run(
                [uv, "pip", "install", "--quiet", "--python", str(env_dir / "bin" / "python"), *targets],
                check=True,
            )
        else:
            venv.create(env_dir, with_pip=True)
            start = time.perf_counter()
            subprocess.run(
                [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", *targets], check=True
            )
        took = time.perf_counter() - start
        if i:
            times.append(took)
        size = size_mb(env_dir)
        shutil.rmtree(env_dir)
    return statistics.median(times), size


def timed_step(kind: str, wheel: Path, tmp: Path, n: int) -> tuple[float, float]:
    """The workflow's install step: mlci into a new environment of its own, the scaffold's
    requirements into the project's (a second new one). Seconds for both (median of n) and
    both environments' size."""
    times, size = [], 0.0
    for i in range(n + 1):  # the first fills the cache
        tool, project = tmp / f"{kind}-tool-{i}", tmp / f"{kind}-project-{i}"
        if kind == "uv":
            uv = str(uv_binary())
            for folder in (tool, project):
                subprocess.run([uv, "venv", "--quiet", str(folder)], check=True)
            start = time.perf_counter()
            for folder, targets in ((tool, [str(wheel)]), (project, ["-r", str(REQUIREMENTS)])):
                subprocess.run(
                    [uv, "pip", "install", "--quiet", "--python", str(folder / "bin" / "python"), *targets],
                    check=True,
                )
        else:
            for folder in (tool, project):
                venv.create(folder, with_pip=True)
            start = time.perf_counter()
            for folder, targets in ((tool, [str(wheel)]), (project, ["-r", str(REQUIREMENTS)])):
                subprocess.run(
                    [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *targets], check=True
                )
        took = time.perf_counter() - start
        if i:
            times.append(took)
        size = size_mb(tool) + size_mb(project)
        shutil.rmtree(tool)
        shutil.rmtree(project)
    return statistics.median(times), size


def first_command(wheel: Path, tmp: Path, compile_bytecode: bool) -> tuple[float, float]:
    """The first and the second `mlci diff` on a trained project, with mlci in a new
    environment of its own, installed as the action installs it."""
    import os

    uv = str(uv_binary())
    env_dir = tmp / f"job-{'compiled' if compile_bytecode else 'plain'}"
    subprocess.run([uv, "venv", "--quiet", str(env_dir)], check=True)
    extra = ["--compile-bytecode"] if compile_bytecode else []
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            *extra,
            "--python",
            str(env_dir / "bin" / "python"),
            str(wheel),
        ],
        check=True,
    )
    project = tmp / f"project-{env_dir.name}"
    mlci = [sys.executable, "-m", "mlci"]
    subprocess.run([*mlci, "init", str(project), "--git"], check=True, capture_output=True)
    subprocess.run([*mlci, "train"], cwd=project, check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as on a runner
    times = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(
            [str(env_dir / "bin" / "mlci"), "diff"], cwd=project, env=env, check=True, capture_output=True
        )
        times.append(time.perf_counter() - start)
    shutil.rmtree(env_dir)
    return times[0], times[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured installs of each kind")
    parser.add_argument("--full", action="store_true", help="also install mlci[full] (full mlflow) with pip")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlci-install-") as name:
        tmp = Path(name)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "build",
                "--wheel",
                "--no-isolation",
                "--outdir",
                str(tmp),
                str(REPO_ROOT),
            ],
            check=True,
            capture_output=True,
        )
        (wheel,) = tmp.glob("mlci-*.whl")
        rows = [
            ("pip install mlci (mlflow-skinny)", *timed_install("pip", str(wheel), tmp, args.runs)),
            ("uv pip install mlci (mlflow-skinny)", *timed_install("uv", str(wheel), tmp, args.runs)),
            ("the action's step with uv (+ requirements)", *timed_step("uv", wheel, tmp, args.runs)),
            ("the action's step with pip (+ requirements)", *timed_step("pip", wheel, tmp, args.runs)),
        ]
        if args.full:
            rows.append(
                ("pip install mlci[full] (mlflow)", *timed_install("pip", f"{wheel}[full]", tmp, args.runs))
            )
        compiled = first_command(wheel, tmp, compile_bytecode=True)
        plain = first_command(wheel, tmp, compile_bytecode=False)
    print(f"median of {args.runs} installs with a warm cache:")
    for label, seconds, size in rows:
        print(f"  {label:<44} {seconds:6.1f} s  {size:6.0f} MB")
    pip_s, pip_mb = rows[0][1], rows[0][2]
    uv_s, step_s = rows[1][1], rows[2][1]
    print("the first mlci command of a fresh job (mlci diff on a trained project), then again:")
    print(f"  installed with --compile-bytecode  {compiled[0]:6.2f} s, then {compiled[1]:6.2f} s")
    print(f"  installed without                  {plain[0]:6.2f} s, then {plain[1]:6.2f} s")
    figure("uv pip install mlci", uv_s, 5, "s")
    del pip_s  # pip is the fallback: the actions install with uv (the budget was pip <= 20 s or uv <= 5 s)
    figure("the action's uv step (mlci + requirements)", step_s, 5, "s")
    figure("mlci installed with pip", pip_mb, 300, "MB")
    figure(
        "a fresh job's first mlci diff", compiled[0] / compiled[1], 1.5, "x", floor="the same command warm"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
