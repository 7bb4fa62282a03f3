"""Team scale: many jobs at once against one MLflow server on PostgreSQL (proxied
artifacts), each in its own clone, each talking to the local GitHub stand-in.

Twenty pull requests (ten distinct inputs, two jobs each) train each input once;
eight pushes promote at once and every version, model version and alias lands
once; a job whose inputs another job is training waits for that run and reuses it,
unless the other job died or the wait runs out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.github_stub import GitHubState, github_stub
from tests.helpers import run

TOKEN = "ghs_teamteamteamteam"

TRAIN = r"""
import json, os, pathlib, time
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

params = json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())
with open(os.environ["TRAININGS_LOG"], "a") as log:
    log.write(f"{params['C']} {os.getpid()}\n")
if os.environ.get("HANG"):  # not an input: the same fingerprint, a trainer that never ends
    time.sleep(600)
time.sleep(params.get("pause", 0))
X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
model = LogisticRegression(C=params["C"], max_iter=params.get("max_iter", 200)).fit(X_train, y_train)
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "MLmodel").write_text("flavors: {}\n")
(out / "model" / "coef.json").write_text(json.dumps(model.coef_.tolist()))
(out / "metrics.json").write_text(json.dumps({"accuracy": model.score(X_test, y_test)}))
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
  wait: {wait}
environments:
  staging:
    gates:
      - metric: accuracy
        min: 0.5
