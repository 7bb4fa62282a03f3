"""``mlci train`` and ``mlci fingerprint``: training (mlci.usecases.training), printed."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from mlci import redact

if TYPE_CHECKING:
    from mlci import fingerprint as fp
    from mlci.project import Resolved
    from mlci.usecases.training import TrainResult


def fingerprint_report(resolved: Resolved, as_json: bool, *, explain: bool = False) -> str:
    explained = _explained(resolved) if explain else None
    if not as_json:
        if explained is None:
            return resolved.fingerprint.digest
        return _explain_text(resolved, explained)
    return json.dumps(
        {
            "fingerprint": resolved.fingerprint.digest,
            **(
                {"explain": [{"path": e.path, "input": e.input, "why": e.why} for e in explained]}
                if explained is not None
                else {}
            ),
            "files": dict(sorted(resolved.fingerprint.files.items())),
            "params": resolved.params,
            "command": resolved.config.train.command,
            "unmatched_inputs": list(resolved.fingerprint.unmatched),
            "dvc": {
                path: {"hash": entry.hash, "source": entry.source}
                for path, entry in sorted(resolved.fingerprint.dvc.items())
            },
        },
        indent=2,
    )


def _explained(resolved: Resolved) -> list[fp.Explained]:
    from mlci import fingerprint as fp

    return fp.explain(resolved.config, resolved.fingerprint, fp.candidate_files(resolved.config.root))


def _explain_text(resolved: Resolved, explained: list[fp.Explained]) -> str:
    inputs = [e for e in explained if e.input]
    others = [e for e in explained if not e.input]
    width = min(max((len(e.path) for e in explained), default=0), 48)
    lines = [f"fingerprint {resolved.fingerprint.digest}", f"inputs ({len(inputs)} files):"]
    lines += [f"  {e.path:<{width}}  {e.why}" for e in inputs] or ["  (none)"]
    if resolved.overrides:
        lines.append(f"params: the params file with --set {' '.join(resolved.overrides)}")
    lines.append(f"not inputs ({len(others)} files):")
    lines += [f"  {e.path:<{width}}  {e.why}" for e in others] or ["  (none)"]
    lines += [f"unmatched train.inputs pattern: {p}" for p in resolved.fingerprint.unmatched]
    lines.append(
        "also in the fingerprint: the params, the command and the train section of "
        f"{resolved.config.path.name}"
    )
    return "\n".join(lines)


def format_result(result: TrainResult) -> str:
    width = max((len(k) for k in result.metrics), default=0)
    lines = [
        f"run        {result.run_id}{'  (cached)' if result.cached else ''}",
        f"fingerprint {result.fingerprint}",
        f"tracking   {result.tracking_uri}",
    ]
    if result.run_url:
        lines.append(f"url        {result.run_url}")
    lines.append("metrics:")
    lines += [f"  {name:<{width}}  {value:.6g}" for name, value in sorted(result.metrics.items())]
    return "\n".join(lines)


def stderr_log(message: str) -> None:
    print(f"mlci: {redact.text(message)}", file=sys.stderr, flush=True)
