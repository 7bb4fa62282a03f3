"""The registry end to end: real git repositories with a bare remote, real MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlci import gitrepo, tags
from mlci.errors import ExitCode
from tests.helpers import run
from tests.lifecycle import (
    aliases,
    client,
    commit,
    mlflow_versions,
    new_model,
    ok,
    project,
    remote_tags,
    set_params,
)


def test_register_creates_tag_and_mlflow_version(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    trained = ok(cli, root, "train", "--pr", "7")
    result = ok(cli, root, "register")
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    assert result == {
        "model": "demo",
        "version": "v0.0.1",
        "tag": "demo@v0.0.1",
        "commit": head,
        "fingerprint": trained["fingerprint"],
        "run_id": trained["run_id"],
        "mlflow_model_version": "1",
        "created": True,
        "pushed": True,
        "model_sha256": trained["model_sha256"],
        "store": "local",  # a laptop: the embedded store keeps the bytes
    }
    assert len(trained["model_sha256"]) == 64
    assert "demo@v0.0.1" in remote_tags(root)
    (record,) = [r for r in gitrepo.read_tags(root) if r.name == "demo@v0.0.1"]
    assert record.annotated and record.commit == head
    assert record.message.splitlines()[0] == "Registering artifact demo version v0.0.1"
    meta = tags.metadata_from(record.message)
    assert meta["fingerprint"] == trained["fingerprint"]
    assert meta["metrics"] == {"accuracy": 0.9, "loss.val": 0.25}
    assert meta["mlflow_run_id"] == trained["run_id"]
    assert meta["mlflow_model_version"] == "1"
    assert meta["pr"] == 7
    assert meta["commit"] == head
    assert mlflow_versions(root)["1"] == {
        "mlci.git_tag": "demo@v0.0.1",
        "mlci.git_commit": head,
        "mlci.fingerprint": trained["fingerprint"],
        "mlci.version": "v0.0.1",
        "mlci.model_sha256": trained["model_sha256"],
    }
    assert meta["model_sha256"] == trained["model_sha256"] and meta["store"] == "local"
    # Idempotent: the same inputs give the same version.
    again = ok(cli, root, "register")
    assert again["version"] == "v0.0.1" and again["created"] is False
    assert len(mlflow_versions(root)) == 1
    assert not (root / "mlflow.db").exists() and not (root / "mlruns").exists()
    assert run(["git", "status", "--porcelain"], root) == ""


@pytest.mark.slow
def test_versions_bump_and_explicit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    assert new_model(cli, root, 0.90)["version"] == "v0.0.1"
    assert new_model(cli, root, 0.91)["version"] == "v0.0.2"
    set_params(root, accuracy=0.92)
    commit(root, "minor")
    ok(cli, root, "train")
    assert ok(cli, root, "register", "--bump", "minor")["version"] == "v0.1.0"
    set_params(root, accuracy=0.93)
    commit(root, "explicit")
    ok(cli, root, "train")
    taken = cli("register", "--version", "v0.0.2", cwd=root)
    assert taken.code == ExitCode.ERROR
    assert "demo v0.0.2 exists already: a version name is never reused" in taken.err
    bad = cli("register", "--version", "2.0", cwd=root)
    assert bad.code == ExitCode.ERROR and "is not a version like v1.2.3" in bad.err
    assert ok(cli, root, "register", "--version", "v2.0.0")["version"] == "v2.0.0"
    assert remote_tags(root) >= {"demo@v0.0.1", "demo@v0.0.2", "demo@v0.1.0", "demo@v2.0.0"}


def test_register_refusals(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    none = cli("register", cwd=root)
    assert none.code == ExitCode.ERROR
    assert "no finished MLflow run for the current inputs" in none.err and "mlci train" in none.err
    ok(cli, root, "train")
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("0.9", "0.95"))
    dirty = cli("register", cwd=root)
    assert dirty.code == ExitCode.ERROR and "uncommitted changes" in dirty.err
    run(["git", "checkout", "params.yaml"], root)
    # An override that happens to equal the file's value: same fingerprint, still refused.
    ok(cli, root, "train", "--no-cache", "--set", "accuracy=0.9")
    refused = cli("register", cwd=root)
    assert refused.code == ExitCode.ERROR and "trained with --set overrides" in refused.err
    assert not tags.build_state(gitrepo.read_tags(root))


def test_no_push_then_push(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    ok(cli, root, "train")
    local = ok(cli, root, "register", "--no-push")
    assert local["pushed"] is False and "demo@v0.0.1" not in remote_tags(root)
    later = ok(cli, root, "register")
    assert later["created"] is False and later["pushed"] is True
    assert "demo@v0.0.1" in remote_tags(root)


def test_without_a_remote_tags_stay_local(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path, remote=False)
    ok(cli, root, "train")
    assert ok(cli, root, "register")["pushed"] is False
    asked = cli("register", "--push", cwd=root)
    assert asked.code == ExitCode.ERROR and "no remote 'origin'" in asked.err


def test_failed_push_leaves_nothing_behind(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    ok(cli, root, "train")
    # A remote that refuses every tag (not a race): nothing may remain anywhere.
    hook = tmp_path / "remote.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'tags are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = cli("register", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "pushing demo@v0.0.1 to origin failed" in result.err and "tags are frozen" in result.err
    assert not [r for r in gitrepo.read_tags(root) if r.name.startswith("demo")]
    assert mlflow_versions(root) == {}
    assert remote_tags(root) == set()
    hook.unlink()
    assert ok(cli, root, "register")["version"] == "v0.0.1"
    assert set(mlflow_versions(root)) == {"2"}  # MLflow numbers are never reused; git's are


def test_promote_gates_requires_and_aliases(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    first = new_model(cli, root, 0.90)
    blocked = cli("promote", "production", cwd=root)
    assert blocked.code == ExitCode.GATE_FAILED
    assert "demo v0.0.1 has never been in staging (production requires it)" in blocked.err
    promoted = ok(cli, root, "promote", "staging")
    assert promoted["changed"] is True and promoted["tag"] == "demo#staging#1"
    assert promoted["gates"]["passed"] is True
    assert "demo#staging#1" in remote_tags(root)
    assert aliases(root) == {"staging": "1"}
    unchanged = ok(cli, root, "promote", "staging")
    assert unchanged["changed"] is False and unchanged["tag"] is None
    assert ok(cli, root, "promote", "production")["tag"] == "demo#production#2"

    # A worse model: blocked by staging's relative gate, nothing written.
    worse = new_model(cli, root, 0.80)
    result = cli("promote", "staging", "--json", cwd=root)
    assert result.code == ExitCode.GATE_FAILED
    data = json.loads(result.out)
    assert data["passed"] is False and data["changed"] is False
    assert (
        "accuracy 0.8 is 0.1 (11.11%) worse than staging v0.0.1's 0.9; max_regression 5%" in data["blocked"]
    )
    assert "[FAIL] accuracy 0.8 is 0.1" in result.err
    assert "demo#staging#3" not in remote_tags(root)
    # A better one goes through; --version names an older one explicitly.
    better = new_model(cli, root, 0.93)
    assert ok(cli, root, "promote", "staging")["version"] == better["version"]
    assert aliases(root)["staging"] == better["mlflow_model_version"]
    assert ok(cli, root, "promote", "staging", "--version", first["version"])["version"] == "v0.0.1"
    assert worse["version"] == "v0.0.2"
    unknown = cli("promote", "staging", "--version", "v9.9.9", cwd=root)
    assert unknown.code == ExitCode.ERROR and "has no version v9.9.9" in unknown.err
    no_env = cli("promote", "qa", cwd=root)
    assert no_env.code == ExitCode.ERROR and "no environment named 'qa'" in no_env.err


def test_rollback(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    new_model(cli, root, 0.90)
    ok(cli, root, "promote", "staging")
    new_model(cli, root, 0.92)
    ok(cli, root, "promote", "staging")
    nothing = cli("rollback", "production", "--reason", "x", cwd=root)
    assert nothing.code == ExitCode.ERROR and "no earlier version" in nothing.err
    back = ok(cli, root, "rollback", "staging", "--reason", "latency regression in canary")
    assert back["version"] == "v0.0.1" and back["previous"] == "v0.0.2"
    (record,) = [r for r in gitrepo.read_tags(root) if r.name == back["tag"]]
    meta = tags.metadata_from(record.message)
    assert meta["rollback"] is True
    assert meta["reason"] == "latency regression in canary"
    assert meta["replaced"] == "v0.0.2"
    assert aliases(root)["staging"] == "1"
    # Rolling back again goes to the previous distinct version: v0.0.2.
    assert ok(cli, root, "rollback", "staging", "--reason", "canary fixed")["version"] == "v0.0.2"
    assert ok(cli, root, "rollback", "staging", "--to", "v0.0.1", "--reason", "again")["version"] == "v0.0.1"
    history = ok(cli, root, "history")
    assert [e["action"] for e in history[:3]] == ["rollback", "rollback", "rollback"]
    assert history[0]["reason"] == "again" and history[0]["replaced"] == "v0.0.2"
    missing = cli("rollback", "staging", cwd=root)
    assert missing.code == ExitCode.USAGE  # --reason is required


def test_show_and_history(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    new_model(cli, root, 0.90)
    ok(cli, root, "promote", "staging")
    new_model(cli, root, 0.91)
    shown = ok(cli, root, "show")
    assert shown["environments"] == ["staging", "production"]
    (model,) = shown["models"]
    assert model["name"] == "demo" and model["latest"] == "v0.0.2"
    assert model["environments"] == {"staging": "v0.0.1", "production": None}
    assert [v["version"] for v in model["versions"]] == ["v0.0.2", "v0.0.1"]
    text = cli("show", cwd=root).out
    assert text.splitlines()[0].split() == ["model", "latest", "staging", "production"]
    assert text.splitlines()[2].split() == ["demo", "v0.0.2", "v0.0.1", "-"]
    events = ok(cli, root, "history", "demo")
    assert [(e["action"], e["version"], e["environment"]) for e in events] == [
        ("register", "v0.0.2", None),
        ("assign", "v0.0.1", "staging"),
        ("register", "v0.0.1", None),
    ]
    assert events[0]["author"] == "Test Committer"
    nope = cli("show", "nope", cwd=root)
    assert nope.code == ExitCode.ERROR and "no model 'nope'" in nope.err


def test_deprecate_deregister_unassign(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    new_model(cli, root, 0.90)
    ok(cli, root, "promote", "staging")
    new_model(cli, root, 0.91)
    assert ok(cli, root, "deprecate", "--env", "staging", "--reason", "pause")["tag"] == "demo#staging!#2"
    assert "staging" not in aliases(root)
    assert ok(cli, root, "deprecate", "--version", "v0.0.2")["tag"] == "demo@v0.0.2!"
    assert ok(cli, root, "deprecate")["tag"] == "demo@deprecated"
    assert ok(cli, root, "deprecate")["changed"] is False
    model = ok(cli, root, "show")["models"][0]
    assert model["latest"] == "v0.0.1" and model["deprecated"] is True
    assert model["environments"]["staging"] is None
    assert remote_tags(root) >= {"demo#staging!#2", "demo@v0.0.2!", "demo@deprecated"}
    # A deregistered version's name is never reused.
    assert new_model(cli, root, 0.95)["version"] == "v0.0.3"


def test_doctor_reports_and_fixes_drift(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    new_model(cli, root, 0.90)
    ok(cli, root, "promote", "staging")
    assert ok(cli, root, "doctor")["healthy"] is True
    mlflow = client(root)
    mlflow.delete_registered_model_alias("demo", "staging")
    mlflow.delete_model_version("demo", "1")
    orphan = mlflow.create_model_version("demo", "file:///nowhere", tags={"mlci.git_tag": "demo@v9.9.9"})
    result = cli("doctor", "--json", cwd=root)
    assert result.code == ExitCode.GATE_FAILED
    kinds = sorted(p["kind"] for p in json.loads(result.out)["problems"])
    assert kinds == ["alias_mismatch", "missing_model_version", "orphan_model_version"]
    fixed = ok(cli, root, "doctor", "--fix")
    assert fixed["healthy"] is True
    after = client(root)
    versions = {str(v.version): dict(v.tags) for v in after.search_model_versions("name = 'demo'")}
    assert str(orphan.version) not in versions
    (recreated,) = [v for v, t in versions.items() if t.get("mlci.git_tag") == "demo@v0.0.1"]
    assert aliases(root) == {"staging": recreated}
    assert ok(cli, root, "doctor")["healthy"] is True


def test_shallow_clone_and_lightweight_tags_are_repaired(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    new_model(cli, root, 0.90)
    ok(cli, root, "promote", "staging")
    run(["git", "push", "-q", "origin", "main"], root)
    # What a CI checkout looks like: depth 1, the registry tag rewritten as lightweight.
    ci = tmp_path / "ci"
    run(
        ["git", "clone", "-q", "--depth", "1", f"file://{tmp_path / 'remote.git'}", str(ci)],
        tmp_path,
    )
    run(["git", "tag", "-d", "demo@v0.0.1"], ci) if "demo@v0.0.1" in run(["git", "tag"], ci) else None
    head = run(["git", "rev-parse", "HEAD"], ci).strip()
    run(["git", "tag", "demo#staging#1", head], ci) if "demo#staging#1" not in run(
        ["git", "tag"], ci
    ) else None
    run(["git", "tag", "-d", "demo#staging#1"], ci)
    run(["git", "tag", "demo#staging#1", head], ci)  # lightweight now
    assert gitrepo.is_shallow(ci)
    warned = cli("show", cwd=ci)
    assert "lightweight and ignored" in warned.err and "shallow clone" in warned.err
    # Writing commands repair the clone first.
    (ci / ".mlci").mkdir()
    for item in (root / ".mlci").iterdir():
        if item.name == "mlflow.db":
            (ci / ".mlci" / item.name).write_bytes(item.read_bytes())
    result = cli("promote", "production", "--json", cwd=ci)
    assert result.code == ExitCode.OK, result.err
    assert "fetching the full history" in result.err
    assert "re-fetching 1 lightweight registry tag(s) as annotated: demo#staging#1" in result.err
    assert not gitrepo.is_shallow(ci)
    assert all(r.annotated for r in gitrepo.read_tags(ci))


def test_shallow_clone_without_remote_names_the_fix(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    ok(cli, root, "train")
    shallow = tmp_path / "shallow"
    run(["git", "clone", "-q", "--depth", "1", f"file://{root}", str(shallow)], tmp_path)
    run(["git", "remote", "remove", "origin"], shallow)
    result = cli("register", cwd=shallow)
    assert result.code == ExitCode.ERROR
    assert "shallow clone" in result.err and "fetch-depth: 0" in result.err


@pytest.mark.slow
def test_concurrent_registrations_all_land(tmp_path: Path) -> None:
    """8 jobs in 8 clones register at once against one remote: 8 distinct versions."""
    seed = project(tmp_path)
    bare = tmp_path / "remote.git"
    clones = []
    for i in range(8):
        clone = tmp_path / f"clone{i}"
        run(["git", "clone", "-q", str(bare), str(clone)], tmp_path)
        set_params(clone, accuracy=0.5 + i / 100)
        commit(clone, f"model {i}")
        run([sys.executable, "-m", "mlci", "train"], clone)
        clones.append(clone)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mlci", "register", "--json"],
            cwd=c,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in clones
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    versions = sorted(r["version"] for r in results)
    assert versions == [f"v0.0.{n}" for n in range(1, 9)]
    state = tags.build_state([r for r in gitrepo.read_tags(seed) if r.annotated] or [])
    run(["git", "fetch", "-q", "--tags", "origin"], seed)
    state = tags.build_state(gitrepo.read_tags(seed))
    assert sorted(state["demo"].versions) == versions
    fingerprints = {state["demo"].versions[v].metadata["fingerprint"] for v in versions}
    assert len(fingerprints) == 8  # none lost, none doubled
    # Each clone's MLflow store kept exactly its one version: no leftovers from lost races.
    for clone in clones:
        found = client(clone).search_model_versions("name = 'demo'")
        assert [dict(v.tags)["mlci.git_tag"] for v in found] == [
            next(r["tag"] for r in results if r["commit"] == run(["git", "rev-parse", "HEAD"], clone).strip())
        ]


@pytest.mark.slow
def test_concurrent_promotions_all_land(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """4 jobs promote 4 versions to staging at once: 4 assignments, distinct counters, none lost."""
    seed = project(tmp_path)
    versions = [new_model(cli, seed, 0.90 + i / 1000)["version"] for i in range(4)]
    run(["git", "push", "-q", "origin", "main"], seed)
    bare = tmp_path / "remote.git"
    clones = []
    for i in range(4):
        clone = tmp_path / f"job{i}"
        run(["git", "clone", "-q", str(bare), str(clone)], tmp_path)
        run(["git", "fetch", "-q", "--tags", "origin"], clone)
        clones.append(clone)
    # The jobs share the store that holds the versions' bytes (promotion checks them).
    shared = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{seed / '.mlci' / 'mlflow.db'}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mlci", "promote", "staging", "--version", version, "--json"],
            cwd=clone,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=shared,
        )
        for clone, version in zip(clones, versions, strict=True)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert all(r["changed"] for r in results)
    run(["git", "fetch", "-q", "--tags", "origin"], seed)
    state = tags.build_state(gitrepo.read_tags(seed))["demo"]
    assigned = state.assignment_history("staging")
    assert sorted(e.version for e in assigned if e.version) == sorted(versions)
    counters = [e.counter for e in assigned]
    assert len(set(counters)) == 4  # distinct names, nothing overwritten
    assert state.current("staging").version == max(assigned, key=lambda e: e.counter or 0).version  # type: ignore[union-attr]
