"""Runs the project's training command: output streamed live, stderr's tail kept.

The command runs in its own process group so that an interrupt reaches the
whole tree (``sh -c`` and whatever it started), and mlci decides how it ends:
Ctrl-C or SIGTERM is forwarded as SIGINT, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlci.errors import TrainingError

_TAIL_BYTES = 16 * 1024
_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Outcome:
    returncode: int
    seconds: float
    stderr_tail: str
    interrupted: bool


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so the run is ended cleanly."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pump(source: IO[bytes], sink: IO[bytes], tail: collections.deque[bytes] | None) -> None:
    size = 0
    while True:
        chunk = os.read(source.fileno(), 65536)
        if not chunk:
            break
        try:
            sink.write(chunk)
            sink.flush()
        except (OSError, ValueError):
            pass  # our own output went away (closed pipe): keep draining the child
        if tail is not None:
            tail.append(chunk)
            size += len(chunk)
            while size > _TAIL_BYTES and len(tail) > 1:
                size -= len(tail.popleft())
    source.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in (
        (signal.SIGINT, _GRACE_SECONDS),
        (signal.SIGTERM, 5.0),
        (signal.SIGKILL, 5.0),
    ):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _binary(stream: Any) -> IO[bytes]:
    return getattr(stream, "buffer", stream)  # type: ignore[no-any-return]


def run_command(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: IO[Any] | None = None,
    stderr: IO[Any] | None = None,
) -> Outcome:
    """Run ``command`` through the shell; stream its stdout to ``stdout`` and its
    stderr to ``stderr`` as they come, and return how it ended."""
    out_sink = _binary(stdout or sys.stdout)
    err_sink = _binary(stderr or sys.stderr)
    for stream in (stdout or sys.stdout, stderr or sys.stderr):
        stream.flush()
    tail: collections.deque[bytes] = collections.deque()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise TrainingError(
            f"cannot start the training command {command!r} in {cwd}: {exc.strerror}",
            hint="check train.command in mlci.yaml",
        ) from exc
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, out_sink, None), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err_sink, tail), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    interrupted = False
    with _sigterm_raises():
        try:
            proc.wait()
        except (KeyboardInterrupt, _Terminated):
            interrupted = True
            _stop(proc)
    for pump in pumps:
        pump.join(timeout=5)
    return Outcome(
        returncode=proc.returncode if proc.returncode is not None else -1,
        seconds=time.perf_counter() - start,
        stderr_tail=b"".join(tail).decode("utf-8", errors="replace"),
        interrupted=interrupted,
    )
