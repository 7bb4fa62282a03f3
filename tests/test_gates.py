from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlci import config as cfg
from mlci import gates, metrics


def _goal(name: str) -> cfg.Goal:
    return cfg.infer_goal(name)


@pytest.mark.parametrize(
    ("name", "head", "base", "verdict", "delta", "relative"),
    [
        ("accuracy", 0.92, 0.90, "better", 0.02, 0.02 / 0.90),
        ("accuracy", 0.88, 0.90, "worse", -0.02, -0.02 / 0.90),
        ("accuracy", 0.90, 0.90, "same", 0.0, 0.0),
        ("loss", 0.10, 0.20, "better", -0.10, -0.5),
        ("loss", 0.30, 0.20, "worse", 0.10, 0.5),
        ("rmse", 5.0, 0.0, "worse", 5.0, None),  # no relative change from 0
        ("accuracy", 0.9, None, "new", None, None),
        ("accuracy", None, 0.9, "missing", None, None),
    ],
)
def test_compare(
    name: str,
    head: float | None,
    base: float | None,
    verdict: str,
    delta: float | None,
    relative: float | None,
) -> None:
    d = metrics.compare(name, _goal(name), head, base)
    assert d.verdict == verdict
    assert d.delta == (pytest.approx(delta) if delta is not None else None)
    assert d.relative == (pytest.approx(relative) if relative is not None else None)


def test_diff_keeps_one_sided_metrics_and_order() -> None:
    rows = metrics.diff(
        {"b": 1.0, "a": 2.0, "new": 3.0}, {"a": 1.0, "b": 1.0, "gone": 4.0}, _goal, order=["b"]
    )
    assert [(r.name, r.verdict) for r in rows] == [
        ("b", "same"),
        ("a", "better"),
        ("gone", "missing"),
        ("new", "new"),
    ]
    assert [r.verdict for r in metrics.diff({"x": 1.0}, None, _goal)] == ["new"]


def test_diff_params() -> None:
    d = metrics.diff_params(
        {"C": 0.5, "seed": 42, "model": {"depth": 3}, "new": "x"},
        {"C": "1.0", "seed": "42", "model.depth": "3", "old": "y"},
    )
    assert d.changed == {"C": ("1.0", 0.5)}
    assert d.added == {"new": "x"}
    assert d.removed == {"old": "y"}
    assert not d.empty
    assert metrics.diff_params({"a": 1}, {"a": 1}).empty


def _env(*rules: dict[str, object]) -> cfg.Environment:
    text = "model: {name: m}\ntrain: {command: x}\nenvironments:\n  staging:\n    gates:\n"
    import json

    text += "".join(f"      - {json.dumps(r)}\n" for r in rules)
    return cfg.parse(text, Path("mlci.yaml")).environments[0]


