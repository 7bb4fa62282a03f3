"""Hostile input and faults: every story of the hardening review, each kept fixed.

Secrets stay secret, hostile files never crash or hang mlci, one bad tag never
blocks a team, training has a time limit and never outlives mlci, and an
unreachable tracking server fails within a bound. Real git, real MLflow
stores, real subprocesses throughout.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mlci import config as cfg
from mlci import gitrepo, redact, safeinput, tags
from mlci.errors import ConfigError, ExitCode, MlciError
from tests.helpers import mlci_subprocess, run
from tests.lifecycle import script_project as project


def _runs(root: Path) -> list[Any]:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / '.mlci' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("demo")
    return list(client.search_runs([experiment.experiment_id])) if experiment else []


# --------------------------------------------------------------------------- 1. secrets


WITHHELD = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "DEPLOY_KEY_PROD",  # withhold_env: DEPLOY_*
    "CLOUD_KEY",  # withhold_env: CLOUD_KEY
)


def test_the_training_command_sees_no_github_or_actions_credential(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "env.json"
    root = project(tmp_path, "env", "  withhold_env: [DEPLOY_*, CLOUD_KEY]\n", dump=str(dump))
    for name in WITHHELD:
        monkeypatch.setenv(name, f"secret-value-of-{name}")
    monkeypatch.setenv("KEEP_ME", "1")
    result = cli("train", cwd=root)
    assert result.code == ExitCode.OK, result.err
    seen = set(json.loads(dump.read_text()))
    assert "KEEP_ME" in seen and "MLFLOW_RUN_ID" in seen
    assert not seen & set(WITHHELD)
    assert "runs without" in result.err and "GITHUB_TOKEN" in result.err  # it says so


def test_a_secret_the_training_prints_never_reaches_the_error_or_the_job_summary(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, "leak")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "S3CRETPW-do-not-print")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "connecting with ***" in result.err
    # The command's own live output is its own (GitHub masks registered secrets in
    # logs); what mlci writes (its error, the tail it quotes, the summary) never has it.
    own = result.err[result.err.index("mlci: error:") :]
    assert "S3CRETPW" not in own + result.out
    failed = cli(
        "ci", "--event", "pull_request", "--base", "main", "--stage", "train", cwd=root
    )  # the error lands in the job summary too
    assert failed.code == ExitCode.ERROR
    assert "S3CRETPW" not in failed.err[failed.err.index("mlci: error:") :]
    assert summary.exists() and "S3CRETPW" not in summary.read_text()
    assert "***" in summary.read_text()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:S3CRETPW@mlflow.example.com:5000", "http://***@mlflow.example.com:5000"),
        ("https://token@host/path?x=1", "https://***@host/path?x=1"),
        (
            "https://host/a?sig=abc&se=2&X-Amz-Credential=k",
            "https://host/a?sig=***&se=2&X-Amz-Credential=***",
        ),
        ("https://host/a?access_token=abc", "https://host/a?access_token=***"),
        ("http://host:5000/#/experiments/1", "http://host:5000/#/experiments/1"),
        ("sqlite:////work/.mlci/mlflow.db", "sqlite:////work/.mlci/mlflow.db"),
    ],
)
def test_urls_lose_their_credentials(url: str, shown: str) -> None:
    assert redact.url(url) == shown


def test_text_masks_urls_and_secret_values_but_not_ordinary_variables() -> None:
    environ = {
        "GITHUB_TOKEN": "ghs_0123456789",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "GIT_AUTHOR_NAME": "Alice Example",  # not a secret, though "AUTH" is in its name
        "PWD": "/work/project",
    }
    text = "at http://u:p4ss@h:1/x with ghs_0123456789 and wJalrXUtnFEMI by Alice Example in /work/project"
    assert redact.text(text, environ) == (
        "at http://***@h:1/x with *** and *** by Alice Example in /work/project"
    )


@pytest.mark.slow
def test_credentials_in_the_tracking_uri_never_leave_mlci(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_server: str
) -> None:
    """A real server (which ignores the credentials): the run link, --json, report.json,
    the job summary, config show and errors carry the URL without them."""
    host = mlflow_server.removeprefix("http://")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:S3CRETPW@{host}")
    root = project(tmp_path, extra_yaml=f"tracking:\n  experiment: redact-{os.getpid()}-{time.time_ns()}\n")
    (root / "mlci.yaml").write_text(
        (root / "mlci.yaml").read_text()
        + "environments:\n  staging:\n    gates:\n      - {metric: accuracy, min: 0.5}\n"
    )
    run(["git", "commit", "-qam", "staging"], root)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    trained = cli("train", "--json", cwd=root)
    assert trained.code == ExitCode.OK, trained.err
    data = json.loads(trained.out)
    assert data["run_url"].startswith(f"http://***@{host}/#/experiments/")
    assert data["tracking_uri"] == f"http://***@{host}"
    reported = cli("ci", "--event", "pull_request", "--base", "staging", "--stage", "train", cwd=root)
    assert reported.code == ExitCode.OK, reported.err
    shown = cli("config", "show", cwd=root)
    everything = [trained.out, trained.err, reported.out, reported.err, shown.out, summary.read_text()]
    everything += [p.read_text() for p in (root / ".mlci").glob("*.json")]
    everything += [(root / ".mlci" / "report.md").read_text()]
    leaks = [text for text in everything if "S3CRETPW" in text or "alice" in text]
    assert not leaks, [t[max(0, t.find("alice") - 300) : t.find("alice") + 100] for t in leaks]
    assert f"http://***@{host}" in shown.out


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization") or "")
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_git_gets_the_token_per_command_and_never_in_git_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        root = tmp_path / "repo"
        run(["git", "init", "-q", str(root)], tmp_path)
        run(["git", "remote", "add", "origin", f"{base}/octo/churn.git"], root)
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("GITHUB_SERVER_URL", base)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_write_token")
        with pytest.raises(Exception):  # noqa: B017 (the stand-in has no repository: 404)
            gitrepo.remote_tags(root, "origin")
    finally:
        server.shutdown()
    expected = "basic " + base64.b64encode(b"x-access-token:ghs_write_token").decode()
    assert _Recorder.seen and _Recorder.seen[0] == expected
    assert "ghs_write_token" not in (root / ".git" / "config").read_text()
    assert "extraheader" not in (root / ".git" / "config").read_text()


# --------------------------------------------------------------------------- 4. config


def _parse(text: str, tmp_path: Path) -> cfg.Config:
    return cfg.parse(text, tmp_path / "mlci.yaml")


BASE = "model: {name: demo}\ntrain: {command: python train.py}\n"
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "says"),
    [
        (BOMB, "more than 100000 values"),
        ("a: !foo bar\n", "the tag '!foo' is not supported"),
        ("a: !!int 'abc'\n", "cannot read the value 'abc'"),
        ("a: !!python/object:os.system x\n", "is not supported"),
        ("a: &x\n  b: *x\n", "contains it"),
        ("a: " + "[" * 2000 + "]" * 2000 + "\n", "nested deeper"),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64"),
        (
            BASE + "environments:\n  staging:\n    gates:\n      - {metric: a, min: " + "9" * 400 + "}\n",
            "400 digits",
        ),
        (BASE.replace("python train.py", '"python\\0 train.py"'), "NUL"),
        (BASE + "train: {command: x}\n", "duplicate key"),
        ("model: {name: demo}\ntrain: {command: x, inputs: ['[z-a].py']}\n", "not a valid glob"),
        ("model: {name: demo}\ntrain: {command: x, model: /}\n", "not a path inside the project"),
        ("model: {name: demo}\ntrain: {command: x, params: /dev/zero}\n", "not a path inside the project"),
        (
            "model: {name: demo}\ntrain: {command: x, metrics: ../../etc/passwd}\n",
            "not a path inside the project",
        ),
        ("model: {name: demo}\ntrain: {command: x, model: .}\n", "not a path inside the project"),
        ("model: {name: demo}\ntrain: {command: x, inputs: ['../**']}\n", "reaches outside the project"),
        (
            "model: {name: demo}\ntrain: {command: x, inputs: ['**/a*/**/b*/**/c*/**/d*/**']}\n",
            "too many wildcards",
        ),
        (BASE + "tracking: {uri: 'http://'}\n", "names no host"),
        (BASE + "tracking: {uri: 'http://host:99999999'}\n", "not a valid URL"),
        ("model: {name: demo}\ntrain: {command: x, timeout: -1}\n", "positive number of seconds"),
        ("model: {name: demo}\ntrain: {command: x, timeout: soon}\n", "positive number of seconds"),
        ("? [a, b]\n: c\n", "a key must be a plain value"),
        ("a: 1\n<<: 5\n", "a merge key (<<) takes a mapping"),
    ],
)
def test_hostile_config_is_a_clear_error(text: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(text, tmp_path)
    assert says in str(caught.value)
    assert "mlci.yaml" in str(caught.value)


def test_repeated_globstars_cannot_make_matching_explode() -> None:
    """`**/**/.../x.py` is `**/x.py`: consecutive globstars are one, so a path of many
    folders is matched in linear time (before, 12 of them backtracked for minutes)."""
    from mlci.fingerprint import select

    deep = "/".join(["a"] * 40) + "/y.py"
    pattern = "/".join(["**"] * 30) + "/x.py"
    chosen, unmatched = select([deep, "b/x.py"], [pattern])
    assert chosen == ["b/x.py"] and unmatched == []


def test_merge_keys_are_supported_with_explicit_keys_winning(tmp_path: Path) -> None:
    # Top-level keys stay strict (an unknown key is an error), so anchors live in known sections.
    config = _parse(
        "model: {name: demo}\n"
        "train: {command: python train.py}\n"
        "environments:\n"
        "  staging:\n    gates:\n      - &gate {metric: accuracy, min: 0.8, max: 1.0}\n"
        "  production:\n    gates:\n      - <<: *gate\n        min: 0.9\n",
        tmp_path,
    )
    assert config is not None
    rules = {e.name: e.gates[0] for e in config.environments}
    assert (rules["staging"].min, rules["staging"].max) == (0.8, 1.0)
    assert (rules["production"].min, rules["production"].max) == (0.9, 1.0)


def test_train_timeout_accepts_durations(tmp_path: Path) -> None:
    for value, seconds in (("90", 90.0), ("'90s'", 90.0), ("'30m'", 1800.0), ("'2h'", 7200.0), ("1.5", 1.5)):
        config = _parse(f"model: {{name: demo}}\ntrain: {{command: x, timeout: {value}}}\n", tmp_path)
        assert config.train.timeout == seconds


def test_config_file_limits(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mlci.yaml").write_bytes(b"model:\n  name: " + b"x" * (2 * 1024 * 1024) + b"\n")
    big = cli("config", "validate", cwd=tmp_path)
    assert big.code == ExitCode.ERROR and "more than the limit" in big.err
    (tmp_path / "mlci.yaml").write_bytes(b"model:\n  name: \xff\xfe\n")
    binary = cli("config", "validate", cwd=tmp_path)
    assert binary.code == ExitCode.ERROR and "not UTF-8" in binary.err


def test_what_validate_accepts_the_commands_handle(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    """A params file that is a FIFO or a symlink to /dev/zero: refused, not read forever."""
    root = project(tmp_path)
    (root / "params.yaml").unlink()
    os.symlink("/dev/zero", root / "params.yaml")
    zero = cli("train", cwd=root)
    assert zero.code == ExitCode.ERROR and "must be a regular file" in zero.err
    (root / "params.yaml").unlink()
    os.mkfifo(root / "params.yaml")
    fifo = cli("train", cwd=root)
    assert fifo.code == ExitCode.ERROR and "must be a regular file" in fifo.err


# --------------------------------------------------------------------------- 5. metrics and artifacts


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"a": 0.9, "a": 0.1}', "duplicate key 'a'"),
        (b'{"a": ' + b"[" * 500 + b"]" * 500 + b"}", "nested deeper"),
        (b'{"a": ' + b"9" * 400 + b"}", "not a finite number"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"a": 0.9, "b": "\xff"}', "not UTF-8"),
        (b"[1, 2]", "expected a mapping"),
        (b'{"a": {"b": true}}', "not a number"),
        (b'{"../up": 1}', "is not one MLflow accepts"),
        (b'{"\\ud800": 1}', "is not one MLflow accepts"),
    ],
)
def test_hostile_metrics_file_is_a_clear_error(cli, tmp_path: Path, raw: bytes, says: str) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path, "raw_metrics", raw=raw.hex())
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR, result.err
    assert says in result.err
    assert "Traceback" not in result.err
    assert [r.info.status for r in _runs(root)] == ["FAILED"]


def test_json_reader_bounds() -> None:
    assert safeinput.load_json('{"a": {"b": [1, 2]}}') == {"a": {"b": [1, 2]}}
    with pytest.raises(safeinput.BadInput, match="duplicate key 'x'"):
        safeinput.load_json('{"x": 1, "x": 2}')
    assert safeinput.load_json(
        '{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'
    )


# --------------------------------------------------------------------------- 6. tags


def _tag_env() -> dict[str, str]:
    return {**os.environ, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _raw_tag(root: Path, name: str, target: str, message: str, when: str = "1700000000 +0000") -> None:
    found = subprocess.run(["git", "cat-file", "-t", target], cwd=root, capture_output=True, text=True)
    kind = found.stdout.strip() if found.returncode == 0 else "commit"
    body = f"object {target}\ntype {kind}\ntag {name}\ntagger t <t@t> {when}\n\n{message}"
    sha = subprocess.run(
        ["git", "hash-object", "-t", "tag", "-w", "--stdin", "--literally"],
        cwd=root,
        input=body,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    run(["git", "update-ref", f"refs/tags/{name}", sha], root)


@pytest.fixture
def registered(cli, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    root = project(
        tmp_path, extra_yaml="environments:\n  staging:\n    gates:\n      - {metric: accuracy, min: 0.5}\n"
    )
    assert cli("train", cwd=root).code == ExitCode.OK
    assert cli("register", "--no-push", cwd=root).code == ExitCode.OK
    assert cli("promote", "staging", "--no-push", cwd=root).code == ExitCode.OK
    return root


def test_malformed_and_foreign_tags_are_skipped_with_one_warning_each(cli, registered: Path) -> None:  # type: ignore[no-untyped-def]
    from mlci import registry

    root = registered
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    tree = run(["git", "rev-parse", "HEAD^{tree}"], root).strip()
    blob = run(["git", "rev-parse", "HEAD:train.py"], root).strip()
    run(["git", "commit", "-q", "--allow-empty", "-m", "next"], root)
    nxt = run(["git", "rev-parse", "HEAD"], root).strip()
    meta = tags.METADATA_PREFIX
    _raw_tag(root, "demo@v0.0.9", nxt, f"Registering\n\n{meta}" + '{"metrics": [1, 2]}\n')
    _raw_tag(root, "demo@v0.0.8", tree, "Registering artifact demo version v0.0.8\n")
    _raw_tag(root, "demo@v0.0.7", blob, "Registering artifact demo version v0.0.7\n")
    _raw_tag(root, "demo@v0.0.6", "0123456789" * 4, "Registering artifact demo version v0.0.6\n")
    _raw_tag(root, "demo@v0.0.5", nxt, "Registering\n", when="253402300800000 +0000")
    _raw_tag(
        root, "demo@v0.0.4", head, "Registering a second version of one commit\n", when="1900000000 +0000"
    )
    _raw_tag(root, "demo@v0.0.3", nxt, f"Registering\n\n{meta}" + "{not json\n")
    _raw_tag(root, "demo#staging#9", nxt, f"Assigning\n\n{meta}" + '{"time": "soon"}\n')
    _raw_tag(root, "release-2024", nxt, "a foreign tag: not the registry's\n")
    for command in (["show"], ["history"], ["diff"], ["report", "--format", "table"], ["show", "--json"]):
        result = cli(*command, cwd=root)
        assert result.code in (ExitCode.OK, ExitCode.GATE_FAILED), (command, result.err)
        assert "Traceback" not in result.err
    shown = cli("show", "--json", cwd=root)
    assert "v0.0.1" in shown.out and "v0.0.9" not in shown.out and "v0.0.4" not in shown.out
    skipped = {s.tag: s.why for s in registry.read_with_skipped(gitrepo.read_tags(root))[1]}
    assert set(skipped) == {
        "demo@v0.0.9",
        "demo@v0.0.8",
        "demo@v0.0.7",
        "demo@v0.0.6",
        "demo@v0.0.5",
        "demo@v0.0.4",
        "demo@v0.0.3",
        "demo#staging#9",
    }
    assert "a tree" in skipped["demo@v0.0.8"] and "a blob" in skipped["demo@v0.0.7"]
    assert "missing object" in skipped["demo@v0.0.6"] and "9999" in skipped["demo@v0.0.5"]
    assert "already has version v0.0.1" in skipped["demo@v0.0.4"]
    assert "'metrics' is list" in skipped["demo@v0.0.9"]
    doctor = cli("doctor", cwd=root)
    assert doctor.code != ExitCode.INTERNAL
    assert all(tag in doctor.out + doctor.err for tag in skipped)
    # The next registration and promotion work around them.
    (root / "params.yaml").write_text(json.dumps({"mode": "ok", "x": 1}))
    run(["git", "commit", "-qam", "x"], root)
    assert cli("train", cwd=root).code == ExitCode.OK
    registered_next = cli("register", "--no-push", cwd=root)
    assert registered_next.code == ExitCode.OK, registered_next.err
    assert "v0.0.2" in registered_next.out + registered_next.err


def test_a_process_warns_once_per_skipped_tag(cli, registered: Path) -> None:  # type: ignore[no-untyped-def]
    from mlci import registry

    root = registered
    run(["git", "commit", "-q", "--allow-empty", "-m", "next"], root)
    nxt = run(["git", "rev-parse", "HEAD"], root).strip()
    _raw_tag(root, "demo@v0.1.7", nxt, f"x\n\n{tags.METADATA_PREFIX}" + '{"pr": "seven"}\n')
    registry._warned.discard("demo@v0.1.7")
    result = cli("history", cwd=root)
    assert result.code == ExitCode.OK
    assert result.err.count("skipping tag demo@v0.1.7") == 1


# --------------------------------------------------------------------------- 7. training faults


def test_train_timeout_kills_the_whole_tree(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pids.json"
    root = project(tmp_path, "sleep", "  timeout: 2\n", marker=str(marker))
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR, result.err
    assert "ran past train.timeout (2s) and was killed" in result.err
    assert [r.info.status for r in _runs(root)] == ["KILLED"]
    for pid in json.loads(marker.read_text()):
        _wait_gone(pid)


def _wait_gone(pid: int, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # A zombie is gone for our purpose (its parent died; init reaps it).
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
        except OSError:
            return
        time.sleep(0.1)
    pytest.fail(f"process {pid} outlived mlci")


def test_training_dies_with_mlci_and_the_abandoned_run_is_marked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pids.json"
    root = project(tmp_path, "sleep", marker=str(marker))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    mlci = subprocess.Popen(
        [sys.executable, "-m", "mlci", "train"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert mlci.poll() is None, mlci.stderr.read() if mlci.stderr else ""
            assert time.monotonic() < deadline, "the training never started"
            time.sleep(0.1)
        time.sleep(0.2)
        pids = json.loads(marker.read_text())
    finally:
        mlci.send_signal(signal.SIGKILL)
        mlci.wait()
    for pid in pids:
        _wait_gone(pid)
    assert [r.info.status for r in _runs(root)] == ["RUNNING"]
    (root / "params.yaml").write_text(json.dumps({"mode": "ok"}))
    run(["git", "commit", "-qam", "ok"], root)
    again = cli("train", cwd=root)
    assert again.code == ExitCode.OK, again.err
    assert f"left RUNNING by an mlci that died (pid {mlci.pid}): marked KILLED" in again.err
    statuses = sorted(r.info.status for r in _runs(root))
    assert statuses == ["FINISHED", "KILLED"]


# --------------------------------------------------------------------------- 8, 9. tracking store faults


@pytest.mark.slow
@pytest.mark.parametrize("command", [["train"], ["register", "--no-push"]])
def test_a_server_that_never_answers_fails_within_the_bound(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_server: str, command: list[str]
) -> None:
    host = silent_server.removeprefix("http://")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:PW123456@{host}")
    root = project(tmp_path, extra_yaml="tracking:\n  timeout: 1\n")
    result = cli(*command, cwd=root)
    assert result.code == ExitCode.ERROR, result.err
    assert f"the tracking server http://***@{host} did not answer" in result.err
    assert "tracking.timeout" in result.err and "PW123456" not in result.err


def test_a_refused_connection_fails_at_once(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    root = project(tmp_path)
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "did not answer" in result.err and "Connection refused" in result.err


@pytest.mark.parametrize("damage", [b"this is not a database" * 20, b"SQLite format 3\x00" + b"\x00" * 10])
def test_a_damaged_embedded_store_says_so_and_how_to_recover(cli, tmp_path: Path, damage: bytes) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    (root / ".mlci").mkdir()
    (root / ".mlci" / "mlflow.db").write_bytes(damage)
    result = cli("train", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "is damaged" in result.err and "mv " in result.err and ".damaged" in result.err
    assert "Traceback" not in result.err


WALKER = r"""
import json, os, pathlib, sys
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
wanted = [v.encode() for v in json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())["look_for"]]
found, walked, pid = [], [], os.getpid()
while pid > 1:
    try:
        environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
        pid_next = int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError as exc:
        walked.append(f"{pid}: {exc}")
        break
    walked.append(pid)
    found += [f"{pid}: {w.decode()[:4]}..." for w in wanted if w in environ]
    pid = pid_next
