"""Metrics: a metrics file's numbers, and diffs of a run against a baseline. Pure."""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlci.config import Goal
from mlci.errors import MetricsError
from mlci.params import flatten

# MLflow's rule for metric names (and its normalised-path rule below).
_NAME_RE = re.compile(r"^[/\w.\- :]+$")
MAX_METRICS = 1_000  # metrics of one run: each is a row of the report, a tag value, a logged metric


def _not_a_path(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith(("..", "/"))


def metrics_from(data: Any, source: str) -> dict[str, float]:
    """The numbers of a metrics file, nested keys flattened with '.'.

    Every value must be a finite number: a string, a boolean, NaN or infinity
    is an error that names the key.
    """
    if not isinstance(data, Mapping):
        raise MetricsError(
            f"{source}: expected a mapping of metric names to numbers, got {type(data).__name__}",
            hint='write the metrics as {"accuracy": 0.93, ...}',
        )
    out: dict[str, float] = {}
    flat = flatten(data)
    if len(flat) > MAX_METRICS:
        raise MetricsError(
            f"{source}: {len(flat):,} metrics, more than mlci records for one run ({MAX_METRICS:,})",
            hint="write the metrics the gates and the reviewers need; keep the rest as a file the run logs",
        )
    for key, value in flat.items():
        if not _NAME_RE.match(key) or len(key) > 250 or _not_a_path(key):
            raise MetricsError(
                f"{source}: metric name {key[:80]!r} is not one MLflow accepts",
                hint="name metrics with letters, digits, '_', '-', '.', ' ', ':' and '/' "
                "(at most 250 characters, no leading '/' or '..')",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MetricsError(
                f"{source}: metric {key!r} is {value!r}, not a number",
                hint="write only numbers in the metrics file (nest groups as mappings)",
            )
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer past float's range
            finite = False
        if not finite:
            raise MetricsError(
                f"{source}: metric {key!r} is {str(value)[:40]}, not a finite number",
                hint="check the training code: a NaN or infinite metric usually means it diverged",
            )
        out[key] = float(value)
    if not out:
        raise MetricsError(
            f"{source}: no metrics in the file",
            hint="the training command must write its metrics there",
        )
    return out


# --------------------------------------------------------------------------- diffs

Verdict = Literal["better", "worse", "same", "new", "missing"]


@dataclass(frozen=True)
class MetricDelta:
    """One metric, head against one baseline, judged by the metric's goal."""

    name: str
    goal: Goal
    head: float | None
    base: float | None
    delta: float | None  # head - base
    relative: float | None  # delta / |base|; None when base is 0 or absent
    verdict: Verdict


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def compare(name: str, goal: Goal, head: float | None, base: float | None) -> MetricDelta:
    if head is None:
        return MetricDelta(name, goal, None, base, None, None, "missing")
    if base is None:
        return MetricDelta(name, goal, head, None, None, None, "new")
    delta = head - base
    relative = delta / abs(base) if base != 0 else None
    if _close(head, base):
        verdict: Verdict = "same"
    elif (delta > 0) == (goal == "maximize"):
        verdict = "better"
    else:
        verdict = "worse"
    return MetricDelta(name, goal, head, base, delta, relative, verdict)


def diff(
    head: Mapping[str, float],
    base: Mapping[str, float] | None,
    goal_of: Callable[[str], Goal],
    order: Sequence[str] = (),
) -> list[MetricDelta]:
    """Every metric on either side (one side only is shown, never dropped).

    ``order`` names metrics to list first (the configured ones); the rest follow sorted.
    """
    base = base or {}
    names = [n for n in order if n in head or n in base]
    names += sorted((set(head) | set(base)) - set(names))
    return [compare(n, goal_of(n), head.get(n), base.get(n)) for n in names]


@dataclass(frozen=True)
class ParamsDiff:
    added: dict[str, Any]
    removed: dict[str, Any]
    changed: dict[str, tuple[Any, Any]]  # name -> (base, head)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_params(head: Mapping[str, Any], base: Mapping[str, Any] | None) -> ParamsDiff:
    """Flat params (``a.b`` keys) of head against base; values compared as text,
    since MLflow stores params as strings."""
    base = base or {}
    h = {k: v for k, v in flatten(dict(head)).items()}
    b = {k: v for k, v in flatten(dict(base)).items()}
    return ParamsDiff(
        added={k: h[k] for k in sorted(set(h) - set(b))},
        removed={k: b[k] for k in sorted(set(b) - set(h))},
        changed={k: (b[k], h[k]) for k in sorted(set(h) & set(b)) if _text(h[k]) != _text(b[k])},
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)
