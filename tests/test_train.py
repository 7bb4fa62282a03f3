"""mlci train against a real MLflow sqlite store and real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlci.errors import ExitCode
from tests.helpers import REPO_ROOT, run
from tests.lifecycle import CACHE_HIT_PROBE, client, make_project, set_params, train_json


def test_first_run_is_recorded_in_mlflow(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path)
    data, result = train_json(cli, root, "--pr", "12")
    assert data["cached"] is False
    assert data["metrics"] == {"accuracy": 0.9, "loss.val": 0.25}
    assert data["params"] == {"mode": "ok", "accuracy": 0.9}
    assert data["tracking_uri"] == f"sqlite:///{root / '.mlci' / 'mlflow.db'}"
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    assert data["git_commit"] == head
    assert len(data["fingerprint"]) == 64
    # The command's output streamed, to stderr under --json so stdout stays JSON.
    assert "training with" in result.err

    run_ = client(root).get_run(data["run_id"])
    assert run_.info.status == "FINISHED"
    assert run_.data.metrics == {"accuracy": 0.9, "loss.val": 0.25}
    assert run_.data.params == {"mode": "ok", "accuracy": "0.9"}
    tags = run_.data.tags
    assert tags["mlci.fingerprint"] == data["fingerprint"]
    assert tags["mlci.git.commit"] == head
    assert tags["mlci.git.branch"] == "main"
    assert tags["mlci.git.dirty"] == "false"
    assert tags["mlci.pr"] == "12"
    assert "mlci.overrides" not in tags
    artifacts = {a.path for a in client(root).list_artifacts(data["run_id"])}
    assert {"metrics.json", "params.json"} <= artifacts
    model = client(root).get_logged_model(data["model_id"])
    assert model.source_run_id == data["run_id"]
    assert str(model.status) == "READY"
    assert {a.path for a in client(root).list_logged_model_artifacts(data["model_id"])} == {
        "MLmodel",
        "weights.bin",
    }
    # The embedded store keeps everything under .mlci/, and the work folder is gone.
    assert not (root / "mlruns").exists()
    assert (root / ".mlci" / "artifacts").is_dir()
    assert not any((root / ".mlci" / "runs").iterdir())
    assert run(["git", "status", "--porcelain"], root) == ""


def test_cache_hit_reuses_the_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path)
    first, _ = train_json(cli, root)
    second, result = train_json(cli, root)
    assert second["cached"] is True
    assert second["run_id"] == first["run_id"]
    assert second["metrics"] == first["metrics"]
    assert "cache hit: run" in result.err
    assert "training with" not in result.err
    forced, _ = train_json(cli, root, "--no-cache")
    assert forced["cached"] is False
    assert forced["run_id"] != first["run_id"]
    assert forced["fingerprint"] == first["fingerprint"]
    # The newest finished run is the cache entry from now on.
    assert train_json(cli, root)[0]["run_id"] == forced["run_id"]


def test_changed_inputs_train_again_and_overrides_are_tagged(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path)
    first, _ = train_json(cli, root)
    overridden, _ = train_json(cli, root, "--set", "accuracy=0.95")
    assert overridden["cached"] is False
    assert overridden["metrics"]["accuracy"] == 0.95
    assert overridden["fingerprint"] != first["fingerprint"]
    assert json.loads(client(root).get_run(overridden["run_id"]).data.tags["mlci.overrides"]) == [
        "accuracy=0.95"
    ]
    set_params(root, accuracy=0.8)
    changed, _ = train_json(cli, root)
    assert changed["cached"] is False
    assert client(root).get_run(changed["run_id"]).data.tags["mlci.git.dirty"] == "true"


def test_command_environment(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dump = tmp_path / "env.json"
    root = make_project(tmp_path, env_dump=str(dump))
    data, _ = train_json(cli, root, "--set", "accuracy=0.7")
    env = json.loads(dump.read_text())
    assert env["MLFLOW_RUN_ID"] == data["run_id"]
    assert env["MLFLOW_TRACKING_URI"] == data["tracking_uri"]
    assert env["MLCI_OUTPUT_DIR"].startswith(str(root / ".mlci" / "runs"))
    assert env["MLCI_PARAMS_FILE"].endswith("params.json")


@pytest.mark.slow
def test_script_logging_to_mlflow_lands_in_mlcis_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path, mode="mlflow")
    data, _ = train_json(cli, root)
    metrics = client(root).get_run(data["run_id"]).data.metrics
    assert metrics["from_script"] == 7.0
    assert metrics["accuracy"] == 0.9
    assert len(client(root).search_runs([data["experiment_id"]])) == 1


def test_failed_command(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path, mode="fail")
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "exited with 2" in result.err
    assert "  | ValueError: the data is broken" in result.err
    assert "  | noise 29" in result.err
    assert "  | noise 5\n" not in result.err  # only the tail
    assert "Traceback" not in result.err.split("mlci: error:")[1]
    runs = client(root).search_runs(["1"])
    assert [r.info.status for r in runs] == ["FAILED"]
    # A failed run is never a cache hit: the next attempt trains.
    again = cli("train", cwd=root)
    assert again.code == ExitCode.ERROR
    assert len(client(root).search_runs(["1"])) == 2
    set_params(root, mode="ok")
    data, _ = train_json(cli, root)
    assert data["cached"] is False


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("no_metrics", "wrote no file 'metrics.json' (train.metrics in mlci.yaml)"),
        ("no_model", "wrote no output 'model' (train.model in mlci.yaml)"),
        ("nan", "metric 'accuracy' is nan, not a finite number"),
    ],
)
def test_missing_or_bad_outputs(cli, tmp_path: Path, mode: str, message: str) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path, mode=mode)
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR
    assert message in result.err
    assert "hint:" in result.err
    assert [r.info.status for r in client(root).search_runs(["1"])] == ["FAILED"]


def test_outputs_in_the_project_folder_and_stale_files(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path, mode="legacy")
    data, _ = train_json(cli, root)  # a command that ignores MLCI_OUTPUT_DIR still works
    assert data["metrics"]["accuracy"] == 0.9
    # Now a command that writes nothing: the metrics.json left by the last run must not count.
    set_params(root, mode="no_metrics")
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "is left over from an earlier run" in result.err
    assert "train.metrics" in result.err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_kills_the_command_and_marks_the_run(tmp_path: Path, sig: signal.Signals) -> None:
    marker = tmp_path / "started"
    root = make_project(tmp_path, mode="sleep", marker=str(marker))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlci", "train"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():  # wait for a condition, not for time
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the training command never started"
        time.sleep(0.05)
    child = int(marker.read_text())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "marked KILLED" in err
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert [r.info.status for r in client(root).search_runs(["1"])] == ["KILLED"]


@pytest.mark.slow
def test_cache_hit_does_not_import_mlflow(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    first = subprocess.run(
        [sys.executable, "-m", "mlci", "train", "--json"], cwd=root, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    probe = subprocess.run([sys.executable, "-c", CACHE_HIT_PROBE], cwd=root, capture_output=True, text=True)
    report = json.loads(probe.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "mlflow": False}
    assert json.loads(probe.stdout)["run_id"] == json.loads(first.stdout)["run_id"]


def test_sqlite_fast_path_agrees_with_mlflow_client(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlci.tracking import Tracking

    root = make_project(tmp_path)
    data, _ = train_json(cli, root)
    tracking = Tracking(data["tracking_uri"], "demo", artifact_root=None, environ={})
    fast = tracking.find_finished_run(data["fingerprint"])
    assert tracking.fast_path_used == "sqlite"
    slow = tracking._client_find("mlci.fingerprint", data["fingerprint"], skip_overrides=False)
    assert fast == slow
    assert tracking.find_finished_run("0" * 64) is None
    client(root).delete_run(data["run_id"])
    assert tracking.find_finished_run(data["fingerprint"]) is None  # a deleted run is no cache


def test_run_at_commit_fast_path_skips_overrides_like_the_client(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlci.tracking import Tracking

    root = make_project(tmp_path)
    data, _ = train_json(cli, root)
    train_json(cli, root, "--set", "accuracy=0.5")  # newer, same commit, not the commit's run
    tracking = Tracking(data["tracking_uri"], "demo", artifact_root=None, environ={})
    fast = tracking.find_run_at_commit(data["git_commit"])
    assert tracking.fast_path_used == "sqlite"
    assert fast is not None and fast.run_id == data["run_id"]
    assert fast == tracking._client_find("mlci.git.commit", data["git_commit"], skip_overrides=True)
    assert tracking.find_run_at_commit("0" * 40) is None


READ_PROBE = """
import json, sys
from mlci.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "mlflow": "mlflow" in sys.modules}), file=sys.stderr)
"""


@pytest.mark.slow
def test_read_paths_do_not_import_mlflow(tmp_path: Path) -> None:
    """diff, gate, report, show and history answer from git and the fast paths."""
    root = make_project(tmp_path)  # main's commit: never trained
    run(["git", "checkout", "-q", "-b", "feature"], root)
    set_params(root, accuracy=0.8)
    run(["git", "commit", "-qam", "feature"], root)
    trained = subprocess.run(
        [sys.executable, "-m", "mlci", "train"], cwd=root, capture_output=True, text=True
    )
    assert trained.returncode == 0, trained.stderr
    for args in (
        ["diff", "--base", "main"],  # the base: no run by inputs, none at the commit
        ["gate", "--env", "staging"],
        ["report", "--base", "main", "--format", "json"],
        ["show"],
        ["history"],
        ["ci", "--event", "pull_request", "--base", "main", "--pr", "5"],  # the pull-request flow
    ):
        probe = subprocess.run(
            [sys.executable, "-c", READ_PROBE, *args], cwd=root, capture_output=True, text=True
        )
        report = json.loads(probe.stderr.strip().splitlines()[-1])
        assert report == {"code": 0, "mlflow": False}, (args, probe.stderr)


def test_no_params_file_and_bad_params(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path)
    (root / "params.yaml").unlink()
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "params file" in result.err and "does not exist (train.params in mlci.yaml)" in result.err
    (root / "params.yaml").write_text("- a list\n")
    assert "must hold a mapping" in cli("train", cwd=root).err


def test_scaffolded_classifier_trains_for_real(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "churn"
    assert cli("init", str(target), "--git").code == ExitCode.OK
    data, _ = train_json(cli, target)
    assert data["cached"] is False
    assert data["metrics"]["accuracy"] > 0.95
    assert set(data["metrics"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
    from mlflow.pyfunc import load_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", data["tracking_uri"])
    model = load_model(f"models:/{data['model_id']}")
    from sklearn.datasets import load_breast_cancer

    features, _ = load_breast_cancer(return_X_y=True)
    assert len(model.predict(features[:3])) == 3
    again, _ = train_json(cli, target)
    assert again["cached"] is True and again["run_id"] == data["run_id"]
    assert (REPO_ROOT / "templates").is_dir()


FAST_START_PROBE = """
import json, sys
from pathlib import Path
from mlci.tracking import Tracking
from tests.lifecycle import CACHE_HIT_PROBE, client, make_project, set_params, train_json
tracking = Tracking(sys.argv[1], "demo", artifact_root=Path(sys.argv[2]), environ={})
started = tracking.start_run_fast(run_name="probe", tags={"mlci.fingerprint": "f" * 64, "k": "v"})
print(json.dumps({"started": started, "mlflow": "mlflow" in sys.modules}))
"""


def test_a_fresh_store_and_its_first_run_are_made_without_mlflow_as_the_client_makes_them(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A fresh project: the store (from mlci/schemas), the experiment and the run, with no
    MLflow imported; then MLflow opens that store as its own, and its client's run and
    experiment match the fast path's field by field."""
    import sqlite3

    from mlci.tracking import Tracking

    root = make_project(tmp_path)
    db, artifacts = root / ".mlci" / "mlflow.db", root / ".mlci" / "artifacts"
    uri = f"sqlite:///{db}"
    probe = subprocess.run(
        [sys.executable, "-c", FAST_START_PROBE, uri, str(artifacts)], capture_output=True, text=True
    )
    report = json.loads(probe.stdout)
    assert report["mlflow"] is False and report["started"] is not None, probe.stderr
    run_id, experiment_id = report["started"]
    assert db.is_file()

    by_client = Tracking(uri, "demo-by-client", artifact_root=artifacts, environ={})
    made_id = by_client.start_run(run_name="made", tags={"k": "v"})
    fast, made = client(root).get_run(run_id), client(root).get_run(made_id)
    assert fast.info.status == made.info.status == "RUNNING" and fast.info.run_name == "probe"
    assert fast.info.experiment_id == experiment_id
    assert fast.info.user_id == made.info.user_id and fast.info.lifecycle_stage == made.info.lifecycle_stage
    assert fast.info.artifact_uri == made.info.artifact_uri.replace(made_id, run_id)
    assert fast.data.tags["k"] == "v" and fast.data.tags["mlflow.runName"] == "probe"
    with sqlite3.connect(db) as connection:
        rows = dict(connection.execute("SELECT name, artifact_location FROM experiments"))
        columns = connection.execute(
            "SELECT name, lifecycle_stage, workspace, creation_time > 0, last_update_time > 0 FROM experiments"
        ).fetchall()
    assert rows == {
        "Default": rows["Default"],  # MLflow added its Default experiment (0) when it opened the store
        "demo": artifacts.resolve().as_uri(),
        "demo-by-client": artifacts.resolve().as_uri(),
    }
    assert {c[1:] for c in columns} == {("active", "default", 1, 1)}
    assert client(root).get_experiment("0").name == "Default"
    assert client(root).get_experiment(experiment_id).name == "demo"

    # The whole command on that store: trains, finishes the run, caches.
    data, _ = train_json(cli, root)
    finished = client(root).get_run(data["run_id"])
    assert finished.info.status == "FINISHED" and data["model_id"]
    assert train_json(cli, root)[0]["cached"] is True


