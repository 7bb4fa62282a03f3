"""Durable models: archives, run bundles, the stores, promotion by digest, `mlci pull`.

The archive and config logic is table-driven; everything that touches git,
MLflow or GitHub runs against the real thing here (a bare remote, a sqlite
store, the local GitHub stand-in with GitHub's artifact and release shapes).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mlci import archive, gitrepo, tags
from mlci import config as cfg
from mlci.commands.pull import parse_ref
from mlci.errors import ExitCode, MlciError
from mlci.stores import bundle
from mlci.stores.github import RunArtifacts, connect
from tests.github_helpers import actions_env as _actions_env
from tests.github_helpers import ci
from tests.github_helpers import cold_clone as _cold_clone
from tests.github_helpers import push_payload as _push_payload
from tests.github_stub import Fault, GitHubState, github_stub
from tests.helpers import run
from tests.lifecycle import ok, project

# --------------------------------------------------------------------------- the archive


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


MODEL_FILES = {"MLmodel": b"flavors: {}\n", "model.pkl": bytes(range(256)) * 40, "sub/dir/x.json": b"{}"}


def test_archive_digest_depends_on_paths_and_contents_only(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", MODEL_FILES)
    b = _folder(tmp_path / "b", dict(reversed(MODEL_FILES.items())))  # written in another order
    os.utime(b / "model.pkl", (1, 1))  # other times
    (b / "MLmodel").chmod(0o600)  # other permissions
    assert archive.digest_folder(a) == archive.digest_folder(b)
    packed = archive.pack(a, tmp_path / "a.tar")
    assert packed == archive.digest_folder(a)
    assert packed.sha256 == hashlib.sha256((tmp_path / "a.tar").read_bytes()).hexdigest()
    assert packed.size == (tmp_path / "a.tar").stat().st_size
    (b / "model.pkl").write_bytes(b"other")
    assert archive.digest_folder(a) != archive.digest_folder(b)


def test_unpack_is_one_pass_and_checks_the_digest(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", MODEL_FILES)
    digest = archive.pack(src, tmp_path / "m.tar")
    reads = []

    def chunks() -> Any:
        for chunk in archive.file_chunks(tmp_path / "m.tar"):
            reads.append(len(chunk))
            yield chunk

    got = archive.unpack(
        chunks(), tmp_path / "out", expected=digest.sha256, source="m.tar", keep=tmp_path / "k.tar"
    )
    assert got == digest and sum(reads) == digest.size  # every byte read once
    assert (tmp_path / "k.tar").read_bytes() == (tmp_path / "m.tar").read_bytes()
    assert {
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()
    } == set(MODEL_FILES)
    with pytest.raises(archive.ArchiveError, match="does not match the registry's"):
        archive.unpack(
            archive.file_chunks(tmp_path / "m.tar"), tmp_path / "bad", expected="0" * 64, source="m.tar"
        )
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.partial").exists()


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../escape", tarfile.REGTYPE), ("/abs/path", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)],
)
def test_unpack_refuses_unsafe_entries(tmp_path: Path, name: str, kind: bytes) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(archive.ArchiveError, match=r"unsafe path|not a regular file"):
        archive.unpack([buffer.getvalue()], tmp_path / "out", expected=None, source="hostile.tar")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escape").exists()


def _tar(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            tar.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


F, D = tarfile.REGTYPE, tarfile.DIRTYPE


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([("a", F), ("a/b", F)], "an entry under a file"),
        ([("a", D), ("a", F)], "the same path twice"),
        ([("a", F), ("a", F)], "the same path twice"),
        ([(".", F)], "'.' or '..' part"),
        ([("a//b", F)], "'.' or '..' part"),
        ([("x" * 5000, F)], "longer than 1024"),
        ([("/".join(["d"] * 2000), F)], "longer than 1024"),
        ([("/".join(["d"] * 100), F)], "more than 64 levels"),
    ],
    ids=[
        "file-then-under",
        "folder-then-file",
        "twice",
        "dot",
        "empty-part",
        "long-name",
        "deep",
        "deep-short",
    ],
)
def test_unpack_refuses_malformed_trees_before_the_digest_check(
    tmp_path: Path, entries: list[tuple[str, bytes]], problem: str
) -> None:
    """Each an ArchiveError (exit 3) that says what, never an OSError from the file system."""
    with pytest.raises(archive.ArchiveError, match=re.escape(problem)):
        archive.unpack([_tar(entries)], tmp_path / "out", expected="0" * 64, source="hostile.tar")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_a_folder_entry_may_repeat(tmp_path: Path) -> None:
    archive.unpack([_tar([("a", D), ("a", D), ("a/b", F)])], tmp_path / "out", expected=None, source="ok.tar")
    assert (tmp_path / "out" / "a" / "b").is_file()


def test_a_symlink_in_the_model_folder_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "m", {"MLmodel": b"x"})
    (folder / "link").symlink_to("/etc/hostname")
    with pytest.raises(archive.ArchiveError, match="only regular files and folders"):
        archive.digest_folder(folder)


# --------------------------------------------------------------------------- config and references


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        ("auto", {}, "local"),
        ("auto", {"GITHUB_ACTIONS": "true"}, "github"),
        ("auto", {"GITHUB_ACTIONS": "true", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}, "mlflow"),
        ("auto", {"MLFLOW_TRACKING_URI": "https://mlflow.example"}, "mlflow"),
        ("auto", {"MLFLOW_TRACKING_URI": "sqlite:///x.db", "GITHUB_ACTIONS": "true"}, "github"),
        ("local", {"GITHUB_ACTIONS": "true"}, "local"),
        ("github", {}, "github"),
        ("mlflow", {}, "mlflow"),
    ],
)
def test_store_choice(tmp_path: Path, setting: str, environ: dict[str, str], expected: str) -> None:
    text = f"model: {{name: m}}\ntrain: {{command: x}}\nregistry: {{store: {setting}}}\n"
    config = cfg.parse(text, tmp_path / "mlci.yaml")
    choice = cfg.choose_store(config, environ)
    assert choice.name == expected and choice.why


def test_an_unknown_store_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(MlciError) as raised:
        cfg.parse("model: {name: m}\ntrain: {command: x}\nregistry: {store: s3}\n", tmp_path / "mlci.yaml")
    assert "registry.store" in raised.value.message and "auto, local, mlflow, github" in raised.value.message


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("churn", ("churn", None, None)),
        ("churn@v1.2.0", ("churn", "v1.2.0", None)),
        ("team/churn#production", ("team/churn", None, "production")),
    ],
)
def test_model_references(ref: str, expected: tuple[str, str | None, str | None]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["churn@1.2", "churn#", "-churn", "churn@v1.2.0#prod", ""])
def test_bad_model_references(ref: str) -> None:
    with pytest.raises(MlciError, match="is not a model reference"):
        parse_ref(ref)


# --------------------------------------------------------------------------- runs in workflow artifacts

FINGERPRINT = "ab" * 32


def _bundle_files(tmp_path: Path, accuracy: float = 0.9, fingerprint: str = FINGERPRINT) -> dict[str, bytes]:
    dest = tmp_path / f"bundle-{accuracy}"
    bundle.write(
        dest,
        model="demo",
        fingerprint=fingerprint,
        run_id="r" * 32,
        metrics={"accuracy": accuracy},
        params={"C": "1.0"},
        tags={"mlci.git.commit": "c" * 40, "mlflow.runName": "dropped"},
        model_dir=_folder(tmp_path / f"model-{accuracy}", {"MLmodel": f"acc {accuracy}".encode()}),
    )
    return {p.name: p.read_bytes() for p in dest.iterdir()}


def _runs(gh: GitHubState, tmp_path: Path, log: list[str]) -> RunArtifacts:
    env = {"GITHUB_TOKEN": "t", "GITHUB_API_URL": gh.base_url, "GITHUB_REPOSITORY": "octo/churn"}
    env["MLCI_GITHUB_BACKOFF"] = "0.01"
    from mlci import github_api

    github_api.forget()  # each call stands for a job: its own process
    api, repository = connect(env, tmp_path, "test")
    return RunArtifacts(api, repository, log.append)


NAME = bundle.artifact_name("demo", FINGERPRINT)


@pytest.mark.parametrize(
    ("event", "head_repo", "reused", "why"),
    [
        ("push", "octo/churn", True, ""),
        ("pull_request", "octo/churn", True, ""),
        ("pull_request", "fork/churn", False, "its run came from a fork"),
        ("pull_request_target", "octo/churn", False, "a 'pull_request_target' run made it"),
        ("workflow_run", "octo/churn", False, "a 'workflow_run' run made it"),
    ],
)
def test_only_trusted_runs_are_reused(
    tmp_path: Path, event: str, head_repo: str, reused: bool, why: str
) -> None:
    log: list[str] = []
    with github_stub() as gh:
        gh.add_artifact(NAME, _bundle_files(tmp_path), run_id=7, event=event, head_repo=head_repo)
        found = _runs(gh, tmp_path, log).find("demo", FINGERPRINT, tmp_path / "restored")
    if reused:
        assert found is not None and found.metrics == {"accuracy": 0.9}
        assert found.tags == {"mlci.git.commit": "c" * 40}  # lineage kept, MLflow internals dropped
        assert (found.model_dir / "MLmodel").read_bytes() == b"acc 0.9"
        assert (
            found.archive_path.is_file()
            and found.digest.sha256
            == json.loads((tmp_path / "restored" / "run.json").read_text())["model_sha256"]
        )
    else:
        assert found is None and any(why in line for line in log), log


def test_a_fork_artifact_newer_than_the_trusted_one_is_skipped(tmp_path: Path) -> None:
    log: list[str] = []
    with github_stub() as gh:
        gh.add_artifact(NAME, _bundle_files(tmp_path, 0.9), run_id=1, event="push")
        gh.add_artifact(NAME, _bundle_files(tmp_path, 0.999), run_id=2, head_repo="fork/churn")
        found = _runs(gh, tmp_path, log).find("demo", FINGERPRINT, tmp_path / "restored")
        assert found is not None and found.metrics == {"accuracy": 0.9}
        assert [r.path for r in gh.requests if "/zip" in r.path] == [
            f"/repos/octo/churn/actions/artifacts/{gh.artifacts[0]['id']}/zip"
        ]  # the fork's archive was never even downloaded


def test_expired_and_broken_artifacts_mean_training_with_a_reason(tmp_path: Path) -> None:
    log: list[str] = []
    with github_stub() as gh:
        gh.add_artifact(NAME, _bundle_files(tmp_path), run_id=1, event="push", expired=True)
        assert _runs(gh, tmp_path, log).find("demo", FINGERPRINT, tmp_path / "r1") is None
        assert "training again: the run for this fingerprint expired on GitHub" in log[-1]
        files = _bundle_files(tmp_path)
        files["model.tar"] = files["model.tar"].replace(b"acc 0.9", b"acc 1.0")  # other bytes, same size
        gh.add_artifact(NAME, files, run_id=2, event="push")
        assert _runs(gh, tmp_path, log).find("demo", FINGERPRINT, tmp_path / "r2") is None
        assert any("does not match the registry's" in line for line in log), log
        other = _bundle_files(tmp_path, fingerprint="cd" * 32)
        gh.add_artifact(NAME, other, run_id=3, event="push")
        assert _runs(gh, tmp_path, log).find("demo", FINGERPRINT, tmp_path / "r3") is None
        assert any("not this model's inputs" in line for line in log), log


def test_no_permission_to_list_artifacts_warns_and_trains(tmp_path: Path) -> None:
    log: list[str] = []
    with github_stub() as gh:
        gh.faults.append(
            Fault("GET", "/actions/artifacts", 403, {"message": "Resource not accessible by integration"})
        )
        assert _runs(gh, tmp_path, log).find("demo", FINGERPRINT, tmp_path / "r") is None
    assert "training (hint: the token may not do this: grant the job `actions: read`" in log[-1]


# --------------------------------------------------------------------------- on a laptop: the embedded store


def test_pull_on_a_laptop_verifies_the_digest(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    trained = ok(cli, root, "train")
    ok(cli, root, "register")
    promoted = ok(cli, root, "promote", "staging")
    assert promoted["model_sha256"] == trained["model_sha256"]
    pulled = ok(cli, root, "pull", "demo#staging", "--output", str(tmp_path / "out"))
    assert (
        pulled["version"] == "v0.0.1" and pulled["sha256"] == trained["model_sha256"] and pulled["verified"]
    )
    assert archive.digest_folder(tmp_path / "out").sha256 == trained["model_sha256"]
    assert (tmp_path / "out" / "MLmodel").is_file()
    # Someone changes the stored model: pull refuses it, and leaves nothing behind.
    stored = next((root / ".mlci" / "artifacts").rglob("MLmodel"))
    stored.write_text(stored.read_text() + "# tampered\n")
    result = cli("pull", "demo@v0.0.1", "--output", str(tmp_path / "again"), cwd=root)
    assert result.code == ExitCode.ERROR
    assert "these are not the bytes that were registered" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "again").exists()
    # ... and promotion refuses it too: production never gets other bytes.
    result = cli("promote", "production", "--version", "v0.0.1", cwd=root)
    assert result.code == ExitCode.ERROR and "not the bytes that were registered" in result.err
    assert not any(name.startswith("demo#production") for name in gitrepo.remote_tags(root, "origin"))


def test_pull_errors_name_what_exists(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    ok(cli, root, "train")
    ok(cli, root, "register")
    for ref, words in (
        ("demo#production", "no version of demo is in production"),
        ("demo@v9.9.9", "demo has no version v9.9.9"),
        ("other", "other has no registered version"),
    ):
        result = cli("pull", ref, cwd=root)
        assert result.code == ExitCode.ERROR and words in result.err, result.err


# --------------------------------------------------------------------------- in GitHub Actions: releases


def _registered_on_github(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState) -> Path:  # type: ignore[no-untyped-def]
    _actions_env(monkeypatch, tmp_path, gh)
    root = project(tmp_path)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    result = ci(cli, root, monkeypatch, "push", _push_payload(tmp_path, "staging", head))
    assert result.code == ExitCode.OK, result.err
    run(["git", "push", "-q", "origin", "staging"], root)
    return root


def test_a_refused_push_leaves_no_release_no_tag_no_mlflow_version(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with github_stub() as gh:
        _actions_env(monkeypatch, tmp_path, gh)
        root = project(tmp_path)
        run(["git", "checkout", "-q", "-b", "staging"], root)
        hook = tmp_path / "remote.git" / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'tags are frozen' >&2\nexit 1\n")
        hook.chmod(0o755)
        head = run(["git", "rev-parse", "HEAD"], root).strip()
        result = ci(cli, root, monkeypatch, "push", _push_payload(tmp_path, "staging", head))
        assert result.code == ExitCode.ERROR and "tags are frozen" in result.err
        assert gh.releases == []  # the draft with the bytes was deleted
        assert [r.method for r in gh.requests if "/releases/" in r.path and r.method == "DELETE"] == [
            "DELETE"
        ]
        assert not any(t.startswith("demo@") for t in gitrepo.remote_tags(root, "origin"))
        assert not [r.name for r in gitrepo.read_tags(root) if r.name.startswith("demo")]
        from tests.lifecycle import mlflow_versions

        assert mlflow_versions(root) == {}


@pytest.mark.slow
def test_doctor_on_a_cold_clone_rebuilds_mlflow_from_the_release(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with github_stub() as gh:
        _registered_on_github(cli, tmp_path, monkeypatch, gh)
        clone = _cold_clone(tmp_path, "staging")
        monkeypatch.delenv("GITHUB_ACTIONS")  # a laptop, with a token
        report = cli("doctor", "--json", cwd=clone)
        problems = json.loads(report.out)["problems"]
        assert [p["kind"] for p in problems] == ["missing_model_version", "alias_mismatch"]
        fixed = cli("doctor", "--fix", "--json", cwd=clone)
        assert fixed.code == ExitCode.OK, fixed.err
        assert json.loads(fixed.out)["healthy"] is True
        assert "verified demo@v0.0.1: sha256" in fixed.err and "rebuilt MLflow model version 1" in fixed.err
        from tests.lifecycle import aliases

        assert aliases(clone) == {"staging": "1"}
        # The release's archive disappears: doctor names the cause and how to act.
        gh.releases[0]["assets"] = []
        run(["git", "clone", "-q", "--branch", "staging", str(tmp_path / "remote.git"), "again"], tmp_path)
        broken = cli("doctor", "--fix", cwd=tmp_path / "again")
        assert broken.code != ExitCode.OK
        assert "[drift] demo@v0.0.1: no MLflow model version points back at it" in broken.out
        assert "not fixed: demo@v0.0.1: octo/churn has no asset demo-v0.0.1.tar in the release" in broken.out
        assert (
            "[drift] demo@v0.0.1: octo/churn has no release asset demo-v0.0.1.tar on this tag" in broken.out
        )
        assert "mlci never retrains to fill the gap" in broken.out


def test_pull_from_a_release_needs_a_token_and_says_so(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with github_stub() as gh:
        _registered_on_github(cli, tmp_path, monkeypatch, gh)
        clone = _cold_clone(tmp_path, "staging")
        monkeypatch.delenv("GITHUB_TOKEN")
        result = cli("pull", "demo#staging", cwd=clone)
        assert result.code == ExitCode.ERROR
        assert "reaching GitHub needs a token (GITHUB_TOKEN or GH_TOKEN)" in result.err
        monkeypatch.setenv("GH_TOKEN", "ghs_other")
        pulled = ok(cli, clone, "pull", "demo#staging", "--output", str(tmp_path / "m"))
        meta = tags.metadata_from(run(["git", "tag", "-l", "--format=%(contents)", "demo@v0.0.1"], clone))
        assert (
            pulled["sha256"]
            == meta["model_sha256"]
            == hashlib.sha256(gh.asset_bytes("demo@v0.0.1", "demo-v0.0.1.tar")).hexdigest()
        )
        card = str(gh.release_by_tag("demo@v0.0.1")["body"])  # the model card
        assert "# demo v0.0.1" in card and meta["model_sha256"] in card and "| `accuracy` | 0.9 |" in card


def test_config_show_names_the_store_and_why(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path, remote=False)
    shown = json.loads(cli("config", "show", "--json", cwd=root).out)["config"]["registry"]
    assert shown == {"store": "auto", "effective_store": "local", "why": shown["why"]}
    assert "embedded store" in shown["why"]
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    shown = json.loads(cli("config", "show", "--json", cwd=root).out)["config"]["registry"]
    assert shown["effective_store"] == "github" and "release on the version tag" in shown["why"]
    text = cli("config", "show", cwd=root).out
    assert "effective_store: github" in text
