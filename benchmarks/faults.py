"""How long, and how much memory, mlci takes to fail on hostile input and faults.

Each case runs the real `mlci` in a subprocess and prints its exit code, wall
time and peak memory (RSS of mlci and its children):

- a 485-byte YAML alias bomb (`mlci config validate`): was 2.8 GB and more than 45 s;
- a tracking server that refuses connections (`mlci train`): was 252 s;
- a tracking server that accepts and never answers, tracking.timeout 2 s
  (`mlci train` and `mlci register`, mlci's REST fast path; `mlci doctor`,
  MLflow's client with its retries): was more than 590 s;
- a training command past train.timeout 2 s (`mlci train`);
- a damaged `.mlci/mlflow.db` (`mlci train`).

Targets: every case exits 3; none takes longer than its bound (the alias bomb
and the refused connection under 3 s; the silent server under
3 x tracking.timeout + 3 s plus start-up; the training timeout under 2 s plus
mlci's own start and a new embedded store); peak
memory under 400 MiB.

    python benchmarks/faults.py
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from budget import figure  # type: ignore[import-not-found]

PEAK = (
    "import resource, subprocess, sys\n"
    "proc = subprocess.run(sys.argv[1:])\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(usage.ru_maxrss, proc.returncode, file=sys.stderr)\n"
)
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
)
TRAIN = (
    "import json, os, pathlib, time\n"
    "o = pathlib.Path(os.environ['MLCI_OUTPUT_DIR'])\n"
    "if os.environ.get('SLOW'): time.sleep(600)\n"
    "(o / 'model').mkdir(); (o / 'model' / 'MLmodel').write_text('flavors: {}')\n"
    "(o / 'metrics.json').write_text(json.dumps({'accuracy': 0.9}))\n"
)


def measure(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, float, float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "mlci", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    peak_kib, code = lines[-1].split()
    error = next((line for line in lines if line.startswith("mlci: error:")), "")
    return int(code), seconds, int(peak_kib) / 1024, error


def project(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(TRAIN)
    (folder / ".gitignore").write_text(".mlci/\n")
    (folder / "mlci.yaml").write_text(
        f"model: {{name: demo}}\ntrain:\n  command: {sys.executable} train.py\n  inputs: [train.py]\n{extra}"
    )
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=folder, check=True)
    subprocess.run(["git", "add", "-A"], cwd=folder, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"], cwd=folder, check=True
    )
    return folder


def silent_server() -> str:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []

    def accept() -> None:
        while True:
            held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}"


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="mlci-faults-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GITHUB_"))}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"127.0.0.1:{probe.getsockname()[1]}"
    silent = silent_server()
    bomb = base / "bomb"
    bomb.mkdir()
    (bomb / "mlci.yaml").write_text(BOMB)
    damaged = project(base / "damaged")
    (damaged / ".mlci").mkdir()
    (damaged / ".mlci" / "mlflow.db").write_bytes(b"not a database" * 100)
    slow = project(base / "slow", "  timeout: 2\n")
    subprocess.run(
        [sys.executable, "-m", "mlci", "train"], cwd=slow, env=env, capture_output=True, check=True
    )
    cases = [
        ("alias bomb: config validate", ["config", "validate"], bomb, env, 3.0),
        (
            "refused server: train",
            ["train"],
            project(base / "refused"),
            {**env, "MLFLOW_TRACKING_URI": f"http://{refused}"},
            3.0,
        ),
        (
            "silent server (timeout 2 s): train",
            ["train"],
            project(base / "silent-train", "tracking: {timeout: 2}\n"),
            {**env, "MLFLOW_TRACKING_URI": f"http://{silent}"},
            9.0,
        ),
        (
            "silent server (timeout 2 s): register",
            ["register", "--no-push"],
            project(base / "silent-register", "tracking: {timeout: 2}\n"),
            {**env, "MLFLOW_TRACKING_URI": f"http://{silent}"},
            9.0,
        ),
        (
            "training past train.timeout 2 s",
            ["train", "--no-cache"],
            slow,
            {**env, "SLOW": "1"},
            12.0,  # the whole command; the kill itself is checked below
        ),
        (
            "silent server (timeout 2 s): doctor",
            ["doctor"],
            project(base / "silent-doctor", "tracking: {timeout: 2}\n"),
            {**env, "MLFLOW_TRACKING_URI": f"http://{silent}"},
            14.0,
        ),
        ("damaged .mlci/mlflow.db: train", ["train"], damaged, env, 3.0),
    ]
    results = []
    for name, args, cwd, case_env, bound in cases:
        code, seconds, peak, last = measure(args, cwd, case_env)
        ok = code == 3 and seconds < bound and peak < 400
        killed = re.search(r"killed after ([0-9.]+)s", last)
        if killed:  # the training itself: killed within 0.5 s of its timeout
            ok = ok and float(killed[1]) < 2.5
        results.append(ok)
        print(
            f"{name:40} exit {code}  {seconds:6.2f} s (bound {bound:g} s)  peak {peak:6.1f} MiB  {'ok' if ok else 'MISSED'}"
        )
        print(f"    {last[:150]}")
    print(json.dumps({"cases": len(results), "within_bounds": sum(results)}))
    figure("fault cases that exit 3 within their bounds", sum(results), len(results), "cases", at_least=True)


if __name__ == "__main__":
    main()
