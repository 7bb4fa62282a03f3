"""GitHub's REST API through PyGithub: the one module that imports it.

Transient failures (5xx, primary and secondary rate limits, ``Retry-After``)
are retried by PyGithub's own ``GithubRetry``, configured here. Objects are
made lazily, so a pull request event costs only the requests that do work.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlci import transport
from mlci.errors import MlciError

if TYPE_CHECKING:
    from github import Github

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


API_VERSION = "2022-11-28"
_RETRY_STATUSES = (500, 502, 503, 504)
_DEADLINE = 30.0  # seconds for one request: connect, headers and body together
_MAX_BODY = 32 * 1024 * 1024  # bytes of one answer (a page of 100 comments is far less)
_USER_TOKEN_PREFIXES = ("ghp_", "github_pat_", "gho_", "ghu_")


def headers(token: str) -> dict[str, str]:
    """What GitHub documents for every REST request."""
    from mlci import __version__

    return {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": f"mlci/{__version__}",
        "Authorization": f"Bearer {token}",
    }


class _Ambiguous(Exception):
    """A write whose outcome is unknown: a 5xx, or the connection broke after sending."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class _Response:
    status: int
    data: Any
    headers: dict[str, str]


def _hint_for(status: int, what: str) -> str:
    if status == 401:
        return "the token was rejected: check GITHUB_TOKEN (expired, revoked, or for another host)"
    if status == 404:
        return (
            "not found: check GITHUB_API_URL (GitHub Enterprise Server: https://HOST/api/v3), "
            "GITHUB_REPOSITORY, and that the token can see the repository (the workflow's permissions block)"
        )
    if status == 403:
        return (
            "the token may not do this: grant the job `pull-requests: write` and `statuses: write` "
            "in its permissions block"
        )
    if status == 422:
        return f"GitHub refused the request's content ({what}); this is a bug in mlci if it persists"
    return "GitHub may be unavailable; the report is on disk and in the job summary: re-run the job"


def retry_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """``retries`` and ``backoff`` for a client, from MLCI_GITHUB_RETRIES and MLCI_GITHUB_BACKOFF."""
    return {
        "retries": int(environ.get("MLCI_GITHUB_RETRIES", "5")),
        "backoff": float(environ.get("MLCI_GITHUB_BACKOFF", "1.0")),
    }


