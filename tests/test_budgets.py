"""Speed that stays, counted rather than timed (benchmarks/ times it; these catch a
regression on any machine): what each read path imports, how often the environment
is scanned for secrets, how many git processes a registry read starts as tags grow."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlci import gitrepo, redact
from mlci.cli import main
from tests import shapes
from tests.helpers import probe, run

READ_PATHS = (
    ["diff", "--base", "main"],
    ["gate", "--env", "staging"],
    ["report"],
    ["data", "diff"],
    ["show", "--json"],
    ["history", "--json"],
)


def _imports_mlflow(root: Path, args: list[str]) -> bool:
    found = probe(args, root)
    assert found.code in (0, 1), f"mlci {' '.join(args)}: {found.err}"  # 1: a gate failed
    return "mlflow" in found.modules


def _mlci(root: Path, *args: str) -> str:
    return run([sys.executable, "-m", "mlci", *args], root)


def _scaffold(tmp_path: Path) -> Path:
    run([sys.executable, "-m", "mlci", "init", "churn", "--git"], tmp_path)
    return tmp_path / "churn"


def _change_params(root: Path) -> None:
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    run(["git", "checkout", "-q", "-b", "change"], root)
    run(["git", "commit", "-qam", "C 0.5"], root)


@pytest.mark.slow
def test_read_paths_of_the_scaffold_import_no_mlflow(tmp_path: Path) -> None:
    """The project `mlci init` writes today (predictions, data checks and profiles):
    after training, every read path answers from the fast paths."""
    root = _scaffold(tmp_path)
    assert "predictions: predictions.csv" in (root / "mlci.yaml").read_text()
    _mlci(root, "train")
    _change_params(root)
    _mlci(root, "train")
    for args in READ_PATHS:
        assert not _imports_mlflow(root, args), f"mlci {' '.join(args)} imported MLflow"
    # The intervals are in the memo now: asked again, the reads parse no predictions
    # (numpy's import, and a bootstrap per baseline), and judge exactly as before.
    for args in (["diff", "--base", "main"], ["gate", "--env", "staging"], ["report"]):
        found = probe(args, root)
        assert found.code in (0, 1) and "numpy" not in found.modules, (
            f"mlci {' '.join(args)} parsed predictions"
        )
    memo = {**os.environ, "MLCI_NO_MEMO": "0"}
    computed = {**os.environ, "MLCI_NO_MEMO": "1"}
    said = []
    for env in (memo, computed):
        gate = subprocess.run(
            [sys.executable, "-m", "mlci", "gate", "--env", "staging", "--json"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        subprocess.run(
            [sys.executable, "-m", "mlci", "report", "--format", "json"], cwd=root, env=env, check=True
        )
        said.append((gate.stdout, (root / ".mlci" / "report.json").read_text()))
    assert said[0] == said[1] and '"interval' in said[0][0] and '"low"' in said[0][1]
    assert "numpy" in probe(["report"], root, env=computed).modules  # the probe can see it


@pytest.mark.slow
def test_read_paths_with_every_feature_import_no_mlflow(tmp_path: Path) -> None:
    """Repeats, a registered version in staging (its predictions and profile fetched
    from its run), a --set run at the same commit: still no MLflow on a read path."""
    root = _scaffold(tmp_path)
    config = root / "mlci.yaml"
    config.write_text(config.read_text().replace("  # repeats: 5", "  repeats: 2"))
    run(["git", "commit", "-qam", "repeats"], root)
    _mlci(root, "train")
    _mlci(root, "register")
    _mlci(root, "promote", "staging")
    _change_params(root)
    _mlci(root, "train", "--set", "C=0.7")
    _mlci(root, "train")
    for args in READ_PATHS:
        assert not _imports_mlflow(root, args), f"mlci {' '.join(args)} imported MLflow"
    gate = subprocess.run(
        [sys.executable, "-m", "mlci", "gate", "--env", "staging", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    judged = json.loads(gate.stdout)
    assert "staging" in json.dumps(judged)  # judged against the version, not skipped


def test_the_probe_sees_an_import_of_mlflow(tmp_path: Path) -> None:
    """Guard against a probe that can never fail."""
    assert "mlflow" in probe(["--version"], tmp_path, before="import mlflow.entities\n").modules


def _in_process(root: Path, args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(root)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(args)
    return code, out.getvalue()


@pytest.mark.parametrize("args", [["show", "--json"], ["history", "--json"], ["show"]])
def test_a_registry_read_costs_the_same_counts_at_any_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """One environment scan per process (its secret-name checks bounded by the
    environment's size), the same git processes at 100 tags as at 1,000: nothing grows
    with the output."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_a-token-of-the-job")
    counts: dict[int, dict[str, int]] = {}
    for size in (100, 1000):
        root = shapes.registry_repo(tmp_path / f"repo-{size}", size)
        seen = {"git": 0, "names": 0}
        real_run, real_names = gitrepo.run_git, redact.is_secret_name

        def counted_git(*a: object, _real=real_run, seen=seen, **k: object) -> object:  # type: ignore[no-untyped-def]
            seen["git"] += 1
            return _real(*a, **k)  # type: ignore[arg-type]

        def counted_names(name: str, _real=real_names, seen=seen) -> bool:  # type: ignore[no-untyped-def]
            seen["names"] += 1
            return _real(name)  # type: ignore[no-any-return]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(gitrepo, "run_git", counted_git)
            patch.setattr(redact, "is_secret_name", counted_names)
            redact._secrets_of.cache_clear()
            redact._ENVIRON_SECRETS = None
            scans = redact.SCANS
            code, out = _in_process(root, args, patch)
            variables = len(os.environ)
        assert code == 0
        if "--json" in args:
            json.loads(out)
        counts[size] = {**seen, "scans": redact.SCANS - scans, "variables": variables}
    for size in counts:  # one look at each variable's name, once
        assert counts[size]["scans"] == 1 and counts[size]["names"] <= counts[size]["variables"], counts
        assert counts[size]["git"] == counts[100]["git"], counts


