"""Reports: golden files for the rendered markdown, and the commands end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mlci import config as cfg
from mlci import plots, render
from mlci import report as rpt
from mlci.errors import ExitCode
from tests import report_parts
from tests.lifecycle import commit, new_model, ok, project, set_params
from tests.report_parts import CONFIG, HEAD, PRODUCTION, STAGING, golden, interval

GOLDEN = Path(__file__).parent / "golden"
BASE = rpt.Baseline(
    "base",
    "base staging@aaaaaaa",
    True,
    commit="a" * 40,
    run_id="run-3",
    metrics={"accuracy": 0.95, "log_loss": 0.2},
    params={"C": "1.0", "seed": "42"},
)


def test_comment_with_regression_and_params() -> None:
    report = rpt.build(
        CONFIG,
        HEAD,
        [STAGING, PRODUCTION, BASE],
        history=[("v0.0.1", 0.91), ("v0.0.2", 0.94), ("v0.0.3", 0.95)],
        pr=12,
        run_link="https://github.com/o/r/actions/runs/1",
    )
    assert not report.passed
    text = render.render_report(report, "markdown")
    assert text.startswith("<!-- mlci:report model=churn -->\n")
    assert (
        "- ❌ **staging**: accuracy 0.93 is 0.02 (2.11%) worse than staging v0.0.3's 0.95; max_regression 1%"
        in text
    )
    assert "- ❌ **production**: accuracy 0.93 < min 0.95" in text
    golden("comment_regression.md", text)


def test_comment_first_model() -> None:
    head = rpt.Head(
        run_id="r1",
        fingerprint="0" * 64,
        commit="1" * 40,
        branch="main",
        metrics={"accuracy": 0.97, "log_loss": 0.1},
        params={"C": 1.0},
        cached=False,
    )
    empty = [
        rpt.Baseline("staging", "staging", False, note="no model in staging yet"),
        rpt.Baseline("production", "production", False, note="no model in production yet"),
    ]
    report = rpt.build(CONFIG, head, empty)
    # The first model passes staging; production requires it to have been in staging first.
    assert [(v.environment, v.passed) for v in report.verdicts] == [("staging", True), ("production", False)]
    text = render.render_report(report, "markdown")
    assert "- ✅ **staging**: passes 2 gate rules (no model there yet)" in text
    assert "these inputs of churn have never been in staging (production requires it)" in text
    assert "mermaid" not in text  # one point is no chart
    golden("comment_first_model.md", text)


def test_one_sided_metrics_are_shown() -> None:
    report = rpt.build(CONFIG, HEAD, [STAGING])
    text = render.render_report(report, "markdown")
    assert "| `recall` ↑ | 0.8800 | — |" in text  # only the head has it
    assert "| `precision` ↑ | — | 0.9000, not in this change |" in text  # only the baseline has it


def test_comment_never_exceeds_githubs_limit() -> None:
    many = {f"metric_{i:04d}": i / 10000 for i in range(3000)}
    head = rpt.Head("r", "0" * 64, "c" * 40, "b", many, {f"p{i}": i for i in range(3000)}, False)
    base = rpt.Baseline(
        "staging",
        "staging v1",
        True,
        metrics={k: v + 0.5 for k, v in many.items()},
        params={f"p{i}": i + 1 for i in range(3000)},
    )
    report = rpt.build(CONFIG, head, [base])
    text = render.render_report(report, "markdown")
    assert len(text) <= render.GITHUB_COMMENT_LIMIT
    assert "cut to fit GitHub's comment limit" in text
    assert text.count("| `metric_") < 3000
    small = render.render_report(report, "markdown", limit=2500)
    assert len(small) <= 2500 and "more metrics cut to fit" in small  # sections shrink first
    tiny = render.render_report(report, "markdown", limit=600)
    assert len(tiny) <= 600 and tiny.rstrip().endswith("the full report is in the job summary._")


def test_terminal_table_colour_only_on_request() -> None:
    report = rpt.build(CONFIG, HEAD, [STAGING, PRODUCTION])
    plain = render.render_report(report, "table")
    assert "\033[" not in plain
    lines = plain.splitlines()
    assert lines[2].split()[:3] == ["metric", "PR", "#12"]
    assert "accuracy ↑" in plain and "0.9500 (-0.0200)" in plain
    assert "production: no model in production yet" in plain
    assert (
        "params against staging v0.0.3:\n  C: 1.0 -> 0.1\n  solver: added (saga)\n  penalty: removed (was l2)"
        in plain
    )
    coloured = render.render_report(report, "table", color=True)
    assert "\033[31m0.9500 (-0.0200)\033[0m" in coloured  # worse in red
    golden("table.txt", plain)


def test_json_schema() -> None:
    data = rpt.to_json(rpt.build(CONFIG, HEAD, [STAGING, PRODUCTION], pr=12))
    assert data["schema"] == 1
    assert set(data) == {
        "schema",
        "model",
        "passed",
        "pr",
        "run_link",
        "head",
        "baselines",
        "gates",
        "key_metric",
        "history",
        "policy",
        "notes",
        "data",
        "plots",
        "figures",
    }
    assert data["policy"] == {"from": None, "changes": []} and data["notes"] == []
    assert data["data"] is None  # no data: section, nothing checked
    staging = data["baselines"][0]
    row = next(m for m in staging["metrics"] if m["name"] == "accuracy")
    assert row == {
        "name": "accuracy",
        "goal": "maximize",
        "head": 0.93,
        "base": 0.95,
        "delta": pytest.approx(-0.02),
        "relative": pytest.approx(-0.02 / 0.95),
        "verdict": "worse",
    }
    assert staging["params"]["changed"]["C"] == {"base": "1.0", "head": 0.1}
    assert staging["params"]["removed"] == {"penalty": "l2"}
    assert [g["environment"] for g in data["gates"]] == ["staging", "production"]
    assert data["gates"][0]["rules"][1]["rule"] == "max_regression"
    json.dumps(data)  # serialisable as is


def test_template_override(tmp_path: Path) -> None:
    custom = tmp_path / "mine.md.j2"
    custom.write_text(
        "{{ report.marker }}\nOurs: {{ report.model }} {{ report.head.metrics['accuracy'] | num }}\n"
    )
    text = render.render_report(
        rpt.build(CONFIG, HEAD, [STAGING]), "markdown", template=render.files_template(custom)
    )
    assert text == "<!-- mlci:report model=churn -->\nOurs: churn 0.9300\n"
    broken = tmp_path / "broken.md.j2"
    broken.write_text("{{ report.nope }}")
    from mlci.errors import MlciError

    with pytest.raises(MlciError, match="failed to render"):
        render.render_report(
            rpt.build(CONFIG, HEAD, [STAGING]), "markdown", template=render.files_template(broken)
        )


# --------------------------------------------------------------------------- commands


def test_gate_diff_and_report_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    first = cli("gate", "--env", "staging", "--json", cwd=root)  # trains, no baseline yet
    assert first.code == ExitCode.OK, first.err
    verdict = json.loads(first.out)
    assert verdict["passed"] is True and verdict["baseline"] is None
    assert "accuracy max_regression 5%: no baseline" in first.err
    ok(cli, root, "register")
    ok(cli, root, "promote", "staging")
    set_params(root, accuracy=0.8)
    commit(root, "worse")
    failed = cli("gate", "--env", "staging", cwd=root)
    assert failed.code == ExitCode.GATE_FAILED
    assert (
        "[FAIL] accuracy 0.8 is 0.1 (11.11%) worse than staging v0.0.1's 0.9; max_regression 5%" in failed.err
    )
    assert cli("gate", "--env", "nope", cwd=root).code == ExitCode.ERROR

    table = cli("diff", "--base", "main", cwd=root)
    assert table.code == ExitCode.OK, table.err
    assert "staging v0.0.1" in table.out and "base main@" in table.out
    data = json.loads(cli("diff", "--format", "json", "--env", "staging", cwd=root).out)
    assert [b["key"] for b in data["baselines"]] == ["staging"]
    assert data["baselines"][0]["params"]["changed"] == {"accuracy": {"base": "0.9", "head": 0.8}}

    written = cli("report", cwd=root)
    assert written.code == ExitCode.OK, written.err
    path = root / ".mlci" / "report.md"
    assert written.out.strip() == str(path)
    text = path.read_text()
    assert text.startswith("<!-- mlci:report model=demo -->")
    assert "❌ **staging**" in text
    out = tmp_path / "r.json"
    assert cli("report", "--format", "json", "--output", str(out), cwd=root).code == ExitCode.OK
    assert json.loads(out.read_text())["passed"] is False


def test_base_baseline_is_the_merge_base_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import run

    root = project(tmp_path)
    trained = ok(cli, root, "train")
    run(["git", "checkout", "-q", "-b", "feature"], root)
    set_params(root, accuracy=0.95)
    commit(root, "better")
    data = json.loads(cli("diff", "--base", "main", "--format", "json", cwd=root).out)
    (base,) = [b for b in data["baselines"] if b["key"] == "base"]
    assert base["found"] is True and base["run_id"] == trained["run_id"]
    row = next(m for m in base["metrics"] if m["name"] == "accuracy")
    assert row["verdict"] == "better" and row["base"] == 0.9 and row["head"] == 0.95
    # A CI checkout: the base branch exists only as origin/main.
    run(["git", "push", "-q", "origin", "main", "feature"], root)
    ci = tmp_path / "ci"
    run(["git", "clone", "-q", "--branch", "feature", str(tmp_path / "remote.git"), str(ci)], tmp_path)
    assert "main" not in run(["git", "branch", "--format=%(refname:short)"], ci).split()
    (ci / ".mlci").mkdir()
    (ci / ".mlci" / "mlflow.db").write_bytes((root / ".mlci" / "mlflow.db").read_bytes())
    from_ci = json.loads(cli("diff", "--base", "main", "--format", "json", cwd=ci).out)
    (ci_base,) = [b for b in from_ci["baselines"] if b["key"] == "base"]
    assert ci_base["found"] is True and ci_base["run_id"] == trained["run_id"]
    missing = json.loads(cli("diff", "--base", "no-such-branch", "--format", "json", cwd=root).out)
    (nobase,) = [b for b in missing["baselines"] if b["key"] == "base"]
    assert nobase["found"] is False and "no branch or commit 'no-such-branch'" in nobase["note"]
    assert new_model  # the registry helpers are shared with the registry tests


# --------------------------------------------------------------------------- comment states

NOISY = cfg.parse(
    """\
