"""A run in the tracking store, as mlci reads it, and the tags mlci gives runs. Pure.

Shared by every way mlci reaches a store (``mlci.tracking``: MLflow's client, its REST
API in ``mlci.tracking_rest``, the embedded store's tables in ``mlci.sqlite_runs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FINGERPRINT_TAG = "mlci.fingerprint"
MODEL_ID_TAG = "mlci.model_id"
MODEL_DIGEST_TAG = "mlci.model_sha256"  # the sha256 of the model archive (mlci.archive)
RESTORED_TAG = "mlci.restored_from"  # where a run recorded elsewhere was brought from
PREDICTIONS_TAG = "mlci.predictions"  # the run's predictions artifact (train.predictions)
ROWS_TAG = "mlci.rows_sha256"  # the rows they were made on (mlci.stats.Predictions.digest)
PREDICTIONS_METRICS_TAG = "mlci.predictions_metrics"  # metrics that recompute from them
REPEATS_TAG = "mlci.repeats"  # a run of train.repeats: its seeds and each metric's value per seed
REPEAT_OF_TAG = "mlci.repeat_of"  # on each repeat's (child) run: the parent run's id
SEED_TAG = "mlci.seed"  # on each repeat's run: its MLCI_SEED
PREDICTIONS_DIGEST_TAG = "mlci.predictions_sha256"  # the file's bytes (checked wherever it is fetched)
OVERRIDES_TAG = "mlci.overrides"  # the same as project.OVERRIDES_TAG
SEARCH_LIMIT = 20  # runs of one commit per page, looked at for one without overrides
MAX_PAGES = 500  # pages looked at (10,000 runs of one commit): a bound, not a limit in practice


def finished_with_tag(key: str, value: str) -> str:
    """MLflow's search filter for the finished runs with tag ``key`` = ``value``."""
    return f"tags.`{key}` = '{value}' and attributes.status = 'FINISHED'"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    experiment_id: str
    status: str
    start_time: int | None  # ms since the epoch
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifact_uri: str = ""  # where the run's artifacts are ("" where not told)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for anything else."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))
