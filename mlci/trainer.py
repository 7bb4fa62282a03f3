"""Runs the project's training command: output streamed live, stderr's tail kept.

The command runs in its own process group so that an interrupt reaches the
whole tree (``sh -c`` and whatever it started), and mlci decides how it ends:
Ctrl-C or SIGTERM is forwarded as SIGINT, then SIGTERM, then SIGKILL; past
``train.timeout`` the group is killed.

The group's leader is a small guard (``mlci.guard``, run by its path with the
standard library only) holding the read end of a pipe whose write end only mlci
holds: if mlci dies, even by SIGKILL, the pipe closes and the guard kills the
group, so no training process outlives the mlci that started it.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
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
    timed_out: bool = False


GUARD = Path(__file__).with_name("guard.py")  # the group's leader (mlci.guard), run by its path


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


_LINE_LIMIT = 64 * 1024  # a partial line longer than this is masked and written as it is


def _pump(
    source: IO[bytes],
    sink: IO[bytes],
    tail: collections.deque[bytes] | None,
    mask: Callable[[bytes], bytes] | None = None,
) -> None:
    size = 0
    pending = b""
    done = False
    while not done:
        chunk = os.read(source.fileno(), 65536)
        done = not chunk
        if mask is not None:
            # Whole lines through the mask, so that no secret is split across two writes.
            pending += chunk
            cut = len(pending) if done else max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
            if cut == 0 and len(pending) > _LINE_LIMIT:
                cut = len(pending)
            chunk, pending = mask(pending[:cut]) if cut else b"", pending[cut:]
        if not chunk:
            continue
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


def withheld(
    environ: Mapping[str, str], names: Sequence[str] = (), log: Callable[[str], None] | None = None
) -> dict[str, str]:
    """``environ`` without GitHub and Actions credentials (the training code may be a
    pull request's, and a token could push tags, comment, or read the cache service)
    and without the variables ``train.withhold_env`` names (fnmatch patterns, e.g. ``AWS_*``)."""
    from mlci import redact

    out = {k: v for k, v in environ.items() if not redact.is_credential(k, names)}
    dropped = sorted(set(environ) - set(out))
    if dropped and log is not None:
        log(f"the training command runs without {', '.join(dropped)}")
    return out


_ENV_BLOCK_LIMIT = 4 * 1024 * 1024


def hide_withheld(names: set[str]) -> list[str]:
    """Blank the values of ``names`` in this process's original environment block, the
    memory that /proc/PID/environ shows to any process (a training command walking its
    ancestors, as root too), and keep them for mlci's own calls: os.environ (Python's
    copy) and the C environment (set again from it, in new memory) still have them.
    Linux only; returns the names blanked."""
    if not names or not sys.platform.startswith("linux"):
        return []
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start and env_end: fields 50 and 51
    except (OSError, IndexError, ValueError):
        return []
    if not 0 < start < end or end - start > _ENV_BLOCK_LIMIT:
        return []
    import ctypes

    try:
        block = ctypes.string_at(start, end - start)
    except (OSError, ValueError):  # pragma: no cover - an address the kernel gave us
        return []
    blanked: list[str] = []
    offset = 0
    for entry in block.split(b"\0"):
        name, equals, value = entry.partition(b"=")
        decoded = name.decode("utf-8", errors="replace")
        if equals and value and decoded in names:
            ctypes.memset(start + offset + len(name) + 1, 0, len(value))
            blanked.append(decoded)
        offset += len(entry) + 1
    for key in blanked:
        if key in os.environ:  # the C environment pointed into the block: point it at a copy
            os.putenv(key, os.environ[key])
    return blanked


@contextmanager
def _not_dumpable() -> Iterator[None]:
    """While user code runs, this process is not dumpable: a process of the same user
    that is not root can neither ptrace it nor read its memory through /proc (where
    mlci keeps the credentials it withholds). Root can; nothing in a process stops it."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        with suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_get_dumpable, pr_set_dumpable = 3, 4
    before = prctl(pr_get_dumpable, 0, 0, 0, 0) if prctl is not None else -1
    if prctl is not None:
        prctl(pr_set_dumpable, 0, 0, 0, 0)
    try:
        yield
    finally:
        if prctl is not None and before > 0:
            prctl(pr_set_dumpable, before, 0, 0, 0)


class _TextSink:
    """Bytes into a text stream that has no binary buffer (a StringIO, a wrapped stream)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, chunk: bytes) -> int:
        self.stream.write(chunk.decode("utf-8", errors="replace"))
        return len(chunk)

    def flush(self) -> None:
        self.stream.flush()


def _binary(stream: Any) -> IO[bytes]:
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else _TextSink(stream)  # type: ignore[return-value]


def run_command(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: IO[Any] | None = None,
    stderr: IO[Any] | None = None,
    timeout: float | None = None,
    restore_journal: str | None = None,
) -> Outcome:
    """Run ``command`` through the shell; stream its stdout to ``stdout`` and its
    stderr to ``stderr`` as they come, and return how it ended. Past ``timeout``
    seconds the command's whole process group is killed. If mlci dies meanwhile,
    the guard restores the files named by ``restore_journal`` (``mlci.swap``)."""
    from mlci import redact

    # Nothing the command prints shows a secret mlci knows (the credentials it withholds,
    # or any secret-looking value in its own environment), and no credential it withholds
    # can be read from mlci's /proc/PID/environ while the command runs.
    mask = redact.stream_masker(redact.secret_values(os.environ))
    hide_withheld({name for name in os.environ if name not in env})
    out_sink = _binary(stdout or sys.stdout)
    err_sink = _binary(stderr or sys.stderr)
    for stream in (stdout or sys.stdout, stderr or sys.stderr):
        stream.flush()
    tail: collections.deque[bytes] = collections.deque()
    start = time.perf_counter()
    lifeline_read, lifeline_write = os.pipe()  # mlci holds the write end: when it dies, the guard acts
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(GUARD),
                str(lifeline_read),
                command,
                *([restore_journal] if restore_journal else []),
            ],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(lifeline_read,),
        )
    except OSError as exc:
        os.close(lifeline_write)
        os.close(lifeline_read)
        raise TrainingError(
            f"cannot start the training command {command!r} in {cwd}: {exc.strerror}",
            hint="check train.command in mlci.yaml",
        ) from exc
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, out_sink, None, mask), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err_sink, tail, mask), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    os.close(lifeline_read)
    interrupted = timed_out = False
    try:
        with _sigterm_raises(), _not_dumpable():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
            except (KeyboardInterrupt, _Terminated):
                interrupted = True
                _stop(proc)
    finally:
        os.close(lifeline_write)
    for pump in pumps:
        pump.join(timeout=5)
    return Outcome(
        returncode=proc.returncode if proc.returncode is not None else -1,
        seconds=time.perf_counter() - start,
        stderr_tail=b"".join(tail).decode("utf-8", errors="replace"),
        interrupted=interrupted,
        timed_out=timed_out,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """The whole group, at once: a command past its timeout gets no grace."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
