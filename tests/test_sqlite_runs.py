"""A run's results written into the embedded store without MLflow's client
(mlci.sqlite_runs) read back exactly as the client's own writes do: through
MlflowClient, and row by row in the store. Where the rows would not be the client's
(a name MLflow refuses, a changed param, a store of another shape, artifacts elsewhere),
nothing is written and the client does it."""

from __future__ import annotations

import math
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from mlci import sqlite_runs
from mlci.errors import TrackingError
from mlci.tracking import MODEL_ID_TAG, Tracking
from tests.helpers import probe, run

PARAMS = {"alpha": 0.5, "layers": [1, 2], "name": "ridge", "nested.key": "x"}
METRICS = {"accuracy": 0.93, "loss": float("nan"), "big": float("inf"), "small": float("-inf"), "zero": 0.0}
TAGS = {"mlci.fingerprint": "f" * 64, "team": "fraud", "mlci.git.commit": "a" * 40}


def _store(tmp_path: Path) -> tuple[Tracking, Path]:
    db = tmp_path / "store" / "mlflow.db"
    tracking = Tracking(f"sqlite:///{db}", "demo", artifact_root=tmp_path / "artifacts", environ={})
    tracking.start_run(run_name="first", tags={})  # MLflow's own store, experiment and migrations
    return tracking, db


