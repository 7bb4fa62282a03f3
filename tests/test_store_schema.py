"""The embedded store mlci makes without MLflow is the one MLflow's migrations make.

A fresh project's first ``mlci train`` writes the store from
``mlci/schemas/mlflow-sqlite-<revision>.sql`` (milliseconds) instead of running
MLflow's migrations (seconds). These tests hold that file to what the installed
MLflow's migrations make, table by table and row by row; when MLflow moves its
schema, ``python tests/test_store_schema.py`` writes the file for the new head
(then add the revision to ``KNOWN_SQLITE_SCHEMAS`` once the run and experiment
inserts are checked against it, which ``test_train`` does).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest

from mlci import tracking


def _migrated(folder: Path) -> Path:
    """A store that MLflow's own migrations made (no experiment yet)."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    path = folder / "migrated.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    return path


_CONSTRAINT = ("CONSTRAINT", "CHECK", "PRIMARY KEY", "FOREIGN KEY", "UNIQUE")


def _normal(sql: str) -> str:
    """A table's SQL with its table constraints in sorted order: MLflow's batch migrations
    rebuild some tables with their constraints in an order that varies from process to
    process (a set's), so two stores MLflow made can differ there; columns keep their order."""
    lines = [line.strip().rstrip(",").strip() for line in sql.splitlines()]
    constraints = sorted(line for line in lines if line.startswith(_CONSTRAINT))
    return "\n".join([line for line in lines if not line.startswith(_CONSTRAINT)] + constraints)


def _contents(path: Path) -> tuple[list[tuple[str, str, str]], dict[str, list[tuple[object, ...]]]]:
    """Every schema object (type, name, SQL) and every table's rows."""
    connection = sqlite3.connect(str(path))
    try:
        objects = sorted(
            (kind, name, _normal(sql))
            for kind, name, sql in connection.execute(
                "SELECT type, name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        )
        rows = {
            name: sorted(connection.execute(f'SELECT * FROM "{name}"'), key=repr)
            for kind, name, _ in objects
            if kind == "table"
        }
        return objects, rows
    finally:
        connection.close()


def test_the_installed_mlflows_schema_is_read_without_importing_it() -> None:
    revision = tracking.installed_mlflow_schema()
    from mlflow.store.db.utils import _get_latest_schema_revision

    assert revision == _get_latest_schema_revision()


def test_the_bundled_schema_is_what_mlflows_migrations_make(tmp_path: Path) -> None:
    revision = tracking.installed_mlflow_schema()
    assert revision in tracking.KNOWN_SQLITE_SCHEMAS, (
        f"MLflow's sqlite schema is now {revision}: run `python tests/test_store_schema.py`"
    )
    made = tmp_path / "store" / "mlflow.db"
    assert tracking._sqlite_create_store(made)
    (objects, rows), (expected_objects, expected_rows) = _contents(made), _contents(_migrated(tmp_path))
    assert set(objects) ^ set(expected_objects) == set()
    assert {
        name for name in rows.keys() | expected_rows.keys() if rows.get(name) != expected_rows.get(name)
    } == set()
    assert [p.name for p in made.parent.iterdir()] == ["mlflow.db"]  # no partial file left


def test_each_known_schema_has_its_file() -> None:
    for revision in tracking.KNOWN_SQLITE_SCHEMAS:
        assert (tracking.SCHEMA_DIR / f"mlflow-sqlite-{revision}.sql").is_file(), revision


def test_an_existing_store_is_never_replaced(tmp_path: Path) -> None:
    """Two first runs at once: the second finds the first's store and leaves it."""
    made = tmp_path / "mlflow.db"
    assert tracking._sqlite_create_store(made)
    connection = sqlite3.connect(str(made))
    connection.execute(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage) VALUES ('x', 'y', 'active')"
    )
    connection.commit()
    connection.close()
    assert tracking._sqlite_create_store(made)
    assert sqlite3.connect(str(made)).execute("SELECT name FROM experiments").fetchall() == [("x",)]


@pytest.mark.parametrize(
    ("scripts", "head"),
    [
        (
            {
                "a.py": 'revision = "a1"\ndown_revision = None\n',
                "b.py": 'revision = "b2"\ndown_revision = "a1"\n',
            },
            "b2",
        ),
        (
            {
                "a.py": "revision = 'a1'\ndown_revision = None\n",
                "b.py": "revision = 'b2'\ndown_revision = 'a1'\n",
            },
            "b2",
        ),
        # two heads (a branch MLflow has not merged): not told
        (
            {
                "a.py": 'revision = "a1"\n',
                "b.py": 'revision = "b2"\ndown_revision = "a1"\n',
                "c.py": 'revision = "c3"\ndown_revision = "a1"\n',
            },
            None,
        ),
        ({"a.py": 'revision = "a1"\n'}, None),  # one script: too little to trust
        ({}, None),
    ],
)
def test_the_head_revision_from_migration_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripts: dict[str, str], head: str | None
) -> None:
    package = tmp_path / "mlflow"
    versions = package / "store" / "db_migrations" / "versions"
    versions.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, text in scripts.items():
        (versions / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    import importlib

    importlib.invalidate_caches()
    assert tracking.installed_mlflow_schema() == head


def write() -> Path:
    """Write mlci/schemas/mlflow-sqlite-<head>.sql from the installed MLflow's migrations."""
    revision = tracking.installed_mlflow_schema()
    if revision is None:
        raise SystemExit("cannot tell the installed MLflow's schema revision")
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        connection = sqlite3.connect(str(_migrated(Path(folder))))
        try:
            body = "\n".join(connection.iterdump())
        finally:
            connection.close()
    target = tracking.SCHEMA_DIR / f"mlflow-sqlite-{revision}.sql"
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        f"-- MLflow's sqlite tracking schema at alembic revision {revision}, as the migrations of\n"
        f"-- MLflow {mlflow.__version__} make it (before the Default experiment, which MLflow adds\n"
        "-- when it opens the store). Written by tests/test_store_schema.py; do not edit.\n"
        f"{body}\n"
    )
    return target


if __name__ == "__main__":
    print(write())
