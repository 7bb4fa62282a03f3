"""Writing a run and its results into MLflow's embedded sqlite store without MLflow's client.

Importing MLflow and opening its store cost 4 s of CPU (2.7 s of imports, 1.7 s of
SQLAlchemy and schema checks), more than a small training run: ``mlci train`` on a
laptop paid them after its command had finished. These functions write the rows
``MlflowClient`` writes for what mlci logs (``create_run``, ``log_batch``, ``create_logged_model``,
``log_model_artifacts``, ``finalize_logged_model``, ``log_artifact``, ``set_tag``,
``set_terminated``), in one transaction, and copy the files as MLflow's
``LocalArtifactRepository`` does.

Each answers ``None`` where it cannot be sure to write what the client would: a table
whose columns are not the ones these rows fit, a name or value MLflow would refuse,
a param already logged with another value, a run not active, artifacts anywhere but
on this disk. The caller then goes through MLflow's client, which says what is wrong
in MLflow's words. tests/test_sqlite_runs.py reads every row back through the client.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.runs import OVERRIDES_TAG, RunRecord

# MLflow's limits (mlflow.utils.validation): past them its client splits or refuses.
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_PARAMS_OR_TAGS = 100
MAX_METRICS = 1000
MAX_ENTITIES = 1000
_NAME = re.compile(r"[/\w.\- :]*")  # validate_param_and_metric_name, off Windows
_MODEL_NAME_BAD = ("/", ":", ".", "%", '"', "'")  # _validate_logged_model_name
_RUN_NAME_TAG = "mlflow.runName"  # MLflow renames the run when it is set: its client does that
_DOUBLE_MAX = 1.7976931348623157e308  # how MLflow's sqlite store keeps +-inf
_READY = 2  # LoggedModelStatus.READY.to_int()

# The columns read or updated in the rows of runs and experiments, which mlci never inserts.
_READ = {
    "runs": (
        "run_uuid",
        "status",
        "end_time",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
        "start_time",
    ),
    "experiments": ("experiment_id", "name", "artifact_location", "lifecycle_stage"),
}
# The columns each inserted row fills; any other column must have a default or accept NULL.
_COLUMNS = {
    "params": ("key", "value", "run_uuid"),
    "tags": ("key", "value", "run_uuid"),
    "metrics": ("key", "value", "timestamp", "run_uuid", "step", "is_nan"),
    "latest_metrics": ("key", "value", "timestamp", "step", "is_nan", "run_uuid"),
    "logged_models": (
        "model_id",
        "experiment_id",
        "name",
        "artifact_location",
        "creation_timestamp_ms",
        "last_updated_timestamp_ms",
        "status",
        "lifecycle_stage",
        "source_run_id",
    ),
}


def writable(connection: sqlite3.Connection, table: str, columns: Sequence[str], key: str) -> bool:
    """Whether ``table`` has every one of ``columns``, and needs no other value (every other
    column has a default, accepts NULL or is the integer key ``key`` sqlite numbers)."""
    found = {row[1]: row for row in connection.execute(f"PRAGMA table_info({table})")}
    if not set(columns) <= set(found):
        return False
    return all(
        name in columns or not notnull or default is not None or name == key
        for name, (_, _, _, notnull, default, _) in found.items()
    )


def _has(connection: sqlite3.Connection, table: str, columns: Sequence[str]) -> bool:
    return set(columns) <= {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def _fit(connection: sqlite3.Connection) -> bool:
    return all(_has(connection, table, columns) for table, columns in _READ.items()) and all(
        writable(connection, table, columns, "") for table, columns in _COLUMNS.items()
    )


def fits(path: Path) -> bool:
    """Whether this store's tables are ones the rows written here fit (read-only look)."""
    try:
        connection = reader(path)
    except sqlite3.Error:
        return False
    try:
        return _fit(connection)
    except sqlite3.Error:
        return False
    finally:
        connection.close()


def valid_key(key: str) -> bool:
    """A param, metric or tag name MLflow accepts as it is."""
    if not (0 < len(key) <= MAX_KEY) or not _NAME.fullmatch(key):
        return False
    normal = posixpath.normpath(key)
    return not (normal != key or normal == "." or normal.startswith("..") or normal.startswith("/"))


