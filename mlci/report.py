"""The report model: a head run diffed against its baselines, with gate verdicts. Pure.

The JSON form (``to_json``) is a documented, stable schema (``schema: 1``);
fields are only ever added to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlci import gates, metrics, policy, tags, verdict
from mlci.config import Config, Goal
from mlci.stats import Interval

if TYPE_CHECKING:
    from mlci.evidence import Certainty
    from mlci.plots import Plots

SCHEMA_VERSION = 1
MARKER = "<!-- mlci:report model={model} -->"


@dataclass(frozen=True)
class Head:
    run_id: str | None
    fingerprint: str
    commit: str | None
    branch: str | None
    metrics: Mapping[str, float]
    params: Mapping[str, Any]
    cached: bool
    run_url: str | None = None
    label: str = "this change"
    intervals: Mapping[str, Interval] = field(default_factory=dict)  # from its predictions or repeats
    repeats: Mapping[str, Any] | None = None  # train.repeats: its seeds and each metric per seed


@dataclass(frozen=True)
class Baseline:
    key: str  # an environment's name, or "base"
    label: str  # "staging v0.0.3", "base main@1a2b3c4"
    found: bool
    version: str | None = None
    commit: str | None = None
    run_id: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    plots: tuple[tuple[str, str], ...] = ()  # its version's report.plots: (name, sha256)


@dataclass(frozen=True)
class Comparison:
    baseline: Baseline
    rows: tuple[metrics.MetricDelta, ...]
    params: metrics.ParamsDiff
    intervals: Mapping[str, Interval] = field(default_factory=dict)  # of head - baseline, by metric


@dataclass(frozen=True)
class DataSection:
    """The declared datasets: each one's checks, and its profile against each baseline's."""

    datasets: tuple[Mapping[str, Any], ...]  # mlci.commands.data.Checked.to_json()
    comparisons: tuple[Mapping[str, Any], ...] = ()  # mlci.data.DatasetDiff.to_json()
    trained: bool = True  # False: the data failed its checks or drifted, so nothing was trained
    why: str = ""  # why nothing was trained: "fails its checks", "drifted past its limits"
    # Each dataset's profile, by name: for the fork-safe flow's artifact, not in the JSON.
    profiles: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def problems(self) -> list[str]:
        return [p["message"] for d in self.datasets for p in d["problems"]]


@dataclass(frozen=True)
class Report:
    model: str
    head: Head
    comparisons: tuple[Comparison, ...]
    verdicts: tuple[gates.Verdict, ...]
    metric_names: tuple[str, ...]
    goals: Mapping[str, Goal]
    key_metric: str | None
    history: tuple[tuple[str, float], ...]  # (version, key metric), oldest first
    pr: int | None = None
    run_link: str | None = None  # the CI run that made the report
    policy_from: str | None = None  # where the policy that judged it came from, e.g. "staging"
    policy_changes: tuple[policy.Change, ...] = ()  # what the change does to the policy
    notes: tuple[str, ...] = ()  # what else a reader must know (a pinned environment, ...)
    params_file: str | None = None  # train.params; None: the params are not tracked (they live in code)
    data: DataSection | None = None  # the declared datasets (data: in mlci.yaml), when checked
    sweep: Any = None  # mlci.usecases.sweep.Leaderboard: the pull request's sweep, when it ran one
    plots: Plots | None = None  # from the head's and the baselines' predictions (mlci.plots)
    figures: tuple[Any, ...] = ()  # the project's own plots (mlci.usecases.figures.Figure), head's first

    @property
    def marker(self) -> str:
        return MARKER.format(model=self.model)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def build(
    config: Config,
    head: Head,
    baselines: Sequence[Baseline],
    *,
    gate_environments: Sequence[str] | None = None,
    history: Sequence[tuple[str, float]] = (),
    pr: int | None = None,
    run_link: str | None = None,
    certainty: Certainty | None = None,
    state: tags.ModelState | None = None,
    data: verdict.Data | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """Diff ``head`` against every baseline and judge it (``mlci.verdict``) for each
    environment (or each of ``gate_environments``) against that environment's model;
    ``certainty`` gives the intervals a rule with a confidence is judged on, and the
    ones the table shows; ``state`` the registry (``requires``, pins); ``data`` what the
    declared datasets say."""
    goal_of: Callable[[str], Goal] = config.goal
    configured = list(config.metrics)
    comparisons = tuple(
        Comparison(
            baseline=b,
            rows=tuple(metrics.diff(head.metrics, b.metrics if b.found else None, goal_of, configured)),
            params=metrics.diff_params(head.params, b.params if b.found else None),
            intervals=certainty.table(b) if certainty and b.found else {},
        )
        for b in baselines
    )
    if certainty:
        head = dataclasses.replace(head, intervals=certainty.table(None), repeats=certainty.repeats())
    names: list[str] = [n for n in configured if n in head.metrics or any(n in b.metrics for b in baselines)]
    for source in (head.metrics, *(b.metrics for b in baselines)):
        names += sorted(n for n in source if n not in names)
    wanted = gate_environments if gate_environments is not None else [e.name for e in config.environments]
    case = verdict.Case(
        config,
        head.metrics,
        head.fingerprint,
        state,
        {b.key: b for b in baselines},
        certainty=certainty,
        data=data,
    )
    verdicts = verdict.judge_all(case, [e.name for e in config.environments if e.name in wanted])
    held = [f"merging will not promote: {v.held}" for v in verdicts if v.held]
    return Report(
        model=config.model.name,
        head=head,
        comparisons=comparisons,
        verdicts=verdicts,
        metric_names=tuple(dict.fromkeys(names)),
        goals={n: goal_of(n) for n in names},
        key_metric=config.key_metric,
        history=tuple(history),
        pr=pr,
        run_link=run_link,
        params_file=config.train.params,
        notes=(*held, *notes),
        data=None if data is None else data_section(data),
        plots=certainty.plots(head.label, baselines) if certainty and head.metrics else None,
    )


# How one cell of the table judges the head's change against a column's baseline:
# the gate's outcome where the column's environment is gated on the metric; else the
# interval of the difference where there is one ("better" or "worse" only beyond the
# noise); else no judgement ("change"): never the sign of the point change alone.
Mark = Literal[
    "pass", "fail", "inconclusive", "better", "worse", "noise", "change", "same", "new", "missing", "absent"
]


def mark(report: Report, comparison: Comparison, name: str) -> Mark:
    """How the table marks ``name`` in ``comparison``'s column (``Mark``)."""
    row = next((r for r in comparison.rows if r.name == name), None)
    if row is None or not comparison.baseline.found:
        row = metrics.compare(name, report.goals.get(name, "maximize"), report.head.metrics.get(name), None)
    ruled = [
        r.decided
        for v in report.verdicts
        if v.environment == comparison.baseline.key
        for r in v.results
        if r.metric == name and r.rule in gates.METRIC_RULES
    ]
    if ruled and row.head is not None:
        return "fail" if "fail" in ruled else "inconclusive" if "inconclusive" in ruled else "pass"
    return unruled_mark(comparison, row)


