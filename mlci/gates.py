"""Gates: an environment's rules evaluated against a candidate's metrics. Pure.

A failed gate is a value (``Verdict.passed is False``), not an exception: the
caller decides the exit code. Every rule result carries a message with its
numbers, such as "accuracy 0.912 < min 0.93".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from mlci.config import Environment, GateRule, Goal, Threshold
from mlci.stats import Interval

_EPS = 1e-12
Outcome = Literal["pass", "fail", "inconclusive"]
METRIC_RULES = ("min", "max", "max_regression", "min_improvement")  # a rule on a metric's value


class Evidence(Protocol):
    """What the data says about the head's metrics (mlci.stats, from predictions): None
    where a metric cannot be recomputed, and the rule keeps its point comparison."""

    def interval(self, metric: str, confidence: float) -> Interval | None:
        """The head's value with its interval."""

    def difference(self, metric: str, confidence: float) -> Interval | None:
        """head minus the baseline, with its interval (paired on the same rows)."""


@dataclass(frozen=True)
class RuleResult:
    metric: str
    rule: str  # "min", "max", "max_regression" or "min_improvement"
    passed: bool
    message: str
    value: float | None
    threshold: str
    baseline: float | None = None
    outcome: Outcome | None = None  # None: "pass" or "fail" as ``passed`` says
    confidence: float | None = None  # the level the rule was judged at (with an interval)
    interval: Interval | None = None  # the interval it was judged on (a value's, or a difference's)

    @property
    def decided(self) -> Outcome:
        return self.outcome or ("pass" if self.passed else "fail")


@dataclass(frozen=True)
class Verdict:
    environment: str
    passed: bool
    results: tuple[RuleResult, ...]
    baseline_label: str | None  # e.g. "staging's v0.0.3"; None: no baseline yet
    held: str | None = None  # a rollback's pin keeps the head out (mlci.verdict): why, else None
    pinned: str | None = None  # the version that pin holds the environment at

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def outcome(self) -> Outcome:
        """fail if a rule failed outright; inconclusive if the data left one undecided
        (whatever the environment counts that as); else pass."""
        decided = {r.decided for r in self.results}
        return "fail" if "fail" in decided else "inconclusive" if "inconclusive" in decided else "pass"

    def summary(self) -> str:
        """One line, as a commit status description would show it."""
        if self.held:
            pinned = f"{self.environment} pinned to {self.pinned}"
            return f"{pinned} by a rollback: merging will not promote; {self._rules()}"
        return self._rules()

    def _rules(self) -> str:
        if self.passed:
            undecided = sum(r.decided == "inconclusive" for r in self.results)
            note = f" ({undecided} inconclusive, counted as pass)" if undecided else ""
            return f"{len(self.results)} gate rule{'s' if len(self.results) != 1 else ''} passed{note}"
        return "; ".join(r.message for r in self.failures)

    def to_json(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "passed": self.passed,
            "outcome": self.outcome,
            "baseline": self.baseline_label,
            "held": self.held,
            "rules": [rule_json(r) for r in self.results],
            "summary": self.summary(),
        }


def rule_json(result: RuleResult) -> dict[str, object]:
    """A rule's result for --json: pass / fail / inconclusive, and the numbers behind it."""
    data = dataclasses.asdict(result)
    data["outcome"] = result.decided
    if result.interval is None:
        del data["interval"]
    if result.confidence is None:
        del data["confidence"]
    return data


def mark(result: RuleResult) -> str:
    """How a log line marks a rule: pass, FAIL, or what an inconclusive one counted as."""
    verdict = "pass" if result.passed else "FAIL"
    return f"inconclusive: {verdict}" if result.decided == "inconclusive" else verdict


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
    return replace(verdict, passed=verdict.passed and unmet is None, results=(*verdict.results, result))


