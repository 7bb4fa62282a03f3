"""``mlci diff``, ``mlci gate`` and ``mlci report``: a review (mlci.usecases.review), printed."""

from __future__ import annotations

import json

from mlci import render
from mlci import report as rpt

DEFAULT_OUTPUT = {"markdown": "report.md", "table": "report.txt", "json": "report.json"}


def format_report(
    report: rpt.Report, fmt: str, *, template: render.TemplateSource | None, color: bool
) -> str:
    if fmt == "json":
        return json.dumps(rpt.to_json(report), indent=2) + "\n"
    return render.render_report(report, fmt, template=template, color=color)
