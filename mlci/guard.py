"""The leader of a training command's process group: ``python -I -S guard.py FD COMMAND
[JOURNAL]``, run by its path (``mlci.trainer``).

It runs ``sh -c COMMAND`` and exits with its status. It holds the read end of a pipe
whose write end only mlci holds: when that closes (mlci died, even by SIGKILL), the
guard kills the whole group, so no training process outlives the mlci that started it;
with a ``JOURNAL`` (``mlci.swap``), a restorer outside the group first waits for the
group to be gone, then puts back the files mlci changed for the run (``mlci.restorer``).

The standard library only, and no import of mlci at load: it starts with ``-S`` (no
site-packages) for speed, in every training run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_RESTORER_WAIT = 400  # polls of 25 ms for the group to be gone: 10 s


def _restore(journal: str) -> None:
    """``mlci.restorer.restore_journal``, loaded by its path (the package is not importable here)."""
    import importlib.util
    import time

    group = os.getpgrp()
    for _ in range(_RESTORER_WAIT):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.025)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "restorer.py")
    spec = importlib.util.spec_from_file_location("mlci_restorer", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.restore_journal(journal)


def _watch(fd: int, journal: str) -> None:
    """Wait for mlci's end of the lifeline to close; then restore (in a process outside the
    group) and kill the group."""
    while os.read(fd, 1):
        pass
    if journal:
        group = os.getpgrp()
        restorer = os.fork()
        if restorer == 0:
            try:  # noqa: SIM105 (contextlib would load in every training run's guard)
                os.setpgid(0, 0)
            except OSError:
                pass
            try:
                _restore(journal)
            finally:
                os._exit(0)  # a forked child: no handlers of the parent's to run
        try:  # noqa: SIM105 (as above)
            os.setpgid(restorer, restorer)  # out of the group before the group is killed
        except OSError:
            pass
        while True:
            try:
                if os.getpgid(restorer) != group:
                    break
            except OSError:
                break
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    fd, command = int(argv[0]), argv[1]
    journal = argv[2] if len(argv) > 2 else ""
    pid = os.fork()
    if pid == 0:
        os.close(fd)
        try:
            os.execv("/bin/sh", ["/bin/sh", "-c", command])
        finally:
            os._exit(127)  # exec failed, in the forked child
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    threading.Thread(target=_watch, args=(fd, journal), daemon=True).start()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
