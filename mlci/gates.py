"""Gates: an environment's rules evaluated against a candidate's metrics. Pure.

A failed gate is a value (``Verdict.passed is False``), not an exception: the
caller decides the exit code. Every rule result carries a message with its
numbers, such as "accuracy 0.912 < min 0.93".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlci.config import Environment, GateRule, Goal, Threshold

_EPS = 1e-12


@dataclass(frozen=True)
class RuleResult:
    metric: str
    rule: str  # "min", "max", "max_regression" or "min_improvement"
    passed: bool
    message: str
    value: float | None
    threshold: str
    baseline: float | None = None


@dataclass(frozen=True)
class Verdict:
    environment: str
    passed: bool
    results: tuple[RuleResult, ...]
    baseline_label: str | None  # e.g. "staging's v0.0.3"; None: no baseline yet

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def summary(self) -> str:
        """One line, as a commit status description would show it."""
        if self.passed:
            return f"{len(self.results)} gate rule{'s' if len(self.results) != 1 else ''} passed"
        return "; ".join(r.message for r in self.failures)


def with_requirement(verdict: Verdict, requires: str, unmet: str | None) -> Verdict:
    """The verdict with the environment's ``requires`` as one more rule: it fails
    with ``unmet`` (why), and passes when ``unmet`` is None."""
    result = RuleResult(
        metric="",
        rule="requires",
        passed=unmet is None,
        message=unmet or f"has been in {requires}",
        value=None,
        threshold=requires,
    )
    passed = verdict.passed and unmet is None
    return Verdict(verdict.environment, passed, (*verdict.results, result), verdict.baseline_label)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _strictly_less(a: float, b: float) -> bool:
    return a < b - _EPS * max(1.0, abs(b))


def _check(
    rule: GateRule,
    kind: str,
    value: float,
    goal: Goal,
    baseline: float | None,
    baseline_label: str | None,
) -> RuleResult:
    m = rule.metric
    if kind == "min":
        assert rule.min is not None
        ok = not _strictly_less(value, rule.min)
        sign = ">=" if ok else "<"
        return RuleResult(
            m, kind, ok, f"{m} {_fmt(value)} {sign} min {_fmt(rule.min)}", value, _fmt(rule.min)
        )
    if kind == "max":
        assert rule.max is not None
        ok = not _strictly_less(rule.max, value)
        sign = "<=" if ok else ">"
        return RuleResult(
            m, kind, ok, f"{m} {_fmt(value)} {sign} max {_fmt(rule.max)}", value, _fmt(rule.max)
        )

    threshold: Threshold | None = rule.max_regression if kind == "max_regression" else rule.min_improvement
    assert threshold is not None
    if baseline is None or baseline_label is None:
        return RuleResult(m, kind, True, f"{m} {kind} {threshold}: no baseline", value, str(threshold))
    allowed = threshold.amount(baseline)
    # Improvement in the direction of the goal (negative: a regression).
    improvement = value - baseline if goal == "maximize" else baseline - value
    pct = f" ({abs(improvement) / abs(baseline) * 100:.2f}%)" if baseline != 0 else ""
    if kind == "max_regression":
        ok = not _strictly_less(improvement, -allowed)
        if improvement >= 0:
            message = f"{m} {_fmt(value)} is no worse than {baseline_label}'s {_fmt(baseline)}"
        else:
            message = (
                f"{m} {_fmt(value)} is {_fmt(-improvement)}{pct} worse than {baseline_label}'s "
                f"{_fmt(baseline)}; max_regression {threshold}"
            )
        return RuleResult(m, kind, ok, message, value, str(threshold), baseline)
    ok = not _strictly_less(improvement, allowed)
    against = f"{baseline_label}'s {_fmt(baseline)}"
    if improvement > 0:
        message = f"{m} {_fmt(value)} improved on {against} by {_fmt(improvement)}{pct}"
    else:
        message = f"{m} {_fmt(value)} did not improve on {against}"
    message += f"; min_improvement {threshold}"
    return RuleResult(m, kind, ok, message, value, str(threshold), baseline)


def evaluate(
    environment: Environment,
    head: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    goal_of: Callable[[str], Goal],
    baseline_label: str | None = None,
) -> Verdict:
    """Every rule of ``environment`` against ``head``; relative rules against ``baseline``.

    No baseline (the first model): relative rules pass with the note "no
    baseline"; absolute rules still apply. A missing or NaN metric fails every
    rule on it.
    """
    results: list[RuleResult] = []
    label = baseline_label if baseline is not None else None
    for rule in environment.gates:
        kinds = [
            k for k in ("min", "max", "max_regression", "min_improvement") if getattr(rule, k) is not None
        ]
        value = head.get(rule.metric)
        for kind in kinds:
            threshold = str(getattr(rule, kind))
            if kind in ("min", "max"):
                threshold = _fmt(float(getattr(rule, kind)))
            if value is None:
                results.append(
                    RuleResult(
                        rule.metric,
                        kind,
                        False,
                        f"{rule.metric} is missing from the metrics",
                        None,
                        threshold,
                    )
                )
                continue
            if math.isnan(value):
                results.append(
                    RuleResult(rule.metric, kind, False, f"{rule.metric} is NaN", value, threshold)
                )
                continue
            base_value = baseline.get(rule.metric) if baseline is not None else None
            if base_value is not None and math.isnan(base_value):
                base_value = None
            results.append(
                _check(
                    rule,
                    kind,
                    value,
                    goal_of(rule.metric),
                    base_value,
                    label if base_value is not None else None,
                )
            )
    return Verdict(
        environment=environment.name,
        passed=all(r.passed for r in results),
        results=tuple(results),
        baseline_label=label,
    )