def local_folder(uri: str) -> Path | None:
    """The folder of a ``file:`` URI or an absolute path (None: anything else)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.parse.unquote(parsed.path))
    if not parsed.scheme and os.path.isabs(uri):
        return Path(uri)
    return None


@dataclass(frozen=True)
class _Run:
    experiment_id: int
    run_folder: Path  # where the run's artifacts go
    experiment_folder: Path  # the experiment's artifact location (models/<id>/artifacts under it)
    experiment_location: str


@contextmanager
def _transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE: a second writer waits, up to 30 s)."""
    connection = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()


class _Decline(Exception):
    """This write is one for MLflow's client: roll back and say None."""


def _active_run(connection: sqlite3.Connection, run_id: str) -> _Run:
    row = connection.execute(
        "SELECT r.experiment_id, r.artifact_uri, e.artifact_location FROM runs r "
        "JOIN experiments e ON e.experiment_id = r.experiment_id "
        "WHERE r.run_uuid = ? AND r.lifecycle_stage = 'active' AND e.lifecycle_stage = 'active'",
        (run_id,),
    ).fetchone()
    if row is None:
        raise _Decline  # no such run, or deleted: the client says so
    run_folder, experiment_folder = local_folder(str(row[1] or "")), local_folder(str(row[2] or ""))
    if run_folder is None or experiment_folder is None:
        raise _Decline  # artifacts on a server or an object store
    return _Run(int(row[0]), run_folder, experiment_folder, str(row[2]))


def _copy_file(source: Path, folder: Path) -> None:
    """LocalArtifactRepository.log_artifact: the file under its own name, written whole
    (a temporary file renamed into place) with its times and mode."""
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / source.name
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{source.name}.")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        shutil.copystat(source, temporary)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _copy_tree(source: Path, destination: Path) -> None:
    """LocalArtifactRepository.log_artifacts (shutil_copytree_without_file_permissions):
    folders made anew, files copied with their times and modes."""
    destination.mkdir(parents=True, exist_ok=True)
    for folder, folders, names in os.walk(source):
        relative = Path(folder).relative_to(source)
        for name in folders:
            (destination / relative / name).mkdir(exist_ok=True)
        for name in names:
            shutil.copy2(Path(folder) / name, destination / relative / name)


# What a new experiment's and run's rows fill; any other column must have a default or
# accept NULL, else the store is one mlci does not know (MLflow's client then).
_NEW_EXPERIMENT = ("name", "artifact_location", "lifecycle_stage", "creation_time", "last_update_time")
_NEW_RUN = (
    "run_uuid",
    "name",
    "source_type",
    "source_name",
    "entry_point_name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "source_version",
    "lifecycle_stage",
    "artifact_uri",
    "experiment_id",
    "deleted_time",
)


def create_run(
    path: Path, experiment: str, run_name: str, tags: Mapping[str, str], location: str | None = None
) -> tuple[str, str] | None:
    """The rows MLflow's SqlAlchemyStore.create_run writes (and, for an experiment not yet
    there, create_experiment's, at ``location``), in one transaction: (run id, experiment
    id), or None where the store's tables are not the ones these rows fit."""
    run_id = uuid.uuid4().hex
    rows = {**tags, _RUN_NAME_TAG: run_name}
    try:
        with _transaction(path) as connection:
            if not (
                writable(connection, "experiments", _NEW_EXPERIMENT, "experiment_id")
                and writable(connection, "runs", _NEW_RUN, "")
                and writable(connection, "tags", _COLUMNS["tags"], "")
            ):
                raise _Decline
            found = connection.execute(
                "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments WHERE name = ?",
                (experiment,),
            ).fetchone()
            if found is None and location:
                now = int(time.time() * 1000)
                cursor = connection.execute(
                    "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                    "last_update_time) VALUES (?, ?, 'active', ?, ?)",
                    (experiment, location, now, now),
                )
                found = (cursor.lastrowid, location, "active")
            if found is None or found[2] != "active" or not found[1]:
                raise _Decline
            artifact_uri = f"{str(found[1]).rstrip('/')}/{run_id}/artifacts"
            connection.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, "
                "deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', 'unknown', 'RUNNING', ?, NULL, '', 'active', "
                "?, ?, NULL)",
                (run_id, run_name, int(time.time() * 1000), artifact_uri, found[0]),
            )
            connection.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [(key, value, run_id) for key, value in rows.items()],
            )
    except _Decline:
        return None
    return run_id, str(found[0])


