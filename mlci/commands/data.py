"""``mlci data check`` and ``mlci data diff``: the datasets (mlci.usecases.datasets), printed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def render(result: Mapping[str, Any]) -> str:
    """``mlci data diff`` as text: one block per dataset and baseline."""
    lines = []
    for c in result["comparisons"]:
        head = f"data.{c['dataset']} against {c['base']}"
        if c["same"]:
            lines.append(f"{head}: the same data (sha256 {str(c['head_digest'])[:12]})")
            continue
        if c["note"]:
            lines.append(f"{head}: {c['note']}")
            continue
        rows = c["rows_change"]
        lines.append(
            f"{head}: {c['base_rows']} → {c['head_rows']} rows ({rows:+d})" if rows is not None else head
        )
        for col in c["columns"]:
            psi = f", PSI {col['psi']:.3f}" if col["psi"] is not None else ""
            limit = f" > drift {col['drift_limit']:g}: DRIFTED" if col["drifted"] else ""
            what = col["change"]
            if what == "retyped":
                what = f"retyped {col['base_type']} → {col['head_type']}"
            notes = f" ({'; '.join(col['notes'])})" if col["notes"] else ""
            if col["change"] != "same" or col["drifted"]:
                lines.append(f"  {col['column']}: {what}{psi}{limit}{notes}")
    if not result["comparisons"]:
        lines.append("nothing to compare with: no environment has a model, and no --base was given")
    return "\n".join(lines)
