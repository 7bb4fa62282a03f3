"""A registered version's bytes: resolve them, verify them, mirror them in MLflow.

Used by promotion (which assigns only bytes it has checked), ``mlci pull``
(which hands them to a deploy job) and ``mlci doctor --fix`` (which rebuilds
the MLflow model version of a cold store from them). The bytes are found
where the version's tag says they were stored (``mlci.stores``); mlci never
retrains to fill a gap.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlci import archive, project, stores, tags
from mlci import config as cfg
from mlci import fingerprint as fp
from mlci.errors import MlciError

if TYPE_CHECKING:
    from mlci.tracking import Tracking

PULLED_DIR = "pulled"


@dataclass(frozen=True)
class Resolved:
    version: stores.Version
    where: str
    verified: str  # "downloaded", "reported by the store", "hashed in place", or "not recorded"
    mlflow_version: str | None
    mirror_skipped: bool = False  # a CI job's own embedded store: rebuilding it would die with the job


def version_of(model: str, event: tags.Event) -> stores.Version:
    assert event.version is not None
    return stores.version_of(model, event.version, event.tag, event.metadata)


def active_version(state: tags.ModelState, version: str, instead: str) -> str:
    """``version`` if ``state`` has it registered and not deregistered; else a clear error."""
    if version not in state.versions:
        raise MlciError(
            f"{state.name} has no version {version}",
            hint=f"registered: {', '.join(state.active_versions()) or 'none'}",
        )
    if version in state.deregistered:
        raise MlciError(f"{state.name} {version} is deregistered", hint=instead)
    return version


def _scratch(config: cfg.Config, version: stores.Version) -> Path:
    safe = version.tag.replace("/", "-").replace("@", "-").replace("#", "-")
    return config.root / fp.STATE_DIR / PULLED_DIR / f"{safe}-{secrets.token_hex(4)}"


def fetch(
    store: stores.ModelStore, version: stores.Version, dest: Path | None, log: Callable[[str], None]
) -> archive.Digest:
    """The version's model folder into ``dest`` from ``store``, its digest checked against
    the tag (with ``dest`` None, only checked)."""
    log(f"fetching {version.tag} from {store.where(version)}")
    return store.fetch(version, dest)


def mirror(
    config: cfg.Config,
    environ: Mapping[str, str],
    version: stores.Version,
    model_dir: Path | None,
    log: Callable[[str], None],
    tracking: Tracking | None = None,
) -> str:
    """Rebuild the MLflow model version of ``version`` from its files: a run
    with the tag's metrics and params, its logged model, and the model version."""
    from mlci.tracking import FINGERPRINT_TAG, GIT_TAG_TAG, MODEL_DIGEST_TAG, RESTORED_TAG, Registry

    meta = version.metadata
    tracking = tracking or project.make_tracking(config, environ)
    run_tags = {RESTORED_TAG: f"version {version.tag}"}
    if meta.get("fingerprint"):
        run_tags[FINGERPRINT_TAG] = str(meta["fingerprint"])
    if version.digest:
        run_tags[MODEL_DIGEST_TAG] = version.digest
    if meta.get("commit"):
        run_tags["mlci.git.commit"] = str(meta["commit"])
    raw_params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
    assert isinstance(raw_params, dict)
    record = tracking.import_run(
        run_name=f"{version.model.replace('/', '-')}-{version.version}",
        tags=run_tags,
        params={str(k): str(v) for k, v in raw_params.items()},
        metrics=tags.recorded_metrics(meta),
        model_dir=model_dir,
        model_name=version.model,
    )
    number = Registry(tracking, version.model).create_version(
        run_id=record.run_id,
        model_id=record.tags.get("mlci.model_id"),
        tags={
            GIT_TAG_TAG: version.tag,
            "mlci.git_commit": str(meta.get("commit") or ""),
            "mlci.fingerprint": str(meta.get("fingerprint") or ""),
            "mlci.version": version.version,
            MODEL_DIGEST_TAG: version.digest or "",
        },
        description=f"{version.model} {version.version} (git tag {version.tag}), from its stored bytes",
    )
    log(f"rebuilt MLflow model version {number} of {version.tag} in {tracking.uri}")
    return number


def resolve_for_promotion(
    config: cfg.Config,
    environ: Mapping[str, str],
    version: stores.Version,
    log: Callable[[str], None],
    tracking: Tracking | None = None,
) -> Resolved:
    """Make sure the version's bytes exist with the tag's digest, and that this
    job's MLflow store has its model version (rebuilt from the bytes if not)."""
    from mlci.tracking import Registry, sqlite_path

    tracking = tracking or project.make_tracking(config, environ)
    store = stores.for_version(version, config, environ, log, tracking)
    where = store.where(version)
    db = sqlite_path(tracking.uri)
    # A CI job's embedded store ends with the job: a cold one is not worth
    # opening (MLflow's import and schema cost seconds) to rebuild a mirror
    # nobody will read. `mlci doctor --fix` rebuilds it wherever it is wanted.
    ephemeral = environ.get("GITHUB_ACTIONS") == "true" and db is not None
    existing = None
    if not (ephemeral and db is not None and not db.exists()):
        hint = version.metadata.get("mlflow_model_version")
        existing = Registry(tracking, version.model).version_for_tag(
            version.tag, None if hint is None else str(hint)
        )
    if not stores.has_model(version):
        log(f"{version.tag} has no model file (train.model is not set): it records its run, nothing to check")
        if existing is None and not ephemeral:
            existing = mirror(config, environ, version, None, log, tracking)
        return Resolved(version, where, "no model file", existing)
    if version.digest is None:
        log(
            f"warning: {version.tag} records no model digest (registered by another tool, or before "
            "mlci recorded one): its bytes are not verified"
        )
        return Resolved(version, where, "not recorded", existing)
    if existing is not None and store.holds(version):
        log(f"{where} holds {version.tag}'s bytes (sha256 {version.digest[:12]})")
        return Resolved(version, where, "reported by the store", existing)
    if existing is None and ephemeral:
        digest = fetch(store, version, None, log)
        log(f"verified {version.tag}: sha256 {digest.sha256[:12]}, {digest.size:,} bytes")
        log(
            "this job's embedded MLflow store ends with the job: no MLflow model version or alias made "
            "here (`mlci doctor --fix` makes them from the stored bytes on any machine)"
        )
        return Resolved(version, where, "downloaded", None, mirror_skipped=True)
    scratch = _scratch(config, version)
    if existing is None:
        tracking.warm_up()  # the rebuild needs MLflow's client: it loads while the bytes download
    try:
        digest = fetch(store, version, scratch, log)
        log(f"verified {version.tag}: sha256 {digest.sha256[:12]}, {digest.size:,} bytes")
        if existing is None:
            existing = mirror(config, environ, version, scratch, log, tracking)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Resolved(version, where, "downloaded", existing)