def _metric_rows(metrics: Mapping[str, float], now: int) -> list[tuple[str, float, int, int, int]]:
    """(key, value, timestamp, step, is_nan) as MLflow's store keeps them."""
    rows = []
    for key, raw in metrics.items():
        value = float(raw)
        if math.isnan(value):
            rows.append((key, 0.0, now, 0, 1))
        elif math.isinf(value):
            rows.append((key, _DOUBLE_MAX if value > 0 else -_DOUBLE_MAX, now, 0, 0))
        else:
            rows.append((key, value, now, 0, 0))
    return rows


def _acceptable(params: Mapping[str, str], metrics: Mapping[str, float], tags: Mapping[str, str]) -> bool:
    """What MLflow's log_batch takes in one call, unchanged."""
    return (
        len(params) <= MAX_PARAMS_OR_TAGS
        and len(tags) <= MAX_PARAMS_OR_TAGS
        and len(metrics) <= MAX_METRICS
        and len(params) + len(tags) + len(metrics) <= MAX_ENTITIES
        and all(valid_key(k) and isinstance(v, str) and len(v) <= MAX_PARAM_VALUE for k, v in params.items())
        and all(valid_key(k) and isinstance(v, str) and len(v) <= MAX_TAG_VALUE for k, v in tags.items())
        and all(valid_key(k) for k in metrics)
        and _RUN_NAME_TAG not in tags
    )


def log_results(
    path: Path,
    run_id: str,
    *,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    files: Sequence[Path],
    model_dir: Path | None,
    model_name: str,
    model_id_tag: str,
) -> tuple[str | None] | None:
    """Log params, metrics, tags, files and the model as one logged model, and finish the
    run: ``(model id,)`` (the id None where there is no model), or None where MLflow's
    client must do it. The files are copied first (outside the store's write lock), then
    every row is written in one transaction (the model READY, the run FINISHED): a failure
    leaves no row, and no model folder."""
    if not _acceptable(params, metrics, {**tags, model_id_tag: "m-" + "0" * 32}):
        return None
    if model_dir is not None and (not model_name or any(c in model_name for c in _MODEL_NAME_BAD)):
        return None
    look = reader(path)  # a look first: nothing is copied that the client would copy again
    try:
        run = _check(look, run_id, params)
    except _Decline:
        return None
    finally:
        look.close()
    for source in files:
        _copy_file(source, run.run_folder)
    model_id, model_folder = None, None
    all_tags = dict(tags)
    if model_dir is not None:
        model_id = f"m-{uuid.uuid4().hex}"
        all_tags[model_id_tag] = model_id
        model_folder = run.experiment_folder / "models" / model_id
        _copy_tree(model_dir, model_folder / "artifacts")
    try:
        with _transaction(path) as connection:
            run = _check(connection, run_id, params)
            now = int(time.time() * 1000)
            _write_rows(connection, run_id, params, metrics, all_tags, now)
            if model_id is not None:
                location = f"{run.experiment_location.rstrip('/')}/models/{model_id}/artifacts"
                connection.execute(
                    "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, "
                    "creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, "
                    "source_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)",
                    (model_id, run.experiment_id, model_name, location, now, now, _READY, run_id),
                )
            connection.execute(
                "UPDATE runs SET status = 'FINISHED', end_time = ? WHERE run_uuid = ?", (now, run_id)
            )
    except BaseException as exc:
        if model_folder is not None:
            shutil.rmtree(model_folder, ignore_errors=True)
        if isinstance(exc, _Decline):  # changed since the look (a param, the run deleted)
            return None
        raise
    return (model_id,)


def reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the store."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)


