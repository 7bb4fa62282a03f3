"""A run bundle: one training run as files that can travel between CI jobs.

``.mlci/bundles/<fingerprint>/`` holds ``run.json`` (what MLflow recorded:
metrics, params, mlci's tags, the model archive's digest) and ``model.tar``
(``mlci.archive``). In GitHub Actions the job that trains uploads the folder
as the workflow artifact ``artifact_name(model, fingerprint)``; any later job,
on any branch, restores the run from it instead of training again.

Everything read from a bundle is checked as data: it may come from a run
that mlci does not trust, and it never runs.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci import archive, images, safeinput
from mlci.errors import MlciError

FORMAT = 1
RUN_FILE = "run.json"
ARCHIVE_FILE = "model.tar"
PLOTS_DIR = "plots"  # the run's report.plots, as it logged them (mlci-plot-<name>)
_PLOT_NAME = re.compile(rf"{images.PLOT_PREFIX}{images.NAME}\.(png|svg)", re.IGNORECASE)
PREDICTIONS_DIR = "predictions"  # the run's predictions file (train.predictions), under its own name
_PREDICTIONS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(csv|parquet|pq)")
DATA_DIR = "data"  # the run's datasets' profiles (mlci.data.PROFILE_FILE)
PROFILE_NAME = "data-profile.json"
_PROFILE_NAME = re.compile(re.escape(PROFILE_NAME))
MAX_PREDICTIONS_BYTES = 512 * 1024 * 1024
BUNDLES_DIR = "bundles"
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
# What a restored run keeps of the training run's tags: lineage, not MLflow's internals.
KEPT_TAG_PREFIXES = ("mlci.", "mlflow.source.")
DROPPED_TAGS = ("mlci.model_id", "mlci.restored_from")


class BundleError(MlciError):
    pass


@dataclass(frozen=True)
class Restored:
    fingerprint: str
    run_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    model_dir: Path | None  # None: the project versions no model file (no train.model)
    archive_path: Path | None
    digest: archive.Digest | None
    source: str  # where it came from, in words
    predictions: Path | None = None  # the run's predictions file, if it recorded one
    data_profile: Path | None = None  # its datasets' profiles (data-profile.json), if it has data
    plots: tuple[Path, ...] = ()  # its report.plots (mlci-plot-<name>), each checked as an image


def artifact_name(model: str, fingerprint: str) -> str:
    """The workflow artifact's name: GitHub's names may not hold '/'."""
    return f"mlci-run-{model.replace('/', '--')}-{fingerprint}"


def folder(state_dir: Path, fingerprint: str) -> Path:
    return state_dir / BUNDLES_DIR / fingerprint


def write(
    dest: Path,
    *,
    model: str,
    fingerprint: str,
    run_id: str,
    metrics: Mapping[str, float],
    params: Mapping[str, str],
    tags: Mapping[str, str],
    model_dir: Path | None,
    predictions: Path | None = None,
    data_profile: Path | None = None,
    plots: Sequence[Path] = (),
) -> archive.Digest | None:
    """The bundle of a finished run into ``dest``; returns the model archive's digest
    (None for a run without a model). ``predictions`` travels with it, so later jobs
    can bootstrap intervals against this run."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    digest = archive.pack(model_dir, dest / ARCHIVE_FILE) if model_dir is not None else None
    predictions_record = None
    if predictions is not None:
        (dest / PREDICTIONS_DIR).mkdir()
        shutil.copyfile(predictions, dest / PREDICTIONS_DIR / predictions.name)
        digest_of = archive.verify(archive.file_chunks(predictions), expected=None, source=str(predictions))
        predictions_record = {"name": predictions.name, "sha256": digest_of.sha256}
    profile_record = None
    if data_profile is not None:
        (dest / DATA_DIR).mkdir()
        shutil.copyfile(data_profile, dest / DATA_DIR / PROFILE_NAME)
        profile_digest = archive.verify(
            archive.file_chunks(data_profile), expected=None, source=str(data_profile)
        )
        profile_record = {"name": PROFILE_NAME, "sha256": profile_digest.sha256}
    plot_records = []
    for plot in plots:
        (dest / PLOTS_DIR).mkdir(exist_ok=True)
        shutil.copyfile(plot, dest / PLOTS_DIR / plot.name)
        plot_digest = archive.verify(archive.file_chunks(plot), expected=None, source=str(plot))
        plot_records.append({"name": plot.name, "sha256": plot_digest.sha256})
    record = {
        "format": FORMAT,
        "model": model,
        "fingerprint": fingerprint,
        "run_id": run_id,
        "metrics": dict(metrics),
        "params": dict(params),
        "tags": {k: v for k, v in tags.items() if k.startswith(KEPT_TAG_PREFIXES) and k not in DROPPED_TAGS},
        "model_sha256": digest.sha256 if digest else None,
        "model_size": digest.size if digest else None,
        **({"predictions": predictions_record} if predictions_record else {}),
        **({"data_profile": profile_record} if profile_record else {}),
        **({"plots": plot_records} if plot_records else {}),
    }
    (dest / RUN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return digest


def _check(record: Any, model: str, fingerprint: str, source: str) -> dict[str, Any]:
    def bad(what: str) -> BundleError:
        return BundleError(
            f"{source}: {RUN_FILE} {what}", hint="the artifact is not a run mlci made; ignore it"
        )

    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise bad(f"is not a format-{FORMAT} run record")
    if record.get("model") != model or record.get("fingerprint") != fingerprint:
        raise bad(
            f"is for {record.get('model')!r} {str(record.get('fingerprint'))[:12]}, not this model's inputs"
        )
    digest = record.get("model_sha256")
    if digest is not None and (not isinstance(digest, str) or not _FINGERPRINT.fullmatch(digest)):
        raise bad("has no valid model_sha256")
    if not isinstance(record.get("run_id"), str):
        raise bad("has no run_id")
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for k, v in metrics.items()
    ):
        raise bad("has metrics that are not finite numbers by name")
    for key in ("params", "tags"):
        value = record.get(key)
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad(f"has {key} that are not strings by name")
    return record


