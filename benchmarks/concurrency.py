"""Many jobs at once against one MLflow server on PostgreSQL (proxied artifacts).

Starts PostgreSQL (the pgserver wheel's binaries, as the tests do) and `mlflow server`
on 127.0.0.1, makes one clone per job of a small scikit-learn project, and runs
rounds of `mlci train --json` jobs at once, JOBS per round over JOBS/2 distinct
inputs (two jobs each: one trains, the other waits for it or reuses its run).
Between rounds it fills the experiment with FILLER extra finished runs, to show
that a job's tracking calls do not grow with the runs already there.

Prints, per round: the wall time of the round; p50 and p95 of one job's mlci
overhead (its wall time minus its training command's own time: on a machine with
fewer cores than jobs, mostly time spent waiting for a core) and of its mlci CPU
seconds (the job's CPU minus its command's, which does not depend on the
contention); one job alone, for comparison; the server's CPU
seconds and peak memory (its whole process tree); and the tracking API requests
per job (from the server's access log), for a job that trains, a job that waits or
reuses, and a lone cache hit.

    python benchmarks/concurrency.py [--jobs 20] [--filler 500]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from budget import figure  # type: ignore[import-not-found]  # noqa: E402

from tests.servers import mlflow_server, postgres  # noqa: E402 (the repository's own test helpers)

TRAIN = r"""
import json, os, pathlib, time
start = time.perf_counter()
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
params = json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())
X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
model = LogisticRegression(C=params["C"], max_iter=500).fit(X_train, y_train)
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "MLmodel").write_text("flavors: {}\n")
(out / "model" / "coef.json").write_text(json.dumps(model.coef_.tolist()))
(out / "metrics.json").write_text(json.dumps({"accuracy": model.score(X_test, y_test)}))
with open(os.environ["COMMAND_TIMES"], "a") as log:
    log.write(f"{params['C']} {time.perf_counter() - start:.3f} {time.process_time():.3f}\n")
"""

CONFIG = """\
model:
  name: {name}
train:
  command: {python} train.py
  inputs: [train.py, params.yaml]
  params: params.yaml
  model: model
tracking:
  experiment: {name}