def test_a_run_is_created_without_mlflow_and_reads_back_like_the_clients(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path)
    data, _ = train_json(cli, root)
    uri = data["tracking_uri"]
    probe = subprocess.run(
        [sys.executable, "-c", FAST_START_PROBE, uri, str(root / ".mlci" / "artifacts")],
        capture_output=True,
        text=True,
    )
    report = json.loads(probe.stdout)
    assert report["mlflow"] is False and report["started"] is not None, probe.stderr
    run_id, experiment_id = report["started"]
    fast = client(root).get_run(run_id)
    made = client(root).get_run(data["run_id"])
    assert fast.info.status == "RUNNING" and fast.info.run_name == "probe"
    assert fast.info.experiment_id == experiment_id == made.info.experiment_id
    assert fast.info.artifact_uri == made.info.artifact_uri.replace(data["run_id"], run_id)
    assert fast.info.user_id == made.info.user_id and fast.info.lifecycle_stage == "active"
    assert fast.data.tags["k"] == "v" and fast.data.tags["mlflow.runName"] == "probe"
    # A retrain uses it, and the run ends FINISHED with its model, as a client-made one does.
    again, _ = train_json(cli, root, "--no-cache")
    finished = client(root).get_run(again["run_id"])
    assert finished.info.status == "FINISHED" and again["model_id"]
    assert finished.data.metrics == made.data.metrics


