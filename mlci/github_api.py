"""GitHub's REST API through PyGithub: the one module that imports it.

Transient failures (5xx, primary and secondary rate limits, ``Retry-After``)
are retried by PyGithub's own ``GithubRetry``, configured here. Objects are
made lazily, so a pull request event costs only the requests that do work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mlci.errors import MlciError

if TYPE_CHECKING:
    from github import Github

ACTIONS_BOT = "github-actions[bot]"
STATUS_DESCRIPTION_LIMIT = 140


class GitHubError(MlciError):
    pass


class GitHubForbidden(GitHubError):
    """403/404 on a write: a read-only token, as a fork's pull request gets."""


@dataclass(frozen=True)
class PullInfo:
    number: int
    head_sha: str
    head_ref: str
    base_ref: str


@dataclass(frozen=True)
class CommentResult:
    action: str  # "created" or "updated"
    comment_id: int
    url: str


def _translate(what: str, exc: Exception) -> GitHubError:
    from github import GithubException

    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else exc.data
        if exc.status in (403, 404) and "rate limit" not in str(message).lower():
            return GitHubForbidden(
                f"GitHub refused {what}: {exc.status} {message}",
                hint="the token cannot write here (a fork's pull request gets a read-only token); "
                "the report is in the job summary",
            )
        return GitHubError(
            f"GitHub API: {what} failed: {exc.status} {message}",
            hint="GitHub may be unavailable; the report is on disk and in the job summary, re-run the job",
        )
    return GitHubError(f"GitHub API: {what} failed: {type(exc).__name__}: {exc}", hint="check GITHUB_API_URL")


class GitHubApi:
    def __init__(
        self,
        token: str,
        api_url: str,
        repository: str,
        *,
        retries: int = 5,
        backoff: float = 1.0,
        secondary_rate_wait: float = 60.0,
        max_rate_limit_wait: float = 900.0,
        seconds_between_writes: float = 0.5,
    ) -> None:
        from github import Auth, Github, GithubRetry

        self.repository = repository
        self._gh: Github = Github(
            auth=Auth.Token(token),
            base_url=api_url.rstrip("/"),
            per_page=100,
            retry=GithubRetry(
                total=retries,
                backoff_factor=backoff,
                secondary_rate_wait=secondary_rate_wait,
                max_rate_limit_wait=max_rate_limit_wait,
            ),
            seconds_between_requests=None,
            seconds_between_writes=seconds_between_writes,
            lazy=True,
        )
        self._repo = self._gh.get_repo(repository)

    def author(self) -> str:
        """Whose comments are ours: the token's user, or the Actions bot (whose
        token cannot read ``GET /user``)."""
        from github import GithubException

        try:
            return str(self._gh.get_user().login)
        except GithubException as exc:
            if exc.status in (401, 403, 404):
                return ACTIONS_BOT
            raise _translate("reading the token's user", exc) from exc
        except Exception as exc:  # retries exhausted, connection refused, ...
            raise _translate("reading the token's user", exc) from exc

    def upsert_comment(self, pr: int, body: str, marker: str, author: str) -> CommentResult:
        """Edit our comment with ``marker`` in place, or create it: one comment per PR and model.

        Ours starts with the marker (text inside a report, a hostile metric name in a
        code span, cannot pose as another model's); a comment by someone else that
        quotes the marker is left alone.
        """
        try:
            issue = self._repo.get_issue(pr)
            for comment in issue.get_comments():
                if (
                    (comment.body or "").startswith(marker)
                    and comment.user is not None
                    and comment.user.login == author
                ):
                    comment.edit(body)
                    return CommentResult("updated", int(comment.id), str(comment.html_url))
            created = issue.create_comment(body)
            return CommentResult("created", int(created.id), str(created.html_url))
        except MlciError:
            raise
        except Exception as exc:
            raise _translate(f"writing the comment on #{pr}", exc) from exc

    def pull(self, number: int) -> PullInfo:
        """Pull request ``number`` as GitHub reports it (not as an artifact claims)."""
        try:
            raw = self._repo.get_pull(number).raw_data
            return PullInfo(
                number=number,
                head_sha=str(raw["head"]["sha"]),
                head_ref=str(raw["head"].get("ref") or ""),
                base_ref=str(raw["base"]["ref"]),
            )
        except Exception as exc:
            raise _translate(f"reading pull request #{number}", exc) from exc

    def set_status(
        self, sha: str, context: str, state: str, description: str, target_url: str | None
    ) -> None:
        if len(description) > STATUS_DESCRIPTION_LIMIT:
            description = description[: STATUS_DESCRIPTION_LIMIT - 1] + "…"
        kwargs: dict[str, Any] = {"state": state, "description": description, "context": context}
        if target_url:
            kwargs["target_url"] = target_url
        try:
            self._repo.get_commit(sha).create_status(**kwargs)
        except Exception as exc:
            raise _translate(f"setting status {context} on {sha[:12]}", exc) from exc


# --------------------------------------------------------------------------- artifacts and releases


@dataclass(frozen=True)
class ArtifactInfo:
    id: int
    name: str
    expired: bool
    created_at: str
    expires_at: str
    size: int
    run_id: int | None
    repository_id: int | None
    head_repository_id: int | None
    head_branch: str | None


@dataclass(frozen=True)
class RunInfo:
    id: int
    event: str
    repository: str | None
    head_repository: str | None


@dataclass(frozen=True)
class AssetInfo:
    id: int
    name: str
    size: int
    digest: str | None  # "sha256:..." where GitHub reports it
    url: str


