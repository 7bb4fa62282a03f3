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

import logging
import sys
from pathlib import Path


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
