"""A local stand-in for GitHub's REST API: the endpoints mlci uses, with GitHub's
documented request and response shapes, recording every request it gets.

Faults are queued per (method, path suffix): a 502, a secondary rate limit
with Retry-After, a 403 for a read-only token.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class Headers(dict):  # type: ignore[type-arg]
    """HTTP header names are case-blind: ``headers["authorization"]`` finds ``Authorization``."""

    def __init__(self, items: Any) -> None:
        super().__init__((str(k).lower(), v) for k, v in dict(items).items())

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(str(key).lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class Request:
    method: str
    path: str  # without the API prefix and query
    query: dict[str, list[str]]
    headers: Headers
    body: Any
    raw_path: str = ""  # as sent, with the API prefix

    @property
    def storage(self) -> bool:
        """A download from GitHub's storage host (where a redirect leads), not the API."""
        return self.path.startswith("/_blobs/")


@dataclass
class Fault:
    method: str
    suffix: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    after: bool = False  # the request takes effect, then the answer is lost (a 502 after a create)


@dataclass
class GitHubState:
    prefix: str = ""  # "/api/v3" for GitHub Enterprise Server
    user: str | None = "mlci-bot"  # a user token's login (GET /user); None: refused
    bot: str = (
        "github-actions[bot]"  # who writes with an installation token (ghs_): the Actions bot, or an App's
    )
    app: str | None = None  # an App's slug: its comments carry performed_via_github_app
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[int, str] = field(default_factory=dict)  # number -> head sha
    pull_bases: dict[int, str] = field(default_factory=dict)  # number -> base branch (default staging)
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    next_id: int = 1000
    base_url: str = ""
    # Actions artifacts and the workflow runs that made them; releases and their assets.
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)  # "artifact/ID", "asset/ID" -> bytes
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    releases: list[dict[str, Any]] = field(default_factory=list)
    repository_id: int = 1
    clock: int = 0  # orders created_at: no sleeping to make times differ
    not_modified: int = 0  # 304 answers to conditional reads
    # Deployments and their statuses, repository_dispatch events, Environments' protection rules.
    deployments: list[dict[str, Any]] = field(default_factory=list)
    deployment_statuses: list[dict[str, Any]] = field(default_factory=list)
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    environments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name -> protection_rules
    # One request at a time, as GitHub orders writes to one resource (many jobs call at once).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def now(self) -> str:
        self.clock += 1
        return f"2026-11-28T{self.clock // 3600:02d}:{self.clock // 60 % 60:02d}:{self.clock % 60:02d}Z"

    def add_run(self, run_id: int, event: str, head_repo: str = "octo/churn") -> dict[str, Any]:
        """A workflow run as ``GET /repos/{owner}/{repo}/actions/runs/{run_id}`` returns it."""
        fork = head_repo != "octo/churn"
        run = {
            "id": run_id,
            "name": "mlci",
            "event": event,
            "status": "completed",
            "head_branch": "feature",
            "head_sha": "0" * 40,
            "url": self.api(f"/repos/octo/churn/actions/runs/{run_id}"),
            "html_url": f"https://github.example/octo/churn/actions/runs/{run_id}",
            "repository": {"id": self.repository_id, "full_name": "octo/churn"},
            "head_repository": {"id": 99 if fork else self.repository_id, "full_name": head_repo},
        }
        self.runs[run_id] = run
        return run

    def add_artifact(
        self,
        name: str,
        files: dict[str, bytes] | bytes,
        *,
        run_id: int,
        event: str = "pull_request",
        head_repo: str = "octo/churn",
        expired: bool = False,
    ) -> dict[str, Any]:
        """An artifact in GitHub's documented shape; ``files`` are zipped as upload-artifact does."""
        if isinstance(files, dict):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                for path, data in files.items():
                    zf.writestr(path, data)
            data = buffer.getvalue()
        else:
            data = files
        run = self.runs.get(run_id) or self.add_run(run_id, event, head_repo)
        self.next_id += 1
        created = self.now()
        artifact = {
            "id": self.next_id,
            "node_id": f"MDg6QXJ0aWZhY3Q{self.next_id}",
            "name": name,
            "size_in_bytes": len(data),
            "url": self.api(f"/repos/octo/churn/actions/artifacts/{self.next_id}"),
            "archive_download_url": self.api(f"/repos/octo/churn/actions/artifacts/{self.next_id}/zip"),
            "expired": expired,
            "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
            "created_at": created,
            "updated_at": created,
            "expires_at": "2027-02-26T00:00:00Z",
            "workflow_run": {
                "id": run_id,
                "repository_id": self.repository_id,
                "head_repository_id": run["head_repository"]["id"],
                "head_branch": "feature",
                "head_sha": "0" * 40,
            },
        }
        self.artifacts.append(artifact)
        self.blobs[f"artifact/{self.next_id}"] = data
        return artifact

    def release_by_tag(self, tag: str) -> dict[str, Any] | None:
        return next((r for r in self.releases if r["tag_name"] == tag), None)

    def asset_bytes(self, tag: str, name: str) -> bytes:
        release = self.release_by_tag(tag)
        assert release is not None, f"no release on {tag}"
        asset = next(a for a in release["assets"] if a["name"] == name)
        return self.blobs[f"asset/{asset['id']}"]

    def api(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def add_comment(self, pr: int, body: str, login: str) -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "node_id": f"IC_{self.next_id}",
            "url": self.api(f"/repos/octo/churn/issues/comments/{self.next_id}"),
            "html_url": f"https://github.example/octo/churn/pull/{pr}#issuecomment-{self.next_id}",
            "issue_url": self.api(f"/repos/octo/churn/issues/{pr}"),
            "body": body,
            "user": {"login": login, "id": 1, "type": "Bot" if login.endswith("[bot]") else "User"},
            "performed_via_github_app": (
                {"id": 9, "slug": self.app, "name": self.app} if self.app and login == self.bot else None
            ),
            "created_at": "2026-11-28T00:00:00Z",
            "updated_at": "2026-11-28T00:00:00Z",
            "author_association": "NONE",
        }
        self.comments.setdefault(pr, []).append(comment)
        return comment

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def api_requests(self, since: int = 0) -> list[Request]:
        """Requests to the API and uploads hosts (rate-limited), not storage downloads."""
        return [r for r in self.requests[since:] if not r.storage]

    def storage(self) -> str:
        """GitHub's storage for artifacts and assets: another origin, as on github.com
        (``localhost`` for ``127.0.0.1``), so a client that follows the redirect must
        not send its token there."""
        return self.base_url.removesuffix(self.prefix).replace("127.0.0.1", "localhost")

    def uploads(self) -> str:
        """The uploads root: ``/api/uploads`` on GitHub Enterprise Server, ``/uploads`` here."""
        origin = self.base_url.removesuffix(self.prefix)
        return f"{origin}/api/uploads" if self.prefix == "/api/v3" else f"{origin}/uploads"