@dataclass(frozen=True)
class ReleaseInfo:
    id: int
    tag: str
    draft: bool
    html_url: str
    upload_url: str
    assets: tuple[AssetInfo, ...]

    def asset(self, name: str) -> AssetInfo | None:
        return next((a for a in self.assets if a.name == name), None)


def _asset(raw: dict[str, Any]) -> AssetInfo:
    return AssetInfo(
        int(raw["id"]), str(raw["name"]), int(raw.get("size") or 0), raw.get("digest"), str(raw["url"])
    )


def _release(raw: dict[str, Any]) -> ReleaseInfo:
    return ReleaseInfo(
        id=int(raw["id"]),
        tag=str(raw.get("tag_name") or ""),
        draft=bool(raw.get("draft")),
        html_url=str(raw.get("html_url") or ""),
        upload_url=str(raw.get("upload_url") or "").split("{?")[0],
        assets=tuple(_asset(a) for a in raw.get("assets") or []),
    )


class GitHubStore(GitHubApi):
    """The calls behind model storage on GitHub: workflow artifacts (runs) and
    releases (registered versions). Downloads stream, following GitHub's redirect."""

    def artifacts(self, name: str) -> list[ArtifactInfo]:
        """Artifacts of this repository with exactly this name, newest first."""
        try:
            found = []
            for artifact in self._repo.get_artifacts(name=name):
                raw = artifact.raw_data
                run = raw.get("workflow_run") or {}
                found.append(
                    ArtifactInfo(
                        id=int(raw["id"]),
                        name=str(raw["name"]),
                        expired=bool(raw.get("expired")),
                        created_at=str(raw.get("created_at") or ""),
                        expires_at=str(raw.get("expires_at") or ""),
                        size=int(raw.get("size_in_bytes") or 0),
                        run_id=run.get("id"),
                        repository_id=run.get("repository_id"),
                        head_repository_id=run.get("head_repository_id"),
                        head_branch=run.get("head_branch"),
                    )
                )
                if len(found) >= 100:
                    break
        except Exception as exc:
            raise _translate(f"listing the artifacts named {name}", exc) from exc
        return sorted(found, key=lambda a: (a.created_at, a.id), reverse=True)

    def workflow_run(self, run_id: int) -> RunInfo:
        try:
            raw = self._repo.get_workflow_run(run_id).raw_data
        except Exception as exc:
            raise _translate(f"reading workflow run {run_id}", exc) from exc
        return RunInfo(
            id=int(raw["id"]),
            event=str(raw.get("event") or ""),
            repository=(raw.get("repository") or {}).get("full_name"),
            head_repository=(raw.get("head_repository") or {}).get("full_name"),
        )

    def _stream(self, url: str, what: str) -> Iterator[bytes]:
        try:
            _, _, chunks = self._gh.requester.getStream(url, chunk_size=1 << 20)
        except Exception as exc:
            raise _translate(what, exc) from exc
        return cast("Iterator[bytes]", chunks)

    def download_artifact(self, artifact: ArtifactInfo) -> Iterator[bytes]:
        url = f"{self._repo.url}/actions/artifacts/{artifact.id}/zip"
        return self._stream(url, f"downloading artifact {artifact.name}")

    def download_asset(self, asset: AssetInfo) -> Iterator[bytes]:
        return self._stream(asset.url, f"downloading release asset {asset.name}")

    def release(self, tag: str) -> ReleaseInfo | None:
        """The release on ``tag``: a published one, else a draft (which only a
        token that can write sees)."""
        from github import GithubException

        try:
            return _release(self._repo.get_release(tag).raw_data)
        except GithubException as exc:
            if exc.status != 404:
                raise _translate(f"reading the release of {tag}", exc) from exc
        except Exception as exc:
            raise _translate(f"reading the release of {tag}", exc) from exc
        try:
            for release in self._repo.get_releases():
                if release.raw_data.get("tag_name") == tag:
                    return _release(release.raw_data)
        except Exception as exc:
            raise _translate(f"listing the releases to find {tag}", exc) from exc
        return None

    def create_draft_release(self, tag: str, name: str, body: str) -> ReleaseInfo:
        try:
            release = self._repo.create_git_release(
                tag, name=name, message=body, draft=True, make_latest="false"
            )
        except Exception as exc:
            raise _translate(f"creating the release for {tag}", exc) from exc
        return _release(release.raw_data)

    def upload_asset(self, release: ReleaseInfo, path: str, name: str, content_type: str) -> AssetInfo:
        try:
            _, raw = self._gh.requester.requestBlobAndCheck(
                "POST",
                release.upload_url,
                parameters={"name": name},
                headers={"Content-Type": content_type},
                input=path,
            )
        except Exception as exc:
            raise _translate(f"uploading {name} to the release of {release.tag}", exc) from exc
        return _asset(raw)

    def publish_release(self, release: ReleaseInfo) -> None:
        try:
            self._gh.requester.requestJsonAndCheck(
                "PATCH",
                f"{self._repo.url}/releases/{release.id}",
                input={"draft": False, "make_latest": "false"},
            )
        except Exception as exc:
            raise _translate(f"publishing the release of {release.tag}", exc) from exc

    def delete_release(self, release: ReleaseInfo) -> None:
        try:
            self._gh.requester.requestJsonAndCheck("DELETE", f"{self._repo.url}/releases/{release.id}")
        except Exception as exc:
            raise _translate(f"deleting the release of {release.tag}", exc) from exc
