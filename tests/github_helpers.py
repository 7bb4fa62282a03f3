"""Helpers for the tests of ``mlci ci`` against the local GitHub stub (tests/github_stub.py):
the environment of a GitHub Actions job, a pull-request event, and ``mlci ci`` run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.github_stub import GitHubState
from tests.helpers import run

TOKEN = "ghs_secretsecretsecret"


def actions_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, state: GitHubState) -> None:
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": state.base_url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "octo/churn",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "MLCI_GITHUB_BACKOFF": "0.01",
    }.items():
        monkeypatch.setenv(name, value)


def pr_event(
    tmp_path: Path,
    root: Path,
    number: int = 12,
    action: str = "opened",
    base: str = "staging",
    name: str = "event.json",
    head_repo: str = "octo/churn",
) -> Path:
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    payload = {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "title": "Better model",
            "head": {
                "ref": "feature",
                "sha": head,
                "repo": {"full_name": head_repo, "fork": head_repo != "octo/churn"},
            },
            "base": {"ref": base, "sha": "0" * 40, "repo": {"full_name": "octo/churn", "fork": False}},
        },
        "repository": {"full_name": "octo/churn"},
    }
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


def ci(cli, root: Path, monkeypatch: pytest.MonkeyPatch, event: str, payload: Path, *extra: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GITHUB_EVENT_NAME", event)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(payload))
    return cli("ci", *extra, cwd=root)


def push_payload(tmp_path: Path, branch: str, head: str) -> Path:
    path = tmp_path / f"push-{branch}.json"
    path.write_text(
        json.dumps({"ref": f"refs/heads/{branch}", "after": head, "repository": {"full_name": "o/r"}})
    )
    return path


def cold_clone(tmp_path: Path, branch: str, name: str | None = None) -> Path:
    """A fresh clone of ``remote.git`` at ``branch`` (a new runner: no ``.mlci``)."""
    clone = tmp_path / (name or f"clone-{branch}")
    run(["git", "clone", "-q", "--branch", branch, str(tmp_path / "remote.git"), str(clone)], tmp_path)
    return clone


def outputs(tmp_path: Path) -> dict[str, str]:
    text = (tmp_path / "output.txt").read_text()
    found: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        name, _, delimiter = line.partition("<<")
        value = []
        for inner in lines:
            if inner == delimiter:
                break
            value.append(inner)
        found[name] = "\n".join(value)
    return found
