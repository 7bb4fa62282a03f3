"""One GitHub client (mlci/github_api.py), checked against the local stand-in of
GitHub's REST API (tests/github_stub.py): request budgets by count, GitHub's
documented headers on every request, creates that survive a lost answer, the same
hint on every path, rate limits as GitHub documents them, GitHub Enterprise Server.

Each event runs as GitHub Actions runs it: every job a fresh clone (no ``.mlci``),
its own process's reads (``github_api.forget`` between jobs, as ``mlci.cli.main``
does)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mlci import github_api
from mlci.errors import ExitCode
from tests.github_helpers import TOKEN, actions_env, ci, cold_clone, outputs, pr_event, push_payload
from tests.github_stub import Fault, GitHubState, Request, github_stub
from tests.helpers import run
from tests.lifecycle import commit, project

HOOK = """\
import os, sys
if sys.argv[1] == "deploy":
    print(f"environment_url: http://127.0.0.1:8911/{os.environ['MLCI_MODEL_VERSION']}")
"""

# What a job may send, by count: the budgets the README states.
PULL_REQUEST_FIRST_RUN = 5
PULL_REQUEST_RERUN = 3
PUSH_REGISTER_AND_PROMOTE = 12
PULL = 3


def _documented(requests: list[Request]) -> None:
    """GitHub's documented headers on every request to the API and uploads hosts; none
    of the token at the storage host a download is redirected to."""
    for request in requests:
        if request.storage:
            assert "authorization" not in request.headers, request.path
            continue
        assert request.headers["authorization"] == f"Bearer {TOKEN}", request.path
        assert request.headers["x-github-api-version"] == "2022-11-28", request.path
        assert request.headers["user-agent"].startswith("mlci/"), request.path
        accept = request.headers["accept"]
        assert accept in ("application/vnd.github+json", "application/octet-stream"), (request.path, accept)


def _once_each(requests: list[Request]) -> None:
    """Each resource read once per process."""
    reads = Counter(
        (r.path, json.dumps(r.query, sort_keys=True)) for r in requests if r.method == "GET" and not r.storage
    )
    assert [key for key, n in reads.items() if n > 1] == []


def _job(
    cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gh: GitHubState,
    root: Path,
    event: str,
    payload: Path,
    *args: str,
    once: bool = True,
):  # type: ignore[no-untyped-def]
    """One job of an event: its own process's reads, its requests checked (``once``:
    each resource read once; a lost create's lookup reads again, by design)."""
    github_api.forget()
    (tmp_path / "output.txt").write_text("")
    start = len(gh.requests)
    result = ci(cli, root, monkeypatch, event, payload, *args)
    sent = gh.requests[start:]
    _documented(sent)
    if once:
        _once_each(sent)
    return result, sent


def _with_hook(root: Path) -> None:
    (root / "hook.py").write_text(HOOK)
    config = root / "mlci.yaml"
    hook = f"    deploy:\n      command: {sys.executable} hook.py deploy\n      smoke: {sys.executable} hook.py smoke\n"
    config.write_text(config.read_text().replace("  production:\n", "  production:\n" + hook, 1))
    commit(root, "a deploy hook for production")


def _published(gh: GitHubState, count: int) -> None:
    """``count`` releases of other versions, published before (as a long-lived repository has)."""
    for n in range(count):
        gh.next_id += 1
        gh.releases.append(
            {
                "id": gh.next_id,
                "tag_name": f"demo@v0.1.{n}",
                "name": f"demo v0.1.{n}",
                "body": "",
                "draft": False,
                "prerelease": False,
                "html_url": f"https://github.example/octo/churn/releases/tag/demo@v0.1.{n}",
                "assets": [],
            }
        )


# --------------------------------------------------------------------------- budgets, by count


