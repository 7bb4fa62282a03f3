"""A real PostgreSQL server on 127.0.0.1 for the tests: the binaries of the ``pgserver``
wheel (PostgreSQL built for manylinux, installed with the test extras, so a fresh
machine needs nothing but pip), a cluster in a temporary folder, stopped and deleted
when the context ends.

PostgreSQL refuses to run as root. As root, the binaries are copied next to the
cluster (the wheel's folder, and pytest's temp folders, may sit where no other user can enter)
and the server runs as the unprivileged ``nobody``; nothing outside the folder is
created or changed, no system user, no permission.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

NOBODY = 65534


def _wheel_folder() -> Path | None:
    spec = importlib.util.find_spec("pgserver")  # found, never imported: it sets up logging and locks
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _system_binaries() -> Path | None:
    """PostgreSQL's own packages (Debian's postgresql-NN), where pgserver has no wheel (Python 3.13)."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres(database: str = "mlflow") -> Iterator[str]:
    """A running server with an empty ``database``; yields its SQLAlchemy URL. Its
    folder is a new one under the system's temp folder (which every user can enter),
    deleted when the context ends."""
    import tempfile

    package = _wheel_folder()
    system = _system_binaries() if package is None else None
    if package is None and system is None:
        raise RuntimeError(
            "the PostgreSQL tests need PostgreSQL's binaries: pip install -e '.[test]' brings them "
            "(the pgserver wheel) on Python 3.10 to 3.12; on 3.13, install PostgreSQL's package "
            "(apt-get install postgresql)"
        )
    folder = Path(tempfile.mkdtemp(prefix="mlci-postgres-"))
    as_root = os.geteuid() == 0
    run_as: dict[str, Any] = {}
    if system is not None:
        binaries = system  # a system package's binaries: every user may run them where they are
        folder.chmod(0o755)
        if as_root:
            run_as = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    elif as_root:
        assert package is not None
        # The same layout as the wheel's, so the binaries' rpath ($ORIGIN/../../../pgserver.libs) holds.
        shutil.copytree(package / "pginstall", folder / "pg" / "pgserver" / "pginstall", symlinks=True)
        shutil.copytree(package.parent / "pgserver.libs", folder / "pg" / "pgserver.libs", symlinks=True)
        binaries = folder / "pg" / "pgserver" / "pginstall" / "bin"
        for path in (folder, folder / "pg", folder / "pg" / "pgserver"):
            path.chmod(0o755)
        run_as = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    else:
        assert package is not None
        binaries = package / "pginstall" / "bin"
    data = folder / "cluster"
    data.mkdir()
    if as_root:
        os.chown(data, NOBODY, NOBODY)
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(data)}

    def pg(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, **run_as)
        if done.returncode != 0:
            log = data / "server.log"
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}"
                + (f"\n{log.read_text()[-2000:]}" if log.exists() else "")
            )

    pg(str(binaries / "initdb"), "-D", str(data), "-U", "mlci", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -h 127.0.0.1 -k {data} -c fsync=off -c max_connections=200"
    pg(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(data / "server.log"),
        "-w",
        "-o",
        options,
        "start",
    )
    try:
        pg(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlci", database)
        yield f"postgresql+psycopg2://mlci@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            timeout=60,
            **run_as,
        )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(folder: Path, backend: str, workers: int = 1) -> Iterator[str]:
    """``mlflow server`` on ``backend`` with artifacts proxied to ``folder/artifacts``
    (--artifacts-destination: clients never see the artifact store); yields its URL."""
    import signal
    import time
    import urllib.request

    from tests import tools

    tools.require("mlflow-full")  # full MLflow in its own environment, as a team's server runs it
    port = _free_port()
    mlflow = str(tools.full_python().parent / "mlflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log_path = folder / f"mlflow-server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                mlflow,
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                str(folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
