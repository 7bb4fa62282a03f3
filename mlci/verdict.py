"""The one place a head is judged against an environment. Pure.

Every path that says pass or fail builds a ``Case`` and calls ``judge``: ``mlci
gate``, ``diff`` and ``report``, ``mlci ci`` on a pull request and on a push,
``mlci publish`` (the fork-safe flow), ``mlci promote`` and ``rollback``, and a
sweep's leaderboard. What differs between them is where the evidence comes from
(a run trained here, a report artifact's data, a version's tag), never the rules:
so the laptop's ``mlci gate`` says what CI says, rule for rule.

A verdict's rules, in order:

1. the environment's metric rules (``gates.evaluate``), on intervals where a rule
   has a confidence and the evidence has one, against the model in the environment
   now; none when the data kept the head from being trained;
2. ``requires``: the head must be a version that has been in the required
   environment (a rollback skips it);
3. the data, when the project declares datasets: one rule that fails on a failed
   check or a column drifted past its limit from the environment's model's data.

A rollback's pin does not fail a verdict: it holds it (``Verdict.held``), and an
automatic promotion of a verdict that is held does nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mlci import gates, tags
from mlci.config import Config


class Baseline(Protocol):
    """The model an environment holds now (``mlci.report.Baseline``)."""

    @property
    def found(self) -> bool: ...
    @property
    def label(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def metrics(self) -> Mapping[str, float]: ...


class Certainty(Protocol):
    """Where the intervals come from (``mlci.evidence.Certainty``)."""

    def gate(self, env: Any, baseline: Any) -> gates.Evidence: ...


@dataclass(frozen=True)
class Data:
    """What the declared datasets say: each one's checks (objects with ``problems``,
    each with a ``message``), and by environment each dataset's profile against the
    data of that environment's model (objects with ``problems``). ``trained`` False: the
    data kept the head from being trained (it has no metrics to judge)."""

    checked: Sequence[Any]
    comparisons: Mapping[str, Sequence[Any]]
    trained: bool = True
    why: str | None = None  # why nothing was trained, where the checks do not show it

    @property
    def failures(self) -> list[str]:
        return [p.message for c in self.checked for p in c.problems]

    def drifted(self, environment: str) -> list[str]:
        return [p.message for d in self.comparisons.get(environment, ()) for p in d.problems]


@dataclass(frozen=True)
class Case:
    """Everything a verdict is judged on. ``config`` carries the policy that judges (the
    base branch's, ``policy.judged_by``); ``baselines`` the model each environment holds
    now, by environment name (one that is missing or not ``found``: no baseline yet)."""

    config: Config
    metrics: Mapping[str, float]
    fingerprint: str | None
    state: tags.ModelState | None
    baselines: Mapping[str, Baseline]
    certainty: Certainty | None = None
    data: Data | None = None
    version: str | None = None  # the head is this registered version (a promotion names it)
    explicit: bool = False  # a version named by hand (promote --version) moves a pinned environment
    rollback: bool = False  # a rollback: absolute metric rules only, no ``requires``

    def head_version(self) -> str | None:
        if self.version is not None:
            return self.version
        if self.state is None or self.fingerprint is None:
            return None
        return self.state.version_of_fingerprint(self.fingerprint)


def judge(case: Case, environment: str) -> gates.Verdict:
    """``case``'s head against ``environment``: its rules, their outcome, and whether a
    pin holds it."""
    config = case.config
    env = config.environment(environment)
    if case.rollback:
        # A rollback goes back to a model that was fine before: relative rules
        # (against the model being replaced) do not apply; absolute ones do.
        absolute = tuple(
            dataclasses.replace(r, max_regression=None, min_improvement=None)
            for r in env.gates
            if r.min is not None or r.max is not None
        )
        env = dataclasses.replace(env, gates=absolute)
    baseline = case.baselines.get(env.name)
    found = baseline if baseline is not None and baseline.found and baseline.metrics else None
    verdict = gates.evaluate(
        env,
        case.metrics,
        found.metrics if found else None,
        config.goal,
        baseline_label=found.label if found else None,
        evidence=case.certainty.gate(env, found) if case.certainty else None,
    )
    if case.data is not None and not case.data.trained:
        verdict = dataclasses.replace(verdict, results=(), passed=True)
    if env.requires and not case.rollback:
        verdict = gates.with_requirement(verdict, env.requires, unmet_requirement(case, env.name))
    if case.data is not None:
        verdict = gates.with_data(verdict, case.data.failures + case.data.drifted(env.name))
    pin = _holding_pin(case, env.name)
    if pin is None:
        return verdict
    return dataclasses.replace(verdict, held=tags.pin_message(pin), pinned=pin.version)


def judge_all(case: Case, environments: Sequence[str]) -> tuple[gates.Verdict, ...]:
    return tuple(judge(case, name) for name in environments)


def unmet_requirement(case: Case, environment: str) -> str | None:
    """Why the head may not go to ``environment`` yet (its ``requires``), or None.

    It may if it is a version that was assigned to the required environment
    (assignments pass that environment's gates)."""
    env = case.config.environment(environment)
    assert env.requires is not None
    model = case.config.model.name
    version = case.head_version()
    if case.state is None or version is None:
        return (
            f"these inputs of {model} have never been in {env.requires} ({env.name} requires it): "
            f"merge them into {env.requires} first"
        )
    if case.state.was_assigned(version, env.requires):
        return None
    return f"{model} {version} has never been in {env.requires} ({env.name} requires it)"


def _holding_pin(case: Case, environment: str) -> tags.Event | None:
    """The pin that keeps the head out of ``environment``: a rollback holds it until
    ``mlci unpin`` or a promotion that names a version."""
    if case.state is None or case.explicit or case.rollback:
        return None
    pin = case.state.pin(environment)
    if pin is None or (pin.version is not None and pin.version == case.head_version()):
        return None
    return pin
