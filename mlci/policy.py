"""The policy that judges a change, and what a change does to it. Pure.

A pull request's training settings come from its head (they are what is
being tested), but the policy that judges it, the environments (their
branches, `requires` and gates) and the metric goals, comes from the branch
it merges into: the change under review cannot bend its own gate. A change
to the policy is shown rule by rule, and judges the next pull request after
it merges.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mlci.config import Config, Dataset, Environment, GateRule, RegistryConfig, TrackingConfig

_FIELDS = ("min", "max", "max_regression", "min_improvement", "confidence")
_COLUMN_FIELDS = ("type", "nulls", "min", "max", "allowed", "drift")


@dataclass(frozen=True)
class Change:
    where: str  # "staging · accuracy", "staging", "metric accuracy"
    what: str  # "min", "requires", "gate", "environment", "goal", "branch"
    old: str | None  # None: absent before
    new: str | None  # None: absent after

    def describe(self) -> str:
        old = "none" if self.old is None else self.old
        new = "none" if self.new is None else self.new
        return f"{self.where}: {self.what} {old} → {new}"


# Every setting of mlci.yaml, and whose file decides it for a pull request (the README's
# "What a pull request can change"; tests/test_policy.py fails on a setting not listed):
# - "head": what is trained, the pull request's own: it is what is under review;
# - "base": what judges it and what is posted (the gates, the goals, the data checks, the
#   report's template and contents): the branch it merges into;
# - "writer": where a job connects with its credentials: the head's in a job that trains
#   (its run is recorded there), the base's in a job that holds a write token.
HEAD, BASE, WRITER = "head", "base", "writer"
SETTINGS: dict[str, str] = {
    "model.name": HEAD,
    "model.description": HEAD,
    "train.command": HEAD,
    "train.inputs": HEAD,
    "train.exclude": HEAD,
    "train.params": HEAD,
    "train.parameters": HEAD,
    "train.parameters_from": HEAD,
    "train.overrides": HEAD,
    "train.metrics": HEAD,
    "train.model": HEAD,
    "train.rewrites": HEAD,
    "train.own_cache": HEAD,
    "train.withhold_env": HEAD,
    "train.predictions": HEAD,
    "train.timeout": HEAD,
    "train.repeats": HEAD,
    "sweep.candidates": HEAD,
    "sweep.limit": HEAD,
    "sweep.from_grid": HEAD,
    "data.path": HEAD,
    "data.format": HEAD,
    "metrics": BASE,
    "environments": BASE,
    "report.baselines": BASE,
    "report.template": BASE,
    "report.key_metric": BASE,
    "report.plots": HEAD,  # what the head's training writes; each file is checked as an image
    "data.name": BASE,
    "data.columns": BASE,
    "data.key": BASE,
    "data.rows_min": BASE,
    "data.rows_max": BASE,
    "data.drift": BASE,
    "tracking.uri": WRITER,
    "tracking.experiment": WRITER,
    "tracking.timeout": WRITER,
    "tracking.wait": WRITER,
    "registry.store": WRITER,
}


def judged_by(head: Config, base: Config | None) -> Config:
    """The head's config with the base's policy and report: what judges a pull request,
    and what renders the verdict (``SETTINGS``: "base")."""
    if base is None:
        return head
    return dataclasses.replace(
        head,
        environments=base.environments,
        metrics=base.metrics,
        data=_data_judged_by(head, base),
        report=dataclasses.replace(base.report, plots=head.report.plots),
    )


def for_writing(head: Config, base: Config | None) -> Config:
    """What a job that holds a write token uses: ``judged_by``, and where it connects
    (the tracking server, the registry's store) from the base too (``SETTINGS``:
    "writer"), so a pull request cannot send the job's credentials elsewhere. Without a
    base config the pull request's own policy judges it (as ``judged_by``), but nothing
    it names is rendered or reached: mlci's own template, the embedded store."""
    if base is None:
        return dataclasses.replace(
            head,
            report=dataclasses.replace(head.report, template=None),
            tracking=TrackingConfig(),
            registry=RegistryConfig(),
        )
    return dataclasses.replace(judged_by(head, base), tracking=base.tracking, registry=base.registry)


def _data_judged_by(head: Config, base: Config) -> tuple[Dataset, ...]:
    """The head's datasets (where its data is) with the base's checks for each dataset
    the base declares; a dataset the pull request drops is still checked, as the base
    declares it. What is trained changes; what judges it does not."""
    checks = {d.name: d for d in base.data}
    found = [
        dataclasses.replace(checks[d.name], path=d.path, format=d.format) if d.name in checks else d
        for d in head.data
    ]
    named = {d.name for d in head.data}
    return tuple(found + [d for d in base.data if d.name not in named])


