"""``mlci ui``: MLflow's UI on the project's tracking store, one command."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path

from mlci import config as cfg
from mlci import redact
from mlci.errors import MlciError


class UiError(MlciError):
    pass


def command(path: Path | None, *, cwd: Path, environ: Mapping[str, str], host: str, port: int) -> list[str]:
    """The ``mlflow ui`` line that serves this project's store (the embedded one by default)."""
    config = cfg.load_for(path, cwd)
    uri = cfg.effective_tracking_uri(config, environ)
    if uri.startswith(("http://", "https://", "databricks")):
        raise UiError(
            f"this project tracks to a server, {redact.url(uri)}: its UI is already there",
            hint="open that address in a browser (unset MLFLOW_TRACKING_URI to see the embedded store)",
        )
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]


def available() -> bool:
    """Whether MLflow's UI is installed: mlflow-skinny (mlci's own dependency) has no server."""
    return (
        importlib.util.find_spec("flask") is not None
        and importlib.util.find_spec("mlflow.server") is not None
    )


def missing_ui() -> UiError:
    return UiError(
        "MLflow's UI is not installed: mlci itself needs only mlflow-skinny, which has no server",
        hint="python -m pip install 'mlci[full]' (full MLflow), then run mlci ui again",
    )