def _check(connection: sqlite3.Connection, run_id: str, params: Mapping[str, str]) -> _Run:
    """The run, where these rows fit its store, it is active, its artifacts are on this disk
    and no param is already logged with another value (MLflow refuses that, in its words)."""
    if not _fit(connection):
        raise _Decline
    run = _active_run(connection, run_id)
    logged = dict(connection.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
    if any(key in logged and logged[key] != value for key, value in params.items()):
        raise _Decline
    return run


def _write_rows(
    connection: sqlite3.Connection,
    run_id: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    now: int,
) -> None:
    """log_batch's rows: new params, each metric's value and its latest value, the tags."""
    connection.executemany(  # a param logged already has this value (_check)
        "INSERT OR IGNORE INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
        [(key, value, run_id) for key, value in params.items()],
    )
    rows = _metric_rows(metrics, now)
    connection.executemany(
        "INSERT OR IGNORE INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(*row, run_id) for row in rows],
    )
    latest = {
        key: (step, timestamp, value)
        for key, value, timestamp, step in connection.execute(
            "SELECT key, value, timestamp, step FROM latest_metrics WHERE run_uuid = ?", (run_id,)
        )
    }
    # _update_latest_metrics_if_necessary: a value replaces the latest one when its
    # (step, timestamp, value) is greater
    connection.executemany(
        "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (key, value, timestamp, step, is_nan, run_id)
            for key, value, timestamp, step, is_nan in rows
            if key not in latest or (step, timestamp, value) > latest[key]
        ],
    )
    connection.executemany(
        "INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
        [(key, value, run_id) for key, value in tags.items()],
    )


def set_tag(path: Path, run_id: str, key: str, value: str) -> bool:
    """MlflowClient.set_tag on an active run; False where the client must do it."""
    if not _acceptable({}, {}, {key: value}):
        return False
    with _transaction(path) as connection:
        if not writable(connection, "tags", _COLUMNS["tags"], ""):
            return False
        found = connection.execute(
            "SELECT 1 FROM runs WHERE run_uuid = ? AND lifecycle_stage = 'active'", (run_id,)
        ).fetchone()
        if found is None:
            return False
        connection.execute(
            "INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", (key, value, run_id)
        )
    return True


def end_run(path: Path, run_id: str, status: str) -> bool:
    """MlflowClient.set_terminated: the status and the end time of an active run."""
    with _transaction(path) as connection:
        if not _has(connection, "runs", _READ["runs"]):
            return False
        cursor = connection.execute(
            "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ? AND lifecycle_stage = 'active'",
            (status, int(time.time() * 1000), run_id),
        )
        return cursor.rowcount == 1


def running_runs(path: Path, experiment: str, tag: str, value: str) -> list[tuple[str, dict[str, str]]]:
    """The RUNNING, active runs of an experiment with this tag, newest first (at most 100,
    as the client's search asks): each with its tags. Read-only."""
    connection = reader(path)
    try:
        ids = [
            row[0]
            for row in connection.execute(
                "SELECT r.run_uuid FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id "
                "JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE e.name = ? AND e.lifecycle_stage = 'active' AND r.lifecycle_stage = 'active' "
                "AND r.status = 'RUNNING' AND t.key = ? AND t.value = ? "
                "ORDER BY r.start_time DESC LIMIT 100",
                (experiment, tag, value),
            )
        ]
        return [
            (run_id, dict(connection.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))))
            for run_id in ids
        ]
    finally:
        connection.close()


# --------------------------------------------------------------------------- the model registry (read-only)

_VERSION_COLUMNS = ("name", "version", "run_id", "source", "current_stage", "last_updated_time")