# Each case: rules, head metrics, baseline metrics (None: first model), passed, messages.
CASES = [
    pytest.param(
        [{"metric": "accuracy", "min": 0.93}],
        {"accuracy": 0.912},
        None,
        False,
        ["accuracy 0.912 < min 0.93"],
        id="min-fails",
    ),
    pytest.param(
        [{"metric": "accuracy", "min": 0.93}],
        {"accuracy": 0.93},
        None,
        True,
        ["accuracy 0.93 >= min 0.93"],
        id="min-equal-passes",
    ),
    pytest.param(
        [{"metric": "loss", "max": 0.2}],
        {"loss": 0.25},
        None,
        False,
        ["loss 0.25 > max 0.2"],
        id="max-fails",
    ),
    pytest.param(
        [{"metric": "loss", "max": 0.2}],
        {"loss": 0.2},
        None,
        True,
        ["loss 0.2 <= max 0.2"],
        id="max-equal-passes",
    ),
    pytest.param(
        [{"metric": "accuracy", "max_regression": "2%"}],
        {"accuracy": 0.9},
        None,
        True,
        ["accuracy max_regression 2%: no baseline"],
        id="first-model",
    ),
    pytest.param(
        [{"metric": "accuracy", "max_regression": "2%"}],
        {"accuracy": 0.90},
        {"accuracy": 0.92},
        False,
        ["accuracy 0.9 is 0.02 (2.17%) worse than staging's v1's 0.92; max_regression 2%"],
        id="pct-regression-fails",
    ),
    pytest.param(
        [{"metric": "accuracy", "max_regression": "2%"}],
        {"accuracy": 0.91},
        {"accuracy": 0.92},
        True,
        ["accuracy 0.91 is 0.01 (1.09%) worse than staging's v1's 0.92; max_regression 2%"],
        id="pct-regression-within",
    ),
    pytest.param(
        [{"metric": "accuracy", "max_regression": 0.02}],
        {"accuracy": 0.90},
        {"accuracy": 0.92},
        True,
        ["worse than"],
        id="abs-regression-exactly-at-limit",
    ),
    pytest.param(
        [{"metric": "accuracy", "max_regression": 0.01}],
        {"accuracy": 0.95},
        {"accuracy": 0.92},
        True,
        ["accuracy 0.95 is no worse than staging's v1's 0.92"],
        id="improvement-never-regresses",
    ),
    pytest.param(
        [{"metric": "rmse", "max_regression": "5%"}],
        {"rmse": 53.0},
        {"rmse": 50.0},
        False,
        ["rmse 53 is 3 (6.00%) worse than staging's v1's 50; max_regression 5%"],
        id="minimize-regression",
    ),
    pytest.param(
        [{"metric": "rmse", "max_regression": "5%"}],
        {"rmse": 45.0},
        {"rmse": 50.0},
        True,
        ["no worse"],
        id="minimize-improvement",
    ),
    pytest.param(
        [{"metric": "accuracy", "min_improvement": 0.01}],
        {"accuracy": 0.925},
        {"accuracy": 0.92},
        False,
        ["accuracy 0.925 improved on staging's v1's 0.92 by 0.005 (0.54%); min_improvement 0.01"],
        id="min-improvement-fails",
    ),
    pytest.param(
        [{"metric": "accuracy", "min_improvement": "1%"}],
        {"accuracy": 0.95},
        {"accuracy": 0.92},
        True,
        ["improved on"],
        id="min-improvement-passes",
    ),
    pytest.param(
        [{"metric": "loss", "min_improvement": "10%"}],
        {"loss": 0.21},
        {"loss": 0.2},
        False,
        ["loss 0.21 did not improve on staging's v1's 0.2; min_improvement 10%"],
        id="min-improvement-minimize-worse",
    ),
    pytest.param(
        [{"metric": "accuracy", "min": 0.9}],
        {},
        None,
        False,
        ["accuracy is missing from the metrics"],
        id="missing-metric",
    ),
    pytest.param(
        [{"metric": "accuracy", "min": 0.9, "max_regression": "1%"}],
        {"accuracy": math.nan},
        {"accuracy": 0.9},
        False,
        ["accuracy is NaN", "accuracy is NaN"],
        id="nan-metric",
    ),
    pytest.param(
        [{"metric": "accuracy", "max_regression": "1%"}],
        {"accuracy": 0.5},
        {"f1": 0.9},
        True,
        ["no baseline"],
        id="baseline-lacks-metric",
    ),
    pytest.param(
        [{"metric": "accuracy", "max_regression": "1%"}],
        {"accuracy": 0.5},
        {"accuracy": math.nan},
        True,
        ["no baseline"],
        id="nan-baseline",
    ),
    pytest.param(
        [{"metric": "accuracy", "min": 0.9}, {"metric": "f1", "min": 0.8}],
        {"accuracy": 0.95, "f1": 0.7},
        None,
        False,
        ["accuracy 0.95 >= min 0.9", "f1 0.7 < min 0.8"],
        id="one-of-two-fails",
    ),
]


@pytest.mark.parametrize(("rules", "head", "baseline", "passed", "messages"), CASES)
def test_evaluate(
    rules: list[dict[str, object]],
    head: dict[str, float],
    baseline: dict[str, float] | None,
    passed: bool,
    messages: list[str],
) -> None:
    verdict = gates.evaluate(_env(*rules), head, baseline, _goal, baseline_label="staging's v1")
    assert verdict.passed is passed
    assert len(verdict.results) == len(messages)
    for result, expected in zip(verdict.results, messages, strict=True):
        assert expected in result.message, result.message


def test_summary_and_failures() -> None:
    env = _env({"metric": "accuracy", "min": 0.93}, {"metric": "f1", "min": 0.5})
    failed = gates.evaluate(env, {"accuracy": 0.9, "f1": 0.9}, None, _goal)
    assert [r.metric for r in failed.failures] == ["accuracy"]
    assert failed.summary() == "accuracy 0.9 < min 0.93"
    ok = gates.evaluate(env, {"accuracy": 0.95, "f1": 0.9}, None, _goal)
    assert ok.summary() == "2 gate rules passed"
    assert gates.evaluate(_env(), {}, None, _goal).passed  # no rules: nothing to fail


# --------------------------------------------------------------------------- intervals


