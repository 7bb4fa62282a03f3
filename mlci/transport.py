"""HTTP requests with one deadline and a size cap, and credentials that stay with their origin.

urllib's ``timeout`` bounds each socket operation, not the request: a server that
sends its headers and then one byte a second holds a caller for as long as it likes.
Here a watchdog shuts the connection's socket down when the request's deadline
passes, whatever it is doing then (connecting, reading the headers or the body),
and the body is read to at most ``limit`` bytes. A redirect to another scheme, host
or port drops ``Authorization`` (as requests, and so MLflow's client, does); a
redirect from https to http is refused.

Errors keep urllib's types, so callers handle them as before: an HTTP error status
is ``urllib.error.HTTPError`` (its body bounded too), a refused connection is
``urllib.error.URLError``; a request past its deadline is ``DeadlineExceeded`` (a
``TimeoutError``), and a body past its limit is ``TooLarge``.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

MAX_BODY = 64 * 1024 * 1024  # bytes of one response body, unless the caller says less
_CHUNK = 64 * 1024


class DeadlineExceeded(TimeoutError):
    """The request did not finish (connect, headers and body) within its deadline."""

    def __init__(self, url: str, deadline: float, received: int) -> None:
        self.received = received  # body bytes read before the cut: > 0 for a trickle
        how = f"after {received} bytes of its answer" if received else "before it answered"
        super().__init__(f"{_origin(url)} did not finish within {deadline:g}s ({how})")


class TooLarge(ValueError):
    """A response body larger than the caller's limit."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(f"{_origin(url)} answered with more than {limit} bytes")


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes
    url: str  # after redirects


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def _key(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


@dataclass
class _Watch:
    """The sockets a request opened (a redirect opens another), shut down at the deadline."""

    deadline: float
    started: float = field(default_factory=time.monotonic)
    sockets: list[socket.socket] = field(default_factory=list)
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def past(self) -> bool:
        """The deadline has passed (the watchdog fired, or is about to: a socket timeout
        of the whole deadline can end a read a moment before it does)."""
        return self.expired or time.monotonic() - self.started >= self.deadline

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _connection(base: type[http.client.HTTPConnection], watch: _Watch) -> Any:
    class Watched(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)

    return Watched


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection(http.client.HTTPConnection, self.watch), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = getattr(self, "_context", None)  # the default context, as urllib's own handler
        return self.do_open(_connection(http.client.HTTPSConnection, self.watch), req, context=context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Credentials go only where they were sent: another origin gets none."""

    max_redirections = 5

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = _key(req.full_url), _key(newurl)
        if old[0] == "https" and new[0] != "https":
            raise urllib.error.HTTPError(
                req.full_url, code, f"refused a redirect from https to {new[0]}", headers, fp
            )
        follow = super().redirect_request(req, fp, code, msg, headers, newurl)
        if follow is not None and new != old:
            for name in list(follow.headers):
                if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                    del follow.headers[name]
            for name in list(follow.unredirected_hdrs):
                if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                    del follow.unredirected_hdrs[name]
        return follow


def _read(stream: Any, url: str, limit: int, watch: _Watch) -> bytes:
    out = io.BytesIO()
    while True:
        try:
            chunk = stream.read1(_CHUNK) if hasattr(stream, "read1") else stream.read(_CHUNK)
        except (OSError, http.client.HTTPException, ValueError):
            if watch.past():
                raise DeadlineExceeded(url, watch.deadline, out.tell()) from None
            raise
        if not chunk:
            if watch.expired:
                raise DeadlineExceeded(url, watch.deadline, out.tell())
            return out.getvalue()
        out.write(chunk)
        if out.tell() > limit:
            raise TooLarge(url, limit)


def fetch(request: urllib.request.Request, *, deadline: float, limit: int = MAX_BODY) -> Response:
    """Send ``request`` and read its whole answer within ``deadline`` seconds (connect,
    redirects, headers and body together), the body at most ``limit`` bytes."""
    with _watchdog(deadline) as watch:
        response = _open(request, watch, timeout=deadline, limit=limit)
        with response:
            body = _read(response, request.full_url, limit, watch)
            return Response(response.status, response.headers, body, response.url)


@contextlib.contextmanager
def _watchdog(deadline: float) -> Iterator[_Watch]:
    """A watch whose sockets are shut down when ``deadline`` seconds pass inside the block."""
    watch = _Watch(deadline)
    timer = threading.Timer(deadline, watch.expire)
    timer.daemon = True
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()


def _open(request: urllib.request.Request, watch: _Watch, *, timeout: float, limit: int) -> Any:
    """``request`` opened under ``watch``: an HTTP error raised with its body read (at most
    ``limit`` bytes), a connection cut at the deadline raised as ``DeadlineExceeded``."""
    opener = urllib.request.build_opener(_HTTPHandler(watch), _HTTPSHandler(watch), _Redirects())
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        body = _read(exc, request.full_url, limit, watch) if exc.fp is not None else b""
        raise urllib.error.HTTPError(exc.url, exc.code, exc.msg, exc.headers, io.BytesIO(body)) from None
    except (OSError, http.client.HTTPException) as exc:
        if watch.past():
            raise DeadlineExceeded(request.full_url, watch.deadline, 0) from exc
        raise


@dataclass
class Stream:
    """An answer whose body is read as it arrives: ``chunks`` yields it, each read
    bounded by ``idle`` seconds, the whole by ``limit`` bytes."""

    status: int
    headers: Message
    url: str  # after redirects
    chunks: Any  # Iterator[bytes]


def stream(request: urllib.request.Request, *, deadline: float, idle: float, limit: int) -> Stream:
    """Send ``request``; connect, redirects and the answer's headers within ``deadline``
    seconds, then the body as it comes (a model archive can take minutes): each read
    within ``idle`` seconds, at most ``limit`` bytes in all. HTTP errors are raised as by
    :func:`fetch`, their bodies bounded."""
    with _watchdog(deadline) as watch:
        response = _open(request, watch, timeout=idle, limit=MAX_BODY)

    def chunks() -> Any:
        received = 0
        with response:
            while True:
                chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
                if not chunk:
                    return
                received += len(chunk)
                if received > limit:
                    raise TooLarge(request.full_url, limit)
                yield chunk

    return Stream(response.status, response.headers, response.url, chunks())