def model_versions(path: Path, name: str) -> list[tuple[str, str | None, str, dict[str, str]]] | None:
    """What MlflowClient.search_model_versions("name = '…'") answers, read-only: each
    version not deleted as (version, run id, source, tags), in MLflow's order
    (last updated first, then the highest version). [] where the model is not registered;
    None where the tables are not the ones this reads."""
    connection = reader(path)
    try:
        if not (
            _has(connection, "registered_models", ("name",))
            and _has(connection, "model_versions", _VERSION_COLUMNS)
            and _has(connection, "model_version_tags", ("key", "value", "name", "version"))
        ):
            return None
        # MLflow 3's workspaces: a client outside one reads the default workspace.
        spaces = {
            table: " AND workspace = 'default'" if _has(connection, table, ("workspace",)) else ""
            for table in ("registered_models", "model_versions", "model_version_tags")
        }
        found = connection.execute(
            f"SELECT 1 FROM registered_models WHERE name = ?{spaces['registered_models']}", (name,)
        ).fetchone()
        if found is None:
            return []
        rows = connection.execute(
            f"SELECT version, run_id, source FROM model_versions WHERE name = ?{spaces['model_versions']} "
            "AND (current_stage IS NULL OR current_stage != 'Deleted_Internal') "
            "ORDER BY last_updated_time DESC, version DESC",
            (name,),
        ).fetchall()
        tags: dict[int, dict[str, str]] = {}
        for key, value, version in connection.execute(
            "SELECT key, value, version FROM model_version_tags WHERE name = ?"
            + spaces["model_version_tags"],
            (name,),
        ):
            tags.setdefault(int(version), {})[str(key)] = "" if value is None else str(value)
        return [
            (
                str(version),
                None if run_id is None else str(run_id),
                str(source or ""),
                tags.get(int(version), {}),
            )
            for version, run_id, source in rows
        ]
    finally:
        connection.close()


# --------------------------------------------------------------------------- reads


def find_finished_run(
    path: Path, experiment: str, key: str, value: str, skip_overrides: bool = False
) -> RunRecord | None:
    """Read-only query of MLflow's sqlite schema (runs, tags, latest_metrics, params).

    Any schema surprise raises sqlite3.Error, and the caller falls back to MlflowClient.
    """
    connection = reader(path)
    try:
        row = connection.execute(
            """
            SELECT r.run_uuid, r.experiment_id, r.status, r.start_time, r.artifact_uri
            FROM runs r
            JOIN experiments e ON e.experiment_id = r.experiment_id
            JOIN tags t ON t.run_uuid = r.run_uuid
            WHERE e.name = ? AND e.lifecycle_stage = 'active'
              AND r.lifecycle_stage = 'active' AND r.status = 'FINISHED'
              AND t.key = ? AND t.value = ?
              AND NOT (? AND EXISTS (
                SELECT 1 FROM tags o WHERE o.run_uuid = r.run_uuid AND o.key = ? AND o.value != ''
              ))
            ORDER BY r.start_time DESC
            LIMIT 1
            """,
            (experiment, key, value, skip_overrides, OVERRIDES_TAG),
        ).fetchone()
        return None if row is None else _run_record(connection, row)
    finally:
        connection.close()


def get_run(path: Path, run_id: str) -> RunRecord | None:
    """One run of the embedded store by its id, read-only (None: no such run)."""
    connection = reader(path)
    try:
        row = connection.execute(
            "SELECT run_uuid, experiment_id, status, start_time, artifact_uri FROM runs "
            "WHERE run_uuid = ? AND lifecycle_stage = 'active'",
            (run_id,),
        ).fetchone()
        return None if row is None else _run_record(connection, row)
    finally:
        connection.close()


def _run_record(connection: sqlite3.Connection, row: tuple[Any, ...]) -> RunRecord:
    """A run's row (id, experiment, status, start, artifact URI) with its metrics, params and tags."""
    run_id = row[0]
    metrics = dict(connection.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)))
    params = dict(connection.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
    tags = dict(connection.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
    return RunRecord(
        run_id=run_id,
        experiment_id=str(row[1]),
        status=row[2],
        start_time=row[3],
        metrics={k: float(v) for k, v in metrics.items()},
        params=params,
        tags=tags,
        artifact_uri=str(row[4] or ""),
    )


def models_of_run(path: Path, run_id: str) -> list[tuple[str, str]]:
    """The logged models (MLflow 3) whose source is ``run_id``, oldest first, but failed ones
    (status 3, LoggedModelStatus.FAILED): (model id, name)."""
    connection = reader(path)
    try:
        rows = connection.execute(
            "SELECT model_id, name FROM logged_models WHERE source_run_id = ? "
            "AND lifecycle_stage = 'active' AND status != 3 ORDER BY creation_timestamp_ms, model_id",
            (run_id,),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]
    finally:
        connection.close()
