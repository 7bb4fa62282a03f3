"""One verdict wherever it is computed (mlci.verdict): the same scenarios through
``mlci gate --json``, ``mlci report --format json``, ``mlci ci --dry-run --json`` (a
pull request replayed on the laptop) and ``mlci publish`` (the trusted job of the
fork-safe flow, against the local GitHub stub) give the same rules, counts and outcome.

The project: the stdlib training script of tests/lifecycle.py trained five times (``train.repeats``, so rules
with a confidence have intervals), a declared dataset with checks and a drift limit,
staging holding v0.0.1 (accuracy 0.9) and production requiring staging.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlci.errors import ExitCode
from tests.github_helpers import actions_env
from tests.github_stub import GitHubState
from tests.helpers import run
from tests.lifecycle import REPEATING_TRAIN, commit, fake_project, ok

CONFIG = """\
model:
  name: demo
train:
  command: {python} train.py
  inputs: [train.py, params.yaml, data.csv]
  params: params.yaml
  model: model
  repeats: 5
data:
  table:
    path: data.csv
    columns:
      x: {{type: float, min: 0, max: 100, drift: 0.25}}
environments:
  staging:
    confidence: 0.95
    gates:
      - metric: accuracy
        min: 0.5
        max_regression: "1%"
  production:
    requires: staging
    gates:
      - metric: accuracy
        min: 0.8