class _Evidence:
    """Fixed intervals, as mlci.stats would give them from predictions."""

    def __init__(
        self, values: dict[str, tuple[float, float, float]], diffs: dict[str, tuple[float, float, float]]
    ):
        self.values, self.diffs = values, diffs
        self.asked: list[tuple[str, str, float]] = []

    def interval(self, metric: str, confidence: float) -> gates.Interval | None:
        self.asked.append(("interval", metric, confidence))
        found = self.values.get(metric)
        return gates.Interval(*found, confidence=confidence, resamples=2000) if found else None

    def difference(self, metric: str, confidence: float) -> gates.Interval | None:
        self.asked.append(("difference", metric, confidence))
        found = self.diffs.get(metric)
        return gates.Interval(*found, confidence=confidence, resamples=2000, paired=True) if found else None


def _one_rule(rule: cfg.GateRule, name: str = "staging", **extra: object) -> cfg.Environment:
    return cfg.Environment(name=name, branch=name, gates=(rule,), **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "head", "base", "value", "diff", "outcome", "says"),
    [
        # max_regression 2%: the difference interval against -2% of the baseline (0.9 -> 0.018)
        ("max_regression", 0.88, 0.90, None, (-0.020, -0.040, 0.003), "inconclusive", "not decided"),
        ("max_regression", 0.88, 0.90, None, (-0.020, -0.030, -0.019), "fail", "beyond max_regression 2%"),
        ("max_regression", 0.895, 0.90, None, (-0.005, -0.010, 0.001), "pass", "within max_regression 2%"),
        ("max_regression", 0.95, 0.90, None, (0.05, 0.03, 0.07), "pass", "better than"),
        # min_improvement 1%: pass only when the whole interval improves by 0.009 or more
        ("min_improvement", 0.93, 0.90, None, (0.03, 0.01, 0.05), "pass", "meets min_improvement 1%"),
        ("min_improvement", 0.93, 0.90, None, (0.03, -0.001, 0.06), "inconclusive", "not decided"),
        ("min_improvement", 0.90, 0.90, None, (0.0, -0.004, 0.005), "fail", "short of min_improvement 1%"),
        # min 0.9: the interval's lower bound must clear it
        ("min", 0.93, None, (0.93, 0.91, 0.95), None, "pass", ">= min 0.9 at 95%"),
        ("min", 0.91, None, (0.91, 0.88, 0.94), None, "inconclusive", "may be below min 0.9"),
        ("min", 0.85, None, (0.85, 0.82, 0.88), None, "fail", "< min 0.9 at 95%"),
        # max 0.3 (a loss): the upper bound must stay under it
        ("max", 0.2, None, (0.2, 0.15, 0.25), None, "pass", "<= max 0.3"),
        ("max", 0.28, None, (0.28, 0.25, 0.33), None, "inconclusive", "may be above max 0.3"),
        ("max", 0.4, None, (0.4, 0.35, 0.45), None, "fail", "> max 0.3"),
    ],
)
@pytest.mark.parametrize("on_inconclusive", ["fail", "pass"])
def test_a_rule_with_a_confidence_is_judged_on_the_interval(
    rule: str,
    head: float,
    base: float | None,
    value: tuple[float, float, float] | None,
    diff: tuple[float, float, float] | None,
    outcome: str,
    says: str,
    on_inconclusive: str,
) -> None:
    metric = "loss" if rule == "max" else "accuracy"
    spec = {
        "max_regression": cfg.Threshold(2, percent=True),
        "min_improvement": cfg.Threshold(1, percent=True),
        "min": 0.9,
        "max": 0.3,
    }[rule]
    gate = cfg.GateRule(metric=metric, confidence=0.95, **{rule: spec})  # type: ignore[arg-type]
    env = _one_rule(gate, on_inconclusive=on_inconclusive)
    evidence = _Evidence({metric: value} if value else {}, {metric: diff} if diff else {})
    verdict = gates.evaluate(
        env, {metric: head}, {metric: base} if base is not None else None, _goal, "staging's v0.0.3", evidence
    )
    (result,) = verdict.results
    assert result.decided == outcome and verdict.outcome == outcome
    assert says in result.message and "95%" in result.message
    expected_pass = outcome == "pass" or (outcome == "inconclusive" and on_inconclusive == "pass")
    assert result.passed is expected_pass and verdict.passed is expected_pass
    if outcome == "inconclusive":
        assert f"inconclusive → {on_inconclusive} for staging" in result.message
        assert gates.mark(result) == f"inconclusive: {'pass' if expected_pass else 'FAIL'}"
    data = gates.rule_json(result)
    assert data["outcome"] == outcome and data["confidence"] == 0.95
    assert data["interval"]["low"] == (diff or value)[1]  # type: ignore[index]


