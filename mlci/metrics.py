"""Metrics: reading a metrics file's numbers, goals and (later) diffs. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlci.errors import MetricsError
from mlci.params import flatten


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
    for key, value in flatten(data).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MetricsError(
                f"{source}: metric {key!r} is {value!r}, not a number",
                hint="write only numbers in the metrics file (nest groups as mappings)",
            )
        if not math.isfinite(value):
            raise MetricsError(
                f"{source}: metric {key!r} is {value}, not a finite number",
                hint="check the training code: a NaN or infinite metric usually means it diverged",
            )
        out[key] = float(value)
    if not out:
        raise MetricsError(
            f"{source}: no metrics in the file",
            hint="the training command must write its metrics there",
        )
    return out
