"""The empty embedded store of the installed MLflow, made once by MLflow's own migrations.

A new project's first ``mlci train`` needs an MLflow sqlite store before the
training command starts (the command joins mlci's run). MLflow's migrations
take seconds and load MLflow; every MLflow release moves the schema. So the
empty store is made once per schema revision, by MLflow's own migrations in a
child process (``python -m mlci.store_template PATH``), and kept in the user's
cache; each new project's store is a copy of it (``mlci.tracking``).

The newest MLflow in the supported range has its schema bundled as SQL
(``mlci/schemas/``): a fresh CI runner has no cache, and makes the store from
that file in milliseconds.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from contextlib import suppress
from pathlib import Path

from mlci import sqlite_runs

# A new embedded store is made without MLflow's migrations (seconds, and MLflow's import):
# from mlci/schemas/mlflow-sqlite-<revision>.sql where mlci bundles the installed MLflow's
# schema (the newest MLflow of the supported range: tests/test_store_schema.py fails the
# day MLflow moves it), else from a copy of the empty store MLflow's own migrations made
# once for that revision and kept in the user's cache (mlci.store_template).
SCHEMA_DIR = Path(__file__).parent / "schemas"
_MIGRATION_LINE = re.compile(r"""^(down_revision|revision)\s*=\s*["']([0-9a-zA-Z_]+)["']\s*$""", re.MULTILINE)
TEMPLATE_SECONDS = 600  # MLflow's migrations, once per schema revision and machine


def bundled_schemas() -> frozenset[str]:
    """The schema revisions mlci carries as SQL."""
    return frozenset(
        p.name.removeprefix("mlflow-sqlite-").removesuffix(".sql")
        for p in SCHEMA_DIR.glob("mlflow-sqlite-*.sql")
    )


def installed_mlflow_schema() -> str | None:
    """The head alembic revision of the installed MLflow's tracking schema, read from its
    migration scripts without importing MLflow (a few milliseconds); None when it cannot be
    told (no MLflow, a layout or a migration graph this reading does not know)."""
    try:
        spec = importlib.util.find_spec("mlflow")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    versions = Path(next(iter(spec.submodule_search_locations))) / "store" / "db_migrations" / "versions"
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        scripts = list(versions.glob("*.py"))
        for script in scripts:
            found = dict(_MIGRATION_LINE.findall(script.read_text(encoding="utf-8")))
            if "revision" in found:
                revisions.add(found["revision"])
            if "down_revision" in found:
                parents.add(found["down_revision"])
    except (OSError, UnicodeDecodeError):
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and len(revisions) > 1 else None


def create_store(path: Path) -> bool:
    """A new embedded store at ``path``, as MLflow's migrations leave it, in milliseconds
    rather than the seconds the migrations take; False (make nothing) when the installed
    MLflow's schema cannot be told or its empty store cannot be made. Written to a
    temporary file and linked into place, so a concurrent mlci (or MLflow) never sees half
    a store: whoever links first wins."""
    revision = installed_mlflow_schema()
    if revision is None:
        return False
    script = SCHEMA_DIR / f"mlflow-sqlite-{revision}.sql"
    template = None if script.is_file() else cached_template(revision)
    if template is None and not script.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    try:
        if template is not None:
            shutil.copyfile(template, partial)
        else:
            connection = sqlite3.connect(str(partial), isolation_level=None)
            try:
                connection.executescript(script.read_text(encoding="utf-8"))
            finally:
                connection.close()
        with suppress(FileExistsError):
            os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return True


def revision_of(path: Path) -> str | None:
    """The alembic revision of an sqlite store (None: not one, or unreadable)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                return None
        connection = sqlite_runs.reader(path)
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            connection.close()
    except (OSError, sqlite3.Error):
        return None
    return str(row[0]) if row else None


def cached_template(revision: str) -> Path | None:
    """The empty store of ``revision`` in the user's cache, made by MLflow's migrations
    in a child process the first time (None where they fail: MLflow's client makes the
    project's store then, as it always could)."""
    from mlci import local_cache

    folder = local_cache.directory() / "stores"
    template = folder / f"mlflow-sqlite-{revision}.db"
    if revision_of(template) == revision:
        return template
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    partial = folder / f".{template.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new"
    sys.stderr.write(
        f"mlci: making the empty MLflow store of schema {revision} with MLflow's migrations, "
        f"once for this MLflow (kept in {folder})\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mlci.store_template", str(partial)],
            capture_output=True,
            text=True,
            timeout=TEMPLATE_SECONDS,
        )
        if proc.returncode != 0 or revision_of(partial) != revision:
            logging.getLogger(__name__).warning(
                "could not make MLflow's empty store: %s", (proc.stderr or proc.stdout).strip()[-300:]
            )
            return None
        os.replace(partial, template)
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        partial.unlink(missing_ok=True)
    return template


def migrate(path: Path) -> None:
    """Make MLflow's tables at ``path`` with MLflow's migrations (no experiment: MLflow
    adds its Default experiment when it first opens the store)."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        _initialize_tables(engine)  # type: ignore[no-untyped-call]
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m mlci.store_template PATH", file=sys.stderr)
        return 2
    migrate(Path(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
