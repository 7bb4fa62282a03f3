"""Gates a pull request cannot bend: the base branch's policy, order before the
merge, and strings a pull request controls rendered inert."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from mlci import policy, render
from mlci import report as rpt
from mlci.errors import ExitCode
from tests.github_helpers import ci, pr_event
from tests.github_stub import GitHubState
from tests.helpers import run
from tests.lifecycle import commit, ok, project, set_params
from tests.report_parts import CONFIG, HEAD, PRODUCTION, STAGING, golden

# --------------------------------------------------------------------------- hostile strings

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "a|b",
    "tick`tock",
    "--> <!-- mlci:report model=other -->",
    "@octocat",
    "line\nbreak",
    "```",
    "[link](https://evil.example)",
]


def _hostile_report() -> rpt.Report:
    metrics = {name: 0.5 + i / 100 for i, name in enumerate(HOSTILE)}
    head = dataclasses.replace(
        HEAD,
        metrics={**HEAD.metrics, **metrics},
        params={name: f"value {name}" for name in HOSTILE},
        branch="feature/<script>@octocat`|",
        label="PR #12",
    )
    staging = dataclasses.replace(STAGING, metrics={**STAGING.metrics, **metrics}, params={"a|b": "1"})
    config = dataclasses.replace(CONFIG, report=dataclasses.replace(CONFIG.report, key_metric=HOSTILE[0]))
    report = rpt.build(config, head, [staging, PRODUCTION], history=[("v0.0.1", 0.5)], pr=12)
    change = policy.Change(f"staging · {HOSTILE[0]}", "min", "0.9", "`0.1`|@octocat")
    return dataclasses.replace(
        report, policy_from="staging", policy_changes=(change,), notes=("@octocat <b>x</b>",)
    )


def test_hostile_names_and_values_render_inert() -> None:
    text = render.render_report(_hostile_report(), "markdown")
    golden("comment_hostile.md", text)
    # The marker opens the comment, and nothing else can pose as one.
    assert text.startswith("<!-- mlci:report model=churn -->\n")
    assert [line for line in text.splitlines() if line.startswith("<!--")] == [text.splitlines()[0]]
    # Outside code spans (where GitHub renders text literally and never mentions),
    # no HTML tag, no mention, no second marker.
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "CODE", text.split("\n", 1)[1])
    for bad in ("<img", "<script", "<b>", "<!--", "@octocat", "](https://evil"):
        assert bad not in prose, (bad, prose)
    # Every table row has as many cells as the header: no pipe escaped its cell.
    rows = [line for line in text.splitlines() if line.startswith("|")]
    widths = {len(re.findall(r"(?<!\\)\|", line)) for line in rows}
    assert len(widths) == 1, rows
    mermaid = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    init, *chart = mermaid.splitlines()
    assert init == '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "#2f81f7"}}}}%%'
    assert all(re.fullmatch(r'[ \w"\[\],.#:+/=>\-]*', line) for line in chart), mermaid


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "`plain`"),
        ("a|b", "`a\\|b`"),
        ("x`y", "``x`y``"),
        ("`edge`", "`` `edge` ``"),
        ("two\nlines", "`two lines`"),
    ],
)
def test_inline_code(value: str, expected: str) -> None:
    assert render.inline_code(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<img src=x>", "&lt;img src=x>"),
        ("@octocat", "&#64;octocat"),
        ("staging@abc1234", "staging@abc1234"),
        ("0.9 < min 1", "0.9 < min 1"),
        ("a|b", "a\\|b"),
        ("[x](y)", "\\[x\\](y)"),
    ],
)
def test_markdown_text(value: str, expected: str) -> None:
    assert render.markdown_text(value) == expected


# --------------------------------------------------------------------------- policy from the base


def _staging_with_v1(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    """staging on origin, holding v0.0.1 (accuracy 0.9) under the base policy."""
    root = project(tmp_path)
    for name in ("GITHUB_ACTIONS", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # registered on a laptop: the embedded store
    run(["git", "checkout", "-q", "-b", "staging"], root)
    ok(cli, root, "train")
    ok(cli, root, "register")
    ok(cli, root, "promote", "staging")
    run(["git", "push", "-q", "origin", "staging"], root)
    run(["git", "checkout", "-q", "-b", "feature"], root)
    return root


def test_a_pull_request_cannot_weaken_its_own_gate(
    cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gh: GitHubState,
) -> None:  # type: ignore[no-untyped-def]
    from tests.github_helpers import actions_env as _actions_env

    root = _staging_with_v1(cli, tmp_path, monkeypatch)
    _actions_env(monkeypatch, tmp_path, gh)
    set_params(root, accuracy=0.6)  # 33% worse than staging's 0.9
    config = root / "mlci.yaml"
    config.write_text(config.read_text().replace("min: 0.5", "min: 0.1").replace('"5%"', '"50%"'))
    commit(root, "a worse model, and a gentler gate for it")
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.GATE_FAILED, result.err
    body = gh.comments[12][0]["body"]
    assert "#### ⚠️ Policy changes" in body
    assert "- `staging · accuracy`: min `0.5` → `0.1`" in body
    assert "- `staging · accuracy`: max_regression `5%` → `50%`" in body
    assert "The policy on `staging` judges it" in body
    assert "accuracy 0.6 is 0.3 (33.33%) worse than staging v0.0.1's 0.9" in body
    assert [(s["context"], s["state"]) for s in gh.statuses] == [("mlci/staging", "failure")]
    data = json.loads((root / ".mlci" / "report.json").read_text())
    assert data["policy"]["from"] == "staging" and len(data["policy"]["changes"]) == 2
    assert "comes from mlci.yaml on staging" in result.err


def test_a_pull_request_to_production_of_a_model_never_in_staging_fails_before_merge(
    cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gh: GitHubState,
) -> None:  # type: ignore[no-untyped-def]
    from tests.github_helpers import actions_env as _actions_env

    root = _staging_with_v1(cli, tmp_path, monkeypatch)
    _actions_env(monkeypatch, tmp_path, gh)
    run(["git", "push", "-q", "origin", "staging:production"], root)
    set_params(root, accuracy=0.95)  # a fine model, but staging never saw it
    commit(root, "straight to production")
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, base="production"))
    assert result.code == ExitCode.GATE_FAILED
    (status,) = gh.statuses
    assert status["context"] == "mlci/production" and status["state"] == "failure"
    assert "have never been in staging (production requires it)" in status["description"]
    # What staging holds may go: the same inputs as v0.0.1.
    set_params(root, accuracy=0.9)
    commit(root, "what staging has")
    result = ci(
        cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, base="production", number=13)
    )
    assert result.code == ExitCode.OK, result.err
    assert gh.statuses[-1]["state"] == "success" and gh.statuses[-1]["context"] == "mlci/production"


# --------------------------------------------------------------------------- rollbacks hold


def _push(cli, root: Path) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = cli("ci", "--event", "push", "--branch", "staging", "--json", cwd=root)
    assert result.code == ExitCode.OK, result.err
    return json.loads(result.out) | {"log": result.err}


@pytest.mark.slow
def test_a_rollback_holds_through_three_pushes_until_unpin(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    assert _push(cli, root)["version"] == "v0.0.1"
    set_params(root, accuracy=0.92)
    commit(root, "v2")
    assert _push(cli, root)["outcome"] == "promoted"
    rolled = ok(cli, root, "rollback", "staging", "--reason", "bad latency")
    assert rolled["version"] == "v0.0.1"

    for i, change in enumerate(("README typo", "accuracy 0.93", "accuracy 0.94")):
        if change.startswith("accuracy"):
            set_params(root, accuracy=float(change.split()[1]))
        else:
            (root / "README.md").write_text("typo fixed\n")
        commit(root, change)
        pushed = _push(cli, root)
        assert pushed["outcome"] == "held", pushed
        assert "staging is pinned to v0.0.1 by a rollback on " in pushed["message"]
        assert ": bad latency; `mlci unpin staging` resumes automatic promotion" in pushed["message"]
        shown = ok(cli, root, "show")
        assert shown["models"][0]["environments"]["staging"] == "v0.0.1", i
    assert shown["models"][0]["pinned"]["staging"]["reason"] == "bad latency"
    assert "v0.0.1 (pinned)" in cli("show", cwd=root).out
    assert "(pins staging)" in cli("history", cwd=root).out
    # Only an explicit version moves it by hand; plain `promote` is held too.
    held = cli("promote", "staging", cwd=root)
    assert held.code == ExitCode.GATE_FAILED and "staging is pinned to v0.0.1" in held.err

    unpinned = ok(cli, root, "unpin", "staging")
    assert unpinned["changed"] is True and unpinned["version"] == "v0.0.1"
    assert ok(cli, root, "show")["models"][0]["pinned"] == {}
    assert "pin lifted" in cli("history", cwd=root).out
    set_params(root, accuracy=0.95)
    commit(root, "after the fix")
    after = _push(cli, root)
    assert (
        after["outcome"] == "promoted"
        and ok(cli, root, "show")["models"][0]["environments"]["staging"] == after["version"]
    )


def test_an_older_push_never_moves_an_environment_back(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    older = run(["git", "rev-parse", "HEAD"], root).strip()
    set_params(root, accuracy=0.92)
    commit(root, "newer")
    assert _push(cli, root)["version"] == "v0.0.1"  # the newer commit's push finished first
    run(["git", "checkout", "-q", older], root)
    late = _push(cli, root)
    assert late["outcome"] == "skipped"
    assert "staging already holds v0.0.1 from a newer commit" in late["message"]
    assert ok(cli, root, "show")["models"][0]["environments"]["staging"] == "v0.0.1"


@pytest.mark.slow
def test_a_pull_request_into_a_pinned_environment_says_merging_will_not_promote(
    cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gh: GitHubState,
) -> None:  # type: ignore[no-untyped-def]
    from tests.github_helpers import actions_env as _actions_env

    root = _staging_with_v1(cli, tmp_path, monkeypatch)
    run(["git", "checkout", "-q", "staging"], root)
    set_params(root, accuracy=0.91)
    commit(root, "v2")
    ok(cli, root, "train")
    ok(cli, root, "register")
    ok(cli, root, "promote", "staging")
    ok(cli, root, "rollback", "staging", "--reason", "bad latency")
    run(["git", "push", "-q", "origin", "staging"], root)
    run(["git", "checkout", "-q", "-b", "next"], root)
    set_params(root, accuracy=0.93)
    commit(root, "v3")
    _actions_env(monkeypatch, tmp_path, gh)
    result = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
    assert result.code == ExitCode.OK, result.err
    body = gh.comments[12][0]["body"]
    assert "_merging will not promote: staging is pinned to v0.0.1 by a rollback on " in body
    (status,) = gh.statuses
    assert status["description"].startswith(
        "staging pinned to v0.0.1 by a rollback: merging will not promote"
    )
