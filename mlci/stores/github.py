"""Bytes on GitHub, for CI without a tracking server.

- ``RunArtifacts``: the run cache's home across branches. The job that trains
  uploads its run bundle as a workflow artifact (``bundle.artifact_name``);
  a later job finds it through the REST API and restores it. Only artifacts
  made by a trusted run count: a push, or a pull request whose head repository
  is this repository. A fork's pull request runs the fork's workflow files and
  can upload anything under any name, so its artifacts are never reused.
- ``ReleaseStore``: registered versions. Registering makes a draft release on
  the version tag (its text the model card) with the model archive, pushes the tag, then
  publishes the release; a failed push deletes the draft, so no version exists
  without its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlci import archive, gitrepo
from mlci import config as cfg
from mlci.errors import MlciError
from mlci.stores import bundle
from mlci.stores.base import ASSET_KEY, STORE_KEY, ModelMissing, Version, archive_name, asset_key

if TYPE_CHECKING:
    from mlci.github_api import ArtifactInfo, GitHubApi, ReleaseInfo

TRUSTED_EVENTS = ("push", "pull_request")
_REMOTE_URL = re.compile(r"(?:github\.com|^[^/]+)[:/](?P<repo>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")


class GitHubUnavailable(MlciError):
    pass


def token_of(environ: Mapping[str, str]) -> str | None:
    return environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN") or None


def repository_of(environ: Mapping[str, str], root: Path) -> str | None:
    """GITHUB_REPOSITORY in Actions; elsewhere the owner/name of origin's URL."""
    if environ.get("GITHUB_REPOSITORY"):
        return environ["GITHUB_REPOSITORY"]
    url = gitrepo.remote_url(root, "origin")
    match = _REMOTE_URL.search(url or "")
    return match["repo"] if match and "github" in (url or "") else None


def connect(environ: Mapping[str, str], root: Path, why: str) -> tuple[GitHubApi, str]:
    from mlci.github_api import GitHubApi, retry_settings

    token = token_of(environ)
    repository = repository_of(environ, root)
    if not token or not repository:
        missing = "a token (GITHUB_TOKEN or GH_TOKEN)" if not token else "the repository (GITHUB_REPOSITORY)"
        raise GitHubUnavailable(
            f"{why}, and reaching GitHub needs {missing}",
            hint="set GITHUB_TOKEN (a token that can read the repository; `gh auth token` prints yours) "
            "and, outside a clone of the GitHub repository, GITHUB_REPOSITORY=owner/name",
        )
    api_url = environ.get("GITHUB_API_URL") or "https://api.github.com"
    api = GitHubApi(
        token,
        api_url,
        repository,
        **retry_settings(environ),
    )
    return api, repository


