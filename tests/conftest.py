from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.github_helpers import actions_env
from tests.github_stub import github_stub
from tests.helpers import REPO_ROOT, CliResult, run_cli

# ---------------------------------------------------------------------------- no network
# The tests reach nothing but 127.0.0.1. In this process a connection or a name lookup
# elsewhere raises; in the subprocesses the tests start (pip, uv, npm, git, act, MLflow)
# the package managers are offline and every proxy-aware client is sent to a closed port.
_OFFLINE = {
    "PIP_NO_INDEX": "1",
    "UV_OFFLINE": "1",
    "npm_config_offline": "true",
    "HF_HUB_OFFLINE": "1",
}
_DEAD_PROXY = "http://127.0.0.1:9"
_LOCAL = ("127.0.0.1", "::1", "localhost", "")
REFUSED: list[str] = []  # every outside address a test tried, for the report


class NetworkOff(OSError):
    pass


def _refuse(where: str) -> None:
    REFUSED.append(where)
    raise NetworkOff(f"the tests reach nothing but 127.0.0.1; refused: {where}")


def _local_address(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX and friends: a path, not the network
    host = str(address[0])
    return host in _LOCAL or host.startswith("127.") or host == "0.0.0.0"


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _local_address(address):
        _refuse(f"connect {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _local_address(address):
        _refuse(f"connect {address!r}")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    if not _local_address((name,)):
        REFUSED.append(f"resolve {name!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"the tests resolve no name but localhost: {name}")
    return _real_getaddrinfo(host, *args, **kwargs)


def _network_off() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    os.environ.update(_OFFLINE)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ[name] = _DEAD_PROXY
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = "127.0.0.1,localhost,::1"


# ---------------------------------------------------------------------------- tiers
# What each marker means is in pyproject.toml. A test that needs act or a server is slow
# as well, so `-m "not slow"` is the inner loop with no outside tool.
_SERVER_FIXTURES = {"mlflow_server"}


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: a worker per core this process may use; for the fast tier one more.

    Many fast tests wait on a subprocess or a deadline, and an extra worker uses that time
    (`-m "not slow"`: 127 s with 3 workers on 2 cores, 155 s with 2); the slow tests keep
    every core busy, and a third worker only makes them contend (the whole suite: 870 s
    with 3 workers, 846 s with 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    fast_only = (config.getoption("markexpr", "") or "").replace(" ", "") == "notslow"
    return cores + 1 if fast_only else cores


def pytest_configure(config: pytest.Config) -> None:
    _network_off()
    # hypothesis keeps a cache in ./.hypothesis by default: the checkout. Not here.
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="mlci-tests-hypothesis-"))
    # mlci's own cache (the empty MLflow store of a schema it does not bundle): each test
    # process starts with none, as a fresh runner does, and leaves the user's alone.
    os.environ["MLCI_CACHE_DIR"] = tempfile.mkdtemp(prefix="mlci-tests-cache-")
    if not hasattr(config, "workerinput"):
        config._mlci_tree = _source_tree()  # type: ignore[attr-defined]


def pytest_itemcollected(item: pytest.Item) -> None:
    """Each test's tier, as it is collected (before xdist reads the load groups)."""
    module = getattr(item, "module", None)
    if module is not None and module.__name__.endswith("test_act"):
        item.add_marker(pytest.mark.act)
    if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.server)
        # One worker runs every test of a backend, so each server starts once.
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("mlflow_server") if callspec else None
        item.add_marker(pytest.mark.xdist_group(f"mlflow-{backend or 'server'}"))
    if item.get_closest_marker("act") or item.get_closest_marker("server"):
        item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The longest first: in parallel, a long test started last would run alone at the end.
    # A stable sort: within a tier, pytest's order (which groups a server's tests) stays.
    weight = {"act": 0, "server": 1, "slow": 2}

    def order(item: pytest.Item) -> int:
        return min((w for name, w in weight.items() if item.get_closest_marker(name)), default=3)

    items.sort(key=order)  # the same order in every worker


# ---------------------------------------------------------------------------- the source tree
_CACHES = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tools", ".venv", ".egg-info")


def _source_tree(root: Path = REPO_ROOT) -> str | None:
    """What git sees as changed, new or new and ignored in the checkout (the caches of
    Python and its tools aside), or None outside git."""
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain", "--ignored"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    kept = [ln for ln in proc.stdout.splitlines() if not any(c in ln for c in _CACHES)]
    return "\n".join(kept)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput") or getattr(config, "_mlci_tree", None) is None:
        return
    after = _source_tree()
    before = config._mlci_tree  # type: ignore[attr-defined]
    if after is not None and after != before:
        new = sorted(set(after.splitlines()) - set(before.splitlines()))
        sys.stderr.write(
            "\nerror: the tests changed the source tree (a test must write only under its tmp_path):\n"
            + "".join(f"  {line}\n" for line in new or after.splitlines())
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_LEAKY_PREFIXES = ("GITHUB_", "MLFLOW_", "RUNNER_", "MLCI_", "ACTIONS_", "GIT_")


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A developer's shell (or a CI runner's) must not leak into a test.

    Scrubs GITHUB_*, MLFLOW_*, RUNNER_*, CI and friends; points HOME at an
    empty folder so no test reads or writes the real home directory; and
    gives git a fixed identity, since the empty home has no git config.
    """
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES) or name == "CI":
            monkeypatch.delenv(name)
    real_home = Path.home()
    # Toolchain managers (rustup, cargo) keep their state in the real home;
    # name it for them so that moving HOME does not make them create it anew.
    for name, folder in (("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")):
        if name not in os.environ and (real_home / folder).is_dir():
            monkeypatch.setenv(name, str(real_home / folder))
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # `python train.py` in a test's project is the interpreter running the tests,
    # whether or not its virtual environment is activated.
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # A scaffold's deploy hook serves the model on 127.0.0.1: in a test, not for long.
    monkeypatch.setenv("MLCI_SERVE_SECONDS", "60")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    refused = len(REFUSED)
    yield
    leftovers = [p.name for p in home.iterdir() if p.name not in {".config", ".cache"}]
    assert not leftovers, f"a test wrote into HOME: {leftovers}"
    assert len(REFUSED) == refused or all(".example" in r or "invalid" in r for r in REFUSED[refused:]), (
        f"a test reached beyond 127.0.0.1: {REFUSED[refused:]}"
    )


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run mlci in-process: ``cli("init", "x", cwd=path)`` -> CliResult."""

    def invoke(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        return run_cli(list(args), capsys)

    return invoke


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def mlflow_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with artifacts proxied to a temp folder: once on a
    sqlite backend, once on PostgreSQL (what a team runs), so each test using it runs on both."""
    from contextlib import ExitStack

    from tests.servers import mlflow_server as serve
    from tests.servers import postgres

    folder = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    with ExitStack() as stack:
        if request.param == "postgresql":  # a team's server: more than one worker
            yield stack.enter_context(serve(folder, stack.enter_context(postgres()), workers=2))
        else:
            yield stack.enter_context(serve(folder, f"sqlite:///{folder / 'mlflow.db'}"))


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    with github_stub() as state:
        actions_env(monkeypatch, tmp_path, state)
        yield state


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()