def _inputs(tmp_path: Path) -> tuple[list[Path], Path]:
    folder = tmp_path / "inputs"
    (folder / "model" / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "model" / "MLmodel").write_text("flavors: {}\n")
    (folder / "model" / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (folder / "model" / "sub" / "weights.bin").chmod(0o600)  # MLflow copies a model's bytes, not its modes
    (folder / "metrics.json").write_text('{"accuracy": 0.93}')
    (folder / "predictions.csv").write_text("id,label\n1,0\n")
    (folder / "predictions.csv").chmod(0o640)
    return [folder / "metrics.json", folder / "predictions.csv"], folder / "model"


def _log(
    tracking: Tracking, run_id: str, files: list[Path], model: Path | None, **changes: Any
) -> str | None:
    arguments: dict[str, Any] = {
        "params": PARAMS,
        "metrics": METRICS,
        "files": files,
        "model_dir": model,
        "model_name": "churn/v2",
        "tags": TAGS,
        **changes,
    }
    return tracking.log_results(run_id, **arguments)


def _by_client(monkeypatch: pytest.MonkeyPatch, tracking: Tracking, run_id: str, *args: Any) -> str | None:
    with monkeypatch.context() as patched:
        patched.setattr(sqlite_runs, "log_results", lambda *a, **k: None)
        return _log(tracking, run_id, *args)


def _rows(db: Path, run_id: str, model_id: str | None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the run and its model, ids and times left out."""
    with sqlite3.connect(db) as connection:
        return {
            "params": sorted(
                connection.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))
            ),
            "metrics": sorted(
                connection.execute(
                    "SELECT key, value, step, is_nan FROM metrics WHERE run_uuid = ?", (run_id,)
                )
            ),
            "latest": sorted(
                connection.execute(
                    "SELECT key, value, step, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,)
                )
            ),
            "tags": sorted(
                connection.execute(
                    "SELECT key, value FROM tags WHERE run_uuid = ? AND key NOT IN (?, 'mlflow.runName')",
                    (run_id, MODEL_ID_TAG),
                )
            ),
            "run": list(
                connection.execute(
                    "SELECT status, end_time IS NOT NULL, end_time >= start_time, lifecycle_stage "
                    "FROM runs WHERE run_uuid = ?",
                    (run_id,),
                )
            ),
            "model": list(
                connection.execute(
                    "SELECT experiment_id, name, status, lifecycle_stage, model_type, status_message, "
                    "replace(artifact_location, model_id, 'M'), source_run_id = ?, "
                    "creation_timestamp_ms <= last_updated_timestamp_ms FROM logged_models WHERE model_id = ?",
                    (run_id, model_id),
                )
            ),
            "model_rows": [
                tuple(
                    connection.execute(
                        f"SELECT count(*) FROM {table} WHERE model_id = ?", (model_id,)
                    ).fetchone()
                )
                for table in ("logged_model_tags", "logged_model_params", "logged_model_metrics")
            ],
        }


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(root)): (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_the_rows_and_files_are_the_ones_mlflows_client_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking, db = _store(tmp_path)
    files, model = _inputs(tmp_path)
    made = tracking.start_run(run_name="made", tags={})
    fast = tracking.start_run(run_name="fast", tags={})
    for run_id in (made, fast):  # the training code logged a param itself (the same value)
        tracking.client.log_param(run_id, "alpha", "0.5")
    made_model = _by_client(monkeypatch, tracking, made, files, model)
    answers = []
    write = sqlite_runs.log_results
    monkeypatch.setattr(
        sqlite_runs, "log_results", lambda *a, **k: answers.append(write(*a, **k)) or answers[-1]
    )
    fast_model = _log(tracking, fast, files, model)
    assert answers == [(fast_model,)]  # written by mlci, not by the client after a refusal
    assert made_model and fast_model and made_model != fast_model

    assert _rows(db, fast, fast_model) == _rows(db, made, made_model)
    client = tracking.client
    by_client, by_mlci = client.get_run(made), client.get_run(fast)
    assert by_mlci.info.status == by_client.info.status == "FINISHED"
    assert by_mlci.data.params == by_client.data.params
    assert by_mlci.data.tags[MODEL_ID_TAG] == fast_model
    assert {k: v for k, v in by_mlci.data.tags.items() if k != MODEL_ID_TAG} == {
        **{k: v for k, v in by_client.data.tags.items() if k != MODEL_ID_TAG},
        "mlflow.runName": "fast",
    }
    assert set(by_mlci.data.metrics) == set(METRICS)
    for key, value in by_client.data.metrics.items():
        assert by_mlci.data.metrics[key] == value or (
            math.isnan(value) and math.isnan(by_mlci.data.metrics[key])
        )
    history = client.get_metric_history(fast, "accuracy")
    assert [(m.value, m.step) for m in history] == [(0.93, 0)]
    logged, expected = client.get_logged_model(fast_model), client.get_logged_model(made_model)
    assert (logged.status, logged.name, logged.source_run_id) == (expected.status, "churn-v2", fast)
    assert logged.artifact_location == expected.artifact_location.replace(made_model, fast_model)
    assert [a.path for a in client.list_logged_model_artifacts(fast_model)] == [
        a.path for a in client.list_logged_model_artifacts(made_model)
    ]
    assert sorted(a.path for a in client.list_artifacts(fast)) == ["metrics.json", "predictions.csv"]

    root = tmp_path / "artifacts"
    assert _tree(root / "models" / fast_model) == _tree(root / "models" / made_model)
    assert _tree(root / fast / "artifacts") == _tree(root / made / "artifacts")
    assert _tree(root / fast / "artifacts")["predictions.csv"][1] == 0o640
    downloaded = client.download_artifacts(fast, "predictions.csv", str(tmp_path))
    assert Path(downloaded).read_text() == "id,label\n1,0\n"


def test_a_run_without_a_model_and_a_metric_logged_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No logged model; the code logged the metric at a later step, which stays the latest
    value, as MLflow's store keeps it."""
    tracking, db = _store(tmp_path)
    made, fast = (tracking.start_run(run_name=n, tags={}) for n in ("made", "fast"))
    for run_id in (made, fast):
        tracking.client.log_metric(run_id, "accuracy", 0.5, step=7)
    assert _by_client(monkeypatch, tracking, made, [], None) is None
    assert _log(tracking, fast, [], None) is None
    assert _rows(db, fast, None) == _rows(db, made, None)
    assert tracking.client.get_run(fast).data.metrics["accuracy"] == 0.5
    assert len(tracking.client.get_metric_history(fast, "accuracy")) == 2


def _deleted(tracking: Tracking, run_id: str, db: Path) -> None:
    tracking.client.delete_run(run_id)


def _elsewhere(tracking: Tracking, run_id: str, db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE runs SET artifact_uri = 's3://bucket/x' WHERE run_uuid = ?", (run_id,))


def _renamed_column(tracking: Tracking, run_id: str, db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE latest_metrics RENAME COLUMN is_nan TO nan")


def _new_required_column(tracking: Tracking, run_id: str, db: Path) -> None:
    with sqlite3.connect(db) as connection:  # a NOT NULL column without a default: rows need a value
        connection.execute("DROP TABLE params")
        connection.execute(
            "CREATE TABLE params (key TEXT NOT NULL, value TEXT NOT NULL, run_uuid TEXT, scope TEXT NOT NULL)"
        )


def _changed_param(tracking: Tracking, run_id: str, db: Path) -> None:
    tracking.client.log_param(run_id, "alpha", "1.0")


DECLINED = [
    ("a key MLflow refuses", {"params": {"bad!key": 1}}, None, "Invalid value"),
    ("a key that is not its own path", {"metrics": {"a/../b": 1.0}}, None, "would resolve"),
    ("a key that is empty", {"tags": {"": "x"}}, None, None),
    ("too many params for one batch", {"params": {f"p{i}": i for i in range(101)}}, None, None),
    ("a tag past MLflow's length", {"tags": {"long": "x" * 8001}}, None, None),
    ("the run name as a tag", {"tags": {"mlflow.runName": "renamed"}}, None, None),
    ("a logged model name MLflow refuses", {"model_name": "churn.v2"}, None, "Invalid model name"),
    ("a param logged with another value", {}, _changed_param, "Changing param values is not allowed"),
    ("a deleted run", {}, _deleted, "must be in the 'active' state"),
    ("artifacts on an object store", {}, _elsewhere, None),
    ("a column of another name", {}, _renamed_column, None),
    ("a column mlci does not fill", {}, _new_required_column, None),
]


@pytest.mark.parametrize(("why", "changes", "before", "client_says"), DECLINED, ids=[d[0] for d in DECLINED])
def test_what_the_rows_would_not_fit_is_left_to_mlflows_client(
    tmp_path: Path, why: str, changes: dict[str, Any], before: Any, client_says: str | None
) -> None:
    tracking, db = _store(tmp_path)
    files, model = _inputs(tmp_path)
    run_id = tracking.start_run(run_name="r", tags={})
    if before is not None:
        before(tracking, run_id, db)
    arguments: dict[str, Any] = {
        "params": {k: str(v) for k, v in PARAMS.items()},
        "metrics": METRICS,
        "tags": TAGS,
        "files": files,
        "model_dir": model,
        "model_name": "churn-v2",
        **changes,
    }
    arguments["params"] = {k: str(v) for k, v in arguments["params"].items()}
    with sqlite3.connect(db) as connection:
        rows_before = connection.execute("SELECT count(*) FROM params").fetchone()
    assert sqlite_runs.log_results(db, run_id, model_id_tag=MODEL_ID_TAG, **arguments) is None
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM params").fetchone() == rows_before
        assert connection.execute("SELECT count(*) FROM logged_models").fetchone() == (0,)
    assert not (tmp_path / "artifacts" / "models").exists()  # nothing copied for the client to copy again
    if client_says is not None:  # and the client, which does it instead, says why in its words
        with pytest.raises(TrackingError, match=client_says):
            tracking.log_results(run_id, **arguments)


def test_a_failed_write_leaves_no_row_and_no_model_folder(tmp_path: Path) -> None:
    tracking, db = _store(tmp_path)
    files, model = _inputs(tmp_path)
    run_id = tracking.start_run(run_name="r", tags={})
    with sqlite3.connect(db) as connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON logged_models BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        sqlite_runs.log_results(
            db,
            run_id,
            params={"alpha": "1"},
            metrics={"accuracy": 0.9},
            tags={},
            files=files,
            model_dir=model,
            model_name="churn",
            model_id_tag=MODEL_ID_TAG,
        )
    assert not any((tmp_path / "artifacts" / "models").iterdir())
    record = tracking.client.get_run(run_id)
    assert record.info.status == "RUNNING" and not record.data.params and not record.data.metrics


def test_tags_and_ends_of_runs_are_the_clients(tmp_path: Path) -> None:
    tracking, db = _store(tmp_path)
    run_id = tracking.start_run(run_name="r", tags={"k": "old"})
    assert sqlite_runs.set_tag(db, run_id, "k", "new") and sqlite_runs.set_tag(db, run_id, "other", "v")
    assert not sqlite_runs.set_tag(db, run_id, "bad!", "v") and not sqlite_runs.set_tag(
        db, "0" * 32, "k", "v"
    )
    assert sqlite_runs.end_run(db, run_id, "KILLED")
    record = tracking.client.get_run(run_id)
    assert record.info.status == "KILLED" and record.info.end_time >= record.info.start_time
    assert record.data.tags["k"] == "new" and record.data.tags["other"] == "v"
    tracking.client.delete_run(run_id)
    assert not sqlite_runs.end_run(db, run_id, "FAILED")


REAP_PROBE = """
import json, sys
from pathlib import Path
from mlci.tracking import Tracking
reaped = Tracking(sys.argv[1], "demo", artifact_root=None, environ={}).reap_abandoned(lambda m: None)
print(json.dumps({"reaped": reaped, "mlflow": "mlflow" in sys.modules}))
"""


def test_runs_left_running_by_a_dead_mlci_are_reaped_without_mlflow(tmp_path: Path) -> None:
    import json

    from mlci.tracking import ABANDONED_TAG, owner_tags

    tracking, _ = _store(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    mine = owner_tags()
    orphan = tracking.start_run(run_name="orphan", tags={**mine, "mlci.pid": dead.stdout.strip()})
    alive = tracking.start_run(run_name="alive", tags=mine)
    other_host = tracking.start_run(
        run_name="far", tags={"mlci.host": "elsewhere", "mlci.pid": dead.stdout.strip()}
    )
    proc = subprocess.run(
        [sys.executable, "-c", REAP_PROBE, tracking.uri], capture_output=True, text=True, cwd=tmp_path
    )
    assert json.loads(proc.stdout) == {"reaped": [orphan], "mlflow": False}, proc.stderr
    client = tracking.client
    assert client.get_run(orphan).info.status == "KILLED"
    assert "died while training" in client.get_run(orphan).data.tags[ABANDONED_TAG]
    assert client.get_run(alive).info.status == client.get_run(other_host).info.status == "RUNNING"


@pytest.mark.slow
def test_training_with_the_store_in_place_imports_no_mlflow(tmp_path: Path) -> None:
    """`mlci train` on the scaffold, the store already made: the run is created, its results
    logged and the run finished, all without MLflow's import (4 s of CPU)."""
    run([sys.executable, "-m", "mlci", "init", "churn", "--git"], tmp_path)
    root = tmp_path / "churn"
    run([sys.executable, "-m", "mlci", "train"], root)
    found = probe(["train", "--no-cache", "--json"], root)
    assert found.code == 0, found.err
    assert "mlflow" not in found.modules
    from tests.lifecycle import client

    runs = client(root).search_runs(["1"], order_by=["attributes.start_time DESC"])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    newest = runs[0]
    assert client(root).get_logged_model(newest.data.tags[MODEL_ID_TAG]).status == "READY"
    assert set(newest.data.metrics) == set(runs[1].data.metrics)
    assert {a.path for a in client(root).list_artifacts(newest.info.run_id)} == {
        a.path for a in client(root).list_artifacts(runs[1].info.run_id)
    }


def _client_versions(monkeypatch: pytest.MonkeyPatch, registry: Any) -> list[Any]:
    with monkeypatch.context() as patched:
        patched.setattr(sqlite_runs, "model_versions", lambda *a, **k: None)
        return list(registry.versions())


def test_a_models_versions_read_from_the_store_are_the_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Versions with tags (and aliases), one deleted, one without a run, another model
    beside it: read from the tables, the same records in the same order as MLflow's
    search_model_versions; a model not registered is []; a store of another shape is
    left to the client."""
    from mlci.tracking import Registry

    tracking, db = _store(tmp_path)
    registry, other = Registry(tracking, "churn"), Registry(tracking, "fraud")
    assert registry.versions() == [] == _client_versions(monkeypatch, registry)
    runs = [tracking.start_run(run_name=f"r{i}", tags={}) for i in range(4)]
    for i, run_id in enumerate(runs):
        registry.create_version(run_id=run_id, model_id=None, tags={"i": str(i)}, description="")
    other.create_version(run_id=runs[0], model_id=None, tags={"model": "fraud"}, description="")
    client = tracking.client
    client.create_model_version(registry.name, "file:///elsewhere", tags={"made": "by hand"})
    registry.set_alias("staging", "2")
    registry.set_alias("production", "2")
    registry.set_alias("old", "1")
    registry.set_version_tag("3", "note", "")
    registry.delete_version("4")
    fast = registry.versions()
    assert [v.version for v in fast] == ["5", "3", "2", "1"]
    expected = _client_versions(monkeypatch, registry)
    assert fast == expected
    assert fast[0].run_id is None and fast[0].tags == {"made": "by hand"}
    assert [v.tags for v in other.versions()] == [{"model": "fraud"}]
    assert registry.version_for_tag("nothing") is None
    with sqlite3.connect(db) as connection:  # a column this reads is gone: the client answers
        connection.execute("ALTER TABLE model_versions RENAME COLUMN source TO origin")
    assert sqlite_runs.model_versions(db, registry.name) is None


@pytest.mark.parametrize(
    ("given", "telemetry"),
    [
        ({}, "true"),  # mlci's process: off, MLflow's race with its own environment avoided
        ({"MLFLOW_DISABLE_TELEMETRY": "false"}, "false"),  # the user's choice stands
        ({"DO_NOT_TRACK": "1"}, None),  # MLflow honours it: nothing added
    ],
)
def test_mlflows_environment_is_set_before_its_client_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: dict[str, str], telemetry: str | None
) -> None:
    """Set on the calling thread before the warm-up thread starts: a key added while
    another thread iterates the environment breaks that thread."""
    from mlci.tracking import Tracking

    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    started: list[dict[str, str]] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(dict(os.environ))
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    tracking = Tracking("http://127.0.0.1:9", "e", artifact_root=None, environ=dict(os.environ), timeout=3)
    monkeypatch.setattr(tracking, "_open_client", lambda: None)  # no MLflow needed to see the order
    tracking.warm_up()
    assert tracking._warming is not None
    tracking._warming.join()
    assert started[0].get("MLFLOW_DISABLE_TELEMETRY") == telemetry
    assert started[0].get("MLFLOW_HTTP_REQUEST_TIMEOUT") == "3"