_MAX_RECORD = 4 * 1024 * 1024


def restore_zip(zip_path: Path, dest: Path, *, model: str, fingerprint: str, source: str) -> Restored:
    """A bundle from a workflow artifact's zip into ``dest``: the record checked,
    the model unpacked and its digest verified in one pass over the archive."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = set(zf.namelist())
            if RUN_FILE not in names:
                raise BundleError(
                    f"{source} lacks {RUN_FILE} (it holds {', '.join(sorted(names)[:5])})",
                    hint="the artifact is not a run mlci made",
                )
            info = zf.getinfo(RUN_FILE)
            if info.file_size > _MAX_RECORD:
                raise BundleError(f"{source}: {RUN_FILE} is {info.file_size} bytes, more than {_MAX_RECORD}")
            try:
                with zf.open(RUN_FILE) as member:
                    raw = member.read(_MAX_RECORD + 1)
                if len(raw) > _MAX_RECORD:
                    raise BundleError(f"{source}: {RUN_FILE} is more than {_MAX_RECORD} bytes")
                record = safeinput.load_json(raw.decode("utf-8"))
            except (safeinput.BadInput, UnicodeDecodeError) as exc:
                raise BundleError(f"{source}: {RUN_FILE} is not JSON mlci can read: {exc}") from None
            record = _check(record, model, fingerprint, source)
            if record["model_sha256"] is not None and ARCHIVE_FILE not in names:
                raise BundleError(
                    f"{source} lacks {ARCHIVE_FILE}, which its {RUN_FILE} records",
                    hint="the artifact is not a run mlci made",
                )
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            digest = None
            if record["model_sha256"] is not None:
                with zf.open(ARCHIVE_FILE) as member:
                    digest = archive.unpack(
                        _chunks(member),
                        dest / "model",
                        expected=record["model_sha256"],
                        source=f"{source} ({ARCHIVE_FILE})",
                        keep=dest / ARCHIVE_FILE,
                    )
            predictions = _restore_file(
                zf, names, record.get("predictions"), (PREDICTIONS_DIR, _PREDICTIONS_NAME), dest, source
            )
            data_profile = _restore_file(
                zf, names, record.get("data_profile"), (DATA_DIR, _PROFILE_NAME), dest, source
            )
            plots = _restore_plots(zf, names, record.get("plots"), dest, source)
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{source} is not a zip archive: {exc}") from None
    (dest / RUN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Restored(
        fingerprint=fingerprint,
        run_id=record["run_id"],
        metrics={k: float(v) for k, v in record["metrics"].items()},
        params=dict(record["params"]),
        tags=dict(record["tags"]),
        model_dir=dest / "model" if digest else None,
        archive_path=dest / ARCHIVE_FILE if digest else None,
        digest=digest,
        source=source,
        predictions=predictions,
        data_profile=data_profile,
        plots=plots,
    )


def _restore_plots(
    zf: zipfile.ZipFile, names: set[str], entries: Any, dest: Path, source: str
) -> tuple[Path, ...]:
    """The plots a bundle records, each restored as ``_restore_file`` does and checked as an
    image (``mlci.images``): the bundle is an artifact another branch's job wrote."""
    if entries is None:
        return ()
    if not isinstance(entries, list) or len(entries) > images.MAX_PLOTS:
        raise BundleError(f"{source}: {RUN_FILE} has a plots entry that is not a short list")
    out = []
    for entry in entries:
        path = _restore_file(zf, names, entry, (PLOTS_DIR, _PLOT_NAME), dest, source)
        if path is None:
            continue
        try:
            images.checked(path.name, path.read_bytes())
        except images.BadImage as exc:
            path.unlink()
            raise BundleError(
                f"{source}: {PLOTS_DIR}/{path.name} is not an image mlci publishes: {exc}"
            ) from None
        out.append(path)
    return tuple(out)


def _restore_file(
    zf: zipfile.ZipFile,
    names: set[str],
    entry: Any,
    where: tuple[str, re.Pattern[str]],
    dest: Path,
    source: str,
) -> Path | None:
    """A file a bundle records beside the model (its predictions, its data profiles),
    checked as data: a plain name of the right kind, a size cap, and the digest the
    record names. A bundle without one restores without one."""
    import hashlib

    if entry is None:
        return None
    folder, pattern = where
    name = entry.get("name") if isinstance(entry, dict) else None
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise BundleError(f"{source}: {RUN_FILE} names {folder} {name!r}, not a plain name mlci writes there")
    if not isinstance(expected, str) or not _FINGERPRINT.fullmatch(expected):
        raise BundleError(f"{source}: {RUN_FILE} has no valid sha256 for its {folder}")
    member_name = f"{folder}/{name}"
    if member_name not in names:
        raise BundleError(f"{source} lacks {member_name}, which its {RUN_FILE} records")
    if zf.getinfo(member_name).file_size > MAX_PREDICTIONS_BYTES:
        raise BundleError(f"{source}: {member_name} is larger than {MAX_PREDICTIONS_BYTES} bytes")
    target = dest / folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with zf.open(member_name) as member, open(target, "wb") as out:
        for chunk in _chunks(member):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != expected:
        target.unlink()
        raise BundleError(f"{source}: {member_name} does not match the sha256 its {RUN_FILE} records")
    return target


def _chunks(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(archive.CHUNK):
        yield chunk