print("the command sees", os.environ.get("MY_API_TOKEN"), "and", os.environ.get("SHORT_TOKEN"), flush=True)
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "MLmodel").write_text("flavors: {}\n")
(out / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "ancestors": len(walked)}))
pathlib.Path(os.environ["WALK_REPORT"]).write_text(json.dumps({"found": found, "walked": walked}))
"""


@pytest.mark.slow
def test_a_training_command_walking_its_ancestors_finds_no_withheld_token(tmp_path: Path) -> None:
    """mlci runs as its own process here, with the tokens in its environment from its start
    (as a workflow step gives them); the command reads every ancestor's /proc/PID/environ,
    and prints the secrets it was given, which mlci's live output masks."""
    token, runtime = "ghs_walkerSECRET0123456789", "actions-runtime-SECRET-42"
    root = project(tmp_path, look_for=[token, runtime])
    (root / "train.py").write_text(WALKER)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "walker"], root)
    report = tmp_path / "walk.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACTIONS_"))},
        "GITHUB_TOKEN": token,
        "ACTIONS_RUNTIME_TOKEN": runtime,
        "MY_API_TOKEN": "apikey-visible-to-the-command",
        "SHORT_TOKEN": "k3y",
        "WALK_REPORT": str(report),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mlci", "train", "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    walk = json.loads(report.read_text())
    assert len(walk["walked"]) >= 4, walk  # the command, sh, the guard, mlci, and on up
    assert walk["found"] == [], walk
    # Its live output shows none of the secrets it was given.
    assert "the command sees *** and ***" in proc.stdout + proc.stderr
    assert "apikey-visible" not in proc.stdout + proc.stderr and " k3y" not in proc.stdout + proc.stderr


