"""GitHub's REST API: one client, one transport, one policy for every call mlci makes.

Comments, statuses, pull requests, deployments, dispatches, Environments, workflow
artifacts and runs, releases and their assets all go through :meth:`GitHubApi._call`
(or its streaming and uploading siblings), which

- sends GitHub's documented headers (``Accept: application/vnd.github+json``,
  ``X-GitHub-Api-Version``, ``Authorization: Bearer``) on every request;
- retries reads and idempotent writes on 5xx and broken connections, and never
  repeats a create blindly: after an ambiguous failure (a 5xx, or a connection that
  broke after the request was sent) the create's own lookup runs first (the comment
  by its marker, the release by its tag and body, the asset by its name, the
  deployment by ``payload.tag``, the status by its state), and an object that is
  already there is success;
- waits for rate limits as GitHub documents: ``Retry-After``, else until
  ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0, else at least a minute
  for a secondary limit, within a total bound (``MLCI_GITHUB_MAX_WAIT``) that the
  error states;
- gives one hint per failure, whatever the path: 401, 403 (the permission the call
  needs, a fork's read-only token, a rate limit), 404 (what is missing, or a wrong
  ``GITHUB_API_URL``/``GITHUB_REPOSITORY``, told apart with one more read), 422, 5xx;
- reads each resource once per process: answers are kept until a write to the same
  collection, so a job that registers a version and then promotes it reads the
  release once.

PyGithub was the second stack here (releases, assets, artifacts, runs). Its
``Requester`` sends ``Authorization: token`` with no ``Accept`` or
``X-GitHub-Api-Version``, its ``GithubRetry`` repeats a POST on any 5xx, and its
lazy objects complete themselves with one request each; carrying this policy through
it meant replacing each of those parts, so every call is here instead.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from mlci import transport
from mlci.errors import MlciError

API_VERSION = "2022-11-28"
STATUS_DESCRIPTION_LIMIT = 140
_RETRY_STATUSES = (500, 502, 503, 504)
_DEADLINE = 30.0  # seconds for one request: connect, headers and body together
_IDLE = 60.0  # seconds one read of a download or an upload may take
_MAX_BODY = 32 * 1024 * 1024  # bytes of one JSON answer (a page of 100 comments is far less)
_MAX_DOWNLOAD = 16 * 1024 * 1024 * 1024  # bytes of one asset or artifact
_SECONDARY_WAIT = 60.0  # GitHub: "wait at least one minute" after a secondary rate limit
_USER_TOKEN_PREFIXES = ("ghp_", "github_pat_", "gho_", "ghu_")
_T = TypeVar("_T")

# Looked up when a call is made, so a test can count the waits instead of sleeping.
_sleep: Callable[[float], None] = time.sleep
_now: Callable[[], float] = time.time


class GitHubError(MlciError):
    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class GitHubForbidden(GitHubError):
    """403 on a write from a fork's pull request: its token is read-only."""


class GitHubNotFound(GitHubError):
    """404: the resource is missing (``missing``: the repository answers), or the API
    URL, the repository or the token's reach is wrong."""

    def __init__(self, message: str, hint: str | None = None, *, missing: bool = False) -> None:
        super().__init__(message, hint, status=404)
        self.missing = missing


@dataclass(frozen=True)
class PullInfo:
    number: int
    head_sha: str
    head_ref: str
    base_ref: str


@dataclass(frozen=True)
class CommentResult:
    action: str  # "created", "updated" or "unchanged"
    comment_id: int
    url: str


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
    state: str = "uploaded"  # "starter" for an upload that did not finish
    url: str | None = None  # browser_download_url: where a reader's browser gets it
    created_at: str | None = None


@dataclass(frozen=True)
class ReleaseInfo:
    id: int
    tag: str
    draft: bool
    html_url: str
    body: str
    assets: tuple[AssetInfo, ...]

    def asset(self, name: str) -> AssetInfo | None:
        return next((a for a in self.assets if a.name == name and a.state == "uploaded"), None)


def headers(token: str) -> dict[str, str]:
    """What GitHub documents for every REST request."""
    from mlci import __version__

    return {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": f"mlci/{__version__}",
        "Authorization": f"Bearer {token}",
    }


def uploads_url(api_url: str) -> str:
    """Where release assets are uploaded, from the API's root: ``uploads.github.com``
    for ``api.github.com`` (and ``uploads.X`` for any ``api.X``, as GHE.com), and
    ``https://HOST/api/uploads`` for GitHub Enterprise Server's ``https://HOST/api/v3``.
    Derived, never taken from an answer: the token goes only to these two hosts."""
    parts = urllib.parse.urlsplit(api_url.rstrip("/"))
    host, path = parts.hostname or "", parts.path.rstrip("/")
    if host.startswith("api."):
        netloc = parts.netloc.replace(host, "uploads." + host[len("api.") :], 1)
        return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))
    if path.endswith("/api/v3"):
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path[: -len("/v3")] + "/uploads", "", ""))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + "/uploads", "", ""))


