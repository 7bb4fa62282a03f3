"""The project's own plots (``report.plots``) in the report: the head run's, and each
baseline's where its run kept them.

Where they are read: the run's artifacts (``mlci-plot-<name>``, each checked against the
sha256 its tag ``mlci.plots`` records), or the report folder a pull request's job wrote
(``.mlci/plot-<name>``), read as hostile input (a fork's artifact): regular files only, bounded,
each checked and rebuilt as an image (``mlci.images``) before anything uses it.

Where they are shown: on a laptop, the files beside the report; in GitHub, assets of one
rolling pre-release, ``mlci-plots``, that the job which may write contents (and does
nothing else) uploads, each named by its digest (``<sha256[:16]>-<name>``) so an image is
uploaded once however many comments show it. A published release's assets render in a
comment for everyone who can read the repository, public or private; a branch of images
would grow the repository's history with every pull request, and a private repository's
Pages site or raw URLs do not render through GitHub's image proxy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import images
from mlci.errors import MlciError

if TYPE_CHECKING:
    from mlci.tracking import Tracking

PREFIX = "plot-"  # in a report folder (.mlci/plot-<name>): the head's plots, beside report.json
BASELINES_FOLDER = "baseline-plots"  # .mlci/baseline-plots/<key>/: each baseline's, on a laptop
METADATA_KEY = "plots"  # in a version tag's metadata: its run's plots, [{"name", "sha256"}]
RELEASE = "mlci-plots"  # the rolling pre-release that hosts plots for comments
MAX_ASSETS = 800  # GitHub keeps 1,000 assets a release; the oldest go first
_NAME = re.compile(images.NAME)


@dataclass(frozen=True)
class Figure:
    """One plot in the report: whose (``owner``: the head's label or a baseline's), its
    name and digest, and where a reader finds it (``url``; None: not published, ``note``)."""

    owner: str
    name: str
    sha256: str
    url: str | None = None
    note: str = ""
    path: Path | None = None  # the file, where it is on this machine (the HTML report embeds it)

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "name": self.name,
            "sha256": self.sha256,
            "url": self.url,
            "note": self.note,
        }


def asset_name(name: str, sha256: str) -> str:
    return f"{sha256[:16]}-{name}"


def recorded(tags: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (name, sha256) of each plot a run's tag records; nothing for a malformed tag."""
    try:
        found = json.loads(tags.get(images.PLOTS_TAG) or "[]")
    except ValueError:
        return []
    return listed(found)


def listed(found: object) -> list[tuple[str, str]]:
    """(name, sha256) pairs from ``[{"name", "sha256"}]`` (a tag's or a version's metadata),
    each checked: a plain file name, a hex digest; anything else is left out."""
    if not isinstance(found, list):
        return []
    out = []
    for entry in found[: images.MAX_PLOTS]:
        if not isinstance(entry, dict):
            continue
        name, sha = entry.get("name"), entry.get("sha256")
        if (
            isinstance(name, str)
            and _NAME.fullmatch(name)
            and isinstance(sha, str)
            and re.fullmatch(r"[0-9a-f]{64}", sha)
        ):
            out.append((name, sha))
    return out


def download(
    tracking: Tracking,
    run_id: str,
    wanted: Sequence[tuple[str, str]],
    folder: Path,
    log: Callable[[str], None],
    prefix: str = "",
) -> list[images.Image]:
    """A run's plots (``wanted``: (name, sha256) as its tag or its version records them) from
    its artifacts into ``folder`` as ``<prefix><name>``, each checked against its digest and
    as an image; one that cannot be had is said in the log and left out."""
    import tempfile

    if not wanted:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    try:
        run = tracking.get_run(run_id)
    except MlciError as exc:
        log(f"no plots from run {run_id}: {exc.message.splitlines()[0]}")
        return []
    for name, sha256 in wanted:
        try:
            path = tracking.read_artifact(
                run, images.PLOT_PREFIX + name, Path(tempfile.mkdtemp(prefix="mlci-plot-")), sha256=sha256
            )
            image = images.checked(name, path.read_bytes())
        except (MlciError, images.BadImage, OSError) as exc:
            why = exc.message.splitlines()[0] if isinstance(exc, MlciError) else str(exc)
            log(f"plot {name} of run {run_id} left out: {why}")
            continue
        (folder / f"{prefix}{name}").write_bytes(image.data)
        out.append(image)
    return out


def from_folder(folder: Path, log: Callable[[str], None]) -> list[images.Image]:
    """The plots a report folder carries (``plot-<name>``), read as hostile input: regular
    files with plain names, at most ``images.MAX_PLOTS``, each checked and rebuilt as an
    image. A file that is none of these is said in the log and left out."""
    from mlci import safeinput

    if folder.is_symlink() or not folder.is_dir():
        return []
    out: list[images.Image] = []
    for path in sorted(folder.glob(f"{PREFIX}*"))[: images.MAX_PLOTS * 2]:
        name = path.name[len(PREFIX) :]
        if len(out) >= images.MAX_PLOTS:
            log(f"more than {images.MAX_PLOTS} plots in the report: the rest are left out")
            break
        if not _NAME.fullmatch(name) or path.is_symlink() or not path.is_file():
            log(f"plot {name[:60]!r} left out: not a regular file with a plain name")
            continue
        try:
            data = safeinput.read_bytes(path, limit=images.MAX_BYTES, what=f"plot {name}", follow=False)
            out.append(images.checked(name, data))
        except safeinput.BadInput as exc:
            log(f"plot {name} left out: {exc.problem}")
        except images.BadImage as exc:
            log(f"plot {name} left out: {exc}")
    return out