def test_hiding_a_name_keeps_it_for_mlcis_own_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block /proc shows loses the value; Python's environment and the C environment
    that subprocesses inherit keep it."""
    name = next(k for k in os.environ if k not in ("PATH", "HOME") and os.environ[k])
    value = os.environ[name]
    from mlci import trainer

    environ_file = Path("/proc/self/environ")
    assert trainer.hide_withheld({name}) == (
        [name] if f"{name}=".encode() in environ_file.read_bytes() else []
    )
    assert f"{name}={value}".encode() not in environ_file.read_bytes()
    assert os.environ[name] == value
    shown = subprocess.run(["sh", "-c", f'printf %s "${name}"'], capture_output=True, text=True).stdout
    assert shown == value


@pytest.mark.parametrize(
    ("secret", "text", "shown"),
    [
        ("pa)ss", "http://bob:pa)ss@host:5000/x failed", "http://***@host:5000/x failed"),
        ("p]w|x'y@z", "uri http://bob:p]w|x'y@z@host/ok", "uri http://***@host/ok"),
        ("k3y", "token k3y in k3yboard", "token *** in k3yboard"),
        ("abcd", "abcd,abcdef", "***,abcdef"),
    ],
)
def test_redaction_of_awkward_and_short_secrets(secret: str, text: str, shown: str) -> None:
    environ = {"MLFLOW_TRACKING_PASSWORD": secret, "MLFLOW_TRACKING_URI": f"http://bob:{secret}@host"}
    assert redact.text(text, environ) == shown


def test_a_secret_used_as_a_key_is_masked_in_data() -> None:
    environ = {"GITHUB_TOKEN": "ghs_keyedSECRET"}
    assert redact.data({"metrics": {"ghs_keyedSECRET": 1.0}}, environ) == {"metrics": {"***": 1.0}}


def test_a_password_only_in_the_tracking_uri_is_masked_wherever_it_appears() -> None:
    environ = {"MLFLOW_TRACKING_URI": "http://bob:Pa%29ss%40word@host"}
    assert (
        redact.text("auth failed for Pa)ss@word and Pa%29ss%40word", environ) == "auth failed for *** and ***"
    )


def test_twenty_thousand_metrics_are_refused_for_their_number() -> None:
    from mlci import metrics
    from mlci.errors import MetricsError
    from mlci.usecases import publish

    many = {f"m{i}": 0.5 for i in range(20_000)}
    with pytest.raises(MetricsError, match="20,000 metrics, more than mlci records for one run"):
        metrics.metrics_from(many, "metrics.json")
    head = {"metrics": many, "params": {}, "fingerprint": "a" * 64}
    with pytest.raises(MlciError, match="the head has 20,000 metrics, more than a run records"):
        publish._head({"model": "demo", "number": 1}, {"head": head})


FILLER = r"""
import json, os, pathlib
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "MLmodel").write_text("flavors: {}\n" + "x" * 200_000)
(out / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
# Then the disk fills up (another process, a log gone wild): nothing mlci writes next fits.
with open(pathlib.Path(".mlci") / "filler", "wb") as f:
    try:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    except OSError:
        pass
"""


@pytest.mark.slow
def test_a_full_disk_during_a_run_says_so_without_a_traceback(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "train.py").write_text(FILLER)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "filler"], root)
    state = root / ".mlci"
    state.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(state)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    try:
        first = mlci_subprocess(["train"], root)
        assert first.returncode == 3, first.stderr
        assert "no space left on the disk that holds" in first.stderr, first.stderr
        assert "df -h" in first.stderr and "tracking.uri" not in first.stderr
        assert "Traceback" not in first.stderr and "[SQL:" not in first.stderr
    finally:
        subprocess.run(["umount", str(state)], check=False)


def test_a_setting_in_a_secret_looking_variable_is_not_masked_everywhere() -> None:
    environ = {"DISABLE_AUTH": "true", "RETRY_TOKEN_LIMIT": "123", "MY_TOKEN": "k3y"}
    assert redact.text("cached: true, 123 runs, k3y", environ) == "cached: true, 123 runs, ***"
