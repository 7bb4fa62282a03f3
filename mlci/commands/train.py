"""``mlci train`` and ``mlci fingerprint``: training (mlci.usecases.training), printed."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from mlci import redact

if TYPE_CHECKING:
    from mlci.project import Resolved
    from mlci.usecases.training import TrainResult


def fingerprint_report(resolved: Resolved, as_json: bool) -> str:
    if not as_json:
        return resolved.fingerprint.digest
    return json.dumps(
        {
            "fingerprint": resolved.fingerprint.digest,
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
