"""The embedded store mlci makes without MLflow is the one MLflow's migrations make.

A fresh project's first ``mlci train`` writes the store from
``mlci/schemas/mlflow-sqlite-<revision>.sql`` (milliseconds) instead of running
MLflow's migrations (seconds), or, for a revision mlci does not bundle, copies the
empty store MLflow's migrations made once into the user's cache. These tests hold
both to what the installed MLflow's migrations make, table by table and row by
row. The test extras install the newest MLflow the range in pyproject.toml
admits, and its schema must be bundled: raising the cap fails here until
``python tests/test_store_schema.py`` writes the file for the new head.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest

from mlci import sqlite_runs, store_template


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
    revision = store_template.installed_mlflow_schema()
    from mlflow.store.db.utils import _get_latest_schema_revision

    assert revision == _get_latest_schema_revision()


def test_the_bundled_schema_is_what_mlflows_migrations_make(tmp_path: Path) -> None:
    revision = store_template.installed_mlflow_schema()
    assert revision in store_template.bundled_schemas(), (
        f"MLflow's sqlite schema is now {revision}: run `python tests/test_store_schema.py`"
    )
    made = tmp_path / "store" / "mlflow.db"
    assert store_template.create_store(made)
    (objects, rows), (expected_objects, expected_rows) = _contents(made), _contents(_migrated(tmp_path))
    assert set(objects) ^ set(expected_objects) == set()
    assert {
        name for name in rows.keys() | expected_rows.keys() if rows.get(name) != expected_rows.get(name)
    } == set()
    assert [p.name for p in made.parent.iterdir()] == ["mlflow.db"]  # no partial file left


def test_only_the_newest_schema_is_bundled() -> None:
    """One file, the installed (newest) MLflow's: an older one could not be checked here."""
    assert store_template.bundled_schemas() == {store_template.installed_mlflow_schema()}


@pytest.mark.slow
def test_a_schema_mlci_does_not_bundle_is_made_once_and_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Any MLflow of the range: its migrations make the empty store once, in the user's
    cache; every new project's store is a copy (what the migrations make, row by row)."""
    monkeypatch.setattr(store_template, "SCHEMA_DIR", tmp_path / "no-bundled-schemas")
    monkeypatch.setenv("MLCI_CACHE_DIR", str(tmp_path / "cache"))
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    assert store_template.create_store(first)
    made = capfd.readouterr().err
    assert made.count("making the empty MLflow store") == 1
    template = tmp_path / "cache" / "stores" / f"mlflow-sqlite-{store_template.installed_mlflow_schema()}.db"
    stamp = template.stat().st_mtime_ns
    assert store_template.create_store(second)
    assert "making the empty MLflow store" not in capfd.readouterr().err  # copied, not made again
    assert template.stat().st_mtime_ns == stamp
    (objects, rows), (expected_objects, expected_rows) = _contents(second), _contents(_migrated(tmp_path))
    assert set(objects) ^ set(expected_objects) == set()
    assert {n for n in rows.keys() | expected_rows.keys() if rows.get(n) != expected_rows.get(n)} == set()
    assert sorted(p.name for p in template.parent.iterdir()) == [template.name]  # no partial left
    # A damaged template is made again, not copied.
    template.write_bytes(b"not a database")
    third = tmp_path / "c" / "mlflow.db"
    assert store_template.create_store(third)
    assert "making the empty MLflow store" in capfd.readouterr().err
    assert store_template.revision_of(third) == store_template.installed_mlflow_schema()


def test_no_store_is_made_where_migrations_make_another_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_template, "installed_mlflow_schema", lambda: "not-what-mlflow-makes")
    monkeypatch.setenv("MLCI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(store_template.subprocess, "run", _fake_migrations)
    assert not store_template.create_store(tmp_path / "store" / "mlflow.db")
    assert not (tmp_path / "store" / "mlflow.db").exists()
    assert [p.name for p in (tmp_path / "cache" / "stores").iterdir()] == []


def _fake_migrations(args: list[str], **_: object) -> object:
    """What `python -m mlci.store_template PATH` leaves: a store of the installed revision."""
    import subprocess

    connection = sqlite3.connect(args[-1])
    connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    connection.execute("INSERT INTO alembic_version VALUES ('something-else')")
    connection.commit()
    connection.close()
    return subprocess.CompletedProcess(args, 0, "", "")


@pytest.mark.parametrize(
    ("table", "fits"),
    [
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT)", True),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT)", True),  # c may be NULL
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT NOT NULL DEFAULT 'x')", True),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT NOT NULL)", False),  # needs c
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)", False),  # b is gone
    ],
)
def test_the_rows_mlci_writes_fit_a_table_or_not(table: str, fits: bool) -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(table)
    assert sqlite_runs.writable(connection, "t", ("a", "b"), "id") is fits


def test_an_existing_store_is_never_replaced(tmp_path: Path) -> None:
    """Two first runs at once: the second finds the first's store and leaves it."""
    made = tmp_path / "mlflow.db"
    assert store_template.create_store(made)
    connection = sqlite3.connect(str(made))
    connection.execute(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage) VALUES ('x', 'y', 'active')"
    )
    connection.commit()
    connection.close()
    assert store_template.create_store(made)
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
    assert store_template.installed_mlflow_schema() == head


def write() -> Path:
    """Write mlci/schemas/mlflow-sqlite-<head>.sql from the installed MLflow's migrations."""
    revision = store_template.installed_mlflow_schema()
    if revision is None:
        raise SystemExit("cannot tell the installed MLflow's schema revision")
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        connection = sqlite3.connect(str(_migrated(Path(folder))))
        try:
            body = "\n".join(connection.iterdump())
        finally:
            connection.close()
    target = store_template.SCHEMA_DIR / f"mlflow-sqlite-{revision}.sql"
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