def test_a_pull_request_stays_within_its_budget(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        root = project(tmp_path)
        event = pr_event(tmp_path, root)
        first, sent = _job(cli, tmp_path, monkeypatch, gh, root, "pull_request", event)
        assert first.code == ExitCode.OK, first.err
        assert len(sent) <= PULL_REQUEST_FIRST_RUN, [(r.method, r.path) for r in sent]
        # The second run's comment says the run came from the run cache: it is edited once.
        second, _ = _job(cli, tmp_path, monkeypatch, gh, root, "pull_request", event)
        assert second.code == ExitCode.OK, second.err
        again, sent = _job(cli, tmp_path, monkeypatch, gh, root, "pull_request", event)
        assert again.code == ExitCode.OK, again.err
        assert [r.method for r in sent if r.path.endswith("/comments")] == ["GET"]  # unchanged: not written
        assert len(sent) <= PULL_REQUEST_RERUN, [(r.method, r.path) for r in sent]


@pytest.mark.parametrize("releases", [0, 150])
def test_a_push_that_registers_and_promotes_stays_within_its_budget_whatever_the_releases(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, releases: int
) -> None:  # type: ignore[no-untyped-def]
    """Finding a new version's release costs nothing however many releases exist:
    no read of the tag before the create, no listing of every release."""
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        _published(gh, releases)
        root = project(tmp_path)
        run(["git", "checkout", "-q", "-b", "staging"], root)
        run(["git", "push", "-q", "origin", "staging"], root)
        job = cold_clone(tmp_path, "staging", "job")
        head = run(["git", "rev-parse", "HEAD"], job).strip()
        result, sent = _job(
            cli, tmp_path, monkeypatch, gh, job, "push", push_payload(tmp_path, "staging", head)
        )
        assert result.code == ExitCode.OK, result.err
        assert outputs(tmp_path)["version"] == "v0.0.1"
        assert len(sent) <= PUSH_REGISTER_AND_PROMOTE, [(r.method, r.path) for r in sent]
        assert len(sent) == 7 and not [r for r in sent if r.path.endswith("/releases") and r.method == "GET"]
        assert len(gh.releases) == releases + 1


def test_a_production_push_with_a_hook_and_a_pull_stay_within_their_budgets(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The reusable workflow's jobs of a push to production with a deploy hook (publish,
    deploy, assign), then ``mlci pull`` on a laptop: each request documented, each
    resource read once per job, the token never sent to the storage host."""
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        root = project(tmp_path)
        _with_hook(root)
        run(["git", "checkout", "-q", "-b", "staging"], root)
        run(["git", "push", "-q", "origin", "staging"], root)
        head = run(["git", "rev-parse", "HEAD"], root).strip()
        staged, _ = _job(
            cli,
            tmp_path,
            monkeypatch,
            gh,
            cold_clone(tmp_path, "staging", "s"),
            "push",
            push_payload(tmp_path, "staging", head),
        )
        assert staged.code == ExitCode.OK, staged.err
        run(["git", "checkout", "-q", "-b", "production"], root)
        run(["git", "push", "-q", "origin", "production"], root)
        payload = push_payload(tmp_path, "production", head)
        args = ("--event", "push", "--stage")
        published, sent = _job(
            cli,
            tmp_path,
            monkeypatch,
            gh,
            cold_clone(tmp_path, "production", "p1"),
            "push",
            payload,
            *args,
            "publish",
        )
        assert published.code == ExitCode.OK, published.err
        handed = outputs(tmp_path)
        assert handed["deploy-hook"] == "true" and handed["deployment-id"]
        # The version's bytes (1 + a redirected download), the deployment and its in_progress.
        assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in sent if not r.storage] == [
            ("GET", "demo%40v0.0.1"),
            ("GET", sent[1].path.rsplit("/", 1)[-1]),
            ("POST", "deployments"),
            ("POST", "statuses"),
        ]
        monkeypatch.setenv("MLCI_VERSION", handed["version"])
        monkeypatch.setenv("MLCI_DEPLOYMENT_ID", handed["deployment-id"])
        deployed, sent = _job(
            cli,
            tmp_path,
            monkeypatch,
            gh,
            cold_clone(tmp_path, "production", "p2"),
            "push",
            payload,
            *args,
            "deploy",
        )
        assert deployed.code == ExitCode.OK, deployed.err
        assert len(sent) == 3, [(r.method, r.path) for r in sent]  # the release, its archive (2)
        assert all(r.method == "GET" for r in sent)  # the deploy job's token writes nothing
        handover = outputs(tmp_path)
        monkeypatch.setenv("MLCI_DEPLOYED", handover["deployed"])
        monkeypatch.setenv("MLCI_ENVIRONMENT_URL", handover["environment-url"])
        assigned, sent = _job(
            cli,
            tmp_path,
            monkeypatch,
            gh,
            cold_clone(tmp_path, "production", "p3"),
            "push",
            payload,
            *args,
            "assign",
        )
        assert assigned.code == ExitCode.OK, assigned.err
        assert len(sent) == 5, [(r.method, r.path) for r in sent]  # and success, mlci-promoted
        assert [s["state"] for s in gh.deployment_statuses if s["environment"] == "production"] == [
            "in_progress",
            "success",
        ]
        assert [d["client_payload"]["environment"] for d in gh.dispatches] == ["staging", "production"]

        monkeypatch.delenv("GITHUB_ACTIONS")
        github_api.forget()
        start = len(gh.requests)
        pulled = cli(
            "pull",
            "demo#production",
            "--output",
            str(tmp_path / "m"),
            cwd=cold_clone(tmp_path, "production", "laptop"),
        )
        assert pulled.code == ExitCode.OK, pulled.err
        sent = gh.requests[start:]
        _documented(sent)
        assert len(sent) <= PULL and [r.storage for r in sent] == [False, False, True]


# --------------------------------------------------------------------------- a create whose answer is lost


def _push(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState) -> tuple[Any, Path]:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    result, _ = _job(
        cli,
        tmp_path,
        monkeypatch,
        gh,
        root,
        "push",
        push_payload(tmp_path, "staging", head),
        "--json",
        once=False,
    )
    return result, root


LOST = {"message": "Server Error"}


@pytest.mark.parametrize(
    ("suffix", "count"),
    [
        ("/releases", lambda gh: len(gh.releases)),
        ("/assets", lambda gh: sum(len(r["assets"]) for r in gh.releases)),
        ("/deployments", lambda gh: len(gh.deployments)),
        ("/deployments/1/statuses", lambda gh: len(gh.deployment_statuses)),
        ("/dispatches", lambda gh: len(gh.dispatches)),
    ],
)
def test_a_create_that_took_effect_before_its_answer_was_lost_is_made_once(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, count: Any
) -> None:  # type: ignore[no-untyped-def]
    """A 502 after the create took effect: the create's lookup finds it, nothing is made
    twice, and the job is green."""
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        gh.faults.append(Fault("POST", suffix, 502, LOST, after=True))
        result, _ = _push(cli, tmp_path, monkeypatch, gh)
        assert result.code == ExitCode.OK, result.err
        assert json.loads(result.out)["outcome"] == "promoted"
        assert count(gh) == 1
        assert not any(r["draft"] for r in gh.releases)
        if suffix == "/dispatches":  # GitHub lists no dispatches: never sent twice, said so
            assert "it may or may not have been sent" in result.err


def test_a_release_someone_published_on_the_tag_is_never_taken_over(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """No read before the create: GitHub's 422 already_exists says it, and nothing is left."""
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        _published(gh, 1)
        gh.releases[0]["tag_name"] = "demo@v0.0.1"
        result, root = _push(cli, tmp_path, monkeypatch, gh)
        assert result.code == ExitCode.ERROR
        assert "octo/churn has a published release on demo@v0.0.1 already" in result.err
        assert "a version name is never reused" in result.err
        assert len(gh.releases) == 1 and not gh.deployments
        assert "demo@v0.0.1" not in run(["git", "ls-remote", "--tags", "origin"], root)


def test_a_lost_comment_and_status_are_made_once(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        root = project(tmp_path)
        head = run(["git", "rev-parse", "HEAD"], root).strip()
        gh.faults.append(Fault("POST", "/issues/12/comments", 502, LOST, after=True))
        gh.faults.append(Fault("POST", f"/statuses/{head}", 502, LOST, after=True))
        result, _ = _job(
            cli, tmp_path, monkeypatch, gh, root, "pull_request", pr_event(tmp_path, root), once=False
        )
        assert result.code == ExitCode.OK, result.err
        assert len(gh.comments[12]) == 1 and len(gh.statuses) == 1


def test_a_lost_create_not_made_is_sent_again_once(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A 502 before the create took effect: the lookup finds nothing, it is sent again."""
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        gh.faults.append(Fault("POST", "/releases", 502, LOST))
        gh.faults.append(Fault("POST", "/assets", 502, LOST))
        result, _ = _push(cli, tmp_path, monkeypatch, gh)
        assert result.code == ExitCode.OK, result.err
        assert len(gh.releases) == 1 and len(gh.releases[0]["assets"]) == 1
        posts = [r.path.rsplit("/", 1)[-1] for r in gh.requests if r.method == "POST" and "release" in r.path]
        assert posts == ["releases", "releases", "assets", "assets"]


# --------------------------------------------------------------------------- the same hint on every path


def _client(gh: GitHubState, *, api_url: str | None = None, **kw: Any) -> github_api.GitHubApi:
    github_api.forget()
    return github_api.GitHubApi(TOKEN, api_url or gh.base_url, "octo/churn", retries=2, backoff=0.0, **kw)


def _release(api: github_api.GitHubApi) -> github_api.ReleaseInfo:
    return api.create_draft_release("demo@v0.0.9", "demo v0.0.9", "card")


# Each path mlci calls, as (name, the call, the path suffix its first request ends with, method).
PATHS: list[tuple[str, Any, str, str]] = [
    (
        "comment",
        lambda api, tmp: api.upsert_comment(12, "<!-- m -->\nbody", "<!-- m -->"),
        "/issues/12/comments",
        "GET",
    ),
    (
        "status",
        lambda api, tmp: api.set_status("a" * 40, "mlci/staging", "success", "ok", None),
        "/statuses/" + "a" * 40,
        "POST",
    ),
    ("pull", lambda api, tmp: api.pull(12), "/pulls/12", "GET"),
    (
        "release",
        lambda api, tmp: api.create_draft_release("demo@v0.0.1", "demo", "card"),
        "/releases",
        "POST",
    ),
    (
        "asset",
        lambda api, tmp: api.upload_asset(_release(api), str(tmp), "m.tar", "application/x-tar"),
        "/assets",
        "POST",
    ),
    ("artifacts", lambda api, tmp: api.artifacts("mlci-run-demo-x"), "/actions/artifacts", "GET"),
    (
        "deployment",
        lambda api, tmp: api.create_deployment("a" * 40, "staging", {"tag": "t"}, "d", production=False),
        "/deployments",
        "POST",
    ),
    ("dispatch", lambda api, tmp: api.dispatch("mlci-promoted", {}), "/dispatches", "POST"),
]

SECONDARY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}


@pytest.mark.parametrize(("name", "call", "suffix", "method"), PATHS, ids=[p[0] for p in PATHS])
@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (401, {"message": "Bad credentials"}, "the token was rejected: check GITHUB_TOKEN"),
        (403, {"message": "Resource not accessible by integration"}, "grant the job `"),
        (
            422,
            {"message": "Validation Failed", "errors": [{"code": "invalid"}]},
            "GitHub refused the request's content",
        ),
        (403, SECONDARY, "GitHub's rate limit: re-run the job later"),
        (502, {"message": "Server Error"}, "GitHub may be unavailable"),
    ],
    ids=["401", "403", "422", "secondary", "5xx"],
)
def test_each_failure_gives_the_same_hint_on_every_path(
    tmp_path: Path,
    name: str,
    call: Any,
    suffix: str,
    method: str,
    status: int,
    body: dict[str, Any],
    says: str,
) -> None:
    waits: list[float] = []
    (tmp_path / "m.tar").write_bytes(b"x" * 10)
    with github_stub() as gh:
        gh.faults.append(Fault(method, suffix, status, body, times=100))
        api = _client(gh, sleep=waits.append, max_wait=150)
        with pytest.raises(github_api.GitHubError) as caught:
            call(api, tmp_path / "m.tar")
    error = caught.value
    if name == "dispatch" and status == 502:  # a dispatch is never sent twice
        assert "it may or may not have been sent" in error.message
        return
    if method == "POST" and status == 502:  # a create: looked for, sent again once
        assert "failed twice without an answer (and it was not made)" in error.message
        return
    assert says in (error.hint or ""), (error.message, error.hint)
    if status == 403 and body is not SECONDARY:
        permission = {
            "comment": "pull-requests: read",
            "status": "statuses: write",
            "pull": "pull-requests: read",
            "release": "contents: write",
            "asset": "contents: write",
            "artifacts": "actions: read",
            "deployment": "deployments: write",
            "dispatch": "contents: write",
        }[name]
        assert f"grant the job `{permission}`" in (error.hint or "")
    if body is SECONDARY:  # at least a minute each time, within the bound the message states
        assert waits == [60.0, 60.0] and "waited 120 s of the 150 s mlci waits in all" in error.message


def test_a_403_names_the_permission_github_says_it_accepts(tmp_path: Path) -> None:
    with github_stub() as gh:
        refused = {"X-Accepted-GitHub-Permissions": "contents=write"}
        gh.faults.append(Fault("POST", "/releases", 403, {"message": "Resource not accessible"}, refused))
        with pytest.raises(github_api.GitHubError) as caught:
            _client(gh).create_draft_release("demo@v0.0.1", "demo", "card")
    assert "(GitHub accepts: contents=write): grant the job `contents: write`" in (caught.value.hint or "")


@pytest.mark.parametrize(("name", "call", "suffix", "method"), PATHS, ids=[p[0] for p in PATHS])
def test_a_404_says_what_is_missing_or_that_the_url_is_wrong(
    tmp_path: Path, name: str, call: Any, suffix: str, method: str
) -> None:
    (tmp_path / "m.tar").write_bytes(b"x" * 10)
    with github_stub() as gh:
        wrong = _client(gh, api_url=gh.base_url + "/v3")  # not the API's root: every path answers 404
        with pytest.raises(github_api.GitHubError) as caught:
            call(wrong, tmp_path / "m.tar")
        assert "check GITHUB_API_URL" in (caught.value.hint or ""), caught.value
        gh.faults.append(Fault(method, suffix, 404, {"message": "Not Found"}, times=100))
        with pytest.raises(github_api.GitHubError) as caught:
            call(_client(gh), tmp_path / "m.tar")
        assert "(the repository octo/churn is there)" in (caught.value.hint or ""), caught.value


def test_a_404_from_the_run_cache_is_an_error_not_training(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        monkeypatch.setenv("GITHUB_API_URL", gh.base_url + "/v3")
        root = project(tmp_path)
        result, _ = _job(cli, tmp_path, monkeypatch, gh, root, "pull_request", pr_event(tmp_path, root))
        assert result.code == ExitCode.ERROR
        assert "listing the artifacts named" in result.err and "check GITHUB_API_URL" in result.err
        assert "training with" not in result.out + result.err  # the training command never ran


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),  # GitHub says how long
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}, 31.0),  # until the reset (now: 1000)
        ({}, 60.0),  # a secondary limit without either: at least a minute
    ],
)
def test_rate_limits_are_waited_for_as_github_documents(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], expected: float
) -> None:
    monkeypatch.setattr(github_api, "_now", lambda: 1000.0)
    waits: list[float] = []
    with github_stub() as gh:
        gh.faults.append(
            Fault("POST", "/comments", 403, {"message": "API rate limit exceeded"}, headers, times=1)
        )
        made = _client(gh, sleep=waits.append).upsert_comment(12, "<!-- m -->\nbody", "<!-- m -->")
        assert made.action == "created" and len(gh.comments[12]) == 1  # a limit means it was not made
    assert waits == [expected]


def test_a_reset_beyond_the_bound_fails_at_once_and_says_when(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github_api, "_now", lambda: 1000.0)
    waits: list[float] = []
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(1000 + 3600)}
    with github_stub() as gh:
        gh.faults.append(Fault("GET", "/pulls/12", 403, {"message": "API rate limit exceeded"}, limited))
        with pytest.raises(github_api.GitHubError) as caught:
            _client(gh, sleep=waits.append, max_wait=600).pull(12)
    assert waits == [] and "the next try would have waited 3601 s" in caught.value.message


# --------------------------------------------------------------------------- GitHub Enterprise Server


@pytest.mark.parametrize(
    ("api", "uploads"),
    [
        ("https://api.github.com", "https://uploads.github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/uploads"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/uploads"),
        ("https://api.octo.ghe.com", "https://uploads.octo.ghe.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/uploads"),
    ],
)
def test_the_uploads_host_comes_from_the_api_url(api: str, uploads: str) -> None:
    assert github_api.uploads_url(api) == uploads


def test_github_enterprise_server_registers_promotes_and_pulls(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """``GITHUB_API_URL=https://HOST/api/v3``: the API under /api/v3, uploads under
    /api/uploads (never the release's ``upload_url``), downloads from storage."""
    with github_stub(prefix="/api/v3") as gh:
        actions_env(monkeypatch, tmp_path, gh)
        assert gh.base_url.endswith("/api/v3")
        result, _ = _push(cli, tmp_path, monkeypatch, gh)
        assert result.code == ExitCode.OK, result.err
        raw = [r.raw_path for r in gh.requests]
        assert all(p.startswith(("/api/v3/", "/api/uploads/")) for p in raw), raw
        assert [p for p in raw if "/assets" in p] == [
            f"/api/uploads/repos/octo/churn/releases/{gh.releases[0]['id']}/assets"
        ]
        monkeypatch.delenv("GITHUB_ACTIONS")
        github_api.forget()
        start = len(gh.requests)
        run(["git", "push", "-q", "origin", "staging"], tmp_path / "project")
        pulled = cli(
            "pull",
            "demo#staging",
            "--output",
            str(tmp_path / "m"),
            cwd=cold_clone(tmp_path, "staging", "laptop"),
        )
        assert pulled.code == ExitCode.OK, pulled.err
        _documented(gh.requests[start:])


# --------------------------------------------------------------------------- the scaffold, job by job


def _bundle(gh: GitHubState, out: dict[str, str]) -> None:
    """What the train job's upload-artifact step makes of its run bundle (this run: 4242)."""
    if out.get("run-artifact"):
        folder = Path(out["run-bundle"])
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        gh.add_artifact(out["run-artifact"], files, run_id=4242, event="push")


@pytest.mark.slow
def test_the_scaffold_reads_each_resource_once_per_job(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """`mlci init`'s project keeps predictions and a data profile with each version: the
    reusable workflow's train and promote jobs of two pushes to staging, then the
    pull request's train and publish jobs, each read what they compare with once."""
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        monkeypatch.delenv("GITHUB_ACTIONS")
        assert cli("init", "churn", "--git", cwd=tmp_path).code == ExitCode.OK
        root = tmp_path / "churn"
        run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "remote.git")], tmp_path)
        run(["git", "remote", "add", "origin", str(tmp_path / "remote.git")], root)
        run(["git", "push", "-q", "origin", "HEAD:refs/heads/main", "HEAD:refs/heads/staging"], root)
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        run(["git", "checkout", "-q", "staging"], root)
        counts = []
        for n, c in enumerate(("0.5", "0.3")):
            params = root / "params.yaml"
            params.write_text(params.read_text().replace("C: 1.0", f"C: {c}").replace("C: 0.5", f"C: {c}"))
            head = commit(root, f"C {c}")
            run(["git", "push", "-q", "origin", "staging"], root)
            payload = push_payload(tmp_path, "staging", head)
            args = ("--event", "push", "--stage")
            trained, sent = _job(
                cli,
                tmp_path,
                monkeypatch,
                gh,
                cold_clone(tmp_path, "staging", f"t{n}"),
                "push",
                payload,
                *args,
                "train",
            )
            assert trained.code == ExitCode.OK, trained.err
            _bundle(gh, outputs(tmp_path))
            promoted, more = _job(
                cli,
                tmp_path,
                monkeypatch,
                gh,
                cold_clone(tmp_path, "staging", f"p{n}"),
                "push",
                payload,
                *args,
                "publish",
            )
            assert promoted.code == ExitCode.OK, promoted.err
            assert not [
                r for r in more if r.path.endswith("/actions/runs/4242")
            ]  # this run's artifact: trusted
            counts.append((len(sent), len(more)))
        # First version: the artifact lookup; then its download (a redirect and the zip),
        # register (the draft, 3 uploads, publish), promote (deployment, success, dispatch).
        # Second: staging's version's release and its 2 kept files (2 requests each), once a job.
        assert counts == [(1, 11), (6, 16)], counts


def test_doctor_finds_a_release_left_a_draft_after_its_tag_was_pushed(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The tag is pushed and publishing failed: the tag's release is found among the
    drafts (the tag's own endpoint answers only published ones), and named."""
    with github_stub() as gh:
        actions_env(monkeypatch, tmp_path, gh)
        result, root = _push(cli, tmp_path, monkeypatch, gh)
        assert result.code == ExitCode.OK, result.err
        run(["git", "push", "-q", "origin", "staging"], root)
        gh.releases[0]["draft"] = True
        monkeypatch.delenv("GITHUB_ACTIONS")
        github_api.forget()
        report = cli("doctor", "--json", cwd=cold_clone(tmp_path, "staging", "laptop"))
        problems = {p["kind"]: p["message"] for p in json.loads(report.out)["problems"]}
        assert "its release is still a draft" in problems["release_draft"], problems


SHA = "b" * 40


@pytest.mark.parametrize(
    ("suffix", "create", "count"),
    [
        (
            f"/statuses/{SHA}",
            lambda api: api.set_status(SHA, "mlci/staging", "success", "ok", None),
            lambda gh: len(gh.statuses),
        ),
        (
            "/issues/12/comments",
            lambda api: api.upsert_comment(12, "<!-- m -->\nbody", "<!-- m -->"),
            lambda gh: len(gh.comments.get(12, [])),
        ),
        (
            "/deployments",
            lambda api: api.create_deployment(SHA, "staging", {"tag": "t"}, "d", production=False),
            lambda gh: len(gh.deployments),
        ),
        (
            "/releases",
            lambda api: api.create_draft_release("demo@v0.0.1", "demo", "card"),
            lambda gh: len(gh.releases),
        ),
    ],
    ids=["status", "comment", "deployment", "release"],
)
def test_each_lookup_reads_afresh(suffix: str, create: Any, count: Any) -> None:
    """The first answer lost before the create took effect, the second after: the second
    lookup must not answer from the first one's read."""
    with github_stub() as gh:
        gh.faults.append(Fault("POST", suffix, 502, LOST))
        gh.faults.append(Fault("POST", suffix, 502, LOST, after=True))
        create(_client(gh))
        assert count(gh) == 1


# --------------------------------------------------------------------------- hostile answers


KEYS = [
    "id",
    "name",
    "assets",
    "artifacts",
    "tag_name",
    "head",
    "base",
    "sha",
    "ref",
    "body",
    "user",
    "type",
    "login",
    "protection_rules",
    "reviewers",
    "reviewer",
    "size",
    "digest",
    "state",
    "draft",
    "workflow_run",
    "event",
    "repository",
    "full_name",
    "head_repository",
    "html_url",
    "expired",
    "payload",
    "slug",
]


def _answers():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
        ),
        max_leaves=25,
    )


# (method, path suffix, the call); for a create's lookup, the create's own answer is lost first.
LOOKUP_FIRST = {
    "/commits/" + "a" * 40 + "/statuses": ("POST", "/statuses/" + "a" * 40),
    "/deployments/1/statuses": ("POST", "/deployments/1/statuses"),
}
CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/releases/tags/demo%40v0.0.1", lambda api: api.release("demo@v0.0.1")),
    ("GET", "/actions/artifacts", lambda api: api.artifacts("mlci-run-demo-x")),
    ("GET", "/actions/runs/7", lambda api: api.workflow_run(7)),
    ("GET", "/issues/12/comments", lambda api: api.upsert_comment(12, "<!-- m -->\nbody", "<!-- m -->")),
    ("GET", "/pulls/12", lambda api: api.pull(12)),
    ("GET", "/environments/staging", lambda api: api.environment_reviewers("staging")),
    (
        "POST",
        "/deployments",
        lambda api: api.create_deployment("a" * 40, "staging", {"tag": "t"}, "d", production=False),
    ),
    ("POST", "/releases", lambda api: api.create_draft_release("demo@v0.0.1", "demo", "card")),
    (
        "GET",
        "/commits/" + "a" * 40 + "/statuses",
        lambda api: api.set_status("a" * 40, "c", "success", "d", None),
    ),
    ("GET", "/deployments/1/statuses", lambda api: api.deployment_status(1, "success", "d")),
]


def test_any_answer_github_could_send_is_read_or_refused_clearly() -> None:
    """What the API answers is input: any JSON in a 200 gives a result or a GitHubError,
    never another exception (a traceback in a job)."""
    from hypothesis import HealthCheck, given, settings

    with github_stub() as gh:

        @settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
        @given(answer=_answers(), which=st_index())
        def check(answer: Any, which: int) -> None:
            method, suffix, call = CALLS[which]
            gh.faults[:] = [Fault(method, suffix, 200 if method == "GET" else 201, answer, times=10)]
            if suffix in LOOKUP_FIRST:
                lost_method, lost_suffix = LOOKUP_FIRST[suffix]
                gh.faults.insert(0, Fault(lost_method, lost_suffix, 502, LOST, times=10))
            with contextlib.suppress(github_api.GitHubError):
                call(_client(gh))

        check()


def st_index():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    return st.integers(min_value=0, max_value=len(CALLS) - 1)
