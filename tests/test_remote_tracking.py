"""mlci against a real MLflow tracking server on 127.0.0.1, with proxied artifacts: each
test runs twice, on a sqlite backend and on PostgreSQL (the ``mlflow_server`` fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlci.errors import ExitCode
from tests.lifecycle import CACHE_HIT_PROBE, make_project, set_params


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch, mlflow_server: str) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return mlflow_server


def _experiment(root: Path) -> str:
    # Each test gets its own experiment on the shared server.
    name = f"demo-{uuid.uuid4().hex[:8]}"
    text = (root / "mlci.yaml").read_text()
    (root / "mlci.yaml").write_text(text + f"tracking:\n  experiment: {name}\n")
    return name


@pytest.mark.slow
def test_train_cache_hit_and_failure_against_a_server(cli, tmp_path: Path, remote: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    root = make_project(tmp_path)
    experiment = _experiment(root)
    first = cli("train", "--json", cwd=root)
    assert first.code == ExitCode.OK, first.err
    data = json.loads(first.out)
    assert data["tracking_uri"] == remote
    assert data["run_url"] == f"{remote}/#/experiments/{data['experiment_id']}/runs/{data['run_id']}"
    client = MlflowClient(remote)
    run = client.get_run(data["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlci.fingerprint"] == data["fingerprint"]
    assert {a.path for a in client.list_artifacts(data["run_id"])} >= {
        "metrics.json",
        "params.json",
    }
    assert {a.path for a in client.list_logged_model_artifacts(data["model_id"])} == {
        "MLmodel",
        "weights.bin",
    }
    assert client.get_experiment_by_name(experiment).experiment_id == data["experiment_id"]
    assert not (root / ".mlci" / "mlflow.db").exists()  # nothing went to the embedded store

    # Cache hit through MLflow's REST API, without importing mlflow.
    probe = subprocess.run([sys.executable, "-c", CACHE_HIT_PROBE], cwd=root, capture_output=True, text=True)
    assert json.loads(probe.stderr.strip().splitlines()[-1]) == {"code": 0, "mlflow": False}
    hit = json.loads(probe.stdout)
    assert hit["cached"] is True
    assert hit["run_id"] == data["run_id"]
    assert hit["metrics"] == data["metrics"]

    set_params(root, mode="fail")
    failed = cli("train", cwd=root)
    assert failed.code == ExitCode.ERROR
    assert "ValueError: the data is broken" in failed.err
    statuses = sorted(r.info.status for r in client.search_runs([data["experiment_id"]]))
    assert statuses == ["FAILED", "FINISHED"]


@pytest.mark.slow
def test_rest_fast_path_agrees_with_mlflow_client(cli, tmp_path: Path, remote: str) -> None:  # type: ignore[no-untyped-def]
    from mlci.tracking import Tracking

    root = make_project(tmp_path)
    experiment = _experiment(root)
    data = json.loads(cli("train", "--json", cwd=root).out)
    tracking = Tracking(remote, experiment, artifact_root=None, environ={})
    fast = tracking.find_finished_run(data["fingerprint"])
    assert tracking.fast_path_used == "rest"
    assert fast is not None
    slow = tracking._client_find("mlci.fingerprint", data["fingerprint"], skip_overrides=False)
    assert fast == slow
    assert (
        Tracking(remote, "no-such-experiment", artifact_root=None, environ={}).find_finished_run("0" * 64)
        is None
    )
    # The run of a commit skips runs trained with --set, as the client's search does.
    cli("train", "--set", "accuracy=0.5", "--json", cwd=root)
    commit = data["git_commit"]
    at_commit = tracking.find_run_at_commit(commit)
    assert tracking.fast_path_used == "rest" and at_commit is not None
    assert at_commit == tracking._client_find("mlci.git.commit", commit, skip_overrides=True)
    assert at_commit.run_id == data["run_id"]
    # A run created through the REST API reads back like one the client made.
    started = tracking.start_run_fast(run_name="fast", tags={"k": "v"})
    assert started is not None and started[1] == data["experiment_id"]
    from mlflow.tracking import MlflowClient

    fast = MlflowClient(remote).get_run(started[0])
    assert fast.info.status == "RUNNING" and fast.info.run_name == "fast" and fast.data.tags["k"] == "v"


def test_unreachable_server_is_a_clear_error(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    root = make_project(tmp_path)
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR, result.err
    assert f"the tracking server http://127.0.0.1:{port} did not answer" in result.err
    assert "hint: check that the server is running" in result.err
    assert "Traceback" not in result.err


@pytest.mark.slow
def test_versions_on_a_server_are_verified_and_pulled_from_it(cli, tmp_path: Path, remote: str) -> None:  # type: ignore[no-untyped-def]
    """With a tracking server, the server keeps a version's bytes: another
    machine (a fresh clone, an empty .mlci/) promotes and pulls them, checked
    by digest, and `models:/NAME@ENV` resolves to the same files."""
    import mlflow.artifacts

    from mlci import archive
    from tests.helpers import run
    from tests.lifecycle import commit, project

    root = project(tmp_path)
    name = f"demo-{uuid.uuid4().hex[:8]}"
    (root / "mlci.yaml").write_text((root / "mlci.yaml").read_text().replace("name: demo", f"name: {name}"))
    commit(root, "a model name of its own on the shared server")
    run(["git", "push", "-q", "origin", "main"], root)
    trained = json.loads(cli("train", "--json", cwd=root).out)
    registered = cli("register", "--json", cwd=root)
    assert registered.code == ExitCode.OK, registered.err
    assert json.loads(registered.out)["store"] == "mlflow"

    other = tmp_path / "elsewhere"
    run(["git", "clone", "-q", str(tmp_path / "remote.git"), str(other)], tmp_path)
    promoted = cli("promote", "staging", "--json", cwd=other)
    assert promoted.code == ExitCode.OK, promoted.err
    assert f"verified {name}@v0.0.1: sha256 {trained['model_sha256'][:12]}" in promoted.err
    assert "rebuilt" not in promoted.err  # the server has the model version already
    pulled = cli("pull", f"{name}#staging", "--json", "--output", str(tmp_path / "m"), cwd=other)
    assert pulled.code == ExitCode.OK, pulled.err
    assert json.loads(pulled.out)["sha256"] == trained["model_sha256"]
    assert not (other / ".mlci" / "mlflow.db").exists()
    served = mlflow.artifacts.download_artifacts(
        f"models:/{name}@staging", dst_path=str(tmp_path / "served"), tracking_uri=remote
    )
    # MLflow's client before 3.18 adds its own registered_model_meta file to what it serves.
    (Path(served) / "registered_model_meta").unlink(missing_ok=True)
    assert archive.digest_folder(Path(served)).sha256 == trained["model_sha256"]

    # doctor reads the server's registry against the tags, and repairs it there.
    healthy = cli("doctor", "--json", cwd=other)
    assert healthy.code == ExitCode.OK and json.loads(healthy.out)["healthy"] is True, healthy.out
    from mlflow.tracking import MlflowClient

    MlflowClient(remote).delete_registered_model_alias(name, "staging")
    drifted = cli("doctor", "--json", cwd=other)
    assert drifted.code == ExitCode.GATE_FAILED
    assert [p["kind"] for p in json.loads(drifted.out)["problems"]] == ["alias_mismatch"]
    assert json.loads(cli("doctor", "--fix", "--json", cwd=other).out)["healthy"] is True
    assert MlflowClient(remote).get_model_version_by_alias(name, "staging").version == "1"


@pytest.mark.slow
def test_repeats_group_under_a_parent_on_a_server(cli, tmp_path: Path, remote: str) -> None:  # type: ignore[no-untyped-def]
    """train.repeats against a server: the children are made through its REST API as the
    parent is, grouped under it, and the cache finds the parent alone."""
    from mlflow.tracking import MlflowClient

    from tests.lifecycle import repeating_project as _repeating_project

    root, log = _repeating_project(tmp_path)
    _experiment(root)
    first = cli("train", "--json", cwd=root)
    assert first.code == ExitCode.OK, first.err
    data = json.loads(first.out)
    client = MlflowClient(remote)
    children = client.search_runs(
        [data["experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{data['run_id']}'"
    )
    assert sorted(r.data.tags["mlci.seed"] for r in children) == ["0", "1", "2", "3", "4"]
    assert {r.info.status for r in children} == {"FINISHED"}
    assert "mlci.fingerprint" not in children[0].data.tags  # the cache never finds a repeat
    assert json.loads(client.get_run(data["run_id"]).data.tags["mlci.repeats"])["seeds"] == [0, 1, 2, 3, 4]
    again = cli("train", "--json", cwd=root)
    assert json.loads(again.out)["cached"] is True and json.loads(again.out)["run_id"] == data["run_id"]
    assert len(log.read_text().splitlines()) == 5