"""

C_VALUES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]


def _seed(tmp_path: Path, wait: int = 300) -> tuple[Path, str]:
    """A project with a bare remote (branches main and staging), named for this test."""
    name = f"team-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "seed"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "params.yaml").write_text(json.dumps({"C": 1.0}))
    (root / "mlci.yaml").write_text(CONFIG.format(name=name, python=sys.executable, wait=wait))
    (root / ".gitignore").write_text(".mlci/\nmodel/\nmetrics.json\n")
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "seed"], root)
    bare = tmp_path / "remote.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], tmp_path)
    run(["git", "remote", "add", "origin", str(bare)], root)
    run(["git", "push", "-q", "origin", "main", "main:staging"], root)
    return root, name


def _clone(tmp_path: Path, name: str, params: dict[str, Any]) -> Path:
    clone = tmp_path / name
    run(["git", "clone", "-q", str(tmp_path / "remote.git"), str(clone)], tmp_path)
    (clone / "params.yaml").write_text(json.dumps(params))
    run(["git", "commit", "-qam", f"params {params}"], clone)
    return clone


def _env(tmp_path: Path, job: str, server: str, gh: GitHubState) -> dict[str, str]:
    folder = tmp_path / "jobs" / job
    folder.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "TRAININGS_LOG": str(tmp_path / "trainings.log"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": gh.base_url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "octo/churn",
        "GITHUB_RUN_ID": str(abs(hash(job)) % 10**6),
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(folder / "summary.md"),
        "GITHUB_OUTPUT": str(folder / "output.txt"),
        "MLCI_GITHUB_BACKOFF": "0.05",
    }


def _pr_event(tmp_path: Path, clone: Path, number: int) -> dict[str, str]:
    payload = {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "head": {
                "ref": f"pr-{number}",
                "sha": run(["git", "rev-parse", "HEAD"], clone).strip(),
                "repo": {"full_name": "octo/churn", "fork": False},
            },
            "base": {"ref": "staging", "sha": "0" * 40, "repo": {"full_name": "octo/churn", "fork": False}},
        },
        "repository": {"full_name": "octo/churn"},
    }
    path = tmp_path / "jobs" / f"pr-{number}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path)}


def _start(clone: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlci", *args],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _trainings(tmp_path: Path) -> Counter[float]:
    log = tmp_path / "trainings.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(float(line.split()[0]) for line in lines)


def _runs(server: str, name: str, view: str = "ACTIVE_ONLY") -> list[Any]:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return list(
        client.search_runs(
            [experiment.experiment_id], run_view_type=getattr(ViewType, view), max_results=1000
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("mlflow_server", ["postgresql"], indirect=True)
def test_twenty_pull_requests_and_eight_promotions_at_once(tmp_path: Path, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    from mlci import gitrepo, tags

    seed, name = _seed(tmp_path)
    clones = [_clone(tmp_path, f"pr{i}", {"C": C_VALUES[i // 2], "pause": 2}) for i in range(20)]
    with github_stub() as gh:
        procs = [
            _start(
                clone,
                {**_env(tmp_path, f"pr{i}", mlflow_server, gh), **_pr_event(tmp_path, clone, i + 1)},
                "ci",
            )
            for i, clone in enumerate(clones)
        ]
        results = [_finish(p) for p in procs]
        for code, _, err in results:
            assert code == 0, err[-3000:]

        # Each of the ten inputs trained once: twenty jobs, ten trainings, ten runs.
        assert _trainings(tmp_path) == Counter({c: 1 for c in C_VALUES})
        runs = _runs(mlflow_server, name)
        assert sorted(r.info.status for r in runs) == ["FINISHED"] * 10
        by_fingerprint = {r.data.tags["mlci.fingerprint"]: r for r in runs}
        assert len(by_fingerprint) == 10  # none lost, none doubled
        trained = [err for _, _, err in results if "trained in" in err]
        reused = [err for _, _, err in results if "cache hit" in err or "reusing run" in err]
        assert len(trained) == 10 and len(reused) == 10

        # One comment per pull request, with its own run's numbers and link.
        assert sorted(gh.comments) == list(range(1, 21))
        for i in range(20):
            (comment,) = gh.comments[i + 1]
            output = (tmp_path / "jobs" / f"pr{i}" / "output.txt").read_text()
            fingerprint = output.split("fingerprint<<")[1].splitlines()[1]
            own = by_fingerprint[fingerprint]
            assert json.loads(own.data.params["C"]) == C_VALUES[i // 2]
            assert f"{own.data.metrics['accuracy']:.4f}" in comment["body"], comment["body"]
            assert own.info.run_id in comment["body"]
        assert {s["context"] for s in gh.statuses} == {"mlci/staging"} and len(gh.statuses) == 20

        # Eight pushes to staging at once, one per distinct input: each registers its
        # run (no training: the server has it) and assigns staging.
        pushers = []
        for i in range(8):
            clone = clones[2 * i]
            payload = tmp_path / "jobs" / f"push{i}.json"
            head = run(["git", "rev-parse", "HEAD"], clone).strip()
            payload.write_text(
                json.dumps(
                    {
                        "ref": "refs/heads/staging",
                        "before": "0" * 40,
                        "after": head,
                        "repository": {"full_name": "octo/churn"},
                    }
                )
            )
            env = {
                **_env(tmp_path, f"push{i}", mlflow_server, gh),
                "GITHUB_EVENT_NAME": "push",
                "GITHUB_EVENT_PATH": str(payload),
            }
            run(["git", "checkout", "-q", "-B", "staging"], clone)
            pushers.append(_start(clone, env, "ci", "--json"))
        pushed = [_finish(p) for p in pushers]
        for code, _, err in pushed:
            assert code == 0, err[-3000:]
    assert _trainings(tmp_path) == Counter({c: 1 for c in C_VALUES})  # promotion trained nothing
    outcomes = [json.loads(out) for _, out, _ in pushed]
    versions = sorted(o["version"] for o in outcomes)
    assert versions == [f"v0.0.{n}" for n in range(1, 9)]
    run(["git", "fetch", "-q", "--tags", "origin"], seed)
    state = tags.build_state(gitrepo.read_tags(seed))[name]
    assert sorted(state.versions) == versions
    assert len({state.versions[v].metadata["fingerprint"] for v in versions}) == 8
    client = MlflowClient(mlflow_server)
    model_versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(dict(v.tags)["mlci.git_tag"] for v in model_versions) == sorted(
        f"{name}@{v}" for v in versions
    )
    assigned = state.assignment_history("staging")
    assert len({e.counter for e in assigned}) == len(assigned)  # distinct names, nothing overwritten
    current = state.current("staging")
    assert current is not None
    staged = client.get_model_version_by_alias(name, "staging")
    assert dict(staged.tags)["mlci.git_tag"] == f"{name}@{current.version}"


def _wait_for_claim(server: str, name: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with_claims = [r for r in _runs_or_none(server, name) if r.info.status == "RUNNING"]
        if with_claims:
            return with_claims[0]
        time.sleep(0.3)
    raise AssertionError("no job claimed the inputs")


def _runs_or_none(server: str, name: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    if MlflowClient(server).get_experiment_by_name(name) is None:
        return []
    return _runs(server, name)


@pytest.mark.slow
@pytest.mark.parametrize("mlflow_server", ["postgresql"], indirect=True)
def test_a_second_job_waits_for_the_first_and_reuses_its_run(tmp_path: Path, mlflow_server: str) -> None:
    _, name = _seed(tmp_path)
    params = {"C": 0.5, "pause": 8}
    first_clone = _clone(tmp_path, "first", params)
    second_clone = _clone(tmp_path, "second", params)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "TRAININGS_LOG": str(tmp_path / "trainings.log"),
    }
    first = _start(first_clone, env, "train", "--json")
    claim = _wait_for_claim(mlflow_server, name)
    second = _start(second_clone, env, "train", "--json")
    code1, out1, err1 = _finish(first)
    code2, out2, err2 = _finish(second)
    assert code1 == 0 and code2 == 0, err1 + err2
    assert _trainings(tmp_path) == Counter({0.5: 1})
    assert json.loads(out1)["cached"] is False and json.loads(out2)["cached"] is True
    assert json.loads(out2)["run_id"] == json.loads(out1)["run_id"] == claim.info.run_id
    assert f"MLflow run {claim.info.run_id} of branch main on host" in err2
    assert "is training these inputs" in err2 and "waiting for it, up to 300s (tracking.wait)" in err2
    assert f"reusing run {claim.info.run_id}" in err2
    # The waiter's own claim left no trace among the experiment's runs.
    assert [r.info.run_id for r in _runs(mlflow_server, name)] == [claim.info.run_id]


@pytest.mark.slow
@pytest.mark.parametrize("mlflow_server", ["postgresql"], indirect=True)
def test_a_crashed_first_job_does_not_block_the_second(tmp_path: Path, mlflow_server: str) -> None:
    _, name = _seed(tmp_path)
    clone = _clone(tmp_path, "job", {"C": 0.5})
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "TRAININGS_LOG": str(tmp_path / "trainings.log"),
    }
    first = _start(clone, {**env, "HANG": "1"}, "train")
    claim = _wait_for_claim(mlflow_server, name)
    deadline = time.monotonic() + 120
    while not _trainings(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)  # until its command trains
    os.killpg(first.pid, signal.SIGKILL)  # the job died: nothing marked its run
    first.wait(timeout=30)
    code, out, err = _finish(_start(clone, env, "train", "--json"))
    assert code == 0, err
    assert f"MLflow run {claim.info.run_id} of branch main on host" in err
    assert "is gone: marked KILLED" in err
    assert json.loads(out)["cached"] is False and _trainings(tmp_path) == Counter({0.5: 2})
    statuses = {r.info.run_id: r.info.status for r in _runs(mlflow_server, name)}
    assert statuses[claim.info.run_id] == "KILLED" and sorted(statuses.values()) == ["FINISHED", "KILLED"]


@pytest.mark.slow
@pytest.mark.parametrize("mlflow_server", ["postgresql"], indirect=True)
def test_claims_from_other_machines_expire_or_time_out(tmp_path: Path, mlflow_server: str) -> None:
    """A claim from another runner: silent for too long, it is abandoned; alive, it is
    waited for as long as tracking.wait says, then this job trains and says why."""
    from mlflow.tracking import MlflowClient

    _, name = _seed(tmp_path, wait=4)
    clone = _clone(tmp_path, "job", {"C": 0.5})
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "TRAININGS_LOG": str(tmp_path / "trainings.log"),
    }
    fingerprint = run(["mlci", "fingerprint"], clone).strip()
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment(name)

    def foreign_claim(heartbeat: float) -> str:
        made = client.create_run(
            experiment,
            tags={
                "mlci.fingerprint": fingerprint,
                "mlci.host": "runner-elsewhere",
                "mlci.pid": "4242",
                "mlci.pr": "99",
                "mlci.heartbeat": f"{heartbeat:.0f}",
            },
        )
        return str(made.info.run_id)

    silent = foreign_claim(time.time() - 1000)
    code, out, err = _finish(_start(clone, env, "train", "--json"))
    assert code == 0, err
    assert f"MLflow run {silent} of pull request #99 on host runner-elsewhere (pid 4242)" in err
    assert "claimed these inputs but no heartbeat for" in err
    assert client.get_run(silent).info.status == "KILLED"
    assert client.get_run(silent).data.tags["mlci.abandoned"].startswith("no heartbeat for")
    assert json.loads(out)["cached"] is False

    alive = foreign_claim(time.time())
    code, out, err = _finish(_start(clone, env, "train", "--json", "--no-cache"))
    assert code == 0 and json.loads(out)["cached"] is False, err
    assert "waiting" not in err  # --no-cache trains without asking who else does
    for finished in [r for r in _runs(mlflow_server, name) if r.info.status == "FINISHED"]:
        client.delete_run(finished.info.run_id)  # no cache hit for the next job
    code, out, err = _finish(_start(clone, env, "train", "--json"))
    assert code == 0, err
    assert f"MLflow run {alive} of pull request #99 on host runner-elsewhere (pid 4242) is training" in err
    assert "waiting for it, up to 4s (tracking.wait)" in err
    assert "still training the same inputs: training here instead" in err
    assert json.loads(out)["cached"] is False and _trainings(tmp_path) == Counter({0.5: 3})


def _claim(run_id: str, start: float | None, **tags: str) -> Any:
    from mlci.tracking import RunRecord

    return RunRecord(run_id, "1", "RUNNING", None if start is None else int(start * 1000), {}, {}, tags)


@pytest.mark.parametrize(
    ("tags", "start", "expected"),
    [
        ({"mlci.host": "me", "mlci.pid": "10"}, 990.0, None),  # alive here, fresh
        ({"mlci.host": "me", "mlci.pid": "11"}, 990.0, "its mlci (pid 11) on this host is gone"),
        ({"mlci.host": "other", "mlci.pid": "11"}, 990.0, None),  # another host's pid says nothing
        ({"mlci.host": "other", "mlci.heartbeat": "800"}, 990.0, "no heartbeat for 200s (more than 120s)"),
        ({"mlci.host": "other", "mlci.heartbeat": "950"}, 100.0, None),  # the heartbeat wins over the start
        ({"mlci.host": "other"}, 100.0, "no heartbeat for 900s (more than 120s)"),  # none: the start time
        ({"mlci.host": "other", "mlci.heartbeat": "soon"}, 990.0, None),  # unreadable: the start time
        ({}, None, None),  # nothing to judge by: never abandoned on a guess
    ],
)
def test_when_a_claim_is_abandoned(tags: dict[str, str], start: float | None, expected: str | None) -> None:
    from mlci import claims

    alive = {10}
    assert claims.abandoned(_claim("r", start, **tags), 1000.0, 120.0, "me", alive.__contains__) == expected


def test_the_oldest_claim_trains_and_ties_break_by_run_id() -> None:
    from mlci import claims

    assert claims.elect([]) is None
    runs = [_claim("b", 5.0), _claim("c", 3.0), _claim("a", 3.0)]
    elected = claims.elect(runs)
    assert elected is not None and elected.run_id == "a"
    assert claims.who(_claim("x", 1.0, **{"mlci.pr": "7", "mlci.host": "h", "mlci.pid": "3"})) == (
        "pull request #7 on host h (pid 3)"
    )
    assert claims.who(_claim("x", 1.0)) == "another job"
