"""The stores' shared vocabulary: a version, the interface every store answers, and the
keys a version tag records about its bytes (the package's ``__init__`` chooses a store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlci import archive
from mlci.errors import MlciError

STORE_KEY = "store"  # in a version tag's metadata: which store holds its bytes
DIGEST_KEY = "model_sha256"
ASSET_KEY = "asset"
# In a version tag's metadata: the run's predictions (name, sha256, rows_sha256, metrics),
# and in a store that keeps its own copy, where (``PREDICTIONS_ASSET_KEY``).
PREDICTIONS_KEY = "predictions"
PREDICTIONS_ASSET_KEY = "predictions_asset"


def asset_key(kind: str) -> str:
    """The metadata key that names a kept file's asset: ``predictions_asset``, ``data_profile_asset``."""
    return f"{kind.replace('-', '_')}_asset"


class ModelMissing(MlciError):
    """A version's bytes cannot be found where its tag says they are."""


@dataclass(frozen=True)
class Version:
    """A registered version, as its tag describes it."""

    model: str
    version: str
    tag: str
    digest: str | None
    metadata: Mapping[str, object]


class ModelStore(Protocol):
    name: str

    def where(self, version: Version) -> str:
        """Where this store keeps a version's bytes, in words."""

    def stage(
        self, version: Version, archive_path: Path, card: str, kept: Mapping[str, Path] | None = None
    ) -> dict[str, object]:
        """Store the bytes before the version tag is published; returns metadata for the tag.
        ``kept`` names the run's other files by kind ("predictions", "data-profile") where the
        store must keep its own copy (the tracking stores keep them with the run already)."""

    def commit(self) -> None:
        """The tag is published: make what ``stage`` stored final."""

    def abort(self) -> None:
        """The tag was not published: remove what ``stage`` stored."""

    def fetch(self, version: Version, dest: Path | None) -> archive.Digest:
        """The model folder into ``dest`` (a new folder), checked against the tag's digest;
        with ``dest`` None, only checked."""

    def holds(self, version: Version) -> bool:
        """Whether the store reports the bytes with the tag's digest, without a download."""


NO_MODEL = "none"  # STORE_KEY of a version with no model file: it records its run


class NoModel:
    """The store of a project without ``train.model``: nothing to keep, nothing to fetch."""

    name = NO_MODEL

    def where(self, version: Version) -> str:
        return "no store: the version has no model file (train.model is not set), it records its run"

    def stage(
        self, version: Version, archive_path: Path, card: str, kept: Mapping[str, Path] | None = None
    ) -> dict[str, object]:
        return {STORE_KEY: NO_MODEL}

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def fetch(self, version: Version, dest: Path | None) -> archive.Digest:
        raise ModelMissing(
            f"{version.tag} has no model file: its project sets no train.model, so the version "
            "records a run (metrics, params, commit) and no bytes",
            hint="set train.model in mlci.yaml to the file or folder the command writes, to version it",
        )

    def holds(self, version: Version) -> bool:
        return True


def has_model(version: Version) -> bool:
    return version.metadata.get(STORE_KEY) != NO_MODEL


def version_of(model: str, version: str, tag: str, metadata: Mapping[str, object]) -> Version:
    digest = metadata.get(DIGEST_KEY)
    return Version(model, version, tag, str(digest) if digest else None, metadata)


def archive_name(model: str, version: str) -> str:
    return f"{model.replace('/', '-')}-{version}.tar"