class RunArtifacts:
    """The run cache's GitHub home: workflow artifacts named by model and fingerprint."""

    def __init__(
        self, api: GitHubApi, repository: str, log: Callable[[str], None], own_run: int | None = None
    ) -> None:
        self.api = api
        self.repository = repository
        self.log = log
        self.own_run = own_run  # this workflow run (GITHUB_RUN_ID): its own jobs' artifacts

    def _distrust(self, artifact: ArtifactInfo) -> str | None:
        """Why an artifact's run is not trusted, or None."""
        if (
            artifact.head_repository_id is not None
            and artifact.repository_id is not None
            and artifact.head_repository_id != artifact.repository_id
        ):
            return "its run came from a fork"
        if artifact.run_id is None:
            return "GitHub names no run that made it"
        if self.own_run is not None and artifact.run_id == self.own_run:
            return None  # an earlier job of this run (the train job before the promote job)
        run = self.api.workflow_run(int(artifact.run_id))
        if run.event not in TRUSTED_EVENTS:
            return f"a {run.event!r} run made it (trusted: push, and pull requests from this repository)"
        if run.head_repository != run.repository:
            return f"a pull request from {run.head_repository} made it"
        return None

    def find(self, model: str, fingerprint: str, dest: Path) -> bundle.Restored | None:
        from mlci.github_api import GitHubError, GitHubNotFound

        name = bundle.artifact_name(model, fingerprint)
        try:
            return self._find(name, model, fingerprint, dest)
        except GitHubNotFound as exc:
            if not exc.missing:
                raise  # a wrong GITHUB_API_URL or repository: an error, never a reason to train
            self.log(f"warning: could not look for the run in workflow artifacts ({exc.message}); training")
            return None
        except GitHubError as exc:
            # The run cache saves time; it never decides what a version's bytes are.
            self.log(
                f"warning: could not look for the run in workflow artifacts ({exc.message}); training "
                f"(hint: {exc.hint})"
            )
            return None

    def _find(self, name: str, model: str, fingerprint: str, dest: Path) -> bundle.Restored | None:
        found = self.api.artifacts(name)
        expired = [a for a in found if a.expired]
        for artifact in found:
            if artifact.expired:
                continue
            why = self._distrust(artifact)
            if why is not None:
                self.log(f"ignoring artifact {name} of run {artifact.run_id}: {why}")
                continue
            source = f"workflow artifact {name} (run {artifact.run_id})"
            zip_path = dest.parent / f"{dest.name}.zip"
            zip_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zip_path.open("wb") as handle:  # a zip is read from its end: it lands on disk first
                    for chunk in self.api.download_artifact(artifact):
                        handle.write(chunk)
                restored = bundle.restore_zip(
                    zip_path, dest, model=model, fingerprint=fingerprint, source=source
                )
            except (bundle.BundleError, archive.ArchiveError) as exc:
                self.log(f"ignoring {source}: {exc.message}")
                continue
            finally:
                zip_path.unlink(missing_ok=True)
            self.log(f"restored the run for fingerprint {fingerprint[:12]} from {source}")
            return restored
        if expired:
            self.log(
                f"training again: the run for this fingerprint expired on GitHub "
                f"(artifact {name}, expired {expired[0].expires_at or 'earlier'}; "
                "GitHub keeps artifacts 90 days unless the repository says otherwise)"
            )
        return None


