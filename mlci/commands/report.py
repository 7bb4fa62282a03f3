"""``mlci diff``, ``mlci gate`` and ``mlci report``: a review (mlci.usecases.review), printed."""

from __future__ import annotations

import json
from pathlib import Path

from mlci import render
from mlci import report as rpt

DEFAULT_OUTPUT = {
    "markdown": "report.md",
    "table": "report.txt",
    "json": "report.json",
    "html": "report.html",
}


def format_report(
    report: rpt.Report, fmt: str, *, template: render.TemplateSource | None, color: bool
) -> str:
    if fmt == "json":
        return json.dumps(rpt.to_json(report), indent=2) + "\n"
    if fmt == "html":
        return render.render_html(report)
    return render.render_report(report, fmt, template=template, color=color)


def open_in_browser(path: Path) -> bool:
    """Open ``path`` in a browser ($BROWSER, else the system's); False where there is none."""
    import webbrowser

    try:
        return webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        return False