class _Handler(BaseHTTPRequestHandler):
    state: GitHubState

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        lost = getattr(self, "_lost", None)
        if lost is not None:
            self._lost = None
            status, body, headers = lost.status, lost.body, lost.headers
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        st = self.state
        parts = urlsplit(self.path)
        path = parts.path
        if st.prefix and path.startswith(st.prefix):
            path = path[len(st.prefix) :]
        elif st.prefix == "/api/v3" and path.startswith("/api/uploads/"):
            path = path[len("/api") :]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        binary = path.startswith(("/uploads/", "/_stub/"))
        body = raw if binary else (json.loads(raw) if raw else None)
        if not path.startswith("/_stub/"):  # the test's own back door is not GitHub's API
            recorded = f"<{len(raw)} bytes>" if binary else body
            st.requests.append(
                Request(method, path, parse_qs(parts.query), Headers(self.headers), recorded, parts.path)
            )
        self._lost: Fault | None = None
        for fault in st.faults:
            if fault.times > 0 and fault.method == method and path.endswith(fault.suffix):
                fault.times -= 1
                if fault.after:
                    self._lost = fault  # handled below; its answer replaced in _send
                    break
                return self._send(fault.status, fault.body, fault.headers)
        m = re.fullmatch(r"/_blobs/(artifact|asset)/(\d+)", path)
        if m and method == "GET":  # signed storage URLs: no GitHub token needed
            if self.headers.get("Authorization"):  # as S3 and Azure: one way to authenticate
                return self._send(400, {"message": "Only one auth mechanism allowed"})
            data = st.blobs.get(f"{m[1]}/{m[2]}")
            if data is None:
                return self._send(404, {"message": "BlobNotFound"})
            return self._send_bytes(200, data, "application/octet-stream")
        if path == "/_stub/artifacts" and method == "POST":  # what upload-artifact's stand-in calls
            q = parse_qs(parts.query)
            artifact = st.add_artifact(
                q["name"][0],
                raw,
                run_id=int(q["run_id"][0]),
                event=q["event"][0],
                head_repo=q.get("head_repo", ["octo/churn"])[0],
            )
            return self._send(201, artifact)
        if not self.headers.get("Authorization", "").startswith(("token ", "Bearer ")):
            return self._send(401, {"message": "Requires authentication"})
        handled = self._actions_and_releases(method, path, parse_qs(parts.query), body)
        if handled or self._deployments(method, path, parse_qs(parts.query), body):
            return None
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)", path)
        if m and method == "GET":
            if f"{m[1]}/{m[2]}" != "octo/churn":
                return self._send(404, {"message": "Not Found"})
            return self._send(
                200, {"id": st.repository_id, "name": "churn", "full_name": "octo/churn", "private": True}
            )
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/commits/([0-9a-f]{40})/statuses", path)
        if m and method == "GET":
            return self._send(200, [x for x in reversed(st.statuses) if x["sha"] == m[3]])
        if method == "GET" and path == "/user":
            if st.user is None:
                return self._send(403, {"message": "Resource not accessible by integration", "status": "403"})
            return self._send(200, {"login": st.user, "id": 7, "type": "User"})
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/(\d+)/comments", path)
        if m and method == "GET":
            pr = int(m[3])
            per_page = int(parse_qs(parts.query).get("per_page", ["30"])[0])
            page = int(parse_qs(parts.query).get("page", ["1"])[0])
            items = st.comments.get(pr, [])
            chunk = items[(page - 1) * per_page : page * per_page]
            last = max(1, -(-len(items) // per_page))
            etag = '"' + hashlib.sha256(json.dumps(chunk).encode()).hexdigest()[:32] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                st.not_modified += 1
                return None
            headers = {"ETag": etag}
            if page < last:
                url = st.api(f"/repos/{m[1]}/{m[2]}/issues/{pr}/comments")
                headers["Link"] = (
                    f'<{url}?per_page={per_page}&page={page + 1}>; rel="next", '
                    f'<{url}?per_page={per_page}&page={last}>; rel="last"'
                )
            return self._send(200, chunk, headers)
        if m and method == "POST":
            return self._send(201, st.add_comment(int(m[3]), body["body"], self._author()))
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)", path)
        if m and method == "GET":
            number = int(m[3])
            if number not in st.pulls:
                return self._send(404, {"message": "Not Found"})
            return self._send(
                200,
                {
                    "url": st.api(path),
                    "number": number,
                    "state": "open",
                    "head": {"ref": "feature", "sha": st.pulls[number], "repo": {"full_name": "fork/churn"}},
                    "base": {
                        "ref": st.pull_bases.get(number, "staging"),
                        "sha": "0" * 40,
                        "repo": {"full_name": f"{m[1]}/{m[2]}"},
                    },
                },
            )
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/comments/(\d+)", path)
        if m and method == "PATCH":
            for comments in st.comments.values():
                for comment in comments:
                    if comment["id"] == int(m[3]):
                        comment["body"] = body["body"]
                        comment["updated_at"] = "2026-11-28T01:00:00Z"
                        return self._send(200, comment)
            return self._send(404, {"message": "Not Found"})
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})", path)
        if m and method == "POST":
            status = {
                "url": st.api(path),
                "id": len(st.statuses) + 1,
                "node_id": "SC_1",
                "state": body["state"],
                "description": body.get("description"),
                "target_url": body.get("target_url"),
                "context": body.get("context", "default"),
                "created_at": "2026-11-28T00:00:00Z",
                "updated_at": "2026-11-28T00:00:00Z",
                "creator": {"login": self._author(), "id": 7},
                "sha": m[3],
            }
            st.statuses.append(status)
            return self._send(201, status)
        return self._send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def _author(self) -> str:
        """Who a write is attributed to: a user token's user, else the installation's bot."""
        token = self.headers.get("Authorization", "").split(" ", 1)[-1]
        user_token = token.startswith(("ghp_", "github_pat_", "gho_", "ghu_"))
        return (self.state.user or "someone") if user_token else self.state.bot

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        if getattr(self, "_lost", None) is not None:  # done, and the answer lost
            return self._send(status, None)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _deployments(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> bool:
        """Deployments, their statuses, repository_dispatch and Environments, in GitHub's
        documented shapes (and its documented 422s); True when answered."""
        st = self.state
        repo = r"/repos/([^/]+)/([^/]+)"
        if method == "POST" and re.fullmatch(rf"{repo}/deployments", path):
            if not isinstance(body.get("ref"), str) or not body["ref"]:
                self._send(422, {"message": 'Invalid request.\n\n"ref" wasn\'t supplied.'})
                return True
            st.clock += 1
            deployment = {
                "url": st.api(f"{path}/{len(st.deployments) + 1}"),
                "id": len(st.deployments) + 1,
                "node_id": "DE_1",
                "sha": body["ref"],
                "ref": body["ref"],
                "task": body.get("task", "deploy"),
                "payload": body.get("payload", {}),
                "original_environment": body.get("environment", "production"),
                "environment": body.get("environment", "production"),
                "description": body.get("description"),
                "creator": {"login": self._author(), "id": 7},
                "created_at": f"2026-11-28T00:00:{st.clock:02d}Z",
                "updated_at": f"2026-11-28T00:00:{st.clock:02d}Z",
                "statuses_url": st.api(f"{path}/{len(st.deployments) + 1}/statuses"),
                "repository_url": st.api(path.rsplit("/deployments", 1)[0]),
                "transient_environment": body.get("transient_environment", False),
                "production_environment": body.get("production_environment", False),
            }
            st.deployments.append(deployment)
            self._send(201, deployment)
            return True
        if method == "GET" and re.fullmatch(rf"{repo}/deployments", path):
            sha, env = query.get("sha", [None])[0], query.get("environment", [None])[0]
            found = [
                d
                for d in st.deployments
                if (sha is None or d["sha"] == sha) and (env is None or d["environment"] == env)
            ]
            self._send(200, list(reversed(found)))
            return True
        m = re.fullmatch(rf"{repo}/deployments/(\d+)/statuses", path)
        if m and method == "POST":
            if not any(d["id"] == int(m[3]) for d in st.deployments):
                self._send(404, {"message": "Not Found"})
                return True
            states = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
            if body.get("state") not in states or len(body.get("description") or "") > 140:
                self._send(422, {"message": "Validation Failed"})
                return True
            status = {
                "url": st.api(f"{path}/{len(st.deployment_statuses) + 1}"),
                "id": len(st.deployment_statuses) + 1,
                "node_id": "DES_1",
                "state": body["state"],
                "creator": {"login": self._author(), "id": 7},
                "description": body.get("description", ""),
                "environment": next(d["environment"] for d in st.deployments if d["id"] == int(m[3])),
                "target_url": body.get("log_url", body.get("target_url", "")),
                "log_url": body.get("log_url", ""),
                "environment_url": body.get("environment_url", ""),
                "created_at": "2026-11-28T00:00:00Z",
                "updated_at": "2026-11-28T00:00:00Z",
                "deployment_url": st.api(f"{path.rsplit('/statuses', 1)[0]}"),
                "repository_url": st.api(path.split("/deployments", 1)[0]),
                "deployment_id": int(m[3]),
            }
            st.deployment_statuses.append(status)
            self._send(201, status)
            return True
        m = re.fullmatch(rf"{repo}/deployments/(\d+)/statuses", path)
        if m and method == "GET":
            found = [x for x in reversed(st.deployment_statuses) if x["deployment_id"] == int(m[3])]
            self._send(200, found[: int(query.get("per_page", ["30"])[0])])
            return True
        if method == "POST" and re.fullmatch(rf"{repo}/dispatches", path):
            event_type, payload = body.get("event_type"), body.get("client_payload", {})
            if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
                self._send(422, {"message": "Invalid request.\n\nevent_type wasn't supplied."})
                return True
            if not isinstance(payload, dict) or len(payload) > 10:
                self._send(422, {"message": "client_payload has more than 10 top-level properties"})
                return True
            st.dispatches.append(body)
            self._send_bytes(204, b"", "application/json")
            return True
        m = re.fullmatch(rf"{repo}/environments/([^/]+)", path)
        if m and method == "GET":
            name = unquote(m[3])
            if name not in st.environments:
                self._send(404, {"message": "Not Found"})
                return True
            self._send(
                200,
                {
                    "id": 161088068,
                    "node_id": "MDExOkVudmlyb25tZW50MTYxMDg4MDY4",
                    "name": name,
                    "url": st.api(path),
                    "html_url": f"https://github.example/{m[1]}/{m[2]}/deployments/activity_log?environments_filter={name}",
                    "created_at": "2026-11-28T00:00:00Z",
                    "updated_at": "2026-11-28T00:00:00Z",
                    "protection_rules": st.environments[name],
                    "deployment_branch_policy": None,
                },
            )
            return True
        return False

    def _actions_and_releases(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> bool:
        """Artifacts, workflow runs, releases and release assets; True when answered."""
        st = self.state
        repo = r"/repos/([^/]+)/([^/]+)"
        if method == "GET" and re.fullmatch(rf"{repo}/actions/artifacts", path):
            name = query.get("name", [None])[0]
            items = [a for a in st.artifacts if name is None or a["name"] == name]
            items = sorted(items, key=lambda a: (a["created_at"], a["id"]), reverse=True)
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
            self._send(
                200, {"total_count": len(items), "artifacts": items[(page - 1) * per_page : page * per_page]}
            )
            return True
        m = re.fullmatch(rf"{repo}/actions/artifacts/(\d+)/zip", path)
        if m and method == "GET":
            if f"artifact/{m[3]}" not in st.blobs:
                self._send(404, {"message": "Not Found"})
            else:
                self._redirect(f"{st.storage()}/_blobs/artifact/{m[3]}")
            return True
        m = re.fullmatch(rf"{repo}/actions/runs/(\d+)", path)
        if m and method == "GET":
            run = st.runs.get(int(m[3]))
            self._send(200, run) if run else self._send(404, {"message": "Not Found"})
            return True
        if re.fullmatch(rf"{repo}/releases", path):
            if method == "GET":
                self._send(200, list(reversed(st.releases)))
                return True
            if method == "POST":
                if any(r["tag_name"] == body["tag_name"] for r in st.releases if not r["draft"]):
                    self._send(
                        422,
                        {
                            "message": "Validation Failed",
                            "errors": [
                                {"resource": "Release", "code": "already_exists", "field": "tag_name"}
                            ],
                        },
                    )
                    return True
                st.next_id += 1
                rid = st.next_id
                release = {
                    "id": rid,
                    "url": st.api(f"/repos/octo/churn/releases/{rid}"),
                    "html_url": f"https://github.example/octo/churn/releases/tag/{body['tag_name']}",
                    "assets_url": st.api(f"/repos/octo/churn/releases/{rid}/assets"),
                    "upload_url": f"{st.uploads()}/repos/octo/churn/releases/{rid}/assets{{?name,label}}",
                    "tag_name": body["tag_name"],
                    "target_commitish": body.get("target_commitish", "main"),
                    "name": body.get("name"),
                    "body": body.get("body"),
                    "draft": bool(body.get("draft")),
                    "prerelease": bool(body.get("prerelease")),
                    "created_at": st.now(),
                    "published_at": None if body.get("draft") else st.now(),
                    "author": {"login": st.user or "github-actions[bot]", "id": 7},
                    "assets": [],
                }
                st.releases.append(release)
                self._send(201, release)
                return True
        m = re.fullmatch(rf"{repo}/releases/tags/(.+)", path)
        if m and method == "GET":
            tag = unquote(m[3])
            release = next((r for r in st.releases if r["tag_name"] == tag and not r["draft"]), None)
            self._send(200, release) if release else self._send(404, {"message": "Not Found"})
            return True
        m = re.fullmatch(rf"{repo}/releases/(\d+)", path)
        if m:
            release = next((r for r in st.releases if r["id"] == int(m[3])), None)
            if release is None:
                self._send(404, {"message": "Not Found"})
            elif method == "GET":
                self._send(200, release)
            elif method == "PATCH":
                for key in ("name", "body", "draft", "prerelease", "tag_name"):
                    if key in body:
                        release[key] = body[key]
                if not release["draft"] and release["published_at"] is None:
                    release["published_at"] = st.now()
                self._send(200, release)
            elif method == "DELETE":
                st.releases.remove(release)
                self._send_bytes(204, b"", "application/json")
            return True
        m = re.fullmatch(r"/uploads/repos/([^/]+)/([^/]+)/releases/(\d+)/assets", path)
        if m and method == "POST":
            release = next((r for r in st.releases if r["id"] == int(m[3])), None)
            if release is None:
                self._send(404, {"message": "Not Found"})
                return True
            name = query["name"][0]
            if any(a["name"] == name for a in release["assets"]):
                self._send(
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}],
                    },
                )
                return True
            st.next_id += 1
            aid = st.next_id
            data = body if isinstance(body, bytes) else b""
            asset = {
                "id": aid,
                "node_id": f"RA_{aid}",
                "url": st.api(f"/repos/octo/churn/releases/assets/{aid}"),
                "browser_download_url": f"https://github.example/octo/churn/releases/download/{release['tag_name']}/{name}",
                "name": name,
                "label": query.get("label", [""])[0],
                "state": "uploaded",
                "content_type": self.headers.get("Content-Type", "application/octet-stream"),
                "size": len(data),
                "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
                "download_count": 0,
                "created_at": st.now(),
                "updated_at": st.now(),
                "uploader": {"login": st.user or "github-actions[bot]", "id": 7},
            }
            st.blobs[f"asset/{aid}"] = data
            release["assets"].append(asset)
            self._send(201, asset)
            return True
        m = re.fullmatch(rf"{repo}/releases/(\d+)/assets", path)
        if m and method == "GET":
            release = next((r for r in st.releases if r["id"] == int(m[3])), None)
            self._send(200, release["assets"]) if release else self._send(404, {"message": "Not Found"})
            return True
        m = re.fullmatch(rf"{repo}/releases/assets/(\d+)", path)
        if m:
            found = [(r, a) for r in st.releases for a in r["assets"] if a["id"] == int(m[3])]
            if not found:
                self._send(404, {"message": "Not Found"})
            elif method == "DELETE":
                found[0][0]["assets"].remove(found[0][1])
                st.blobs.pop(f"asset/{m[3]}", None)
                self._send_bytes(204, b"", "application/json")
            elif "application/octet-stream" in self.headers.get("Accept", ""):
                self._redirect(f"{st.storage()}/_blobs/asset/{m[3]}")
            else:
                self._send(200, found[0][1])
            return True
        return False

    def do_GET(self) -> None:
        with self.state.lock:
            self._handle("GET")

    def do_POST(self) -> None:
        with self.state.lock:
            self._handle("POST")

    def do_PATCH(self) -> None:
        with self.state.lock:
            self._handle("PATCH")

    def do_DELETE(self) -> None:
        with self.state.lock:
            self._handle("DELETE")


@contextmanager
def github_stub(prefix: str = "") -> Iterator[GitHubState]:
    state = GitHubState(prefix=prefix)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