model: {name: churn}
train: {command: python train.py, params: params.yaml}
metrics:
  roc_auc: {goal: maximize}
  accuracy: {goal: maximize}
  f1: {goal: maximize}
  log_loss: {goal: minimize}
environments:
  staging:
    confidence: 0.95
    gates:
      - {metric: roc_auc, max_regression: "0.5%"}
      - {metric: log_loss, max: 0.5}
  production:
    requires: staging
    gates:
      - {metric: roc_auc, min: 0.95}
report:
  key_metric: roc_auc
""",
    Path("/repo/mlci.yaml"),
)
NOISY_HEAD = rpt.Head(
    "run-head",
    "f" * 64,
    "c" * 40,
    "feature/x",
    {"roc_auc": 0.9875, "accuracy": 0.951, "f1": 0.962, "log_loss": 0.148},
    {"C": 0.5},
    False,
    label="PR #7",
)
NOISY_STAGING = rpt.Baseline(
    "staging",
    "staging v0.0.3",
    True,
    version="v0.0.3",
    commit="a" * 40,
    run_id="run-3",
    metrics={"roc_auc": 0.99, "accuracy": 0.958, "f1": 0.941, "log_loss": 0.121},
    params={"C": "1.0"},
)
NOISY_BASE = dataclasses.replace(NOISY_STAGING, key="base", label="base staging@aaaaaaa", version=None)
DIFFERENCES = {
    "roc_auc": interval(-0.0025, -0.0082, 0.0014),
    "accuracy": interval(-0.007, -0.021, 0.007),
    "f1": interval(0.021, 0.004, 0.038),
    "log_loss": interval(0.027, 0.011, 0.043),
}
NOISY_CERTAINTY = report_parts.FixedCertainty(
    {
        "roc_auc": interval(0.9875, 0.978, 0.995),
        "accuracy": interval(0.951, 0.93, 0.972),
        "f1": interval(0.962, 0.945, 0.978),
        "log_loss": interval(0.148, 0.12, 0.18),
    },
    {"staging": DIFFERENCES, "base": DIFFERENCES},
)


def test_comment_marks_follow_the_verdict_not_the_sign() -> None:
    """The issue's case: roc_auc -0.0025 [-0.0082, +0.0014] is not red, because its gate
    cannot decide; staging and the base hold one run, so they are one column."""
    production = rpt.Baseline("production", "production", False, note="no model in production yet")
    report = rpt.build(
        NOISY,
        NOISY_HEAD,
        [NOISY_STAGING, production, NOISY_BASE],
        gate_environments=["staging"],
        pr=7,
        certainty=NOISY_CERTAINTY,  # type: ignore[arg-type]
    )
    text = render.render_report(report, "markdown")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")}
    assert "0.9900 → ❔ -0.0025 [-0.0082, +0.0014]" in rows["`roc_auc` ↑"]  # undecided, not red
    assert "⚪ -0.0070" in rows["`accuracy` ↑"]  # no gate; the interval spans 0
    assert "🟢 +0.0210" in rows["`f1` ↑"]  # no gate; better beyond the noise
    assert "✅ +0.0270" in rows["`log_loss` ↓"]  # worse beyond the noise, but its gate (max 0.5) passes
    assert "| metric | PR #7 | staging v0.0.3 = base staging@aaaaaaa | production |" in text
    assert "_✅ passes its gate · ❔ its gate is undecided" in text
    assert "- ✅ **staging**: passes 2 gate rules (1 inconclusive, counted as pass)" in text
    plain = render.render_report(report, "table", color=True)
    assert "\033[31m" not in plain.split("roc_auc")[1].splitlines()[0]  # not red in the terminal either
    golden("comment_noise.md", text)


def _dataset_diff(drifted: str | None, columns: int = 32) -> dict:  # type: ignore[type-arg]
    from mlci import data

    changes = tuple(
        data.ColumnChange(
            f"col_{i:02d}",
            "same",
            "float",
            "float",
            psi=0.31 if f"col_{i:02d}" == drifted else 0.01,
            drift_limit=0.2,
        )
        for i in range(columns)
    )
    return data.DatasetDiff("cancer", "staging v0.0.3", 569, 569, "h" * 64, "b" * 64, changes).to_json()


def test_comment_data_section_lists_what_changed_and_counts_the_rest() -> None:
    dataset = {
        "dataset": "cancer",
        "path": "data/cancer.csv",
        "present": True,
        "digest": "h" * 64,
        "rows": 569,
        "columns": 32,
        "passed": True,
        "problems": [],
    }
    report = dataclasses.replace(
        rpt.build(CONFIG, HEAD, [STAGING], pr=12),
        data=rpt.DataSection(datasets=(dataset,), comparisons=(_dataset_diff("col_07"),)),
    )
    text = render.render_report(report, "markdown")
    assert "| `col_07` | same | 0.310 ⚠️ | 0.2 |" in text
    assert "col_08" not in text
    assert "cancer against staging v0.0.3, column by column: 1 to review, 31 stable" in text
    assert "_31 columns are stable: the same type, drift within the limit._" in text
    golden("comment_data.md", text)


def test_comment_of_a_pull_request_that_trained_nothing_says_why_in_one_line() -> None:
    untrained = rpt.Head("", "f" * 64, "c" * 40, "feature/x", {}, {"C": 0.5}, False, label="PR #12")
    dataset = {
        "dataset": "cancer",
        "path": "data/cancer.csv",
        "present": True,
        "digest": "h" * 64,
        "rows": 569,
        "columns": 32,
        "passed": False,
        "problems": [{"message": "column radius: 12 null values (max_nulls 0)"}],
    }
    from types import SimpleNamespace

    from mlci import verdict

    problem = SimpleNamespace(message=dataset["problems"][0]["message"])  # type: ignore[index]
    checked = SimpleNamespace(
        dataset=SimpleNamespace(name="cancer"), profile={}, problems=(problem,), to_json=lambda: dataset
    )
    report = rpt.build(
        CONFIG,
        untrained,
        [STAGING, PRODUCTION],
        pr=12,
        data=verdict.Data([checked], {}, trained=False),
    )
    text = render.render_report(report, "markdown")
    assert "_No metrics to compare: nothing was trained, because the data fails its checks._" in text
    assert "| metric |" not in text and "❔" not in text
    golden("comment_untrained.md", text)


def _plots_fixture() -> plots.Plots:
    """Plots from fixed predictions (arithmetic, no random numbers): a golden that holds
    on any machine."""
    import numpy as np

    from mlci import stats

    def predictions(shift: int) -> stats.Predictions:
        i = np.arange(200)
        score = ((i * 37 + shift) % 100) / 100
        truth = (((i * 37) % 100) + (i % 13) * 4 > 55).astype(int)
        return stats.Predictions(
            truth, (score > 0.5).astype(int), score.astype(float), i.astype(str).astype(object), (0, 1), False
        )

    made = plots.build("PR #12", predictions(0), [("staging v0.0.3", predictions(9))])
    assert made is not None
    return made


def test_comment_with_model_plots() -> None:
    report = dataclasses.replace(
        rpt.build(CONFIG, HEAD, [STAGING, PRODUCTION], pr=12), plots=_plots_fixture()
    )
    text = render.render_report(report, "markdown")
    assert "#### Model plots" in text
    assert "| actual ╲ predicted | 0 | 1 |" in text
    for title in ("**ROC curve**: 🟦 PR #12 (AUC", "**Precision-recall curve**", "**Calibration**"):
        assert title in text
    assert "🟧 staging v0.0.3" in text
    golden("comment_plots.md", text)
    # Cut first when the comment is too long: the plots (they are in report.json and the summary).
    short = render.render_report(report, "markdown", limit=len(text) - 100)
    assert "#### Model plots" not in short and "| `accuracy` ↑" in short