def test_json_output_masks_in_one_pass_and_walks_only_when_something_could_need_it() -> None:
    environ = {"GITHUB_TOKEN": 'ghs_quote"and\\slash'}
    clean = {"models": [{"name": "churn", "versions": [{"v": f"v0.0.{i}"} for i in range(500)]}]}
    assert json.loads(redact.json_text(clean, environ)) == clean
    dirty = {
        "a": ["x", 'token ghs_quote"and\\slash here'],
        'ghs_quote"and\\slash': 1,
        "u": "https://u:pw@h/x",
    }
    assert json.loads(redact.json_text(dirty, environ)) == {
        "a": ["x", "token *** here"],
        "***": 1,
        "u": "https://***@h/x",
    }
    assert json.loads(redact.json_text({"p": Path('/x/ghs_quote"and\\slash')}, environ)) == {"p": "/x/***"}


@pytest.mark.parametrize(
    ("value", "lines"),
    [
        ({"a": 1}, 1),
        ({"a": "x" * 500}, 3),  # too long for one line: one entry per line
        ([{"k": i} for i in range(200)], 202),  # many entries: one per line, each on its own
        ({"m": [{"k": i} for i in range(200)]}, 204),
    ],
)
def test_pretty_json_keeps_short_containers_on_one_line(value: object, lines: int) -> None:
    written = redact.pretty_json(value)
    assert json.loads(written) == value
    assert len(written.splitlines()) == lines


def test_the_environment_is_scanned_again_only_after_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    redact._ENVIRON_SECRETS = None
    scans = redact.SCANS
    monkeypatch.setenv("SOME_PASSWORD", "a-password-1")
    assert redact.text("a-password-1") == "***"
    assert redact.text("a-password-1 again") == "*** again"
    assert redact.SCANS - scans == 1
    monkeypatch.setenv("SOME_PASSWORD", "another-password-2")
    assert redact.text("another-password-2") == "***"
    assert redact.SCANS - scans == 2
    assert os.environ["SOME_PASSWORD"] == "another-password-2"


def _show(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[object, int]:
    """`mlci show --json` (or another registry read) in this process, and how many times it
    read the tag objects (gitrepo.read_tags)."""
    reads = {"n": 0}
    real = gitrepo.read_tags

    def counted(path: Path) -> object:
        reads["n"] += 1
        return real(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gitrepo, "read_tags", counted)
        code, out = _in_process(root, [*(args or ("show",)), "--json"], patch)
    assert code == 0
    return json.loads(out), reads["n"]


@pytest.mark.parametrize("command", ["show", "history"])
def test_the_display_registry_is_kept_until_a_tag_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """The second show reads no tag object, and says what the first said; a new tag, and
    the registry is read from git again. In CI (GITHUB_ACTIONS) nothing is kept."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    root = shapes.registry_repo(tmp_path / "repo", 200)
    first, reads = _show(root, monkeypatch, command)
    assert reads == 1 and (root / ".git" / "mlci-registry.json").is_file()
    again, reads = _show(root, monkeypatch, command)
    assert reads == 0 and again == first
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    fresh, reads = _show(root, monkeypatch, command)
    assert reads == 1 and fresh == first  # built from git, the same registry
    monkeypatch.delenv("GITHUB_ACTIONS")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    run(["git", "commit", "-q", "--allow-empty", "-m", "another model"], root, env)
    run(["git", "tag", "-a", "churn@v9.9.9", "-m", "Registering artifact churn version v9.9.9"], root, env)
    after, reads = _show(root, monkeypatch, command)
    assert reads == 1 and after != first and "v9.9.9" in json.dumps(after)


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not json",
        b'{"format": 1, "key": "x"}',
        b"[" * 100_000,
        b'{"format": 1, "key": "KEY", "models": {"churn": {"events": [["a"]]}}, "skipped": [], "lightweight": []}',
        b'{"format": 1, "key": "KEY", "models": {"churn": {"events": [], "versions": {"v1": 7}, "deregistered": {},'
        b' "assignments": {}, "deprecated": null}}, "skipped": [], "lightweight": []}',
    ],
)
def test_a_damaged_display_registry_is_a_miss_never_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    from mlci import registry_cache

    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    root = shapes.registry_repo(tmp_path / "repo", 20)
    expected, _ = _show(root, monkeypatch)
    cache = root / ".git" / registry_cache.FILE
    key = json.loads(cache.read_text())["key"]
    cache.write_bytes(damage.replace(b"KEY", key.encode()))
    found, reads = _show(root, monkeypatch)
    assert found == expected and reads == 1
