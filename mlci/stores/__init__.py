"""Where a model's bytes live: the seam between mlci and its stores.

Two questions, each answered in one place:

- **The run cache** (is there a run for these inputs?) looks, in order, in
  the tracking store (the embedded sqlite store or a server: ``tracking.py``),
  then in GitHub workflow artifacts named by model and fingerprint
  (``github.RunArtifacts``, only in GitHub Actions and only bytes a trusted run
  made), and otherwise trains.
- **Registered bytes** (a version's model archive, ``mlci.archive``) live in
  one ``ModelStore``, chosen by ``registry.store`` (``config.choose_store``)
  when the version is registered and recorded in its tag, so that anyone
  finds them later from the tag alone:

  ``local``   the embedded MLflow store under ``.mlci/`` (a laptop)
  ``mlflow``  the tracking server's artifact store (a team)
  ``github``  a release on the version tag (GitHub Actions without a server)

Every store answers the same small interface below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mlci import config as cfg
from mlci.stores.base import (
    ASSET_KEY,
    DIGEST_KEY,
    NO_MODEL,
    PREDICTIONS_ASSET_KEY,
    PREDICTIONS_KEY,
    STORE_KEY,
    ModelMissing,
    ModelStore,
    NoModel,
    Version,
    archive_name,
    asset_key,
    has_model,
    version_of,
)

if TYPE_CHECKING:
    from mlci.tracking import Tracking

__all__ = [
    "ASSET_KEY",
    "DIGEST_KEY",
    "NO_MODEL",
    "PREDICTIONS_ASSET_KEY",
    "PREDICTIONS_KEY",
    "STORE_KEY",
    "ModelMissing",
    "ModelStore",
    "NoModel",
    "Version",
    "archive_name",
    "asset_key",
    "for_version",
    "has_model",
    "open_store",
    "version_of",
]


def open_store(
    name: str,
    config: cfg.Config,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    tracking: Tracking | None = None,
) -> ModelStore:
    """The store called ``name``; ``tracking``: the invocation's tracking store, where the
    version's bytes are an MLflow model version (opened anew when None)."""
    if name == NO_MODEL:
        return NoModel()
    if name == "github":
        from mlci.stores.github import ReleaseStore

        return ReleaseStore.from_environ(config, environ, log)
    from mlci.stores.mlflow_store import MlflowStore

    return MlflowStore(name, config, environ, tracking)


def for_version(
    version: Version,
    config: cfg.Config,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    tracking: Tracking | None = None,
) -> ModelStore:
    """The store that holds ``version``, as its tag records; a tag from before
    stores were recorded (or from GTO) means the tracking store."""
    recorded = str(version.metadata.get(STORE_KEY) or "")
    if recorded not in ("local", "mlflow", "github", NO_MODEL):
        recorded = "mlflow" if cfg.choose_store(config, environ).name == "mlflow" else "local"
    return open_store(recorded, config, environ, log, tracking)