class GitHubApi:
    """Comments, commit statuses and pull requests over GitHub's REST API.

    Requests carry GitHub's documented headers. One place decides retries:
    reads and idempotent writes (editing a comment, setting a status) are retried
    on 5xx, connection failures and rate limits (``Retry-After`` honoured); a
    create is never retried blindly: after an ambiguous failure the comments are
    read again and the comment is created only if it is still missing.
    """

    def __init__(
        self,
        token: str,
        api_url: str,
        repository: str,
        *,
        retries: int = 5,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        fork: bool = False,
        cache: Path | None = None,
        deadline: float = _DEADLINE,
    ) -> None:
        self.token = token
        self.deadline = deadline  # seconds for one request: connect, headers and body
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.fork = fork  # the event is a pull request from a fork: a 403 on a write degrades
        self.requests = 0
        self._gh_instance: Github | None = None
        # Conditional reads: ETags of earlier answers (a 304 costs no rate limit).
        self._cache_path = cache
        self._etags: dict[str, dict[str, Any]] = {}
        if cache is not None and cache.is_file():
            try:
                loaded = json.loads(cache.read_text(encoding="utf-8"))
                self._etags = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._etags = {}

    # -------------------------------------------------------------- transport

    def _once(self, method: str, url: str, body: Any) -> _Response:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=headers(self.token))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        cached = self._etags.get(url) if method == "GET" else None
        if cached is not None:
            request.add_header("If-None-Match", str(cached["etag"]))
        self.requests += 1
        try:
            response = transport.fetch(request, deadline=self.deadline, limit=_MAX_BODY)
            try:
                data = json.loads(response.body) if response.body else None
            except ValueError:
                raise GitHubError(
                    f"GitHub API: {method} {url} answered {response.status} with a body that is not JSON",
                    hint="check GITHUB_API_URL: it must be the API's root (https://api.github.com, "
                    "or https://HOST/api/v3 on GitHub Enterprise Server)",
                ) from None
            return _Response(response.status, data, dict(response.headers))
        except transport.TooLarge as exc:
            raise GitHubError(f"GitHub API: {exc}", hint="check GITHUB_API_URL") from None
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and cached is not None:
                return _Response(200, cached["data"], dict(cached.get("headers") or {}))
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode(errors="replace")[:200]
            return _Response(exc.code, payload, dict(exc.headers or {}))

    def _wait_for(self, response: _Response, attempt: int) -> float | None:
        """How long to wait before trying again, or None: not a passing failure."""
        message = str((response.data or {}).get("message", "")) if isinstance(response.data, dict) else ""
        limited = response.status == 429 or (response.status == 403 and "rate limit" in message.lower())
        if response.status not in _RETRY_STATUSES and not limited:
            return None
        after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        if after and after.isdigit():
            return min(float(after), self.max_wait)
        return float(min(self.backoff * 2**attempt, self.max_wait))

    def _call(self, method: str, path: str, what: str, body: Any = None, *, idempotent: bool) -> _Response:
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        for attempt in range(self.retries + 1):
            try:
                response = self._once(method, url, body)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if not idempotent:
                    raise _Ambiguous(f"{type(reason).__name__}: {reason}") from exc
                if attempt < self.retries:
                    self.sleep(min(self.backoff * 2**attempt, self.max_wait))
                    continue
                raise GitHubError(
                    f"GitHub API: {what} failed: cannot reach {self.api_url}: {reason}",
                    hint="check GITHUB_API_URL and the network",
                ) from None
            if response.status < 400:
                self._remember(method, url, response)
                return response
            wait = self._wait_for(response, attempt)
            if wait is not None and not idempotent and response.status in _RETRY_STATUSES:
                raise _Ambiguous(f"{response.status}")
            if wait is not None and attempt < self.retries:
                self.sleep(wait)
                continue
            raise self._error(response, what)
        raise AssertionError("unreachable")

    def _remember(self, method: str, url: str, response: _Response) -> None:
        etag = response.headers.get("ETag") or response.headers.get("etag")
        if method != "GET" or not etag or self._cache_path is None:
            return
        link = response.headers.get("Link") or response.headers.get("link")
        self._etags[url] = {"etag": etag, "data": response.data, "headers": {"Link": link} if link else {}}
        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            self._cache_path.write_text(json.dumps(self._etags), encoding="utf-8")
        except OSError:
            pass  # a cache: losing it costs one full read

    def _error(self, response: _Response, what: str) -> GitHubError:
        message = response.data.get("message") if isinstance(response.data, dict) else response.data
        text = f"GitHub API: {what} failed: {response.status} {message}"
        if response.status == 403 and self.fork:
            return GitHubForbidden(
                f"GitHub refused {what}: {response.status} {message}",
                hint="a pull request from a fork gets a read-only token; the report is in the job summary",
            )
        return GitHubError(text, hint=_hint_for(response.status, what))

    def _pages(self, path: str, what: str) -> Iterator[Any]:
        url: str | None = f"{self.api_url}{path}"
        while url:
            response = self._call("GET", url, what, idempotent=True)
            yield from response.data or []
            url = _next_link(response.headers.get("Link") or response.headers.get("link") or "")

    # -------------------------------------------------------------- identity

    def own_login(self) -> str | None:
        """The token's user, when the token is a user's (a PAT); None for the Actions
        token and App installation tokens, which cannot ask (their comments are a bot's)."""
        if not self.token.startswith(_USER_TOKEN_PREFIXES):
            return None
        response = self._call("GET", "/user", "reading the token's user", idempotent=True)
        return str(response.data.get("login")) if isinstance(response.data, dict) else None

    # -------------------------------------------------------------- comments

    def _ours(self, pr: int, marker: str, login: str | None) -> dict[str, Any] | None:
        for comment in self._pages(
            f"/repos/{self.repository}/issues/{pr}/comments?per_page=100", f"reading the comments of #{pr}"
        ):
            if not str(comment.get("body") or "").startswith(marker):
                continue
            user = comment.get("user") or {}
            bot = user.get("type") == "Bot" or comment.get("performed_via_github_app")
            if bot or (login is not None and user.get("login") == login):
                return dict(comment)
        return None

    def upsert_comment(self, pr: int, body: str, marker: str) -> CommentResult:
        """Our comment (it starts with ``marker``, by a bot or the token's user) edited in
        place, or created: one per pull request and model. A person's comment quoting
        the marker is left alone; an unchanged body is not written again."""
        login = self.own_login()
        found = self._ours(pr, marker, login)
        if found is not None:
            if found.get("body") == body:
                return CommentResult("unchanged", int(found["id"]), str(found.get("html_url")))
            edited = self._call(
                "PATCH",
                f"/repos/{self.repository}/issues/comments/{found['id']}",
                f"editing the comment on #{pr}",
                {"body": body},
                idempotent=True,
            ).data
            return CommentResult("updated", int(edited["id"]), str(edited.get("html_url")))
        path = f"/repos/{self.repository}/issues/{pr}/comments"
        for _ in range(2):
            try:
                made = self._call(
                    "POST", path, f"writing the comment on #{pr}", {"body": body}, idempotent=False
                )
                return CommentResult("created", int(made.data["id"]), str(made.data.get("html_url")))
            except _Ambiguous:
                # It may have been made: look before making it again.
                again = self._ours(pr, marker, login)
                if again is not None:
                    return CommentResult("created", int(again["id"]), str(again.get("html_url")))
        raise GitHubError(
            f"GitHub API: writing the comment on #{pr} failed twice without an answer",
            hint=_hint_for(502, "the comment"),
        )

    def pull(self, number: int) -> PullInfo:
        """Pull request ``number`` as GitHub reports it (not as an artifact claims)."""
        raw = self._call(
            "GET",
            f"/repos/{self.repository}/pulls/{number}",
            f"reading pull request #{number}",
            idempotent=True,
        ).data
        try:
            return PullInfo(
                number=number,
                head_sha=str(raw["head"]["sha"]),
                head_ref=str(raw["head"].get("ref") or ""),
                base_ref=str(raw["base"]["ref"]),
            )
        except (KeyError, TypeError) as exc:
            raise GitHubError(f"GitHub API: pull request #{number} lacks {exc}") from None

    def set_status(
        self, sha: str, context: str, state: str, description: str, target_url: str | None
    ) -> None:
        if len(description) > STATUS_DESCRIPTION_LIMIT:
            description = description[: STATUS_DESCRIPTION_LIMIT - 1] + "…"
        body: dict[str, Any] = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        # Setting a status is idempotent (the newest per context wins): safe to retry.
        self._call(
            "POST",
            f"/repos/{self.repository}/statuses/{sha}",
            f"setting status {context} on {sha[:12]}",
            body,
            idempotent=True,
        )

    # -------------------------------------------------------------- deployments and dispatches

    def create_deployment(
        self, ref: str, environment: str, payload: dict[str, Any], description: str, *, production: bool
    ) -> int:
        """A deployment of ``ref`` (a commit SHA) to ``environment``: what the repository's
        Environments page lists. No merge, no required contexts: the gates judged it.
        After an ambiguous failure the deployments of that ref are read before one is
        made again (found by ``payload['tag']``)."""
        body = {
            "ref": ref,
            "task": "deploy",
            "auto_merge": False,
            "required_contexts": [],
            "payload": payload,
            "environment": environment,
            "description": description[:STATUS_DESCRIPTION_LIMIT],
            "transient_environment": False,
            "production_environment": production,
        }
        path = f"/repos/{self.repository}/deployments"
        what = f"creating a deployment to {environment}"
        for _ in range(2):
            try:
                made = self._call("POST", path, what, body, idempotent=False).data
                return int(made["id"])
            except _Ambiguous:
                listed = self._call(
                    "GET",
                    f"{path}?sha={ref}&environment={urllib.parse.quote(environment)}&per_page=100",
                    f"reading the deployments of {ref[:12]}",
                    idempotent=True,
                ).data
                for found in listed or []:
                    if isinstance(found.get("payload"), dict) and found["payload"].get("tag") == payload.get(
                        "tag"
                    ):
                        return int(found["id"])
        raise GitHubError(f"GitHub API: {what} failed twice without an answer", hint=_hint_for(502, what))

    def deployment_status(
        self,
        deployment: int,
        state: str,
        description: str,
        *,
        log_url: str | None = None,
        environment_url: str | None = None,
    ) -> None:
        """in_progress, success or failure; setting a state is idempotent (the newest wins)."""
        if len(description) > STATUS_DESCRIPTION_LIMIT:
            description = description[: STATUS_DESCRIPTION_LIMIT - 1] + "…"
        body: dict[str, Any] = {"state": state, "description": description}
        if log_url:
            body["log_url"] = log_url
        if environment_url:
            body["environment_url"] = environment_url
        self._call(
            "POST",
            f"/repos/{self.repository}/deployments/{deployment}/statuses",
            f"setting deployment {deployment} to {state}",
            body,
            idempotent=True,
        )

    def dispatch(self, event_type: str, client_payload: dict[str, Any]) -> None:
        """A repository_dispatch event: the documented way for a job holding the Actions
        token to start other workflows. Never sent twice: after an ambiguous failure it is
        an error that says it may have been sent."""
        try:
            self._call(
                "POST",
                f"/repos/{self.repository}/dispatches",
                f"sending the {event_type} event",
                {"event_type": event_type, "client_payload": client_payload},
                idempotent=False,
            )
        except _Ambiguous as exc:
            raise GitHubError(
                f"GitHub API: sending the {event_type} event got no answer ({exc.detail}): it may or may not "
                "have been sent",
                hint="listeners start from it; re-run the job only if none started",
            ) from None

    def environment_reviewers(self, environment: str) -> list[str] | None:
        """Who must approve a job in the GitHub Environment ``environment`` (users'
        logins, and "team SLUG"); None when it has no required reviewers or cannot be read."""
        try:
            raw = self._call(
                "GET",
                f"/repos/{self.repository}/environments/{urllib.parse.quote(environment, safe='')}",
                f"reading environment {environment}",
                idempotent=True,
            ).data
        except GitHubError:
            return None
        found: list[str] = []
        for rule in (raw or {}).get("protection_rules") or []:
            if not isinstance(rule, dict) or rule.get("type") != "required_reviewers":
                continue
            for reviewer in rule.get("reviewers") or []:
                who = reviewer.get("reviewer") if isinstance(reviewer, dict) else None
                if not isinstance(who, dict):
                    continue
                if reviewer.get("type") == "Team" and (who.get("slug") or who.get("name")):
                    found.append(f"team {who.get('slug') or who.get('name')}")
                elif who.get("login"):
                    found.append(str(who["login"]))
        return found or None

    # -------------------------------------------------------------- PyGithub, for artifacts and releases

    @property
    def _gh(self) -> Github:
        if self._gh_instance is None:
            from github import Auth, Github, GithubRetry

            from mlci import __version__

            self._gh_instance = Github(
                auth=Auth.Token(self.token),
                base_url=self.api_url,
                per_page=100,
                user_agent=f"mlci/{__version__}",
                retry=GithubRetry(total=self.retries, backoff_factor=self.backoff, secondary_rate_wait=60.0),
                seconds_between_requests=None,
                seconds_between_writes=0.5,
                lazy=True,
            )
        return self._gh_instance

    @property
    def _repo(self) -> Any:
        return self._gh.get_repo(self.repository)


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        if 'rel="next"' in part:
            return part.split(";", 1)[0].strip().strip("<>")
    return None


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
