"""Property-based fuzzing of everything a user, a pull request or another tool writes.

Hypothesis generates configs, params and metrics files, registry tag messages
and publish artifacts; the real commands run on them in a real git repository
with a real MLflow store (and the local GitHub stand-in for `mlci publish`).
Whatever the input, every command ends with exit 0, 1 or 3 (never a
traceback, exit 4), within a time bound, without its memory growing past a
bound, and without touching data it was not asked to.

In `.ci/run` each target runs a fixed number of cases from a fixed seed. A
longer run is one command:

    MLCI_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz.py -s

which prints, per target, the cases tried, the exit codes, and the slowest case.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci.cli import main
from tests.github_stub import github_stub
from tests.helpers import run

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("MLCI_FUZZ_EXAMPLES", "60"))
CASE_SECONDS = 60  # no case may take longer: a hang fails the test
MEMORY_GROWTH = 512 * 1024 * 1024  # peak RSS may not grow by more than this in one case
ALLOWED = {0, 1, 3}

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # a fixed seed: CI sees the same cases every time
    deadline=None,  # our own bound (CASE_SECONDS) applies, with its own message
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


class Hang(Exception):
    pass


@dataclass
class Stats:
    name: str
    codes: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # the first words of each error
    slowest: float = 0.0
    slowest_case: str = ""

    def line(self) -> str:
        codes = ", ".join(f"exit {c}: {n}" for c, n in sorted(self.codes.items()))
        common = "; ".join(f"{n}x {e!r}" for e, n in self.errors.most_common(4))
        return (
            f"fuzz {self.name}: {sum(self.codes.values())} cases ({codes}); "
            f"slowest {self.slowest:.2f}s ({self.slowest_case[:80]!r}); most common errors: {common}"
        )


_STATS: dict[str, Stats] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    for stats in _STATS.values():
        print(stats.line(), file=sys.stderr)


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def mlci(target: str, case: str, *args: str, cwd: Path) -> tuple[int, str, str]:
    """One real command, in this process: its exit code, stdout and stderr, bounded."""
    stats = _STATS.setdefault(target, Stats(target))
    out, err = io.StringIO(), io.StringIO()

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"`mlci {' '.join(args)}` took longer than {CASE_SECONDS}s on {case[:200]!r}")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    before, start, here = _rss(), time.perf_counter(), os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(here)
    seconds = time.perf_counter() - start
    stats.codes[code] += 1
    error = next((line for line in err.getvalue().splitlines() if line.startswith("mlci: error:")), "")
    if error:
        stats.errors[re.sub(r"/\S*|'[^']*'|\d+", "_", error.removeprefix("mlci: error: "))[:70]] += 1
    if seconds > stats.slowest:
        stats.slowest, stats.slowest_case = seconds, case
    assert code in ALLOWED, (
        f"`mlci {' '.join(args)}` exited {code} on {case[:400]!r}:\n{err.getvalue()[-3000:]}"
    )
    assert "Traceback" not in err.getvalue(), err.getvalue()[-3000:]
    assert _rss() - before < MEMORY_GROWTH, f"memory grew by {(_rss() - before) >> 20} MiB on {case[:200]!r}"
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- strategies

WORDS = st.sampled_from(
    [
        "model", "name", "train", "command", "inputs", "params", "metrics", "model", "tracking", "uri",
        "experiment", "timeout", "environments", "staging", "production", "branch", "requires", "gates",
        "metric", "min", "max", "max_regression", "min_improvement", "report", "baselines", "template",
        "key_metric", "registry", "store", "goal", "withhold_env", "accuracy", "loss", "<<",
    ]
)  # fmt: skip
HOSTILE_TEXT = st.sampled_from(
    [
        "", " ", "/", ".", "..", "../..", "/dev/zero", "/etc/passwd", "~", "[z-a]", "**", "*.py", "a\0b",
        "http://", "http://127.0.0.1:9", "http://[::1", "sqlite:///x.db", "file:///tmp", "-1", "1e999",
        "2%", "nan", "inf", "maximize", "minimize", "auto", "github", "latest", "v1", "a/b", "é", "\x1b[31m",
        "python -c pass", "x" * 300, "${{ secrets.X }}", "*anchor", "&a", "!tag", "'", '"', "%", "{}", "[]",
    ]
)  # fmt: skip
NUMBERS = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
SCALARS = st.one_of(st.none(), NUMBERS, HOSTILE_TEXT, st.text(max_size=20))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(WORDS, st.text(max_size=8)), inner, max_size=5)
    ),
    max_leaves=30,
)


def _config_like() -> st.SearchStrategy[dict[str, Any]]:
    """Mostly the real shape, with any key's value replaced by anything."""
    gate = st.fixed_dictionaries(
        {"metric": st.one_of(st.just("accuracy"), HOSTILE_TEXT)},
        optional={"min": SCALARS, "max": SCALARS, "max_regression": SCALARS, "min_improvement": SCALARS},
    )
    env = st.fixed_dictionaries(
        {},
        optional={
            "branch": SCALARS,
            "requires": SCALARS,
            "gates": st.one_of(st.lists(gate, max_size=3), VALUES),
        },
    )
    return st.fixed_dictionaries(
        {
            "model": st.one_of(
                st.fixed_dictionaries({"name": st.one_of(st.just("demo"), HOSTILE_TEXT)}), VALUES
            ),
            "train": st.one_of(
                st.fixed_dictionaries(
                    {"command": st.one_of(st.just("python -c pass"), HOSTILE_TEXT)},
                    optional={
                        "inputs": st.one_of(st.lists(HOSTILE_TEXT, max_size=3), VALUES),
                        "params": st.one_of(st.just("params.yaml"), HOSTILE_TEXT, VALUES),
                        "metrics": SCALARS,
                        "model": SCALARS,
                        "timeout": SCALARS,
                        "withhold_env": VALUES,
                    },
                ),
                VALUES,
            ),
        },
        optional={
            "metrics": VALUES,
            "tracking": st.one_of(
                st.fixed_dictionaries({}, optional={"uri": HOSTILE_TEXT, "timeout": SCALARS}), VALUES
            ),
            "environments": st.one_of(
                st.dictionaries(st.one_of(WORDS, HOSTILE_TEXT), env, max_size=3), VALUES
            ),
            "report": VALUES,
            "registry": st.one_of(st.fixed_dictionaries({"store": SCALARS}), VALUES),
        },
    )