class ReleaseStore:
    """Registered versions as releases on their version tags."""

    name = "github"

    def __init__(self, api: GitHubApi, repository: str, log: Callable[[str], None]) -> None:
        self.api = api
        self.repository = repository
        self.log = log
        self._staged: ReleaseInfo | None = None

    @classmethod
    def from_environ(
        cls, config: cfg.Config, environ: Mapping[str, str], log: Callable[[str], None]
    ) -> ReleaseStore:
        root = gitrepo.toplevel(config.root) or config.root
        api, repository = connect(environ, root, "the model's bytes live in GitHub releases")
        return cls(api, repository, log)

    def where(self, version: Version) -> str:
        asset = version.metadata.get(ASSET_KEY) or archive_name(version.model, version.version)
        return f"the release {version.tag} of {self.repository} (asset {asset})"

    def stage(
        self, version: Version, archive_path: Path, card: str, kept: Mapping[str, Path] | None = None
    ) -> dict[str, object]:
        # No read first: a tag mlci has not pushed has no published release (GitHub answers
        # the create with 422 already_exists if it has), and a draft left by a registration
        # that did not finish is never published or read.
        name = archive_name(version.model, version.version)
        release = self.api.create_draft_release(version.tag, f"{version.model} {version.version}", card)
        self._staged = release
        try:
            self.api.upload_asset(release, str(archive_path), name, "application/x-tar")
            staged: dict[str, object] = {STORE_KEY: self.name, ASSET_KEY: name}
            for kind, path in (kept or {}).items():
                # Kept with the version, so a later pull request's comparisons with it
                # (intervals paired on the same rows, data profiles) outlive the job that made it.
                asset = kept_asset_name(version, kind, path.suffix)
                self.api.upload_asset(release, str(path), asset, "application/octet-stream")
                staged[asset_key(kind)] = asset
        except BaseException:
            self.abort()
            raise
        self.log(f"uploaded {name} to a draft release on {version.tag}")
        return staged

    def commit(self) -> None:
        if self._staged is not None:
            self.api.publish_release(self._staged)  # the release's text is the model card
            self.log(f"published the release {self._staged.tag}")
            self._staged = None

    def abort(self) -> None:
        if self._staged is not None:
            with contextlib.suppress(MlciError):
                self.api.delete_release(self._staged)
            self._staged = None

    def _asset(self, version: Version) -> tuple[ReleaseInfo, str]:
        release = self.api.release(version.tag)
        name = str(version.metadata.get(ASSET_KEY) or archive_name(version.model, version.version))
        if release is None or release.asset(name) is None:
            what = "no release" if release is None else f"no asset {name} in the release"
            raise ModelMissing(
                f"{version.tag}: {self.repository} has {what} on this tag, where the version's bytes were "
                f"stored (looked in {self.where(version)})",
                hint="the release was deleted or never published: mlci never retrains to fill the gap. "
                "Register the model again from its inputs (a new version), or restore the release",
            )
        return release, name

    def holds(self, version: Version) -> bool:
        try:
            release, name = self._asset(version)
        except ModelMissing:
            return False
        asset = release.asset(name)
        return asset is not None and version.digest is not None and asset.digest == f"sha256:{version.digest}"

    def fetch(self, version: Version, dest: Path | None) -> archive.Digest:
        release, name = self._asset(version)
        asset = release.asset(name)
        assert asset is not None
        if dest is None:
            chunks = self.api.download_asset(release, asset)
            return archive.verify(chunks, expected=version.digest, source=f"release asset {name}")
        return archive.unpack(
            self.api.download_asset(release, asset),
            dest,
            expected=version.digest,
            source=f"release asset {name} of {version.tag}",
        )

    def fetch_kept(self, version: Version, kind: str, sha256: str, dest: Path) -> Path:
        """A file the version's release keeps beside its model ("predictions",
        "data-profile") into the folder ``dest``, its sha256 checked against ``sha256``
        (what the tag records)."""
        name = str(version.metadata.get(asset_key(kind)) or "")
        release = self.api.release(version.tag)
        asset = release.asset(name) if release is not None and name else None
        if release is None or asset is None:
            raise ModelMissing(f"{version.tag}: no {kind} asset in the release {version.tag}")
        suffix = Path(name).suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq", ".json"):
            raise ModelMissing(f"{version.tag}: the {kind} asset {name!r} is not a file mlci keeps")
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / f"{kind}{suffix}"
        partial = dest / f".{kind}{suffix}.part"  # the copy read may be ``path`` itself
        digest, size = hashlib.sha256(), 0
        with partial.open("wb") as handle:
            for chunk in self.api.download_asset(release, asset):
                digest.update(chunk)
                size += len(chunk)
                if size > bundle.MAX_PREDICTIONS_BYTES:
                    break
                handle.write(chunk)
        if digest.hexdigest() == sha256:
            partial.replace(path)
            self.api.keep_copy(asset, path)  # read once per process
        else:
            partial.unlink()
            raise archive.ArchiveError(
                f"release asset {name} of {version.tag} has sha256 {digest.hexdigest()}, the tag records "
                f"{sha256}: not the {kind} that were registered"
            )
        return path


def kept_asset_name(version: Version, kind: str, suffix: str) -> str:
    return f"{version.model.replace('/', '-')}-{version.version}-{kind}{suffix.lower()}"


def run_artifacts(environ: Mapping[str, str], root: Path, log: Callable[[str], None]) -> RunArtifacts | None:
    """The artifact run source, in GitHub Actions with a token; else None."""
    if environ.get("GITHUB_ACTIONS") != "true" or not token_of(environ):
        return None
    try:
        api, repository = connect(environ, root, "finding runs in workflow artifacts")
    except GitHubUnavailable:
        return None
    own = environ.get("GITHUB_RUN_ID", "")
    return RunArtifacts(api, repository, log, int(own) if own.isdigit() else None)
