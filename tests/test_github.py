"""mlci ci against a local stand-in for GitHub's API, with GitHub's payload shapes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlci.errors import ExitCode
from tests.github_helpers import TOKEN, ci, outputs, pr_event
from tests.github_helpers import actions_env as _actions_env
from tests.github_stub import Fault, GitHubState, github_stub
from tests.helpers import run
from tests.lifecycle import commit, project, set_params

MARKER = "<!-- mlci:report model=demo -->"


def test_three_pushes_leave_one_comment_and_statuses(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    first = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert first.code == ExitCode.OK, first.err
    # The report is on disk, in the job summary, and in the outputs.
    report = (root / ".mlci" / "report.md").read_text()
    assert report.startswith(MARKER)
    assert (tmp_path / "summary.md").read_text().startswith(MARKER)
    out = outputs(tmp_path)
    assert (
        out["verdict"] == "pass"
        and out["report-path"] == str(root / ".mlci" / "report.md")
        and len(out["fingerprint"]) == 64
    )
    # What was sent: one event, 5 requests on the first run (no GET /user: an
    # installation token cannot ask, and its comments are a bot's).
    assert [(r.method, r.path) for r in gh.requests] == [
        ("GET", "/repos/octo/churn/actions/artifacts"),  # the run cache across branches: none yet
        ("GET", "/repos/octo/churn/environments/staging"),  # the gate passes: who approves the merge?
        ("GET", "/repos/octo/churn/issues/12/comments"),
        ("POST", "/repos/octo/churn/issues/12/comments"),
        ("POST", f"/repos/octo/churn/statuses/{run(['git', 'rev-parse', 'HEAD'], root).strip()}"),
    ]
    for request in gh.requests[1:]:  # GitHub's documented headers on every request
        sent = {k.lower(): v for k, v in request.headers.items()}  # HTTP names are case-blind
        assert sent["authorization"] == f"Bearer {TOKEN}"
        assert sent["accept"] == "application/vnd.github+json"
        assert sent["x-github-api-version"] == "2022-11-28"
        assert sent["user-agent"].startswith("mlci/")
    assert gh.requests[3].body == {"body": report}
    status = gh.requests[4].body
    assert status["state"] == "success" and status["context"] == "mlci/staging"
    assert status["target_url"] == "https://github.example/octo/churn/actions/runs/4242"
    assert status["description"] == "2 gate rules passed"
    # Two more pushes to the PR: the comment is edited in place.
    for accuracy, action in ((0.92, "synchronize"), (0.40, "synchronize")):
        set_params(root, accuracy=accuracy)
        commit(root, f"accuracy {accuracy}")
        result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, action=action))
    assert result.code == ExitCode.GATE_FAILED  # 0.40 < min 0.5
    assert len(gh.comments[12]) == 1
    assert [r.method for r in gh.writes() if "comments" in r.path] == ["POST", "PATCH", "PATCH"]
    assert "accuracy 0.4 < min 0.5" in gh.comments[12][0]["body"]
    assert [s["state"] for s in gh.statuses] == ["success", "success", "failure"]
    assert gh.statuses[-1]["description"] == "accuracy 0.4 < min 0.5"
    assert TOKEN not in result.out.replace(f"::add-mask::{TOKEN}", "") and TOKEN not in result.err
    assert f"::add-mask::{TOKEN}" in result.out


def test_pagination_and_foreign_quotes(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    for i in range(150):
        gh.add_comment(12, f"comment {i}", "someone")
    gh.add_comment(12, f"I quote it: {MARKER}", "someone")  # not ours: never taken over
    ours = gh.add_comment(12, f"{MARKER}\nold report", "github-actions[bot]")  # on page 2
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    pages = [
        r.query.get("page", ["1"])[0]
        for r in gh.requests
        if r.method == "GET" and r.path.endswith("/comments")
    ]
    assert pages == ["1", "2"]
    assert [r.method for r in gh.writes() if "comments" in r.path] == ["PATCH"]
    assert gh.requests[-2].path == f"/repos/octo/churn/issues/comments/{ours['id']}"
    assert "old report" not in ours["body"]
    assert gh.comments[12][150]["body"] == f"I quote it: {MARKER}"
    assert len(gh.comments[12]) == 152


def test_actions_token_author_is_the_bot(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    gh.user = None  # the Actions token cannot read GET /user
    root = project(tmp_path)
    gh.add_comment(12, f"{MARKER}\nold", "someone-else")
    bot = gh.add_comment(12, f"{MARKER}\nold", "github-actions[bot]")
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    assert [r.method for r in gh.writes() if "comments" in r.path] == ["PATCH"]
    assert "old" not in bot["body"]


def test_transient_failures_are_retried(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    gh.faults.append(Fault("POST", "/comments", 502, {"message": "Server Error"}))
    gh.faults.append(
        Fault(
            "POST",
            run(["git", "rev-parse", "HEAD"], root).strip(),
            403,
            {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            },
            {"Retry-After": "1"},
        )
    )
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    # The create failed before taking effect: mlci looked again, then created it.
    assert [r.method for r in gh.requests if r.path.endswith("/comments")] == ["GET", "POST", "GET", "POST"]
    assert [r.method for r in gh.requests if "/statuses/" in r.path] == ["POST", "POST"]
    assert len(gh.comments[12]) == 1 and len(gh.statuses) == 1


def test_fork_pr_degrades_to_the_job_summary(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    forbidden = {
        "message": "Resource not accessible by integration",
        "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
    }
    gh.faults.append(Fault("POST", "/comments", 403, forbidden, times=10))
    # Not a fork: the same refusal is a misconfigured permissions block, and fails loudly.
    mine = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert mine.code == ExitCode.ERROR and "pull-requests: write" in mine.err
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, head_repo="fork/churn"))
    assert result.code == ExitCode.OK, result.err  # a fork's read-only token does not fail the job
    assert (
        "::warning::GitHub refused writing the comment on #12: 403 Resource not accessible by integration"
        in result.out
    )
    assert (tmp_path / "summary.md").read_text().startswith(MARKER)
    assert (root / ".mlci" / "report.md").exists()
    assert gh.statuses == []


def test_report_is_on_disk_when_github_is_down(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    monkeypatch.setenv("MLCI_GITHUB_RETRIES", "2")
    gh.faults.append(Fault("GET", "/comments", 503, {"message": "Service Unavailable"}, times=100))
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.ERROR
    assert "GitHub API" in result.err and "Traceback" not in result.err
    assert (root / ".mlci" / "report.md").read_text().startswith(MARKER)
    assert "mlci failed" in (tmp_path / "summary.md").read_text()
    assert len([r for r in gh.requests if r.path.endswith("/comments")]) == 3  # the first try and 2 retries


def test_github_enterprise_server_base_url(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with github_stub(prefix="/api/v3") as ghes:
        _actions_env(monkeypatch, tmp_path, ghes)
        root = project(tmp_path)
        result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
        assert result.code == ExitCode.OK, result.err
        assert ghes.base_url.endswith("/api/v3")
        assert len(ghes.comments[12]) == 1 and len(ghes.statuses) == 1


def test_push_registers_and_promotes(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    payload = tmp_path / "push.json"
    payload.write_text(
        json.dumps(
            {
                "ref": "refs/heads/staging",
                "before": "0" * 40,
                "after": head,
                "repository": {"full_name": "octo/churn"},
            }
        )
    )
    result = ci(cli, root, monkeypatch, "push", payload, "--json")
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert data["outcome"] == "promoted" and data["version"] == "v0.0.1" and data["environment"] == "staging"
    assert outputs(tmp_path)["version"] == "v0.0.1"
    remote = run(["git", "ls-remote", "--tags", "origin"], root)
    assert "refs/tags/demo@v0.0.1" in remote and "refs/tags/demo#staging#1" in remote
    # In Actions without a tracking server, the version's bytes go to a release
    # on its tag: a draft with the archive (its text the model card) before the tag
    # is pushed, published after; promotion checks the digest GitHub reported for
    # the upload, read once: 7 requests.
    rid = gh.releases[0]["id"]
    assert [(r.method, r.path) for r in gh.requests] == [
        ("GET", "/repos/octo/churn/actions/artifacts"),  # the run cache across branches: none
        ("POST", "/repos/octo/churn/releases"),  # no read first: a new tag has no published release
        ("POST", f"/uploads/repos/octo/churn/releases/{rid}/assets"),
        ("PATCH", f"/repos/octo/churn/releases/{rid}"),  # published: its answer is the release, kept
        # The gates passed: a deployment of the version's commit (no hook: no in_progress) ...
        ("POST", "/repos/octo/churn/deployments"),
        ("POST", "/repos/octo/churn/deployments/1/statuses"),  # ... success, once the tag is pushed
        ("POST", "/repos/octo/churn/dispatches"),  # and the workflows that listen hear of it
    ]
    (deployment,) = gh.deployments
    assert deployment["ref"] == head and deployment["environment"] == "staging"
    assert gh.requests[4].body == {
        "ref": head,
        "task": "deploy",
        "auto_merge": False,
        "required_contexts": [],
        "payload": {
            "model": "demo",
            "version": "v0.0.1",
            "tag": "demo@v0.0.1",
            "sha256": hashlib.sha256(gh.asset_bytes("demo@v0.0.1", "demo-v0.0.1.tar")).hexdigest(),
        },
        "environment": "staging",
        "description": "demo v0.0.1",
        "transient_environment": False,
        "production_environment": False,
    }
    assert [(s["state"], s["description"]) for s in gh.deployment_statuses] == [
        ("success", "demo v0.0.1 in staging"),
    ]
    assert gh.deployment_statuses[-1]["log_url"] == "https://github.example/octo/churn/actions/runs/4242"
    (dispatch,) = gh.dispatches
    assert dispatch["event_type"] == "mlci-promoted"
    assert dispatch["client_payload"] == {
        "model": "demo",
        "version": "v0.0.1",
        "environment": "staging",
        "tag": "demo@v0.0.1",
        "commit": head,
        "sha256": deployment["payload"]["sha256"],
        "environment_url": None,
    }
    release = gh.release_by_tag("demo@v0.0.1")
    assert release is not None and not release["draft"]
    assert [a["name"] for a in release["assets"]] == ["demo-v0.0.1.tar"]
    assert release["body"].startswith("# demo v0.0.1")  # the model card
    digest = hashlib.sha256(gh.asset_bytes("demo@v0.0.1", "demo-v0.0.1.tar")).hexdigest()
    tag_message = run(["git", "tag", "-l", "--format=%(contents)", "demo@v0.0.1"], root)
    compact = tag_message.replace(" ", "")
    assert f'"model_sha256":"{digest}"' in compact and '"store":"github"' in compact
    assert gh.requests[1].body["draft"] is True and gh.requests[3].body["draft"] is False
    again = ci(cli, root, monkeypatch, "push", payload, "--json")
    assert json.loads(again.out)["version"] == "v0.0.1"  # nothing new: same inputs, same version
    assert len(gh.deployments) == 1 and len(gh.dispatches) == 1  # nothing deployed, nobody told again


def test_other_events_and_actions_do_nothing(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    closed = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, action="closed"))
    assert closed.code == ExitCode.OK and "nothing for mlci to do" in closed.err
    issues = tmp_path / "issues.json"
    issues.write_text(json.dumps({"action": "opened", "issue": {"number": 1}}))
    other = ci(cli, root, monkeypatch, "issues", issues)
    assert other.code == ExitCode.OK and "event 'issues': nothing for mlci to do" in other.err
    feature = tmp_path / "push.json"
    feature.write_text(json.dumps({"ref": "refs/heads/feature", "before": "0" * 40, "after": "1" * 40}))
    assert "not an environment branch" in ci(cli, root, monkeypatch, "push", feature).err
    assert gh.requests == []


def test_local_replay_and_dry_run(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    result = cli("ci", "--event", "pull_request", "--base", "staging", "--pr", "5", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert result.out.startswith(MARKER) and "on #5" in result.out
    assert "not posting (no token)" in result.err
    assert "the status mlci/staging on" in result.err
    with github_stub() as gh:
        _actions_env(monkeypatch, tmp_path, gh)
        dry = cli("ci", "--event", "pull_request", "--base", "staging", "--pr", "5", "--dry-run", cwd=root)
        assert dry.code == ExitCode.OK and gh.requests == []
        pushed = cli("ci", "--event", "push", "--branch", "staging", "--dry-run", cwd=root)
        assert (
            pushed.code == ExitCode.OK
            and "would register these inputs and promote them to staging" in pushed.err
        )
        assert "demo@" not in run(["git", "tag"], root)
    missing = cli("ci", cwd=root)
    assert missing.code == ExitCode.ERROR and "no event" in missing.err


def test_demo_plays_the_whole_story(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("demo", str(tmp_path / "demo"))
    assert result.code == ExitCode.OK, result.err
    out = result.out
    assert "verdict for staging: pass" in out
    assert "verdict for staging: fail (the gate blocks the merge)" in out
    # Judged on the 95% interval, paired on the same test rows: a real regression.
    assert "95% CI [-8.8%, -1.8%]: beyond max_regression 1% at 95%" in out
    assert "churn v0.0.1 promoted to staging" in out
    assert "churn v0.0.1 promoted to production" in out
    # The data is reviewed like the code: a rescaled column drifts from staging's data.
    assert "verdict for staging: fail (the data drifted from staging's: the gate blocks it)" in out
    assert "| - ⚠️ `cancer` against staging v0.0.1: 569 → 569 rows (+0); mean_radius drifted (PSI" in out
    assert "| - ✅ `cancer`: 569 rows, 32 columns; its checks pass" in out
    assert (
        "| _No metrics to compare: nothing was trained, because the data drifted past its limits._" in out
    )  # no compute on it
    assert out.count("trained in") == 2  # the first model and the worse one; the rest is the run cache
    import re

    timings = re.findall(r"^   (\d)\. +\d+\.\ds  (.+)$", out, re.MULTILINE)  # per-step timings, at the end
    assert [n for n, _ in timings] == ["1", "2", "3", "4", "5", "6", "7"], out[-1500:]
    assert timings[0][1].startswith("Scaffold") and timings[1][1].startswith("Pull request #1")
    remote = run(["git", "ls-remote", "--tags", str(tmp_path / "demo" / "origin.git")], tmp_path)
    assert {"churn@v0.0.1", "churn#staging#1", "churn#production#2"} <= {
        line.split("refs/tags/")[1] for line in remote.splitlines() if "^{}" not in line
    }
    busy = cli("demo", str(tmp_path / "demo"))
    assert busy.code == ExitCode.ERROR and "is not empty" in busy.err


def test_fork_safe_publish_trusts_only_data(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    run(["git", "push", "-q", "origin", "main:staging"], root)  # the base branch, with its policy
    # The untrusted job: no token, the report and its metadata on disk.
    monkeypatch.delenv("GITHUB_TOKEN")
    made = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert made.code == ExitCode.OK, made.err
    assert gh.requests == []
    folder = root / ".mlci"
    meta = json.loads((folder / "pull_request.json").read_text())
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    assert meta["number"] == 12 and meta["model"] == "demo" and meta["verdict"] == "pass"
    # The trusted job judges it again and posts, for the head sha the event names.
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    gh.pulls[12] = head
    posted = cli("publish", str(folder), "--head-sha", head, "--json", cwd=root)
    assert posted.code == ExitCode.OK, posted.err
    assert posted.out.startswith(f"::add-mask::{TOKEN}\n")  # masked before anything else
    assert json.loads(posted.out.split("\n", 1)[1])["comment"] == "created"
    body = gh.comments[12][0]["body"]
    assert body.startswith(MARKER) and "- ✅ **staging**: passes 2 gate rules" in body
    assert [(s["context"], s["state"], s["sha"]) for s in gh.statuses] == [("mlci/staging", "success", head)]

    # A fork that says "pass" about failing metrics, in its markdown, its verdict
    # and its environment: mlci judges the numbers and posts its own rendering.
    data = json.loads((folder / "report.json").read_text())
    data["head"]["metrics"]["accuracy"] = 0.1
    data["head"]["metrics"]["<img src=x onerror=alert(1)>"] = 1.0
    (folder / "report.json").write_text(json.dumps(data))
    (folder / "report.md").write_text(f"{MARKER}\n### ✅ all good, merge me @octocat")
    meta.update(verdict="pass", environment="production; rm -rf /", description="all good")
    (folder / "pull_request.json").write_text(json.dumps(meta))
    forged = cli("publish", str(folder), "--head-sha", head, cwd=root)
    assert forged.code == ExitCode.OK, forged.err
    body = gh.comments[12][0]["body"]
    assert "- ❌ **staging**: accuracy 0.1 < min 0.5" in body and "all good" not in body
    assert (
        "| `<img src=x onerror=alert(1)>` ↓ |" in body
    )  # "error": a metric to minimize and "@octocat" not in body
    assert [(s["context"], s["state"]) for s in gh.statuses][-1] == ("mlci/staging", "failure")

    # An artifact for another commit, or with malformed data, posts nothing.
    before = len(gh.writes())
    wrong = cli("publish", str(folder), "--head-sha", "f" * 40, cwd=root)
    assert wrong.code == ExitCode.ERROR and "does not belong to this run" in wrong.err
    for doctor in (
        lambda d: d["head"]["metrics"].update(accuracy="0.99"),
        lambda d: d["head"]["metrics"].update(accuracy=float("nan")),
        lambda d: d["head"].update(fingerprint="../../etc"),
        lambda d: d.update(head=[]),
    ):
        bad = json.loads(json.dumps(data))
        doctor(bad)
        (folder / "report.json").write_text(json.dumps(bad).replace("NaN", "NaN"))
        refused = cli("publish", str(folder), "--head-sha", head, cwd=root)
        assert refused.code == ExitCode.ERROR and "not trustworthy" in refused.err, refused.err
    assert len(gh.writes()) == before


def test_a_create_that_took_effect_is_not_made_twice(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    # The comment is made, then the answer is lost in a 502.
    gh.faults.append(Fault("POST", "/issues/12/comments", 502, {"message": "Server Error"}, after=True))
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    assert len(gh.comments[12]) == 1  # not two
    assert [r.method for r in gh.requests if r.path.endswith("/comments")] == ["GET", "POST", "GET"]


def test_an_edit_is_retried_after_a_502(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    gh.add_comment(12, f"{MARKER}\nold", "github-actions[bot]")
    gh.faults.append(Fault("PATCH", "/issues/comments/1001", 502, {"message": "Server Error"}))
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    assert [r.method for r in gh.writes() if "comments" in r.path] == ["PATCH", "PATCH"]
    assert "old" not in gh.comments[12][0]["body"] and len(gh.statuses) == 1


@pytest.mark.parametrize("suffix", ["/issues/12/comments", "/statuses/"])
def test_a_404_is_an_error_with_the_hint(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState, suffix: str
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    method = "GET" if suffix.endswith("comments") else "POST"
    if method == "POST":
        suffix = run(["git", "rev-parse", "HEAD"], root).strip()
    gh.faults.append(Fault(method, suffix, 404, {"message": "Not Found"}, times=10))
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.ERROR
    assert "404 Not Found" in result.err and "(the repository octo/churn is there)" in result.err
    assert "::error::" in result.out and "::warning::" not in result.out


def test_an_app_token_edits_its_comment_on_the_second_run(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    gh.bot, gh.app = "my-app[bot]", "my-app"
    root = project(tmp_path)
    gh.add_comment(12, f"{MARKER}\nquoted by a person", "octocat")  # never taken over
    for accuracy in (0.9, 0.91):
        set_params(root, accuracy=accuracy)
        commit(root, f"accuracy {accuracy}")
        result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
        assert result.code == ExitCode.OK, result.err
    assert [r.method for r in gh.writes() if "comments" in r.path] == ["POST", "PATCH"]
    assert [c["user"]["login"] for c in gh.comments[12]] == ["octocat", "my-app[bot]"]
    assert gh.comments[12][0]["body"] == f"{MARKER}\nquoted by a person"
    assert not [r for r in gh.requests if r.path == "/user"]  # never asked: it is known to fail


def test_an_unchanged_report_is_not_written_again(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    for action in ("opened", "synchronize"):  # the second run's report says "reused from the run cache"
        first = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, action=action))
        assert first.code == ExitCode.OK, first.err
    # First run: artifacts lookup, the environment's reviewers, comments, create, status; then
    # the reviewers, comments, an edit and the status.
    assert len(gh.requests) == 5 + 4
    first_run = len(gh.requests)
    again = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, action="reopened"))
    assert again.code == ExitCode.OK, again.err
    rerun = gh.requests[first_run:]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in rerun] == [
        ("GET", "staging"),  # who approves staging (nobody here: the note is left out)
        ("GET", "comments"),
        ("POST", run(["git", "rev-parse", "HEAD"], root).strip()),
    ]  # 3 requests: no PATCH of the same body, and the run cache asks nothing
    assert len([r for r in gh.writes() if r.method == "PATCH"]) == 1  # the second run's, not the third's
    assert not (root / ".mlci" / "github-etags.json").exists()  # no cache a fresh runner would not have


def test_a_personal_token_finds_its_own_comments(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_personal")
    root = project(tmp_path)
    gh.add_comment(12, f"{MARKER}\nold", "someone-else")
    mine = gh.add_comment(12, f"{MARKER}\nold", "mlci-bot")
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    assert [r.path for r in gh.requests if r.path == "/user"] == ["/user"]
    assert [r.method for r in gh.writes() if "comments" in r.path] == ["PATCH"] and "old" not in mine["body"]


def test_publish_failures_reach_the_job_summary(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    (tmp_path / "empty").mkdir()
    result = cli("publish", str(tmp_path / "empty"), "--head-sha", "a" * 40, cwd=root)
    assert result.code == ExitCode.ERROR
    assert "::error::" in result.out and "mlci failed" in (tmp_path / "summary.md").read_text()


REVIEWERS = [
    {
        "id": 3755,
        "node_id": "MDQ6R2F0ZTM3NTU=",
        "type": "required_reviewers",
        "prevent_self_review": False,
        "reviewers": [
            {"type": "User", "reviewer": {"login": "alice", "id": 1, "type": "User"}},
            {"type": "Team", "reviewer": {"id": 2, "name": "ML leads", "slug": "ml-leads"}},
        ],
    },
    {"id": 3756, "node_id": "MDQ6R2F0ZTM3NTY=", "type": "wait_timer", "wait_timer": 30},
]


def test_a_passing_pull_request_says_who_approves_the_promotion(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    gh.environments["staging"] = REVIEWERS
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    body = gh.comments[12][0]["body"]
    assert (
        "_merging promotes only once alice, team ml-leads approve the deployment "
        "(required reviewers of the GitHub environment staging)_" in body
    )
    # A failing gate names nobody, and asks nothing.
    set_params(root, accuracy=0.4)
    commit(root, "worse")
    before = len(gh.requests)
    failed = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, action="synchronize"))
    assert failed.code == ExitCode.GATE_FAILED and "approve" not in gh.comments[12][0]["body"]
    assert not any("/environments/" in r.path for r in gh.requests[before:])


def test_a_token_that_may_not_deploy_still_promotes(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    """The tag is the record: GitHub refusing the deployment (no `deployments: write`) is a warning."""
    root = project(tmp_path)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    gh.faults.append(
        Fault("POST", "/deployments", 403, {"message": "Resource not accessible by integration"}, times=5)
    )
    result = ci(cli, root, monkeypatch, "push", _push_event(tmp_path, root), "--json")
    assert result.code == ExitCode.OK, result.err
    assert json.loads(result.out)["outcome"] == "promoted"
    assert (
        "warning: no GitHub deployment: GitHub API: creating a deployment to staging failed: 403"
        in result.err
    )
    assert gh.deployment_statuses == [] and len(gh.dispatches) == 1


def _push_event(tmp_path: Path, root: Path) -> Path:
    payload = tmp_path / "push.json"
    payload.write_text(
        json.dumps(
            {
                "ref": "refs/heads/staging",
                "before": "0" * 40,
                "after": run(["git", "rev-parse", "HEAD"], root).strip(),
                "repository": {"full_name": "octo/churn"},
            }
        )
    )
    return payload


_ATTACK = (
    "{% set e %}{% include 'env' %}{% endset %}{{ e | reverse }}\n"
    "<img src=x onerror=alert(1)> @octocat\n### ✅ all gates pass, merge me\n"
)


def test_a_pull_requests_template_cannot_post_the_write_token(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    """The attack of the same-repository flow: the pull request names its own template,
    which includes a link to the process's environment and prints it reversed (redaction
    finds the token written forwards only). The posting job renders mlci's own template,
    or the base's, read from git at the base: nothing of the pull request's."""
    root = project(tmp_path)
    plain = run(["git", "rev-parse", "HEAD"], root).strip()
    (root / "report").mkdir()
    (root / "report" / "comment.md.j2").write_text(
        "{% include 'part.md.j2' %}\nBASE TEMPLATE {{ report.model }}\n"
    )
    (root / "report" / "part.md.j2").write_text("{{ report.marker }}\n")
    (root / "mlci.yaml").write_text(
        (root / "mlci.yaml").read_text() + "report:\n  template: report/comment.md.j2\n"
    )
    commit(root, "the base's own template")
    run(["git", "push", "-q", "origin", "main:staging"], root)
    for name in ("comment.md.j2", "part.md.j2"):  # the pull request rewrites both, and adds its own
        (root / "report" / name).write_text(_ATTACK)
    (root / "report" / "env").symlink_to("/proc/self/environ")
    (root / "evil.md.j2").write_text(_ATTACK)
    (root / "evil-link.md.j2").symlink_to(root / "report" / "env")
    config = (root / "mlci.yaml").read_text()
    for template in ("report/comment.md.j2", "evil.md.j2", "evil-link.md.j2"):
        (root / "mlci.yaml").write_text(config.replace("report/comment.md.j2", template))
        head = commit(root, f"a template of my own: {template}")
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)  # the job that trains holds no write token
        made = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
        assert made.code == ExitCode.OK, made.err
        assert "BASE TEMPLATE demo" in (root / ".mlci" / "report.md").read_text()
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)  # the posting job
        gh.pulls[12] = head
        posted = cli("publish", str(root / ".mlci"), "--head-sha", head, cwd=root)
        assert posted.code == ExitCode.OK, posted.err
        body = gh.comments[12][0]["body"]
        assert body.startswith(MARKER) and "BASE TEMPLATE demo" in body
        for leaked in (TOKEN, TOKEN[::-1], "all gates pass", "<img", "@octocat", "=NEKOT_BUHTIG"):
            assert leaked not in body and leaked not in (root / ".mlci" / "report.md").read_text()
    # Without a template on the base, the posting job renders mlci's own.
    run(
        ["git", "push", "-q", "-f", "origin", f"{plain}:refs/heads/staging"], root
    )  # a base with no report.template
    (root / "mlci.yaml").write_text(config.replace("report/comment.md.j2", "evil.md.j2"))
    head = commit(root, "only the pull request names a template")
    monkeypatch.delenv("GITHUB_TOKEN")
    assert ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root)).code == ExitCode.OK
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    gh.pulls[12] = head
    posted = cli("publish", str(root / ".mlci"), "--head-sha", head, cwd=root)
    assert posted.code == ExitCode.OK, posted.err
    body = gh.comments[12][0]["body"]
    assert "### " in body and "staging" in body and TOKEN[::-1] not in body and "@octocat" not in body
    assert "BASE TEMPLATE" not in body  # mlci's built-in template


def test_a_template_link_is_refused_on_a_laptop_and_on_the_base(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    (root / "env").symlink_to("/proc/self/environ")
    (root / "t.md.j2").write_text("{% include 'env' %}")
    (root / "mlci.yaml").write_text((root / "mlci.yaml").read_text() + "report:\n  template: t.md.j2\n")
    result = cli("report", cwd=root)
    assert result.code == ExitCode.ERROR and "is a symbolic link, which mlci never follows" in result.err
    commit(root, "a link on the base branch")
    run(["git", "push", "-q", "origin", "main:staging"], root)
    from mlci import config as cfg
    from mlci.errors import ConfigError
    from mlci.usecases import review

    loaded = cfg.load(root / "mlci.yaml")
    source = review.base_template(loaded, loaded, "staging")
    assert source is not None
    with pytest.raises(ConfigError, match="env at origin/staging is a symbolic link"):
        source.read("env")