YAML_TRICKS = st.sampled_from(
    [
        "x: &a [1, 2]\ny: *a\n",
        "a: &a [*a]\n",
        "<<: {model: {name: demo}}\n",
        "a: !foo 1\n",
        "a: !!int 'abc'\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!set {x, y}\n",
        "a: !!omap [{x: 1}]\n",
        "? [a]\n: 1\n",
        "a: " + "[" * 70 + "]" * 70 + "\n",
        "a: " + "{b: " * 70 + "1" + "}" * 70 + "\n",
        "a: 0x_1f\nb: 1_000\nc: 0o17\nd: .NaN\n",
        "%YAML 1.1\n---\na: 1\n",
        "a: 1\n---\nb: 2\n",
        "\t- bad indentation\n",
        "a: 'unterminated\n",
        "a: 2001-12-14t21:59:43.10-05:00\n",
        "&x a: 1\n",
        "a: b: c\n",
    ]
)


def _dump(data: Any) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError):  # a value PyYAML cannot write (an integer past its limit)
        return "model: {name: demo}\n"


VALID_CONFIG: dict[str, Any] = {
    "model": {"name": "demo", "description": "a model"},
    "train": {
        "command": "python train.py",
        "inputs": ["train.py", "params.yaml"],
        "params": "params.yaml",
        "metrics": "metrics.json",
        "model": "model",
        "timeout": "30m",
        "withhold_env": ["AWS_*"],
    },
    "metrics": {"accuracy": {"goal": "maximize"}, "loss": "minimize"},
    "tracking": {"experiment": "demo", "timeout": 5},
    "environments": {
        "staging": {
            "branch": "staging",
            "gates": [{"metric": "accuracy", "min": 0.5, "max_regression": "2%"}],
        },
        "production": {"requires": "staging", "gates": [{"metric": "loss", "max": 1.0}]},
    },
    "registry": {"store": "auto"},
    "report": {"baselines": ["staging", "base"], "key_metric": "accuracy"},
}


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _replaced(index: int, value: Any) -> dict[str, Any]:
    """The valid config with one leaf (or section) replaced: near misses reach deep."""
    data = json.loads(json.dumps(VALID_CONFIG))
    paths = _leaves(data)
    path = paths[index % len(paths)]
    cut = index // len(paths) % len(path) + 1 if path else 0  # sometimes a whole section
    target = data
    for key in path[: cut - 1]:
        target = target[key]
    if path:
        target[path[cut - 1]] = value
    return data


NEAR_MISSES = st.builds(_replaced, st.integers(0, 10_000), st.one_of(SCALARS, VALUES))