def unruled_mark(comparison: Comparison, row: metrics.MetricDelta) -> Mark:
    """A change no gate judges: by the interval of the difference alone."""
    if row.verdict in ("missing", "new"):
        return "absent" if row.head is None and row.base is None else row.verdict
    if row.verdict == "same":
        return "same"
    interval = comparison.intervals.get(row.name)
    if interval is None or interval.low != interval.low:  # none, or undefined (NaN)
        return "change"
    gain_low, gain_high = (
        (interval.low, interval.high) if row.goal == "maximize" else (-interval.high, -interval.low)
    )
    return "better" if gain_low > 0 else "worse" if gain_high < 0 else "noise"


def same_model(a: Baseline, b: Baseline) -> bool:
    """Two baselines that hold the same run (staging's version is the base branch's run)."""
    if not (a.found and b.found):
        return False
    if a.run_id and b.run_id:
        return a.run_id == b.run_id
    return bool(a.commit) and a.commit == b.commit and dict(a.metrics) == dict(b.metrics)


def data_section(data: verdict.Data) -> DataSection:
    """The report's datasets: each one's checks, and its profile against each environment's model's."""
    return DataSection(
        datasets=tuple(c.to_json() for c in data.checked),
        comparisons=tuple(d.to_json() for ds in data.comparisons.values() for d in ds),
        trained=data.trained,
        why=""
        if data.trained
        else data.why or ("fails its checks" if data.failures else "drifted past its limits"),
        profiles={c.dataset.name: c.profile for c in data.checked},
    )


def to_json(report: Report) -> dict[str, Any]:
    """The stable JSON schema (see the README's "Report JSON")."""
    return {
        "schema": SCHEMA_VERSION,
        "model": report.model,
        "passed": report.passed,
        "pr": report.pr,
        "run_link": report.run_link,
        "head": {
            "label": report.head.label,
            "run_id": report.head.run_id,
            "fingerprint": report.head.fingerprint,
            "commit": report.head.commit,
            "branch": report.head.branch,
            "cached": report.head.cached,
            "run_url": report.head.run_url,
            "metrics": dict(report.head.metrics),
            "params": dict(report.head.params),
            "params_file": report.params_file,
            "intervals": {n: i.to_json() for n, i in report.head.intervals.items()},
            "repeats": report.head.repeats,
        },
        "data": None
        if report.data is None
        else {
            "trained": report.data.trained,
            "why": report.data.why or None,
            "datasets": list(report.data.datasets),
            "comparisons": list(report.data.comparisons),
        },
        "baselines": [
            {
                "key": c.baseline.key,
                "label": c.baseline.label,
                "found": c.baseline.found,
                "version": c.baseline.version,
                "commit": c.baseline.commit,
                "run_id": c.baseline.run_id,
                "note": c.baseline.note,
                "intervals": {n: i.to_json() for n, i in c.intervals.items()},
                "metrics": [
                    {
                        "name": r.name,
                        "goal": r.goal,
                        "head": r.head,
                        "base": r.base,
                        "delta": r.delta,
                        "relative": r.relative,
                        "verdict": r.verdict,
                    }
                    for r in c.rows
                ],
                "params": {
                    "added": c.params.added,
                    "removed": c.params.removed,
                    "changed": {k: {"base": v[0], "head": v[1]} for k, v in c.params.changed.items()},
                },
            }
            for c in report.comparisons
        ],
        "gates": [v.to_json() for v in report.verdicts],
        "key_metric": report.key_metric,
        "history": [{"version": v, "value": x} for v, x in report.history],
        "policy": {
            "from": report.policy_from,
            "changes": [dataclasses.asdict(c) for c in report.policy_changes],
        },
        "notes": list(report.notes),
        "plots": None if report.plots is None else report.plots.to_json(),
        "figures": [f.to_json() for f in report.figures],
    }