def test_the_message_gives_the_change_and_its_interval_in_percent() -> None:
    gate = cfg.GateRule(metric="accuracy", confidence=0.95, max_regression=cfg.Threshold(1, percent=True))
    env = _one_rule(gate, name="production")
    evidence = _Evidence({}, {"accuracy": (-0.0072, -0.0171, 0.0027)})
    verdict = gates.evaluate(
        env, {"accuracy": 0.8928}, {"accuracy": 0.9}, _goal, "staging's v0.0.3", evidence
    )
    assert verdict.results[0].message == (
        "accuracy is 0.8% worse than staging's v0.0.3's 0.9, 95% CI [-1.9%, +0.3%]: "
        "not decided against max_regression 1% at 95%; inconclusive → fail for production"
    )
    assert not verdict.passed and verdict.outcome == "inconclusive"
    assert verdict.summary().startswith("accuracy is 0.8% worse")


def test_a_lower_is_better_metric_turns_the_difference_around() -> None:
    gate = cfg.GateRule(metric="log_loss", confidence=0.9, max_regression=cfg.Threshold(0.01))
    evidence = _Evidence({}, {"log_loss": (0.05, 0.03, 0.07)})  # head - base: a higher loss
    verdict = gates.evaluate(
        _one_rule(gate), {"log_loss": 0.35}, {"log_loss": 0.30}, _goal, "staging", evidence
    )
    assert verdict.results[0].decided == "fail" and "worse" in verdict.results[0].message
    assert evidence.asked == [("difference", "log_loss", 0.9)]


def test_without_an_interval_the_point_comparison_stands_and_says_so() -> None:
    gate = cfg.GateRule(metric="custom_score", min=0.5, max_regression=cfg.Threshold(1))
    env = _one_rule(gate, confidence=0.95)  # the environment's confidence, for every rule
    verdict = gates.evaluate(
        env, {"custom_score": 0.6}, {"custom_score": 0.65}, _goal, "staging", _Evidence({}, {})
    )
    assert [r.decided for r in verdict.results] == ["pass", "pass"]
    assert all("judged on the point value" in r.message for r in verdict.results)
    assert all(r.confidence is None for r in verdict.results)


def test_no_confidence_no_interval() -> None:
    gate = cfg.GateRule(metric="accuracy", max_regression=cfg.Threshold(2, percent=True))
    evidence = _Evidence({}, {"accuracy": (-0.03, -0.05, -0.01)})
    verdict = gates.evaluate(
        _one_rule(gate), {"accuracy": 0.87}, {"accuracy": 0.9}, _goal, "staging", evidence
    )
    assert verdict.results[0].decided == "fail" and evidence.asked == []


def test_a_passing_verdict_counts_its_inconclusive_rules() -> None:
    gate = cfg.GateRule(metric="accuracy", confidence=0.95, max_regression=cfg.Threshold(2, percent=True))
    evidence = _Evidence({}, {"accuracy": (-0.02, -0.04, 0.003)})
    verdict = gates.evaluate(
        _one_rule(gate), {"accuracy": 0.88}, {"accuracy": 0.9}, _goal, "staging", evidence
    )
    assert verdict.passed and verdict.summary() == "1 gate rule passed (1 inconclusive, counted as pass)"


@pytest.mark.parametrize(
    ("yaml_env", "confidence", "passes"),
    [
        ("{branch: production}", None, False),  # production fails what the data cannot decide
        ("{branch: staging}", None, True),
        ("{branch: staging, confidence: 0.9, on_inconclusive: fail}", 0.9, False),
        ("{branch: production, confidence: 95%, on_inconclusive: pass}", 0.95, True),
    ],
)
def test_environment_confidence_and_on_inconclusive_defaults(
    tmp_path: Path, yaml_env: str, confidence: float | None, passes: bool
) -> None:
    name = "production" if "production" in yaml_env else "staging"
    (tmp_path / "mlci.yaml").write_text(
        f"model: {{name: m}}\ntrain: {{command: python t.py}}\nenvironments:\n  {name}: {yaml_env}\n"
    )
    (env,) = cfg.load(tmp_path / "mlci.yaml").environments
    assert env.confidence == confidence and env.inconclusive_passes is passes


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("confidence: 1.5", "not between 0.5 and 1"),
        ("confidence: 0.3", "not between 0.5 and 1"),
        ("confidence: 'sure'", "confidence level"),
        ("on_inconclusive: maybe", "neither 'fail' nor 'pass'"),
    ],
)
def test_bad_confidence_settings_say_where(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "mlci.yaml").write_text(
        "model: {name: m}\ntrain: {command: python t.py}\nenvironments:\n"
        f"  staging:\n    {text}\n    gates: [{{metric: accuracy, min: 0.5}}]\n"
    )
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load(tmp_path / "mlci.yaml")
    assert says in str(error.value) and "environments.staging" in str(error.value)