CONFIG_TEXT = st.one_of(
    st.just(_dump(VALID_CONFIG)),
    st.builds(_dump, NEAR_MISSES),
    st.builds(_dump, NEAR_MISSES),
    st.builds(_dump, _config_like()),
    st.builds(lambda d, trick: _dump(d) + trick, _config_like(), YAML_TRICKS),
    st.builds(lambda trick, d: trick + _dump(d), YAML_TRICKS, _config_like()),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with a bare remote, a params file and a training script."""
    root = tmp_path_factory.mktemp("fuzz") / "project"
    root.mkdir()
    (root / "train.py").write_text("print('never run by these commands')\n")
    (root / "params.yaml").write_text("C: 1.0\n")
    (root / ".gitignore").write_text(".mlci/\n")
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    return root


# --------------------------------------------------------------------------- targets


@pytest.mark.slow
@FUZZ
@given(text=CONFIG_TEXT)
def test_fuzzed_configs(workspace: Path, text: str) -> None:
    """config validate, and for what it accepts: config show, fingerprint, show, diff."""
    (workspace / "mlci.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
    code, _, _ = mlci("config", text, "config", "validate", cwd=workspace)
    if code == 0:
        for command in (["config", "show", "--json"], ["fingerprint"], ["show", "--json"], ["history"]):
            mlci("config", text, *command, cwd=workspace)


TRAIN_SECTION = st.fixed_dictionaries(
    {
        "command": st.sampled_from(
            [
                f"{sys.executable} -c \"import json,os,pathlib; o=pathlib.Path(os.environ['MLCI_OUTPUT_DIR']); "
                "(o/'model').mkdir(); (o/'model'/'MLmodel').write_text('flavors: {}'); "
                "(o/'metrics.json').write_text(json.dumps({'accuracy': 0.9}))\"",
                "exit 3",
                "true",
                "sleep 5",
                "echo $GITHUB_TOKEN >&2; exit 1",
                "echo {C} {alpha} {nope} ${HOME} {{x}}; exit 3",
            ]
        )
    },
    optional={
        "inputs": st.lists(HOSTILE_TEXT, max_size=2),
        "exclude": st.lists(HOSTILE_TEXT, max_size=2),
        "parameters": st.one_of(
            st.dictionaries(HOSTILE_TEXT, st.one_of(NUMBERS, HOSTILE_TEXT), max_size=3),
            HOSTILE_TEXT,
            st.sampled_from(["MLproject", "params.yaml", "train.py"]),
        ),
        "overrides": st.sampled_from(["file", "hydra", "cli", ""]),
        "params": st.sampled_from(["params.yaml", "missing.yaml", "train.py", ".gitignore"]),
        "metrics": st.sampled_from(["metrics.json", "m.yaml", "sub/m.json", "train.py"]),
        "model": st.sampled_from(["model", "sub/model", "train.py", ".git"]),
        "timeout": st.sampled_from([1, 2, "1s", 0.5]),
    },
)


@settings(FUZZ, max_examples=max(8, EXAMPLES // 6))
@given(train=TRAIN_SECTION, uri=st.sampled_from([None, "http://127.0.0.1:9", "sqlite:///.mlci/other.db"]))
def test_fuzzed_training_settings_that_validate_train_or_fail_cleanly(
    workspace: Path, train: dict[str, Any], uri: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config: dict[str, Any] = {"model": {"name": "demo"}, "train": train}
    if uri:
        config["tracking"] = {"uri": uri, "timeout": 1}
    text = yaml.safe_dump(config)
    (workspace / "mlci.yaml").write_text(text)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_fuzz_token_never_printed")
    code, _, _ = mlci("train", text, "config", "validate", cwd=workspace)
    if code == 0:
        _, out, err = mlci("train", text, "train", "--no-cache", cwd=workspace)
        assert "ghs_fuzz_token_never_printed" not in out + err


METRIC_VALUES = st.recursive(
    st.one_of(NUMBERS, st.text(max_size=5), st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
METRICS_BYTES = st.one_of(
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.text(min_size=1, max_size=8),
            st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6)),
            min_size=1,
            max_size=6,
        ),
    ),
    st.builds(
        lambda d: json.dumps(d, allow_nan=True).encode(),
        st.dictionaries(st.text(max_size=8), METRIC_VALUES, max_size=6),
    ),
    st.builds(lambda k: f'{{"{k}": 1, "{k}": 2}}'.encode(), st.text(alphabet="abc", min_size=1, max_size=3)),
    st.integers(1, 3000).map(lambda n: b'{"a": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(300, 6000).map(lambda n: b'{"a": ' + b"9" * n + b"}"),
    st.binary(max_size=100),
)


@settings(FUZZ, max_examples=max(8, EXAMPLES // 6))
@given(raw=METRICS_BYTES)
def test_fuzzed_metrics_files(workspace: Path, raw: bytes) -> None:
    """The real training path: a command writes these bytes as its metrics file."""
    (workspace / "payload.bin").write_bytes(raw)
    command = (
        f"{sys.executable} -c \"import os,pathlib,shutil; o=pathlib.Path(os.environ['MLCI_OUTPUT_DIR']); "
        "(o/'model').mkdir(); (o/'model'/'MLmodel').write_text('flavors: {}'); "
        "shutil.copy('payload.bin', o/'metrics.json')\""
    )
    (workspace / "mlci.yaml").write_text(
        yaml.safe_dump({"model": {"name": "demo"}, "train": {"command": command, "inputs": ["payload.bin"]}})
    )
    mlci("metrics", repr(raw[:200]), "train", cwd=workspace)


TAG_MESSAGES = st.one_of(
    st.builds(
        lambda d: "Registering\n\nmlci-metadata: " + json.dumps(d, allow_nan=True) + "\n",
        st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "fingerprint",
                    "metrics",
                    "params",
                    "commit",
                    "pr",
                    "time",
                    "store",
                    "asset",
                    "model_sha256",
                    "rollback",
                    "reason",
                    "mlflow_model_version",
                    "previous",
                ]
            ),
            METRIC_VALUES,
            max_size=6,
        ),
    ),
    st.text(max_size=200).map(lambda t: f"x\n\nmlci-metadata: {t}\n"),
    st.text(max_size=200),
)
TAG_NAMES = st.one_of(
    st.builds(lambda v: f"demo@v{v[0]}.{v[1]}.{v[2]}", st.tuples(*[st.integers(0, 10**12)] * 3)),
    st.builds(
        lambda e, n: f"demo#{e}#{n}", st.sampled_from(["staging", "production", "x"]), st.integers(0, 10**6)
    ),
    st.sampled_from(["demo@deprecated", "demo#staging!#3", "other@v1.0.0", "v1.2.3", "demo@v01.0.0"]),
)


@pytest.fixture(scope="module")
def registry_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-tags") / "project"
    root.mkdir()
    (root / "mlci.yaml").write_text(
        "model: {name: demo}\ntrain: {command: 'true'}\n"
        "environments:\n  staging: {gates: [{metric: accuracy, min: 0.5}]}\n  production: {}\n"
    )
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    # One good version and its assignment, which no other tag may make unreadable.
    meta = json.dumps({"version": "v0.0.1", "metrics": {"accuracy": 0.9}, "time": 1700000000})
    for name, summary in (("demo@v0.0.1", "Registering"), ("demo#staging#1", "Assigning")):
        run(["git", "tag", "-a", name, "-m", f"{summary}\n\nmlci-metadata: {meta}"], root)
    return root


def _good_version_intact(root: Path, case: str) -> None:
    _, out, _ = mlci("tags", case, "show", "--json", cwd=root)
    (model,) = [m for m in json.loads(out)["models"] if m["name"] == "demo"]
    versions = {v["version"]: v for v in model["versions"]}
    assert versions["v0.0.1"]["metrics"] == {"accuracy": 0.9}, f"v0.0.1 lost on {case[:300]!r}"


@pytest.mark.slow
@FUZZ
@given(
    name=TAG_NAMES,
    message=TAG_MESSAGES,
    date=st.integers(-(10**12), 10**15),
    target=st.sampled_from(["HEAD", "HEAD^{tree}", "missing"]),
)
def test_fuzzed_registry_tags(registry_repo: Path, name: str, message: str, date: int, target: str) -> None:
    """Any tag anyone could push: the registry commands still read the rest."""
    root = registry_repo
    run(["git", "commit", "-q", "--allow-empty", "-m", "next"], root)
    obj = "0123456789" * 4 if target == "missing" else run(["git", "rev-parse", target], root).strip()
    kind = {"HEAD": "commit", "HEAD^{tree}": "tree", "missing": "commit"}[target]
    body = f"object {obj}\ntype {kind}\ntag {name}\ntagger t <t@t> {date} +0000\n\n{message}"
    made = subprocess.run(
        ["git", "hash-object", "-t", "tag", "-w", "--stdin", "--literally"],
        cwd=root, input=body.encode("utf-8", "surrogateescape"), capture_output=True,
    )  # fmt: skip
    if made.returncode == 0:
        subprocess.run(
            ["git", "update-ref", f"refs/tags/{name}", made.stdout.decode().strip()],
            cwd=root,
            capture_output=True,
        )
    for command in (["history", "--json"], ["history"], ["doctor", "--json"]):
        mlci("tags", f"{name}: {message}", *command, cwd=root)
    if name not in ("demo@v0.0.1", "demo#staging#1"):  # (the fuzzer's own overwrite is not mlci's loss)
        _good_version_intact(root, f"{name}: {message}")


ARTIFACT_FILES = st.one_of(
    st.builds(lambda d: json.dumps(d, allow_nan=True), st.dictionaries(st.sampled_from(["model", "number", "head", "metrics", "params", "fingerprint", "run_id"]), METRIC_VALUES, max_size=5)),
    st.just(json.dumps({"model": "demo", "number": 7})),
    st.text(max_size=100),
    st.just('{"a": 1, "a": 2}'),
)  # fmt: skip


@pytest.mark.slow
@settings(FUZZ, max_examples=max(8, EXAMPLES // 3))
@given(
    meta=ARTIFACT_FILES,
    report=ARTIFACT_FILES,
    trick=st.sampled_from(["none", "symlink", "fifo", "big", "dir-link"]),
)
def test_fuzzed_publish_artifacts(
    registry_repo: Path, tmp_path_factory: pytest.TempPathFactory, meta: str, report: str, trick: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """What a fork uploads as its report: judged as data, never followed or read whole."""
    folder = tmp_path_factory.mktemp("artifact")
    (folder / "pull_request.json").write_text(meta)
    (folder / "report.json").write_text(report)
    if trick == "symlink":
        (folder / "report.json").unlink()
        os.symlink("/etc/passwd", folder / "report.json")
    elif trick == "fifo":
        (folder / "report.json").unlink()
        os.mkfifo(folder / "report.json")
    elif trick == "big":
        with open(folder / "report.json", "wb") as handle:
            handle.truncate(300 * 1024 * 1024)  # sparse: 300 MB that must not be read
    elif trick == "dir-link":
        outside = tmp_path_factory.mktemp("outside")
        (outside / "pull_request.json").write_text(meta)
        (folder / "pull_request.json").unlink()
        os.symlink(outside, folder / "mlci-report-demo")
    with github_stub() as gh:
        gh.pulls[7] = "a" * 40
        for key, value in {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": gh.base_url,
            "GITHUB_REPOSITORY": "octo/churn",
            "GITHUB_TOKEN": "ghs_fuzz",
            "MLCI_GITHUB_BACKOFF": "0",
            "MLCI_GITHUB_RETRIES": "0",
        }.items():
            monkeypatch.setenv(key, value)
        code, _, _ = mlci(
            "publish",
            f"{trick}: {meta} | {report}",
            "publish",
            str(folder),
            "--head-sha",
            "a" * 40,
            cwd=registry_repo,
        )
        if code == 3:  # refused: nothing half-posted
            assert gh.comments == {} and gh.statuses == []


# --------------------------------------------------------------------------- files read as data


def bounded(target: str, case: str, call: Any) -> int:
    """``call()`` in this process, as ``mlci`` bounds a command: 0 when it returns, 3 when it
    raises an MlciError (a clean refusal); any other exception, a hang or memory growth past
    the bound fails the case."""
    from mlci.errors import MlciError

    stats = _STATS.setdefault(target, Stats(target))

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"{target} took longer than {CASE_SECONDS}s on {case[:200]!r}")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    before, start = _rss(), time.perf_counter()
    try:
        call()
        code = 0
    except MlciError as exc:
        code = 3
        stats.errors[re.sub(r"/\S*|'[^']*'|\d[\d,]*", "_", exc.message.splitlines()[0])[:70]] += 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    stats.codes[code] += 1
    if seconds > stats.slowest:
        stats.slowest, stats.slowest_case = seconds, case
    assert _rss() - before < MEMORY_GROWTH, f"memory grew by {(_rss() - before) >> 20} MiB on {case[:200]!r}"
    return code


CELLS = st.one_of(
    st.sampled_from(
        ["0", "1", "2", "0.5", "1e999", "-inf", "nan", "", " ", "a", "é", '"', '""', "x,y", "\n"]
    ),
    st.text(max_size=12),
    st.integers(-(10**30), 10**30).map(str),
    st.just("x" * 140_000),  # past csv's own field limit
)
HEADERS = st.lists(
    st.sampled_from(
        ["y_true", "y_pred", "y_score", "id", "y_score_0", "y_score_1", "y_score_2", "y_score_a", "", "x"]
    ),
    min_size=0,
    max_size=6,
)


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    import csv as csv_module

    out = io.StringIO()
    writer = csv_module.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


PREDICTIONS = st.one_of(
    st.builds(_csv_text, HEADERS, st.lists(st.lists(CELLS, max_size=6), max_size=30)),
    st.builds(
        lambda n, classes: _csv_text(["y_true", "y_pred"], [[str(i % classes), str(i * 7 % classes)] for i in range(n)]),
        st.integers(1, 6000),
        st.integers(1, 6000),
    ),  # many classes
    st.builds(lambda w: ",".join(f"y_score_{i}" for i in range(w)) + ",y_true\n", st.integers(1, 3000)),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)  # fmt: skip


@settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
@given(text=PREDICTIONS, suffix=st.sampled_from([".csv", ".parquet"]))
def test_fuzzed_predictions_files(tmp_path_factory: pytest.TempPathFactory, text: str, suffix: str) -> None:
    """A predictions file (the training command's, or one a fork's job uploaded): read,
    and its metrics recomputed, or refused with an MlciError; nothing else."""
    from mlci import stats

    path = tmp_path_factory.mktemp("predictions") / f"predictions{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")

    def call() -> None:
        predictions = stats.read_predictions(path)
        stats.check_reported(predictions, {"accuracy": 0.5, "f1": 0.5, "roc_auc": 0.5, "rmse": 1.0})

    bounded("predictions", text[:200], call)


def _data_file(folder: Path, fmt: str, rows: list[dict[str, Any]], raw: str) -> str:
    import pandas as pd

    name = f"d.{fmt}"
    if fmt == "parquet":
        try:
            pd.DataFrame(rows).to_parquet(folder / name)
        except Exception:  # a frame pyarrow cannot write: hostile bytes instead
            (folder / name).write_text(raw)
    elif fmt == "jsonl":
        (folder / name).write_text("\n".join(json.dumps(r, default=str) for r in rows) + "\n" + raw)
    else:
        (folder / name).write_text(raw if not rows else pd.DataFrame(rows).to_csv(index=False) + raw)
    return name


DATA_CELLS = st.one_of(
    st.none(), st.integers(-(10**6), 10**6), st.floats(), st.text(max_size=6), st.booleans(),
    st.lists(st.integers(0, 3), max_size=3), st.fixed_dictionaries({"a": st.integers(0, 3)}),
)  # fmt: skip
DATA_ROWS = st.lists(
    st.dictionaries(st.sampled_from(["id", "x", "label", "tags", "meta"]), DATA_CELLS, max_size=5),
    max_size=20,
)
CHECKS = st.dictionaries(
    st.sampled_from(["id", "x", "label", "tags", "meta", "missing"]),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["int", "float", "number", "str", "bool", "datetime"]),
            "nulls": st.sampled_from([0, 0.5, 1]),
            "min": st.integers(-5, 5),
            "max": st.integers(-5, 5),
            "allowed": st.lists(st.one_of(st.integers(0, 3), st.text(max_size=3)), min_size=1, max_size=3),
            "drift": st.sampled_from([0.1, 0.25]),
        },
    ),
    max_size=4,
)


@settings(FUZZ, max_examples=max(10, EXAMPLES // 3))
@given(
    fmt=st.sampled_from(["csv", "parquet", "jsonl"]),
    rows=DATA_ROWS,
    raw=st.one_of(st.just(""), st.text(max_size=60), st.just("a,b\n" + "1," * 30 + "\n")),
    checks=CHECKS,
    key=st.sampled_from([None, "id", ["id", "x"]]),
)
def test_fuzzed_data_files(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, rows: list[dict[str, Any]], raw: str,
    checks: dict[str, Any], key: Any,
) -> None:  # fmt: skip
    """Declared datasets in CSV, Parquet (nested list and struct columns too) and JSON Lines:
    `mlci data check` passes, fails or refuses, never crashes."""
    folder = tmp_path_factory.mktemp("data")
    name = _data_file(folder, fmt, rows, raw)
    dataset: dict[str, Any] = {"path": name, "columns": checks}
    if key is not None:
        dataset["key"] = key
    (folder / "mlci.yaml").write_text(
        yaml.safe_dump({"model": {"name": "m"}, "train": {"command": "python -c 1"}, "data": {"d": dataset}})
    )
    mlci("data", f"{fmt}: {rows!r:.150} {checks!r:.100}", "data", "check", "--json", cwd=folder)


CSV_CELLS = st.one_of(
    st.none(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=5), st.booleans(),
    st.sampled_from(["1.0", "2", "True", "false", "NaN", "inf", " 3", "1e3", "", "NA", "null", "-0"]),
)  # fmt: skip


@settings(FUZZ, max_examples=max(50, EXAMPLES))
@given(
    rows=st.lists(st.lists(CSV_CELLS, min_size=3, max_size=3), max_size=8),
    header=st.lists(st.sampled_from(["a", "b", "c", "a ", ""]), min_size=3, max_size=3),
)
def test_a_csv_is_read_as_pandas_nullable_read_reads_it(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[Any]], header: list[str]
) -> None:
    """mlci's CSV reader (numpy's types, then each column cast) gives exactly the frame of
    ``read_csv(dtype_backend="numpy_nullable")``: the types a profile records never change."""
    import csv

    import pandas as pd

    from mlci import data

    path = tmp_path_factory.mktemp("csv") / "d.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    try:
        expected = pd.read_csv(path, dtype_backend="numpy_nullable")
    except Exception as exc:  # the same refusal is what is compared
        with pytest.raises(type(exc)):
            data._read_csv(pd, path)
        return
    pd.testing.assert_frame_equal(data._read_csv(pd, path), expected)


ENTRY_NAMES = st.one_of(
    st.sampled_from(["a", "a/b", "a/b/c", ".", "./a", "a/", "a//b", "..", "../x", "/abs", "MLmodel", "a/../b", "\0x"]),
    st.text(min_size=1, max_size=8),
    st.just("x" * 5000),
    st.just("/".join(["d"] * 2000)),
    st.just("/".join(["d"] * 80)),
)  # fmt: skip
ENTRY_KINDS = st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"])


@settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
@given(entries=st.lists(st.tuples(ENTRY_NAMES, ENTRY_KINDS, st.binary(max_size=40)), max_size=8))
def test_fuzzed_model_archives(
    tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[str, str, bytes]]
) -> None:
    """A model archive from a store (a release asset, a workflow artifact): unpacked inside
    its folder, or refused with an ArchiveError; nothing is written outside it."""
    import tarfile

    from mlci import archive

    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}  # fmt: skip
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = types[kind]
            info.linkname = "/etc/passwd" if kind in ("symlink", "hardlink") else ""
            info.size = len(data) if kind == "file" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    base = tmp_path_factory.mktemp("archive")
    before = sorted(p.name for p in base.parent.iterdir())
    bounded(
        "archives",
        repr(entries)[:200],
        lambda: archive.unpack([buffer.getvalue()], base / "out", expected=None, source="fuzzed.tar"),
    )
    assert sorted(p.name for p in base.parent.iterdir()) == before  # nothing beside the folder
    assert not (base / "out.partial").exists()


AXIS = st.one_of(
    st.lists(st.one_of(st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=3), st.none()), max_size=12),
    st.integers(0, 400).map(lambda n: list(range(n))),
    st.just("not a list"),
)  # fmt: skip


@settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
@given(
    grid=st.dictionaries(st.one_of(st.sampled_from(["C", "a.b", "", "a..b", "x=y"]), st.text(max_size=4)), AXIS, max_size=14),
    limit=st.one_of(st.none(), st.integers(-1, 300)),
    listed=st.booleans(),
)  # fmt: skip
def test_fuzzed_sweep_grids(grid: dict[str, Any], limit: int | None, listed: bool) -> None:
    """A sweep of any size is counted before it is expanded: accepted or a ConfigError, in
    bounded time and memory (a grid of up to 400^14 candidates)."""
    from mlci import config as cfg

    sweep: dict[str, Any] = {"candidates": [{k: v} for k, v in grid.items()]} if listed else {"grid": grid}
    if limit is not None:
        sweep["limit"] = limit
    text = "model: {name: m}\ntrain: {command: python -c 1, params: p.yaml}\n" + _dump({"sweep": sweep})
    bounded("sweep grids", text[:200], lambda: cfg.parse(text, Path("/fuzz/mlci.yaml")))


JOURNAL_PATHS = st.sampled_from(
    ["{root}/params.yaml", "{root}/mlci.yaml", "{outside}", "{root}/../outside.txt", "{root}/.git/config",
     "{root}/.mlci/x", "relative.txt", "", "/", "{root}", "{root}/sub/../params.yaml", "{root}/link/x"]
)  # fmt: skip
JOURNAL_BACKUPS = st.sampled_from(
    [None, "{folder}/0-params.yaml", "{outside}", "{folder}/../../params.yaml", "{folder}/link", 7, "", "{folder}"]
)  # fmt: skip


@settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
@given(
    entries=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"path": JOURNAL_PATHS},
                optional={"backup": JOURNAL_BACKUPS, "written": st.one_of(st.none(), st.just("00"), st.integers())},
            ),
            VALUES,
        ),
        max_size=6,
    ),
    raw=st.one_of(st.none(), st.text(max_size=40)),
)  # fmt: skip
def test_fuzzed_restore_journals(
    tmp_path_factory: pytest.TempPathFactory, entries: list[Any], raw: str | None
) -> None:
    """A journal planted in .mlci/restore (by a pull request's commit, say): the next command
    restores only the files a training run changes, never anything outside the project."""
    from mlci import swap

    base = tmp_path_factory.mktemp("journal")
    root = base / "project"
    folder = root / ".mlci" / "restore"
    folder.mkdir(parents=True)
    (root / "params.yaml").write_text("C: 1\n")
    (root / "mlci.yaml").write_text("model: {name: m}\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    outside = base / "outside.txt"
    outside.write_text("keep")
    (folder / "0-params.yaml").write_text("C: 2\n")
    (folder / "link").symlink_to(outside)
    (root / "link").symlink_to(base)
    names = {"root": str(root), "outside": str(outside), "folder": str(folder)}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**names)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    text = raw if raw is not None else json.dumps({"pid": 1, "entries": [fill(e) for e in entries]})
    (folder / "journal.json").write_text(text)
    protected = {p: p.read_bytes() for p in (outside, root / "mlci.yaml", root / ".git" / "config")}
    bounded(
        "restore journals",
        text[:200],
        lambda: swap.recover(root / ".mlci", lambda message: None, [root / "params.yaml"]),
    )
    assert {p: p.read_bytes() for p in protected} == protected
    # The one file a run changes: as it was, put back from its backup, or removed (it was new).
    assert not (root / "params.yaml").exists() or (root / "params.yaml").read_text() in ("C: 1\n", "C: 2\n")


# --------------------------------------------------------------------------- adoption

PROJECT_FILES = st.fixed_dictionaries(
    {},
    optional={
        "MLproject": st.one_of(
            st.just(
                "entry_points:\n  main:\n    parameters: {a: {default: 1}}\n    command: python t.py {a}\n"
            ),
            st.builds(_dump, _config_like()),
            st.text(max_size=200),
        ),
        "dvc.yaml": st.one_of(
            st.just(
                "stages: {t: {cmd: python t.py, outs: [m.pkl]}}\nmetrics: [m.json]\nartifacts: {x: {path: m.pkl}}\n"
            ),
            st.builds(_dump, _config_like()),
            st.text(max_size=200),
        ),
        "train.py": st.one_of(
            st.just("import os\nfrom pathlib import Path\nP = Path(__file__).parent / 'c' / 'x.yaml'\n"),
            st.builds(lambda t: f"open({t!r})\n", HOSTILE_TEXT),
            st.builds(lambda n: "x = (" * n + ")" * n + "\n", st.integers(1, 3000)),
            st.text(max_size=300),
        ),
        "python_env.yaml": st.one_of(st.builds(_dump, _config_like()), st.text(max_size=100)),
        "pyproject.toml": st.text(max_size=100),
        "conf/config.yaml": st.builds(_dump, _config_like()),
    },
)


@settings(FUZZ, max_examples=max(8, EXAMPLES // 3))
@given(files=PROJECT_FILES)
def test_fuzzed_projects_adopt_or_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, str]
) -> None:
    """Adoption reads a project's own files (MLproject, dvc.yaml, the training code, its
    requirements) as hostile input: whatever they hold, what it writes validates."""
    root = tmp_path_factory.mktemp("adopt") / "project"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    root.mkdir(exist_ok=True)
    run(["git", "init", "-q", "-b", "main"], root)
    case = json.dumps(files)[:2000]
    code, _, _ = mlci("adopt", case, "init", "--adopt", "--json", cwd=root)
    if code == 0:
        mlci("adopt", case, "config", "validate", cwd=root)
        mlci("adopt", case, "fingerprint", "--explain", "--json", cwd=root)
        listed = [f for f in files if f in ("python_env.yaml", "pyproject.toml")]
        if listed:
            mlci("adopt", case, "requirements", *listed, cwd=root)
