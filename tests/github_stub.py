"""A local stand-in for GitHub's REST API: the endpoints mlci uses, with GitHub's
documented request and response shapes, recording every request it gets.

Faults are queued per (method, path suffix): a 502, a secondary rate limit
with Retry-After, a 403 for a read-only token.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str  # without the API prefix and query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str
    suffix: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class GitHubState:
    prefix: str = ""  # "/api/v3" for GitHub Enterprise Server
    user: str | None = "mlci-bot"  # None: GET /user is refused, as for the Actions token
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[int, str] = field(default_factory=dict)  # number -> head sha
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    next_id: int = 1000
    base_url: str = ""

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
            "created_at": "2026-11-28T00:00:00Z",
            "updated_at": "2026-11-28T00:00:00Z",
            "author_association": "NONE",
        }
        self.comments.setdefault(pr, []).append(comment)
        return comment

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]


class _Handler(BaseHTTPRequestHandler):
    state: GitHubState

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
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
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        st.requests.append(Request(method, path, parse_qs(parts.query), dict(self.headers), body))
        for fault in st.faults:
            if fault.times > 0 and fault.method == method and path.endswith(fault.suffix):
                fault.times -= 1
                return self._send(fault.status, fault.body, fault.headers)
        if not self.headers.get("Authorization", "").startswith(("token ", "Bearer ")):
            return self._send(401, {"message": "Requires authentication"})
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
            headers = {}
            if page < last:
                url = st.api(f"/repos/{m[1]}/{m[2]}/issues/{pr}/comments")
                headers["Link"] = (
                    f'<{url}?per_page={per_page}&page={page + 1}>; rel="next", '
                    f'<{url}?per_page={per_page}&page={last}>; rel="last"'
                )
            return self._send(200, chunk, headers)
        if m and method == "POST":
            return self._send(201, st.add_comment(int(m[3]), body["body"], st.user or "github-actions[bot]"))
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
                    "base": {"ref": "staging", "sha": "0" * 40, "repo": {"full_name": f"{m[1]}/{m[2]}"}},
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
                "creator": {"login": st.user or "github-actions[bot]", "id": 7},
                "sha": m[3],
            }
            st.statuses.append(status)
            return self._send(201, status)
        return self._send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")


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