def test_a_store_whose_tables_the_rows_do_not_fit_goes_through_mlflow(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from mlci import store_template
    from mlci.tracking import Tracking

    monkeypatch.setenv("MLCI_CACHE_DIR", str(tmp_path / "cache"))
    root = make_project(tmp_path)
    data, _ = train_json(cli, root)
    db = root / ".mlci" / "mlflow.db"
    tracking = Tracking(data["tracking_uri"], "demo", artifact_root=None, environ={})
    assert tracking.start_run_fast(run_name="x", tags={}) is not None
    with sqlite3.connect(db) as connection:  # another revision, the same tables: still fits
        connection.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
    assert tracking.start_run_fast(run_name="x", tags={}) is not None
    with sqlite3.connect(db) as connection:  # a column the run's row fills is gone
        connection.execute("ALTER TABLE runs RENAME COLUMN source_type TO source_kind")
    assert tracking.start_run_fast(run_name="x", tags={}) is None
    assert (
        Tracking(data["tracking_uri"], "new", artifact_root=None, environ={}).start_run_fast(
            run_name="x", tags={}
        )
        is None
    )  # a new experiment with no artifact folder of mlci's: MLflow makes it
    # A fresh store where the installed MLflow's schema cannot be made as it says (its
    # migrations make another revision): nothing is made, and MLflow's client makes it.
    monkeypatch.setattr(store_template, "installed_mlflow_schema", lambda: "from-the-future")
    fresh = tmp_path / "fresh" / "mlflow.db"
    assert (
        Tracking(f"sqlite:///{fresh}", "demo", artifact_root=tmp_path, environ={}).start_run_fast(
            run_name="x", tags={}
        )
        is None
    )
    assert not fresh.exists()


@pytest.mark.slow
def test_the_program_exits_early_with_its_code_and_all_its_output(tmp_path: Path) -> None:
    """`python -m mlci` ends the process once MLflow is loaded (os._exit): nothing is lost."""
    root = make_project(tmp_path)
    ok = subprocess.run(
        [sys.executable, "-m", "mlci", "train", "--json"], cwd=root, capture_output=True, text=True
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["cached"] is False
    assert "recorded MLflow run" in ok.stderr
    set_params(root, mode="fail")
    failed = subprocess.run([sys.executable, "-m", "mlci", "train"], cwd=root, capture_output=True, text=True)
    assert failed.returncode == ExitCode.ERROR and "hint:" in failed.stderr


def test_no_import_of_mlflow_runs_beside_the_warm_ups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads importing MLflow's circular modules at once can be handed each other's
    half-made module: every import of MLflow waits until a background warm-up is done."""
    import threading

    from mlci import tracking as trk

    events: list[str] = []
    opened = threading.Event()

    def slow_open(self: trk.Tracking) -> object:
        events.append("warm-up starts importing")
        opened.set()
        time.sleep(0.5)
        events.append("warm-up done")
        return object()

    monkeypatch.setattr(trk.Tracking, "_open_client", slow_open)
    tracking = trk.Tracking(f"sqlite:///{tmp_path / 'm.db'}", "x", artifact_root=None, environ={})
    tracking.warm_up()
    assert opened.wait(10)
    trk._mlflow_loaded()  # what each import of MLflow in mlci.tracking does first
    events.append("main thread imports")
    assert events == ["warm-up starts importing", "warm-up done", "main thread imports"]
    source = (REPO_ROOT / "mlci" / "tracking.py").read_text().splitlines()
    imports = [
        i for i, line in enumerate(source) if line.strip().startswith(("from mlflow", "import mlflow"))
    ]
    guarded = [
        i for i in imports if source[i - 1].strip() == "_mlflow_loaded()" or "MlflowClient" in source[i]
    ]
    assert imports and guarded == imports