"""


# A job: mlci train, and the CPU it and its training command used (RUSAGE_CHILDREN).
JOB = r"""
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "mlci", "train", "--json"], capture_output=True, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(done.stderr)
print(json.dumps({"code": done.returncode, "out": done.stdout, "cpu": usage.ru_utime + usage.ru_stime}))
"""


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class ServerWatch:
    """CPU seconds and peak RSS of the server's process tree while a round runs."""

    def __init__(self, port: int) -> None:
        import psutil

        self.root = next(
            p
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and "server" in p.info["cmdline"] and str(port) in p.info["cmdline"]
        )
        self.peak = 0
        self._stop = threading.Event()

    def tree(self) -> list:  # type: ignore[type-arg]
        import psutil

        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> float:
        total = 0.0
        for p in self.tree():
            with contextlib.suppress(Exception):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def __enter__(self) -> ServerWatch:
        self.start_cpu = self.cpu()

        def sample() -> None:
            while not self._stop.wait(0.2):
                rss = 0
                for p in self.tree():
                    with contextlib.suppress(Exception):
                        rss += p.memory_info().rss
                self.peak = max(self.peak, rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_seconds = self.cpu() - self.start_cpu


def requests_by_endpoint(log: Path) -> dict[str, int]:
    """The server's access log, counted by endpoint (runs/search, runs/get, ...)."""
    import re

    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        found = re.search(
            r'"(?:GET|POST|PUT|PATCH|DELETE) /api/2\.0/(mlflow(?:-artifacts)?)/([a-z-]+)(?:/(?!m-)([a-z-]+))?',
            line,
        )
        if found:
            endpoint = f"{found[2]}/{found[3]}" if found[3] else found[2]
            key = endpoint if found[1] == "mlflow" else "artifacts (proxied)"
            counts[key] = counts.get(key, 0) + 1
    return counts


def requests_in(log: Path) -> int:
    return sum(requests_by_endpoint(log).values())


def difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per round (two per distinct input)")
    parser.add_argument("--filler", type=int, default=500, help="extra finished runs added between rounds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlci-concurrency-"))
    name = f"bench-{uuid.uuid4().hex[:6]}"
    seed = work / "seed"
    seed.mkdir()
    (seed / "train.py").write_text(TRAIN)
    (seed / "params.yaml").write_text(json.dumps({"C": 1.0}))
    (seed / "mlci.yaml").write_text(CONFIG.format(name=name, python=sys.executable))
    (seed / ".gitignore").write_text(".mlci/\nmodel/\nmetrics.json\n")
    run(["git", "init", "-q", "-b", "main"], seed)
    run(["git", "add", "-A"], seed)
    run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "seed"], seed)

    with postgres() as database, mlflow_server(work, database, workers=2) as server:
        port = int(server.rsplit(":", 1)[1])
        log = next(work.glob(f"mlflow-server-{port}.log"))
        from mlflow.tracking import MlflowClient

        client = MlflowClient(server)
        print(f"mlflow server {server} on PostgreSQL (2 workers); {args.jobs} jobs per round", flush=True)
        c_index = 0
        per_round: list[float] = []
        for round_number, filler in enumerate((0, args.filler), start=1):
            if filler:
                experiment = client.get_experiment_by_name(name)
                assert experiment is not None
                start = time.perf_counter()
                quiet = contextlib.redirect_stdout(open(os.devnull, "w"))  # noqa: SIM115
                quiet.__enter__()
                for _ in range(filler):
                    made = client.create_run(
                        experiment.experiment_id, tags={"mlci.fingerprint": uuid.uuid4().hex * 2}
                    )
                    client.log_metric(made.info.run_id, "accuracy", 0.5)
                    client.set_terminated(made.info.run_id)
                quiet.__exit__(None, None, None)
                print(f"  + {filler} finished runs in the experiment ({time.perf_counter() - start:.0f}s)")
            times = work / f"command-times-{round_number}.log"
            env = {**os.environ, "MLFLOW_TRACKING_URI": server, "COMMAND_TIMES": str(times)}
            clones = []
            for i in range(args.jobs):
                clone = work / f"r{round_number}-job{i}"
                run(["git", "clone", "-q", str(seed), str(clone)], work)
                c = round(0.01 * (1.7 ** (c_index + i // 2)), 6)
                (clone / "params.yaml").write_text(json.dumps({"C": c}))
                clones.append((clone, c))
            c_index += args.jobs // 2
            before = requests_in(log)
            endpoints_before = requests_by_endpoint(log)
            with ServerWatch(port) as watch:
                started = time.perf_counter()
                procs = []
                for clone, c in clones:
                    t0 = time.perf_counter()
                    proc = subprocess.Popen(
                        [sys.executable, "-c", JOB],
                        cwd=clone,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    procs.append((proc, t0, c))
                walls: list[tuple[float, float, bool, float]] = []
                for proc, t0, c in procs:
                    out, err = proc.communicate()
                    job = json.loads(out)
                    if job["code"] != 0:
                        raise SystemExit(err[-2000:])
                    walls.append((c, time.perf_counter() - t0, json.loads(job["out"])["cached"], job["cpu"]))
                wall = time.perf_counter() - started
            calls = requests_in(log) - before
            lines = [line.split() for line in times.read_text().splitlines()]
            command = {float(c): float(sec) for c, sec, _ in lines}
            command_cpu = {float(c): float(cpu) for c, _, cpu in lines}
            trained = [w - command[c] for c, w, cached, _ in walls if not cached]
            trained_cpu = [cpu - command_cpu[c] for c, _, cached, cpu in walls if not cached]
            waited = [w for _, w, cached, _ in walls if cached]
            waited_cpu = [cpu for _, _, cached, cpu in walls if cached]
            print(f"round {round_number} ({filler} extra runs in the experiment):")
            print(f"  wall time of {args.jobs} jobs at once: {wall:.1f}s; trainings: {len(command)}")
            print(
                f"  mlci overhead of a job that trains: p50 {percentile(trained, 0.5):.2f}s, "
                f"p95 {percentile(trained, 0.95):.2f}s (its wall time minus its command's)"
            )
            print(
                f"  mlci CPU of a job that trains: p50 {percentile(trained_cpu, 0.5):.2f}s, "
                f"p95 {percentile(trained_cpu, 0.95):.2f}s (its CPU minus its command's)"
            )
            print(
                f"  a job that reused the other's run: p50 {percentile(waited, 0.5):.2f}s wall, "
                f"p50 {percentile(waited_cpu, 0.5):.2f}s CPU"
            )
            print(f"  server: {watch.cpu_seconds:.1f} CPU s, peak memory {watch.peak / 2**20:.0f} MiB")
            print(f"  tracking API requests: {calls} ({calls / args.jobs:.1f} per job)")
            by = difference(requests_by_endpoint(log), endpoints_before)
            per_job = ", ".join(
                f"{k} {v / args.jobs:.1f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])
            )
            print(f"    per job, by endpoint: {per_job}")
            # What a job asks, without a waiting job's polls and a trainer's heartbeats (which
            # grow with the time a job waits or trains, so with the machine's load).
            timed_calls = by.get("runs/get", 0) + by.get("runs/set-tag", 0)
            per_round.append((sum(by.values()) - timed_calls) / args.jobs)
            print(
                "    (runs/get are a waiting job's polls and set-tag a trainer's heartbeats: they grow"
                " with the time spent waiting or training, not with the runs in the experiment)"
            )
            # One cache hit alone: how many requests, and how long, with this many runs.
            clone = clones[0][0]
            before = requests_in(log)
            t0 = time.perf_counter()
            out = run([sys.executable, "-m", "mlci", "train", "--json"], clone, env)
            hit = time.perf_counter() - t0
            assert json.loads(out)["cached"] is True
            print(f"  a lone cache hit: {requests_in(log) - before} requests, {hit:.2f}s")
        # One job alone, new inputs: the overhead without contention.
        clone = work / "alone"
        run(["git", "clone", "-q", str(seed), str(clone)], work)
        (clone / "params.yaml").write_text(json.dumps({"C": 0.123}))
        times = work / "command-times-alone.log"
        env = {**os.environ, "MLFLOW_TRACKING_URI": server, "COMMAND_TIMES": str(times)}
        before = requests_in(log)
        t0 = time.perf_counter()
        job = json.loads(run([sys.executable, "-c", JOB], clone, env))
        wall = time.perf_counter() - t0
        _, seconds, cpu = times.read_text().split()
        print(
            f"one job alone (new inputs): overhead {wall - float(seconds):.2f}s wall, "
            f"{job['cpu'] - float(cpu):.2f}s CPU, {requests_in(log) - before} requests"
        )
    # Measured when the budget was set: 13.3 per job in the first round (17.2 with polls and heartbeats).
    figure(
        f"{args.jobs} jobs at once: requests per job but polls and heartbeats", max(per_round), 14, "requests"
    )
    figure(
        "the same as the experiment grows", per_round[-1] / per_round[0], 1.1, "x", floor="the first round's"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
