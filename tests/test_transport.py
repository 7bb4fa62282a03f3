"""mlci.transport against real HTTP servers on 127.0.0.1: one deadline, a body cap,
and credentials that never follow a redirect to another origin."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from mlci import transport
from mlci.errors import ExitCode
from tests.lifecycle import script_project as project

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextmanager
def serve(answer: Handler) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A threaded server whose every request ``answer`` handles; yields its URL and the
    headers of each request it received."""
    seen: list[dict[str, str]] = []

    class One(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            with suppress(BrokenPipeError, ConnectionResetError):
                answer(self)

        do_GET = do_POST = handle_one

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), One)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _json(handler: http.server.BaseHTTPRequestHandler, data: object, status: int = 200) -> None:
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _redirect_to(target: str) -> Handler:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", target + handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def _trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    for _ in range(1000):  # one byte every 0.2 s: each read is quick, the answer never ends
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.2)


def test_a_redirect_to_another_port_gets_no_credentials() -> None:
    from mlci import tracking_rest

    experiment = {"experiment": {"experiment_id": "7", "lifecycle_stage": "active"}}
    with (
        serve(lambda h: _json(h, experiment)) as (other, seen_other),
        serve(_redirect_to(other)) as (first, seen_first),
    ):
        environ = {"MLFLOW_TRACKING_TOKEN": "tok-SECRET"}
        found = tracking_rest.call(
            first, "GET", "experiments/get-by-name?experiment_name=x", environ, timeout=5
        )
        assert found["experiment"]["experiment_id"] == "7"
        assert seen_first[0]["authorization"] == "Bearer tok-SECRET"
        assert "authorization" not in seen_other[0], seen_other  # another port: another origin
        # A password in the URI is not sent there either.
        tracking_rest.call(first.replace("//", "//bob:PW@"), "GET", "experiments/get-by-name", {}, timeout=5)
        assert seen_first[1]["authorization"].startswith("Basic ")
        assert "authorization" not in seen_other[1]


def test_a_redirect_on_the_same_origin_keeps_its_credentials() -> None:
    hops: list[str] = []

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        hops.append(handler.path)
        if handler.path == "/start":
            handler.send_response(301)
            handler.send_header("Location", "/end")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        else:
            _json(handler, {"ok": True})

    with serve(answer) as (url, seen):
        request = urllib.request.Request(url + "/start", headers={"Authorization": "Bearer same"})
        assert json.loads(transport.fetch(request, deadline=5).body) == {"ok": True}
        assert hops == ["/start", "/end"] and [s.get("authorization") for s in seen] == ["Bearer same"] * 2


def test_a_trickling_server_is_cut_at_the_deadline() -> None:
    with serve(_trickle) as (url, _), pytest.raises(transport.DeadlineExceeded) as caught:
        transport.fetch(urllib.request.Request(url + "/x"), deadline=1.0)
    assert caught.value.received > 0 and "did not finish within 1s" in str(caught.value)


def test_a_silent_server_is_cut_at_the_deadline(silent_server: str) -> None:
    with pytest.raises(transport.DeadlineExceeded) as caught:
        transport.fetch(urllib.request.Request(silent_server + "/x"), deadline=0.5)
    assert caught.value.received == 0 and "before it answered" in str(caught.value)


def test_a_body_past_its_limit_is_refused_and_an_error_body_is_bounded() -> None:
    def big(handler: http.server.BaseHTTPRequestHandler) -> None:
        status = 500 if handler.path == "/error" else 200
        handler.send_response(status)
        handler.send_header("Content-Length", str(10_000_000))
        handler.end_headers()
        handler.wfile.write(b"x" * 10_000_000)

    with serve(big) as (url, _):
        with pytest.raises(transport.TooLarge, match="more than 1000 bytes"):
            transport.fetch(urllib.request.Request(url + "/ok"), deadline=5, limit=1000)
        with pytest.raises(transport.TooLarge):
            transport.fetch(urllib.request.Request(url + "/error"), deadline=5, limit=1000)
    with serve(lambda h: _json(h, {"error_code": "RESOURCE_DOES_NOT_EXIST"}, 404)) as (url, _):
        with pytest.raises(urllib.error.HTTPError) as caught:
            transport.fetch(urllib.request.Request(url + "/missing"), deadline=5)
        assert json.loads(caught.value.read())["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_tracking_server_that_trickles_fails_within_its_deadline(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with serve(_trickle) as (url, _):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        root = project(tmp_path, extra_yaml="tracking:\n  timeout: 1\n")
        result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR, result.err
    assert "did not answer" in result.err and "did not finish within 1s" in result.err
    assert "Traceback" not in result.err


def test_github_trickling_or_not_json_is_a_clear_error() -> None:
    from mlci import github_api
    from mlci.errors import MlciError

    with serve(
        lambda h: (
            h.send_response(200),
            h.send_header("Content-Length", "5"),
            h.end_headers(),
            h.wfile.write(b"<html"),
        )
    ) as (url, _):
        api = github_api.GitHubApi("tok", url, "octo/churn", retries=0, backoff=0.01)
        with pytest.raises(MlciError, match="not JSON"):
            api.pull(1)


def test_github_that_trickles_is_cut_at_the_deadline() -> None:
    from mlci import github_api
    from mlci.errors import MlciError

    with serve(_trickle) as (url, _):
        api = github_api.GitHubApi("tok", url, "octo/churn", retries=0, backoff=0.01, deadline=1.0)
        with pytest.raises(MlciError, match="did not finish within 1s"):
            api.pull(1)