def retry_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """``retries``, ``backoff`` and ``max_wait`` for a client, from MLCI_GITHUB_RETRIES,
    MLCI_GITHUB_BACKOFF and MLCI_GITHUB_MAX_WAIT."""

    def number(name: str, default: str, kind: type) -> Any:
        raw = environ.get(name, default)
        try:
            value = kind(raw)
        except ValueError:
            raise MlciError(
                f"{name}={raw!r} is not a number", hint=f"unset it, or set a number ({default} by default)"
            ) from None
        if value < 0:
            raise MlciError(f"{name}={raw!r} is negative", hint=f"unset it, or set {default} or more")
        return value

    return {
        "retries": number("MLCI_GITHUB_RETRIES", "5", int),
        "backoff": number("MLCI_GITHUB_BACKOFF", "1.0", float),
        "max_wait": number("MLCI_GITHUB_MAX_WAIT", "600", float),
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
    headers: Mapping[str, str]

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass
class _Session:
    """What one process has read from one repository with one token."""

    reads: dict[str, _Response] = field(default_factory=dict)
    files: dict[int, Path] = field(default_factory=dict)  # asset id -> a local copy of its bytes


_SESSIONS: dict[tuple[str, str, str], _Session] = {}


def forget() -> None:
    """Drop what this process has read (a new command starts afresh)."""
    _SESSIONS.clear()


@dataclass(frozen=True)
class _Call:
    """What a request is for, to name it and to hint at the fix when it fails."""

    what: str  # "reading the release of demo@v0.0.1"
    permission: str  # the token permission it needs: "contents: write"
    missing: str = ""  # what a 404 means when the repository is there
    explain: bool = True  # a 404 is told apart (missing, or a wrong URL) with one more read


class GitHubApi:
    """Every GitHub call mlci makes, with one policy (see the module's text)."""

    def __init__(
        self,
        token: str,
        api_url: str,
        repository: str,
        *,
        retries: int = 5,
        backoff: float = 1.0,
        max_wait: float = 600.0,
        sleep: Callable[[float], None] | None = None,
        fork: bool = False,
        deadline: float = _DEADLINE,
    ) -> None:
        self.token = token
        self.deadline = deadline
        self.api_url = api_url.rstrip("/")
        self.uploads_url = uploads_url(self.api_url)
        self.repository = repository
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait  # seconds of waiting in all, for one call
        self._sleep = sleep
        self.fork = fork  # the event is a pull request from a fork: a 403 on a write degrades
        self._session = _SESSIONS.setdefault((self.api_url, repository, token), _Session())
        self._repo = f"/repos/{repository}"

    # -------------------------------------------------------------- transport

    def _wait(self, seconds: float) -> None:
        (self._sleep or _sleep)(seconds)

    def _once(self, method: str, url: str, body: Any, accept: str | None = None) -> _Response:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=headers(self.token))
        if accept:
            request.add_header("Accept", accept)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            response = transport.fetch(request, deadline=self.deadline, limit=_MAX_BODY)
        except transport.TooLarge as exc:
            raise GitHubError(f"GitHub API: {exc}", hint="check GITHUB_API_URL") from None
        except urllib.error.HTTPError as exc:
            return _refusal(exc)
        try:
            parsed = json.loads(response.body) if response.body else None
        except ValueError:
            raise GitHubError(
                f"GitHub API: {method} {url} answered {response.status} with a body that is not JSON",
                hint="check GITHUB_API_URL: it must be the API's root (https://api.github.com, "
                "or https://HOST/api/v3 on GitHub Enterprise Server)",
            ) from None
        return _Response(response.status, parsed, dict(response.headers))

    def _wait_for(self, response: _Response, attempt: int) -> tuple[float, str] | None:
        """How long to wait before trying again and why, or None: not a passing failure."""
        limited = _rate_limited(response)
        if response.status not in _RETRY_STATUSES and not limited:
            return None
        after = response.header("Retry-After")
        if after and after.strip().isdigit():
            return float(after), f"GitHub asked to retry after {after} s"
        if limited:
            remaining, reset = response.header("x-ratelimit-remaining"), response.header("x-ratelimit-reset")
            if remaining == "0" and reset and reset.strip().isdigit():
                return max(1.0, float(reset) - _now() + 1.0), "the rate limit resets then"
            return max(_SECONDARY_WAIT, self.backoff * 2**attempt), "a secondary rate limit"
        return float(min(self.backoff * 2**attempt, 60.0)), f"GitHub answered {response.status}"

    def _call(
        self,
        method: str,
        path: str,
        call: _Call,
        body: Any = None,
        *,
        idempotent: bool,
        accept: str | None = None,
        fresh: bool = False,
    ) -> _Response:
        """One API call under the policy. ``idempotent=False`` (a create): a 5xx or a
        broken connection raises ``_Ambiguous`` for the caller's lookup; a rate limit
        (the request was not done) is waited for like any other."""
        url = path if path.startswith(("http://", "https://")) else f"{self.api_url}{path}"
        if method == "GET" and not fresh and url in self._session.reads:
            return self._session.reads[url]
        if method != "GET":
            self._invalidate(url)
        response: _Response = self._attempts(
            lambda: self._once(method, url, body, accept), call, idempotent=idempotent
        )
        if method == "GET":
            self._session.reads[url] = response
        return response

    def _attempts(
        self, send: Callable[[], _T | _Response], call: _Call, *, idempotent: bool, reach: str = ""
    ) -> _T:
        """The one retry policy. ``send`` makes one attempt: its result, or the refusal
        GitHub answered (a ``_Response`` of 400 or more; one below is a result too). A
        refusal that passes (5xx, a rate limit) and a broken connection are tried again
        within ``retries`` and ``max_wait``; for a create (``idempotent=False``) a 5xx or a
        connection broken after sending is ``_Ambiguous`` instead, for its lookup, while a
        refused connection (never sent) and a rate limit (not done) are tried again."""
        waited = 0.0
        for attempt in range(self.retries + 1):
            try:
                outcome = send()
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if not idempotent and not isinstance(reason, ConnectionRefusedError):  # refused: never sent
                    raise _Ambiguous(f"{type(reason).__name__}: {reason}") from exc
                pause = min(self.backoff * 2**attempt, 60.0)
                if attempt < self.retries and waited + pause <= self.max_wait:
                    self._wait(pause)
                    waited += pause
                    continue
                raise GitHubError(
                    f"GitHub API: {call.what} failed: cannot reach {self.api_url}{reach}: {reason}",
                    hint="check GITHUB_API_URL and the network",
                ) from None
            if not isinstance(outcome, _Response) or outcome.status < 400:
                return cast("_T", outcome)
            wait = self._wait_for(outcome, attempt)
            if wait is not None and not idempotent and outcome.status in _RETRY_STATUSES:
                raise _Ambiguous(str(outcome.status))
            if wait is not None and attempt < self.retries and waited + wait[0] <= self.max_wait:
                self._wait(wait[0])
                waited += wait[0]
                continue
            raise self._error(outcome, call, waited=waited, wait=wait)
        raise AssertionError("unreachable")

    def _invalidate(self, url: str) -> None:
        """A write to a collection (``/repos/o/r/releases``, ``/issues``, ``/deployments``...)
        forgets the lists read from it and what was read of the object it names
        (``/releases/1002``, or the release whose id is 1002 read by its tag)."""
        root = _collection(url, (self.api_url, self.uploads_url), self._repo)
        if root is None:
            self._session.reads.clear()
            return
        rest = url.split(root, 1)[1].split("?", 1)[0].strip("/").split("/")
        ident = next((part for part in rest if part.isdigit()), None)
        for key, kept in list(self._session.reads.items()):
            if _collection(key, (self.api_url,), self._repo) != root:
                continue
            data = kept.data
            same = ident is not None and (
                f"/{ident}/" in key + "/" or (isinstance(data, dict) and str(data.get("id")) == ident)
            )
            if same or not isinstance(data, dict):
                del self._session.reads[key]

    def _remember(self, path: str, data: Any) -> None:
        """What a write answered is what a read would: kept for the rest of the process."""
        self._session.reads[f"{self.api_url}{path}"] = _Response(200, data, {})

    def _error(
        self, response: _Response, call: _Call, *, waited: float = 0.0, wait: tuple[float, str] | None = None
    ) -> GitHubError:
        data = response.data
        message = data.get("message") if isinstance(data, dict) else data
        text = f"GitHub API: {call.what} failed: {response.status} {message}"
        status = response.status
        if _rate_limited(response):
            reason = wait[1] if wait else "a rate limit"
            ahead = f"; the next try would have waited {wait[0]:.0f} s ({reason})" if wait else ""
            return GitHubError(
                f"{text} (waited {waited:.0f} s of the {self.max_wait:.0f} s mlci waits in all{ahead})",
                hint="GitHub's rate limit: re-run the job later, or give it a token of its own (a GitHub "
                "App's installation token has a larger limit); MLCI_GITHUB_MAX_WAIT sets the bound",
                status=status,
            )
        if status == 401:
            hint = (
                "the token was rejected: check GITHUB_TOKEN (expired, revoked, or for another host: "
                f"GITHUB_API_URL is {self.api_url})"
            )
        elif status == 403 and self.fork:
            return GitHubForbidden(
                f"GitHub refused {call.what}: {status} {message}",
                hint="a pull request from a fork gets a read-only token; the report is in the job summary",
                status=status,
            )
        elif status == 403:
            accepted = response.header("X-Accepted-GitHub-Permissions")  # what GitHub says it needs
            needed = f" (GitHub accepts: {accepted[:100]})" if accepted else ""
            hint = (
                f"the token may not do this{needed}: grant the job `{call.permission}` in the workflow's "
                "permissions block (a GitHub App: that permission on its installation; a fine-grained "
                "token: that repository permission)"
            )
        elif status == 404:
            hint, missing = self._why_not_found(call)
            return GitHubNotFound(text, hint=hint, missing=missing)
        elif status == 422:
            errors = data.get("errors") if isinstance(data, dict) else None
            detail = f": {json.dumps(errors)[:300]}" if errors else ""
            hint = f"GitHub refused the request's content{detail}; this is a bug in mlci if it persists"
        elif status >= 500:
            hint = (
                f"GitHub may be unavailable (it answered {status} after {self.retries} retries); "
                "the report is on disk and in the job summary: re-run the job"
            )
        else:
            hint = f"GitHub answered {status}; check GITHUB_API_URL ({self.api_url})"
        return GitHubError(text, hint=hint, status=status)

    def _why_not_found(self, call: _Call) -> tuple[str, bool]:
        """A 404 has two causes: the thing is missing, or the API URL, the repository or
        the token's reach is wrong. One read of the repository tells them apart."""
        wrong = (
            f"check GITHUB_API_URL ({self.api_url}; GitHub Enterprise Server: https://HOST/api/v3), "
            f"GITHUB_REPOSITORY ({self.repository}), and that the token can see the repository"
        )
        if not call.explain:
            return wrong, False
        url = f"{self.api_url}{self._repo}"
        try:  # once per process, like any read (a second 404 asks again only if the first failed)
            response = self._session.reads.get(url) or self._once("GET", url, None)
        except (GitHubError, urllib.error.URLError, OSError):
            return wrong, False
        if response.status == 200 and isinstance(response.data, dict):
            self._session.reads[url] = response
            missing = call.missing or "GitHub has no such object (a bug in mlci if it persists)"
            return f"{missing} (the repository {self.repository} is there)", True
        return wrong, False

    def _pages(self, path: str, call: _Call, limit: int = 1000, *, fresh: bool = False) -> Iterator[Any]:
        url: str | None = f"{self.api_url}{path}"
        seen = 0
        while url and seen < limit:
            response = self._call("GET", url, call, idempotent=True, fresh=fresh)
            items = response.data if response.data is not None else []
            if not isinstance(items, list):
                raise GitHubError(
                    f"GitHub API: {call.what}: the answer is not a list", hint="check GITHUB_API_URL"
                )
            seen += len(items)
            yield from items
            url = _next_link(response.header("Link") or "", self.api_url)

    # -------------------------------------------------------------- identity

    def own_login(self) -> str | None:
        """The token's user, when the token is a user's (a PAT); None for the Actions
        token and App installation tokens, which cannot ask (their comments are a bot's)."""
        if not self.token.startswith(_USER_TOKEN_PREFIXES):
            return None
        call = _Call("reading the token's user", "a user token (a PAT)")
        response = self._call("GET", "/user", call, idempotent=True)
        return str(response.data.get("login")) if isinstance(response.data, dict) else None

    # -------------------------------------------------------------- comments, statuses, pull requests

    def _ours(self, pr: int, marker: str, login: str | None, *, fresh: bool = False) -> dict[str, Any] | None:
        call = _Call(f"reading the comments of #{pr}", "pull-requests: read", f"no pull request #{pr}")
        for comment in self._pages(f"{self._repo}/issues/{pr}/comments?per_page=100", call, fresh=fresh):
            if not isinstance(comment, dict) or not str(comment.get("body") or "").startswith(marker):
                continue
            user = _dict(comment.get("user"))
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
                return CommentResult("unchanged", _id(found, "a comment"), str(found.get("html_url")))
            edited = self._call(
                "PATCH",
                f"{self._repo}/issues/comments/{found['id']}",
                _Call(f"editing the comment on #{pr}", "pull-requests: write", "the comment was deleted"),
                {"body": body},
                idempotent=True,
            ).data
            return CommentResult("updated", _id(edited, "the edited comment"), str(edited.get("html_url")))
        made = self._create(
            f"{self._repo}/issues/{pr}/comments",
            _Call(f"writing the comment on #{pr}", "pull-requests: write", f"no pull request #{pr}"),
            {"body": body},
            lambda: self._ours(pr, marker, login, fresh=True),
        )
        return CommentResult("created", _id(made, "the new comment"), str(made.get("html_url")))

    def _create(
        self,
        path: str,
        call: _Call,
        body: Any,
        lookup: Callable[[], dict[str, Any] | None],
        *,
        url: str | None = None,
    ) -> dict[str, Any]:
        """A create, never repeated blindly: after an ambiguous failure ``lookup`` says
        whether it took effect (then it is success), and only if not is it sent again."""
        for _ in range(2):
            try:
                made = self._call("POST", url or path, call, body, idempotent=False).data
                return made if isinstance(made, dict) else {}
            except _Ambiguous:
                found = lookup()
                if found is not None:
                    return found
        raise GitHubError(
            f"GitHub API: {call.what} failed twice without an answer (and it was not made)",
            hint="GitHub may be unavailable; the report is on disk and in the job summary: re-run the job",
        )

    def pull(self, number: int) -> PullInfo:
        """Pull request ``number`` as GitHub reports it (not as an artifact claims)."""
        raw = self._call(
            "GET",
            f"{self._repo}/pulls/{number}",
            _Call(f"reading pull request #{number}", "pull-requests: read", f"no pull request #{number}"),
            idempotent=True,
        ).data
        try:
            return PullInfo(
                number=number,
                head_sha=str(raw["head"]["sha"]),
                head_ref=str(raw["head"].get("ref") or ""),
                base_ref=str(raw["base"]["ref"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise GitHubError(f"GitHub API: pull request #{number} lacks {exc}") from None

    def set_status(
        self, sha: str, context: str, state: str, description: str, target_url: str | None
    ) -> None:
        description = _short(description)
        body: dict[str, Any] = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        call = _Call(
            f"setting status {context} on {sha[:12]}", "statuses: write", f"no commit {sha[:12]} on GitHub"
        )

        def lookup() -> dict[str, Any] | None:
            listed = self._call(
                "GET", f"{self._repo}/commits/{sha}/statuses?per_page=100", call, idempotent=True, fresh=True
            ).data
            statuses = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
            newest = next((s for s in statuses if s.get("context") == context), None)
            same = newest and newest.get("state") == state and newest.get("description") == description
            return dict(newest) if same and newest else None

        self._create(f"{self._repo}/statuses/{sha}", call, body, lookup)

    # -------------------------------------------------------------- deployments, dispatches, Environments

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
        path = f"{self._repo}/deployments"
        call = _Call(f"creating a deployment to {environment}", "deployments: write", f"no commit {ref[:12]}")

        def lookup() -> dict[str, Any] | None:
            query = urllib.parse.urlencode({"sha": ref, "environment": environment, "per_page": 100})
            for found in self._call("GET", f"{path}?{query}", call, idempotent=True, fresh=True).data or []:
                mine = found.get("payload") if isinstance(found, dict) else None
                if isinstance(mine, dict) and mine.get("tag") == payload.get("tag"):
                    return dict(found)
            return None

        return _id(self._create(path, call, body, lookup), "the new deployment")

    def deployment_status(
        self,
        deployment: int,
        state: str,
        description: str,
        *,
        log_url: str | None = None,
        environment_url: str | None = None,
    ) -> None:
        """in_progress, success or failure. A create: after an ambiguous failure the
        deployment's newest status is read, and one with this state is success."""
        description = _short(description)
        body: dict[str, Any] = {"state": state, "description": description}
        if log_url:
            body["log_url"] = log_url
        if environment_url:
            body["environment_url"] = environment_url
        path = f"{self._repo}/deployments/{deployment}/statuses"
        call = _Call(
            f"setting deployment {deployment} to {state}", "deployments: write", f"no deployment {deployment}"
        )

        def lookup() -> dict[str, Any] | None:
            listed = self._call("GET", f"{path}?per_page=1", call, idempotent=True, fresh=True).data
            newest = (
                listed[0] if isinstance(listed, list) and listed and isinstance(listed[0], dict) else None
            )
            same = newest and newest.get("state") == state and newest.get("description") == description
            return dict(newest) if same and newest else None

        self._create(path, call, body, lookup)

    def dispatch(self, event_type: str, client_payload: dict[str, Any]) -> None:
        """A repository_dispatch event: the documented way for a job holding the Actions
        token to start other workflows. GitHub lists no dispatches to look in, so it is
        never sent twice: after an ambiguous failure it is an error that says it may
        have been sent."""
        try:
            self._call(
                "POST",
                f"{self._repo}/dispatches",
                _Call(f"sending the {event_type} event", "contents: write"),
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
                f"{self._repo}/environments/{urllib.parse.quote(environment, safe='')}",
                _Call(f"reading environment {environment}", "actions: read", explain=False),
                idempotent=True,
            ).data
        except GitHubError:
            return None
        found: list[str] = []
        rules = _dict(raw).get("protection_rules")
        for rule in rules if isinstance(rules, list) else []:
            if not isinstance(rule, dict) or rule.get("type") != "required_reviewers":
                continue
            reviewers = rule.get("reviewers")
            for reviewer in reviewers if isinstance(reviewers, list) else []:
                who = reviewer.get("reviewer") if isinstance(reviewer, dict) else None
                if not isinstance(who, dict):
                    continue
                if reviewer.get("type") == "Team" and (who.get("slug") or who.get("name")):
                    found.append(f"team {who.get('slug') or who.get('name')}")
                elif who.get("login"):
                    found.append(str(who["login"]))
        return found or None

    # -------------------------------------------------------------- workflow artifacts and runs

    def artifacts(self, name: str) -> list[ArtifactInfo]:
        """Artifacts of this repository with exactly this name, newest first (one page of 100)."""
        query = urllib.parse.urlencode({"name": name, "per_page": 100})
        raw = self._call(
            "GET",
            f"{self._repo}/actions/artifacts?{query}",
            _Call(f"listing the artifacts named {name}", "actions: read"),
            idempotent=True,
        ).data
        found = []
        items = raw.get("artifacts") if isinstance(raw, dict) else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or item.get("name") != name or _int(item.get("id")) is None:
                continue  # another name, or not an artifact as GitHub describes one
            run = _dict(item.get("workflow_run"))
            found.append(
                ArtifactInfo(
                    id=int(item["id"]),
                    name=name,
                    expired=bool(item.get("expired")),
                    created_at=str(item.get("created_at") or ""),
                    expires_at=str(item.get("expires_at") or ""),
                    size=int(item.get("size_in_bytes") or 0),
                    run_id=_int(run.get("id")),
                    repository_id=_int(run.get("repository_id")),
                    head_repository_id=_int(run.get("head_repository_id")),
                    head_branch=str(run["head_branch"]) if isinstance(run.get("head_branch"), str) else None,
                )
            )
        return sorted(found, key=lambda a: (a.created_at, a.id), reverse=True)

    def workflow_run(self, run_id: int) -> RunInfo:
        raw = self._call(
            "GET",
            f"{self._repo}/actions/runs/{run_id}",
            _Call(f"reading workflow run {run_id}", "actions: read", f"no workflow run {run_id}"),
            idempotent=True,
        ).data
        if not isinstance(raw, dict):
            raise GitHubError(f"GitHub API: workflow run {run_id} is not an object")
        return RunInfo(
            id=_int(raw.get("id")) or run_id,
            event=str(raw.get("event") or ""),
            repository=_text(_dict(raw.get("repository")).get("full_name")),
            head_repository=_text(_dict(raw.get("head_repository")).get("full_name")),
        )

    def _download(self, path: str, call: _Call) -> Iterator[bytes]:
        """A file GitHub redirects to its storage (the token is not sent there),
        streamed; retried until its first byte, like a read."""
        url = f"{self.api_url}{path}"

        def send() -> Iterator[bytes] | _Response:
            request = urllib.request.Request(url, method="GET", headers=headers(self.token))
            request.add_header("Accept", "application/octet-stream")
            try:
                opened = transport.stream(request, deadline=self.deadline, idle=_IDLE, limit=_MAX_DOWNLOAD)
            except urllib.error.HTTPError as exc:
                return _refusal(exc)
            chunks: Iterator[bytes] = opened.chunks
            return chunks

        return self._attempts(send, call, idempotent=True, reach=" or its storage")

    def download_artifact(self, artifact: ArtifactInfo) -> Iterator[bytes]:
        return self._download(
            f"{self._repo}/actions/artifacts/{artifact.id}/zip",
            _Call(
                f"downloading artifact {artifact.name}",
                "actions: read",
                f"artifact {artifact.name} ({artifact.id}) is gone: expired or deleted",
            ),
        )

    def download_asset(self, release: ReleaseInfo, asset: AssetInfo) -> Iterator[bytes]:
        """The asset's bytes: from this process's copy when it has one (uploaded or
        downloaded here before), else from GitHub."""
        local = self._session.files.get(asset.id)
        if local is not None and local.is_file() and local.stat().st_size == asset.size:
            return _chunks(local)
        return self._download(
            f"{self._repo}/releases/assets/{asset.id}",
            _Call(
                f"downloading release asset {asset.name} of {release.tag}",
                "contents: read",
                f"the release {release.tag} no longer has the asset {asset.name}",
            ),
        )

    # -------------------------------------------------------------- releases

    def release(self, tag: str) -> ReleaseInfo | None:
        """The published release on ``tag``, or None when there is none."""
        call = _Call(f"reading the release of {tag}", "contents: read", f"no release on {tag}")
        try:
            raw = self._call(
                "GET", f"{self._repo}/releases/tags/{urllib.parse.quote(tag, safe='')}", call, idempotent=True
            ).data
        except GitHubNotFound as exc:
            if exc.missing:
                return None  # the repository answers: this tag has no release
            raise
        return _release(raw)

    def _drafts(self, tag: str, body: str | None, *, fresh: bool = False) -> list[ReleaseInfo]:
        """Drafts on ``tag`` (with ``body``, when given) among the newest releases: one
        page, where a draft made moments ago is."""
        raw = self._call(
            "GET",
            f"{self._repo}/releases?per_page=100",
            _Call(f"listing the releases to find the draft of {tag}", "contents: write"),
            idempotent=True,
            fresh=fresh,
        ).data
        return [
            _release(r)
            for r in raw or []
            if isinstance(r, dict)
            and r.get("draft")
            and r.get("tag_name") == tag
            and (body is None or r.get("body") == body)
        ]

    def create_draft_release(self, tag: str, name: str, body: str) -> ReleaseInfo:
        """A draft release on ``tag`` (its body the model card). Looked for after an
        ambiguous failure, by tag and body; a published release already on the tag is
        an error that says so."""
        call = _Call(f"creating the release for {tag}", "contents: write")
        request = {"tag_name": tag, "name": name, "body": body, "draft": True, "make_latest": "false"}

        def lookup() -> dict[str, Any] | None:
            found = self._drafts(tag, body, fresh=True)
            return {"id": found[0].id, "_release": found[0]} if found else None

        try:
            made = self._create(f"{self._repo}/releases", call, request, lookup)
        except GitHubError as exc:
            if exc.status == 422 and "already_exists" in (exc.hint or ""):
                raise GitHubError(
                    f"{self.repository} has a published release on {tag} already",
                    hint="a version name is never reused; delete that release if it is not mlci's",
                    status=422,
                ) from None
            raise
        return made["_release"] if "_release" in made else _release(made)

    def create_prerelease(self, tag: str, name: str, body: str) -> ReleaseInfo:
        """A published pre-release on ``tag`` (GitHub makes the tag at the default branch),
        never the latest release. One made meanwhile by another job is the one returned."""
        call = _Call(f"creating the pre-release {tag}", "contents: write")
        request = {
            "tag_name": tag,
            "name": name,
            "body": body,
            "draft": False,
            "prerelease": True,
            "make_latest": "false",
        }

        def lookup() -> dict[str, Any] | None:
            found = self.release(tag)
            return None if found is None else {"id": found.id, "_release": found}

        try:
            made = self._create(f"{self._repo}/releases", call, request, lookup)
        except GitHubError as exc:
            found = self.release(tag) if exc.status == 422 else None
            if found is None:
                raise
            return found
        return made["_release"] if "_release" in made else _release(made)

    def assets(self, release: ReleaseInfo) -> list[AssetInfo]:
        """Every asset of ``release`` (all pages), as GitHub answers now."""
        call = _Call(f"listing the assets of the release {release.tag}", "contents: read")
        found = (
            _asset(a)
            for a in self._pages(f"{self._repo}/releases/{release.id}/assets?per_page=100", call, fresh=True)
        )
        return [a for a in found if a is not None and a.state == "uploaded"]

    def stale_drafts(self, tag: str) -> list[ReleaseInfo]:
        """Drafts on ``tag`` left by a registration that did not finish."""
        return self._drafts(tag, None)

    def upload_asset(self, release: ReleaseInfo, path: str, name: str, content_type: str) -> AssetInfo:
        """Uploads ``path`` as the asset ``name``. After an ambiguous failure the release's
        assets are read: one with this name and size is success; a partial one
        (``starter``) is deleted and the file sent again."""
        size = Path(path).stat().st_size
        query = urllib.parse.urlencode({"name": name})
        url = f"{self.uploads_url}{self._repo}/releases/{release.id}/assets?{query}"
        call = _Call(
            f"uploading {name} to the release of {release.tag}", "contents: write", f"no draft {release.id}"
        )
        for _ in range(2):
            try:
                answer = self._upload(url, path, size, content_type, call)
                made = _asset(answer)
                if made is None:
                    raise GitHubError(
                        f"GitHub API: {call.what}: the answer is not an asset ({str(answer)[:100]!r})",
                        hint="check GITHUB_API_URL: it must be GitHub's API",
                    )
                self.keep_copy(made, Path(path))
                return made
            except _Ambiguous:
                found = self._assets(release, call).get(name)
                if found is not None and found.state == "uploaded" and found.size == size:
                    self.keep_copy(found, Path(path))
                    return found
                if found is not None:
                    self.delete_asset(release, found)
        raise GitHubError(
            f"GitHub API: {call.what} failed twice without an answer (and it was not made)",
            hint="GitHub may be unavailable: re-run the job (the draft release is deleted)",
        )

    def keep_copy(self, asset: AssetInfo, path: Path) -> None:
        """``path`` holds ``asset``'s bytes for the rest of the process (the caller checks
        them against the digest it trusts, as for a download)."""
        self._session.files[asset.id] = path

    def _assets(self, release: ReleaseInfo, call: _Call) -> dict[str, AssetInfo]:
        raw = self._call(
            "GET",
            f"{self._repo}/releases/{release.id}/assets?per_page=100",
            call,
            idempotent=True,
            fresh=True,
        ).data
        assets = [_asset(a) for a in raw] if isinstance(raw, list) else []
        return {a.name: a for a in assets if a is not None}

    def _upload(self, url: str, path: str, size: int, content_type: str, call: _Call) -> dict[str, Any]:
        self._invalidate(url)

        def send() -> dict[str, Any] | _Response:
            with open(path, "rb") as handle:
                request = urllib.request.Request(url, data=handle, method="POST", headers=headers(self.token))
                request.add_header("Content-Type", content_type)
                request.add_header("Content-Length", str(size))
                try:
                    answer = transport.fetch(
                        request, deadline=max(self.deadline, size / (256 * 1024)), limit=_MAX_BODY
                    )
                except urllib.error.HTTPError as exc:
                    return _refusal(exc)
            try:
                return dict(json.loads(answer.body))
            except ValueError as exc:  # sent, and the answer is not an asset: maybe made
                raise _Ambiguous(f"{type(exc).__name__}: {exc}") from exc

        return self._attempts(send, call, idempotent=False)

    def delete_asset(self, release: ReleaseInfo, asset: AssetInfo) -> None:
        self._delete(
            f"{self._repo}/releases/assets/{asset.id}",
            _Call(f"deleting the partial asset {asset.name} of {release.tag}", "contents: write"),
        )

    def publish_release(self, release: ReleaseInfo) -> ReleaseInfo:
        """The draft made public (idempotent: retried); what GitHub answers is what a read
        of the tag's release would, so the rest of the process reads it from here."""
        raw = self._call(
            "PATCH",
            f"{self._repo}/releases/{release.id}",
            _Call(f"publishing the release of {release.tag}", "contents: write", f"no draft {release.id}"),
            {"draft": False, "make_latest": "false"},
            idempotent=True,
        ).data
        published = _release(raw) if isinstance(raw, dict) and raw.get("id") else release
        if isinstance(raw, dict) and raw.get("id"):
            self._remember(f"{self._repo}/releases/tags/{urllib.parse.quote(release.tag, safe='')}", raw)
        return published

    def delete_release(self, release: ReleaseInfo) -> None:
        self._delete(
            f"{self._repo}/releases/{release.id}",
            _Call(f"deleting the release of {release.tag}", "contents: write"),
        )

    def _delete(self, path: str, call: _Call) -> None:
        """A delete is idempotent: retried, and a 404 (already gone) is success."""
        with contextlib.suppress(GitHubNotFound):
            self._call("DELETE", path, call, idempotent=True)


def _refusal(exc: urllib.error.HTTPError) -> _Response:
    """An HTTP error as an answer: its JSON body, or the first 200 characters of another."""
    raw = exc.read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")[:200]
    return _Response(exc.code, payload, dict(exc.headers or {}))


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


def _rate_limited(response: _Response) -> bool:
    if response.status == 429:
        return True
    if response.status != 403:
        return False
    message = response.data.get("message", "") if isinstance(response.data, dict) else ""
    return response.header("x-ratelimit-remaining") == "0" or "rate limit" in str(message).lower()


def _short(description: str) -> str:
    if len(description) > STATUS_DESCRIPTION_LIMIT:
        return description[: STATUS_DESCRIPTION_LIMIT - 1] + "…"
    return description


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _collection(url: str, bases: tuple[str, ...], repo: str) -> str | None:
    """``/repos/o/r/<collection>`` of an API or uploads URL; None for anything else."""
    for base in bases:
        if url.startswith(base + repo + "/"):
            rest = url[len(base + repo) + 1 :]
            return repo + "/" + rest.split("/", 1)[0].split("?", 1)[0]
    return None


def _next_link(header: str, api_url: str) -> str | None:
    """The next page's URL from a Link header, followed only on the API's own origin."""
    origin = urllib.parse.urlsplit(api_url)
    for part in header.split(","):
        if 'rel="next"' in part:
            url = part.split(";", 1)[0].strip().strip("<>")
            found = urllib.parse.urlsplit(url)
            if (found.scheme, found.netloc) == (origin.scheme, origin.netloc):
                return url
    return None


def _id(raw: Any, what: str) -> int:
    """An object's ``id`` as GitHub gives it (an integer), or a clear error."""
    found = _int(raw.get("id")) if isinstance(raw, dict) else None
    if found is None:
        raise GitHubError(
            f"GitHub API: {what} came back without an id ({str(raw)[:100]!r})",
            hint="check GITHUB_API_URL: it must be GitHub's API",
        )
    return found


def _asset(raw: Any) -> AssetInfo | None:
    """A release asset, or None for an entry that is not one as GitHub describes it."""
    if not isinstance(raw, dict) or _int(raw.get("id")) is None or not isinstance(raw.get("name"), str):
        return None
    size = _int(raw.get("size"))
    return AssetInfo(
        int(raw["id"]),
        raw["name"],
        size if size is not None and size >= 0 else 0,
        raw.get("digest") if isinstance(raw.get("digest"), str) else None,
        str(raw.get("state") or "uploaded"),
        _web_url(raw.get("browser_download_url")),
        raw.get("created_at") if isinstance(raw.get("created_at"), str) else None,
    )


def _web_url(value: Any) -> str | None:
    """An https URL as GitHub answers one (a link a comment shows), else None."""
    if not isinstance(value, str) or not value.startswith("https://") or len(value) > 2000:
        return None
    return value if not any(c.isspace() or c in "<>\"'()" for c in value) else None


def _release(raw: Any) -> ReleaseInfo:
    if not isinstance(raw, dict) or _int(raw.get("id")) is None:
        raise GitHubError("GitHub API: a release answer without an id", hint="check GITHUB_API_URL")
    assets = raw.get("assets")
    return ReleaseInfo(
        id=int(raw["id"]),
        tag=str(raw.get("tag_name") or ""),
        draft=bool(raw.get("draft")),
        html_url=str(raw.get("html_url") or ""),
        body=str(raw.get("body") or ""),
        assets=tuple(a for a in map(_asset, assets if isinstance(assets, list) else []) if a is not None),
    )
