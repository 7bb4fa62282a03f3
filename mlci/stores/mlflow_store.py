"""Registered bytes in the tracking store: the MLflow model version's files.

Serves both ``local`` (the embedded store under .mlci/) and ``mlflow`` (a
tracking server, whose artifact store keeps the files). Registering makes the
model version, so staging stores nothing more; fetching downloads the version's
files and checks their archive digest against the tag.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlci import archive, project
from mlci import config as cfg
from mlci.stores.base import ModelMissing, Version

if TYPE_CHECKING:
    from mlci.tracking import ModelVersionRecord, Tracking


class MlflowStore:
    def __init__(
        self, name: str, config: cfg.Config, environ: Mapping[str, str], tracking: Tracking | None = None
    ) -> None:
        from mlci.tracking import Registry

        self.name = name
        self.tracking = tracking or project.make_tracking(config, environ)
        self.registry = Registry(self.tracking, config.model.name)

    def where(self, version: Version) -> str:
        return f"the MLflow model version of {version.tag} in {self.tracking.uri}"

    def stage(
        self, version: Version, archive_path: Path, card: str, kept: Mapping[str, Path] | None = None
    ) -> dict[str, object]:
        return {}  # the model version that registering makes holds the files; its run, the predictions

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def _record(self, version: Version) -> ModelVersionRecord | None:
        from mlci.tracking import GIT_TAG_TAG

        hint = version.metadata.get("mlflow_model_version")
        found = [v for v in self.registry.versions() if v.tags.get(GIT_TAG_TAG) == version.tag and v.source]
        preferred = [v for v in found if hint is not None and v.version == str(hint)]
        ranked = preferred or sorted(found, key=lambda v: int(v.version), reverse=True)
        return ranked[0] if ranked else None

    def _source(self, version: Version) -> str | None:
        record = self._record(version)
        return record.source if record else None

    def holds(self, version: Version) -> bool:
        """The files are on this machine (the embedded store, a file:// artifact root) and
        hash to the tag's digest, checked in place. Files on a server are not
        trusted by their tags: they are downloaded and checked (``fetch``)."""
        record = self._record(version)
        if record is None or not record.source.startswith("file:"):
            return False
        local = Path(urllib.parse.unquote(urllib.parse.urlsplit(record.source).path))
        try:
            return local.is_dir() and archive.digest_folder(local).sha256 == version.digest
        except archive.ArchiveError:
            return False

    def fetch(self, version: Version, dest: Path | None) -> archive.Digest:
        source = self._source(version)
        if source is None:
            raise ModelMissing(
                f"{version.tag}: no MLflow model version in {self.tracking.uri} points at it, so its bytes "
                "are not in this store",
                hint="a fresh checkout's embedded store is empty: the bytes live where the version was "
                "registered (see `registry.store`); run where that store is reachable, or point "
                "MLFLOW_TRACKING_URI at the server that holds them",
            )
        if dest is not None and dest.exists():
            raise archive.ArchiveError(f"{dest} exists already: not writing over it", hint="remove it first")
        download = (
            dest.with_name(dest.name + ".download")
            if dest is not None
            else Path(tempfile.mkdtemp(prefix="mlci-verify-"))
        )
        shutil.rmtree(download, ignore_errors=True)
        try:
            path = self.tracking.download(source, download)
            digest = archive.digest_folder(path)
            if version.digest is not None and digest.sha256 != version.digest:
                raise archive.ArchiveError(
                    f"{version.tag}: the files in {self.tracking.uri} have sha256 {digest.sha256}, the tag "
                    f"records {version.digest}: these are not the bytes that were registered",
                    hint="do not deploy them; register the model again from its inputs (a new version)",
                )
            if dest is not None:
                os.replace(path, dest)
        finally:
            shutil.rmtree(download, ignore_errors=True)
        return digest