def local(owner: str, found: Sequence[images.Image], where: str, folder: Path) -> list[Figure]:
    """Figures shown from files beside the report (``where``: the path before each name,
    relative to the report; ``folder``: the report's folder)."""
    return [
        Figure(owner, i.name, i.sha256, f"{where}{i.name}", path=folder / f"{where}{i.name}") for i in found
    ]


def published(
    owner: str, wanted: Sequence[tuple[str, str]], assets: Mapping[str, str] | None
) -> list[Figure]:
    """Figures linked to the rolling release's assets (``assets``: name -> download URL;
    None: the release could not be read)."""
    out = []
    for name, sha256 in wanted:
        url = None if assets is None else assets.get(asset_name(name, sha256))
        note = (
            "" if url else f"not published in the {RELEASE} release (the job that uploads plots did not run)"
        )
        out.append(Figure(owner, name, sha256, url, note))
    return out


def release_assets(api: Any, log: Callable[[str], None]) -> dict[str, str] | None:
    """The rolling release's assets, name -> download URL (read-only); None if unreadable,
    {} where there is no such release yet."""
    from mlci import github_api

    try:
        release = api.release(RELEASE)
        if release is None:
            return {}
        return {a.name: a.url for a in api.assets(release)}
    except github_api.GitHubError as exc:
        log(f"the plots release {RELEASE} cannot be read: {exc.message.splitlines()[0]}")
        return None


def upload(api: Any, found: Sequence[images.Image], log: Callable[[str], None]) -> dict[str, Any]:
    """Each plot as an asset of the rolling pre-release (made on first use), once: an asset
    of its name (its digest) is there already. The oldest assets go past ``MAX_ASSETS``."""
    import tempfile

    from mlci import github_api

    release = api.release(RELEASE)
    if release is None:
        release = api.create_prerelease(
            RELEASE,
            "mlci plots",
            "Plots that mlci shows in pull request comments (report.plots in mlci.yaml), one asset "
            "per image, named by its digest. Kept by mlci: the oldest go as new ones come. "
            "Not a release of this project.",
        )
        log(f"made the pre-release {RELEASE} to host plots")
    have = {a.name: a for a in api.assets(release)}
    uploaded, kept = [], []
    for image in found:
        name = asset_name(image.name, image.sha256)
        if name in have:
            kept.append(name)
            continue
        with tempfile.TemporaryDirectory(prefix="mlci-plot-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(image.data)
            try:
                asset = api.upload_asset(release, str(path), name, image.content_type)
            except github_api.GitHubError as exc:
                # Another pull request's job uploaded the same image meanwhile: it is there.
                if exc.status != 422 or name not in {a.name for a in api.assets(release)}:
                    raise
                kept.append(name)
                continue
        have[name] = asset
        uploaded.append(name)
        log(f"uploaded plot {image.name} as {name}")
    pruned = []
    if len(have) > MAX_ASSETS:
        current = {asset_name(i.name, i.sha256) for i in found}
        old = sorted((a for a in have.values() if a.name not in current), key=lambda a: a.created_at or "")
        for asset in old[: len(have) - MAX_ASSETS]:
            api.delete_asset(release, asset)
            pruned.append(asset.name)
        log(f"deleted the {len(pruned)} oldest plots of {RELEASE} (it keeps {MAX_ASSETS})")
    return {"release": RELEASE, "uploaded": uploaded, "present": kept, "pruned": pruned}


def beside_report(
    tracking: Tracking,
    folder: Path,
    head: tuple[str, str | None, Mapping[str, str]],
    baselines: Sequence[Any],
    log: Callable[[str], None],
) -> list[Figure]:
    """The head run's plots (``head``: its label, run id and tags) and each baseline's
    (``rpt.Baseline``: its version's plots, from its run) as files beside the report in
    ``folder`` (``plot-<name>``, ``baseline-plots/<key>/<name>``), linked relatively: a
    laptop's report, and the pull request job's, whose ``plot-*`` travel in its artifact.
    Earlier files there go first."""
    import shutil

    for stale in folder.glob(f"{PREFIX}*"):
        stale.unlink()
    shutil.rmtree(folder / BASELINES_FOLDER, ignore_errors=True)
    label, run_id, tags = head
    found = download(tracking, run_id, recorded(tags), folder, log, prefix=PREFIX) if run_id else []
    out = local(label, found, PREFIX, folder)
    seen: set[str] = {run_id} if run_id else set()
    for baseline in baselines:
        if not (baseline.found and baseline.plots and baseline.run_id) or baseline.run_id in seen:
            continue
        seen.add(baseline.run_id)
        where = f"{BASELINES_FOLDER}/{baseline.key}/"
        got = download(tracking, baseline.run_id, baseline.plots, folder / where, log)
        out += local(baseline.label, got, where, folder)
    return out


def for_publishing(
    head_label: str, found: Sequence[images.Image], baselines: Sequence[Any], assets: Mapping[str, str] | None
) -> list[Figure]:
    """The figures a trusted job posts: the head's plots (``found``, checked from the
    artifact) and each baseline's version's, linked to the rolling release's assets."""
    out = published(head_label, [(i.name, i.sha256) for i in found], assets)
    seen: set[str] = set()
    for baseline in baselines:
        if not (baseline.found and baseline.plots) or (baseline.version or baseline.key) in seen:
            continue
        seen.add(baseline.version or baseline.key)
        out += [f for f in published(baseline.label, baseline.plots, assets) if f.url]
    return out
