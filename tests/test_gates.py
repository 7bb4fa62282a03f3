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