"""


def _data(root: Path, value: Callable[[int], float]) -> None:
    rows = "\n".join(f"{i},{value(i):.2f}" for i in range(400))
    (root / "data.csv").write_text(f"id,x\n{rows}\n")


def _params(root: Path, accuracy: float, shift: int = 0) -> None:
    log = root.parent / "runs.log"  # the training script's log of its seeds (outside the project)
    (root / "params.yaml").write_text(json.dumps({"accuracy": accuracy, "shift": shift, "log": str(log)}))


def _project(cli, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """staging holds v0.0.1 (accuracy 0.9 on the base data); staging and production are
    on origin with the base policy; HEAD is a feature branch off staging."""
    params = {"accuracy": 0.9, "shift": 0, "log": str(tmp_path / "runs.log")}
    root = fake_project(tmp_path, REPEATING_TRAIN, CONFIG, params, remote=True)
    _data(root, lambda i: float(i % 100))
    commit(root, "the data")
    run(["git", "push", "-q", "origin", "main"], root)
    run(["git", "checkout", "-q", "-b", "staging"], root)
    ok(cli, root, "train")
    ok(cli, root, "register")
    ok(cli, root, "promote", "staging")
    run(["git", "push", "-q", "origin", "staging", "staging:production"], root)
    run(["git", "checkout", "-q", "-b", "feature"], root)
    return root


def _passing(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    _params(root, 0.92)
    return "staging"


def _failing_metric(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    _params(root, 0.7)
    return "staging"


def _inconclusive(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    _params(root, 0.895, shift=1)  # the seeds' noise in another order: -0.6% on average
    return "staging"


def _requires_unmet(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    _params(root, 0.93)  # never in staging: a pull request into production fails before merge
    return "production"


def _drifted(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    _data(root, lambda i: float(i % 100) / 5)  # every value in 0..20: PSI far past 0.25
    return "staging"


def _failed_check(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    _data(root, lambda i: -5.0 if i == 7 else float(i % 100))  # one value below min 0
    return "staging"


def _pinned(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    run(["git", "checkout", "-q", "staging"], root)
    _params(root, 0.91)
    commit(root, "v2")
    ok(cli, root, "train")
    ok(cli, root, "register")
    ok(cli, root, "promote", "staging")
    ok(cli, root, "rollback", "staging", "--reason", "bad latency")
    run(["git", "push", "-q", "origin", "staging"], root)
    run(["git", "checkout", "-q", "feature"], root)
    run(["git", "merge", "-q", "--ff-only", "staging"], root)
    _params(root, 0.92)
    return "staging"


def _weakened_policy(cli, root: Path) -> str:  # type: ignore[no-untyped-def]
    _params(root, 0.45)
    config = root / "mlci.yaml"
    config.write_text(config.read_text().replace("min: 0.5", "min: 0.1").replace('"1%"', '"60%"'))
    return "staging"


# scenario -> (what it does, the outcome every path must give, rules that fail)
SCENARIOS: dict[str, tuple[Callable[..., str], str, set[str]]] = {
    "passing": (_passing, "pass", set()),
    "failing metric": (_failing_metric, "fail", {"max_regression"}),
    "inconclusive": (_inconclusive, "inconclusive", set()),
    "requires not met": (_requires_unmet, "fail", {"requires"}),
    "drift past its limit": (_drifted, "fail", {"data"}),
    "failed data check": (_failed_check, "fail", {"data"}),
    "pinned environment": (_pinned, "pass", set()),
    "weakened policy": (_weakened_policy, "fail", {"min", "max_regression"}),
}


# Scenarios whose head can be registered and promoted by hand (a head whose data failed
# was never trained; a weakened policy is the pull request's, not the environment's).
PROMOTED = ("passing", "failing metric", "inconclusive", "pinned environment")


def _verdict(gates: dict[str, Any]) -> dict[str, Any]:
    """What must agree: the environment, its outcome, each rule, the summary, the pin."""
    return {
        "environment": gates["environment"],
        "passed": gates["passed"],
        "outcome": gates["outcome"],
        "held": gates["held"],
        "summary": gates["summary"],
        "rules": [(r["rule"], r["metric"], r["outcome"], r["passed"], r["message"]) for r in gates["rules"]],
    }


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_path_gives_the_same_verdict(
    name: str, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubState
) -> None:  # type: ignore[no-untyped-def]
    for variable in ("GITHUB_ACTIONS", "GITHUB_TOKEN", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH"):
        monkeypatch.delenv(variable, raising=False)
    change, outcome, failing = SCENARIOS[name]
    root = _project(cli, tmp_path)
    env = change(cli, root)
    head = commit(root, name)
    verdicts = {}

    gate = cli("gate", "--env", env, "--json", cwd=root)
    assert gate.code in (ExitCode.OK, ExitCode.GATE_FAILED), gate.err
    verdicts["gate"] = _verdict(json.loads(gate.out))

    out = tmp_path / "report.json"
    report = cli("report", "--env", env, "--format", "json", "--output", str(out), cwd=root)
    assert report.code == ExitCode.OK, report.err
    (only,) = json.loads(out.read_text())["gates"]
    verdicts["report"] = _verdict(only)

    replay = cli(
        "ci", "--event", "pull_request", "--base", env, "--pr", "12", "--dry-run", "--json", cwd=root
    )
    assert replay.code in (ExitCode.OK, ExitCode.GATE_FAILED), replay.err
    verdicts["ci"] = _verdict(json.loads(replay.out)["gates"])

    # The trusted job: the pull request's report folder, judged again with a token.
    actions_env(monkeypatch, tmp_path, gh)
    gh.pulls[12], gh.pull_bases[12] = head, env
    published = cli("publish", str(root / ".mlci"), "--head-sha", head, "--json", cwd=root)
    assert published.code == ExitCode.OK, published.err
    verdicts["publish"] = _verdict(json.loads(published.out.split("\n", 1)[1])["gates"])

    if name in PROMOTED:
        # The same inputs registered and promoted by hand: judged on the version's tag (its
        # metrics, repeats and data profile), as the trusted job judged the report's data.
        for variable in ("GITHUB_ACTIONS", "GITHUB_TOKEN"):
            monkeypatch.delenv(variable, raising=False)
        ok(cli, root, "register")
        promoted = cli("promote", env, "--json", cwd=root)
        assert promoted.code == (
            ExitCode.OK
            if verdicts["gate"]["passed"] and name != "pinned environment"
            else ExitCode.GATE_FAILED
        ), promoted.err
        verdicts["promote"] = _verdict(json.loads(promoted.out)["gates"])
    first, posted = verdicts["gate"], verdicts["publish"]["summary"]
    if name == "failed data check":
        # The trusted job never reads the data: it judges the profile the pull request's
        # run recorded, which cannot count rows. Same rule and outcome, in its own words.
        judged = verdicts.pop("publish")
        assert [r[:4] for r in judged["rules"]] == [r[:4] for r in first["rules"]]
        assert judged["passed"] == first["passed"] and judged["outcome"] == first["outcome"]
        assert "data.table: column 'x': values as far as -5, below min 0" in judged["summary"]
        assert "data.table: column 'x': 1 value below min 0 (0.25% of rows)" in first["summary"]
    for path, found in verdicts.items():
        assert found == first, f"{name}: {path} disagrees with gate"
    assert first["environment"] == env and first["outcome"] == outcome, first
    assert {r[0] for r in first["rules"] if not r[3]} == failing, first["rules"]
    assert gate.code == (ExitCode.OK if first["passed"] else ExitCode.GATE_FAILED)
    assert replay.code == gate.code
    (status,) = gh.statuses
    assert status["state"] == ("success" if first["passed"] else "failure")
    assert status["description"] == posted[:140] or posted.startswith(status["description"].rstrip("…"))
    if name == "pinned environment":
        assert first["held"] and "staging is pinned to v0.0.1" in first["held"]
    else:
        assert first["held"] is None
    data_rules = [r for r in first["rules"] if r[0] == "data"]
    assert len(data_rules) == 1  # the data is judged on every path, once
