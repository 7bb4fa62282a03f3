"""One figure against its budget, as every benchmark reports it.

Each script prints its figures as it always did, and calls ``figure`` for each one
that has a budget: it prints one line, and where ``MLCI_BENCH_OUT`` names a file
(``python -m benchmarks`` sets it) appends the figure there as one JSON line, so the
runner can print every script's figures in one table.

A budget is a ratio against a floor measured in the same run wherever one exists
(``mlci --version``, ``git for-each-ref``, ``git status``, ``sha256sum``, the
training command alone): a busy machine slows both alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    measured: float
    budget: float
    unit: str  # "s", "x" (a ratio against ``floor``), "MB", "cases"
    floor: str = ""  # what a ratio is against
    at_least: bool = False  # a figure that must reach its budget (cases within bounds)

    @property
    def passed(self) -> bool:
        return self.measured >= self.budget if self.at_least else self.measured <= self.budget

    @property
    def ratio(self) -> float:
        """How much of its budget the figure uses (above 1: past it)."""
        if self.at_least:
            return self.budget / self.measured if self.measured else float("inf")
        return self.measured / self.budget if self.budget else float("inf")


def figure(
    name: str, measured: float, budget: float, unit: str, *, floor: str = "", at_least: bool = False
) -> Figure:
    found = Figure(name, float(measured), float(budget), unit, floor, at_least)
    against = f" of {floor}" if floor else ""
    sign = ">=" if at_least else "<="
    print(
        f"  budget: {name}: {measured:.3g} {unit}{against} ({sign} {budget:g}): "
        f"{'ok' if found.passed else 'MISSED'}",
        flush=True,
    )
    out = os.environ.get("MLCI_BENCH_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(found)) + "\n")
    return found