def _value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, tuple):
            return "[" + ", ".join(str(_value(v)) for v in value) + "]"
        return str(value)
    return f"{value:g}"


def _rules(env: Environment) -> dict[str, list[GateRule]]:
    found: dict[str, list[GateRule]] = {}
    for rule in env.gates:
        found.setdefault(rule.metric, []).append(rule)
    return found


def _gate_changes(name: str, old: Environment, new: Environment) -> list[Change]:
    changes: list[Change] = []
    before, after = _rules(old), _rules(new)
    for metric in [*before, *(m for m in after if m not in before)]:
        olds, news = before.get(metric, []), after.get(metric, [])
        for i in range(max(len(olds), len(news))):
            where = f"{name} · {metric}" + (f" (rule {i + 1})" if max(len(olds), len(news)) > 1 else "")
            a = olds[i] if i < len(olds) else None
            b = news[i] if i < len(news) else None
            for field in _FIELDS:
                va = _value(getattr(a, field)) if a else None
                vb = _value(getattr(b, field)) if b else None
                if va != vb:
                    changes.append(Change(where, field, va, vb))
    return changes


def diff(base: Config | None, head: Config) -> list[Change]:
    """Every way ``head``'s policy differs from ``base``'s, rule by rule."""
    if base is None:
        return []
    changes: list[Change] = []
    old_envs = {e.name: e for e in base.environments}
    new_envs = {e.name: e for e in head.environments}
    for name in [*old_envs, *(n for n in new_envs if n not in old_envs)]:
        old, new = old_envs.get(name), new_envs.get(name)
        if old is None or new is None:
            defined = (None if old is None else "defined", None if new is None else "defined")
            changes.append(Change(name, "environment", *defined))
            continue
        if old.branch != new.branch:
            changes.append(Change(name, "branch", old.branch, new.branch))
        if old.requires != new.requires:
            changes.append(Change(name, "requires", old.requires, new.requires))
        if old.confidence != new.confidence:
            changes.append(Change(name, "confidence", _value(old.confidence), _value(new.confidence)))
        if old.deploy != new.deploy:
            hooks = [
                None if d is None else f"{d.command}" + (f" (smoke: {d.smoke})" if d.smoke else "")
                for d in (old.deploy, new.deploy)
            ]
            changes.append(Change(name, "deploy", *hooks))
        if old.inconclusive_passes != new.inconclusive_passes:
            word = {True: "pass", False: "fail"}
            changes.append(
                Change(name, "on_inconclusive", word[old.inconclusive_passes], word[new.inconclusive_passes])
            )
        changes += _gate_changes(name, old, new)
    for metric in sorted(set(base.metrics) | set(head.metrics)):
        old_goal, new_goal = base.goal(metric), head.goal(metric)
        if old_goal != new_goal:
            changes.append(Change(f"metric {metric}", "goal", old_goal, new_goal))
    return changes + _data_changes(base.data, head.data)


def _data_changes(old: tuple[Dataset, ...], new: tuple[Dataset, ...]) -> list[Change]:
    """Each data check the change adds, drops or moves (where the data is, is not policy)."""
    changes: list[Change] = []
    before, after = {d.name: d for d in old}, {d.name: d for d in new}
    for name in [*before, *(n for n in after if n not in before)]:
        a, b = before.get(name), after.get(name)
        where = f"data {name}"
        if a is None or b is None:
            changes.append(
                Change(where, "dataset", None if a is None else "declared", None if b is None else "declared")
            )
            continue
        for field, old_value, new_value in (
            ("key", a.key or None, b.key or None),
            ("rows.min", a.rows_min, b.rows_min),
            ("rows.max", a.rows_max, b.rows_max),
            ("drift", a.drift, b.drift),
        ):
            if _value(old_value) != _value(new_value):
                changes.append(Change(where, field, _value(old_value), _value(new_value)))
        columns_a = {c.name: c for c in a.columns}
        columns_b = {c.name: c for c in b.columns}
        for column in [*columns_a, *(c for c in columns_b if c not in columns_a)]:
            ca, cb = columns_a.get(column), columns_b.get(column)
            here = f"{where} · {column}"
            if ca is None or cb is None:
                defined = (None if ca is None else "required", None if cb is None else "required")
                changes.append(Change(here, "column", *defined))
            for field in _COLUMN_FIELDS:
                va = _value(getattr(ca, field)) if ca else None
                vb = _value(getattr(cb, field)) if cb else None
                if va != vb:
                    changes.append(Change(here, field, va, vb))
    return changes