def with_data(verdict: Verdict, problems: list[str]) -> Verdict:
    """The verdict with the data as one more rule: it fails with each problem (a failed
    check, a column drifted past its limit from this environment's model's data)."""
    result = RuleResult(
        metric="",
        rule="data",
        passed=not problems,
        message="; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        if problems
        else "the data passes its checks",
        value=None,
        threshold="data",
    )
    return replace(verdict, passed=verdict.passed and not problems, results=(*verdict.results, result))


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
    evidence: Evidence | None = None,
) -> Verdict:
    """Every rule of ``environment`` against ``head``; relative rules against ``baseline``.

    No baseline (the first model): relative rules pass with the note "no
    baseline"; absolute rules still apply. A missing or NaN metric fails every
    rule on it. A rule with a confidence (its own, or its environment's) is judged
    on ``evidence``'s interval where there is one: pass or fail only when the whole
    interval says so, else inconclusive, which counts as the environment's
    ``on_inconclusive``.
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
            point = _check(
                rule, kind, value, goal_of(rule.metric), base_value, label if base_value is not None else None
            )
            confidence = environment.confidence_of(rule)
            if confidence is not None:  # without evidence, the point result says it is one
                point = _with_interval(
                    point,
                    environment,
                    rule,
                    confidence,
                    goal_of(rule.metric),
                    evidence or _NO_EVIDENCE,
                    label,
                )
            results.append(point)
    return Verdict(
        environment=environment.name,
        passed=all(r.passed for r in results),
        results=tuple(results),
        baseline_label=label,
    )


def _pct(value: float, baseline: float | None) -> str:
    return f"{value / abs(baseline) * 100:+.1f}%" if baseline else f"{value:+.4g}"


def _on_point(point: RuleResult) -> RuleResult:
    """The point result, saying that it is one."""
    return replace(
        point, message=f"{point.message} (no interval for {point.metric}: judged on the point value)"
    )


class _NoEvidence:
    """No predictions and no repeats: no interval for any metric."""

    def interval(self, metric: str, confidence: float) -> Interval | None:
        return None

    def difference(self, metric: str, confidence: float) -> Interval | None:
        return None


_NO_EVIDENCE = _NoEvidence()


def _across(interval: Interval) -> str:
    """How an interval across training seeds says so (one from predictions says nothing)."""
    return f" across {interval.seeds} seeds" if interval.seeds else ""


def _at_least(low: float, high: float, floor: float) -> Outcome:
    """An interval against a floor: all of it at or above (pass), all below (fail), or both."""
    return "pass" if not _strictly_less(low, floor) else "fail" if high < floor else "inconclusive"


def _with_interval(
    point: RuleResult,
    environment: Environment,
    rule: GateRule,
    confidence: float,
    goal: Goal,
    evidence: Evidence,
    baseline_label: str | None,
) -> RuleResult:
    """The rule judged on an interval at ``confidence`` instead of a point; the point
    result (marked so) where the evidence has no interval for the metric."""
    level = f"{confidence * 100:g}%"
    m, kind = rule.metric, point.rule
    if kind in ("min", "max"):
        interval = evidence.interval(m, confidence)
        if interval is None or math.isnan(interval.low):
            return _on_point(point)
        bound = float(rule.min if kind == "min" else rule.max)  # type: ignore[arg-type]
        shown = f"{m} {_fmt(interval.value)} [{_fmt(interval.low)}, {_fmt(interval.high)}]{_across(interval)}"
        if kind == "min":
            outcome = _at_least(interval.low, interval.high, bound)
            said = {
                "pass": f">= min {_fmt(bound)}",
                "fail": f"< min {_fmt(bound)}",
                "inconclusive": f"may be below min {_fmt(bound)}",
            }
        else:
            outcome = (
                "pass"
                if not _strictly_less(bound, interval.high)
                else "fail"
                if interval.low > bound
                else "inconclusive"
            )
            said = {
                "pass": f"<= max {_fmt(bound)}",
                "fail": f"> max {_fmt(bound)}",
                "inconclusive": f"may be above max {_fmt(bound)}",
            }
        message = f"{shown} {said[outcome]} at {level}"
    else:
        if point.baseline is None:  # no baseline: the point result ("no baseline") stands
            return point
        difference = evidence.difference(m, confidence)
        if difference is None or math.isnan(difference.low):
            return _on_point(point)
        baseline = point.baseline
        threshold = rule.max_regression if kind == "max_regression" else rule.min_improvement
        assert threshold is not None
        allowed = threshold.amount(baseline)
        # The improvement in the goal's direction, and its interval.
        if goal == "maximize":
            gain, low, high = difference.value, difference.low, difference.high
        else:
            gain, low, high = -difference.value, -difference.high, -difference.low
        against = f"{baseline_label or 'the baseline'}'s {_fmt(baseline)}"
        worse_or_better = "worse" if gain < 0 else "better"
        change = f"{_pct(abs(gain), baseline).lstrip('+')} {worse_or_better}" if gain else "no different"
        shown = (
            f"{m} is {change} than {against}, {level} CI{_across(difference)} "
            f"[{_pct(low, baseline)}, {_pct(high, baseline)}]"
        )
        if kind == "max_regression":
            outcome = _at_least(low, high, -allowed)
            said = {
                "pass": f"within max_regression {threshold}",
                "fail": f"beyond max_regression {threshold}",
                "inconclusive": f"not decided against max_regression {threshold}",
            }
        else:
            outcome = _at_least(low, high, allowed)
            said = {
                "pass": f"meets min_improvement {threshold}",
                "fail": f"short of min_improvement {threshold}",
                "inconclusive": f"not decided against min_improvement {threshold}",
            }
        message = f"{shown}: {said[outcome]} at {level}"
        interval = difference
    passed = outcome == "pass" or (outcome == "inconclusive" and environment.inconclusive_passes)
    if outcome == "inconclusive":
        message += f"; inconclusive → {'pass' if passed else 'fail'} for {environment.name}"
    return replace(
        point, passed=passed, message=message, outcome=outcome, confidence=confidence, interval=interval
    )
