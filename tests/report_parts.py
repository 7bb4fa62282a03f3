"""A report's parts, built by hand, for the comment's golden tests (tests/golden/)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlci import config as cfg
from mlci import report as rpt
from mlci.stats import Interval

GOLDEN = Path(__file__).parent / "golden"

CONFIG = cfg.parse(
    """\
model: {name: churn}
train: {command: python train.py, params: params.yaml}
metrics:
  accuracy: {goal: maximize}
  log_loss: {goal: minimize}
environments:
  staging:
    gates:
      - {metric: accuracy, min: 0.9, max_regression: "1%"}
  production:
    requires: staging
    gates:
      - {metric: accuracy, min: 0.95}
report:
  key_metric: accuracy
""",
    Path("/repo/mlci.yaml"),
)


HEAD = rpt.Head(
    run_id="run-head",
    fingerprint="f" * 64,
    commit="c" * 40,
    branch="feature/faster",
    metrics={"accuracy": 0.93, "log_loss": 0.21, "recall": 0.88},
    params={"C": 0.1, "seed": 42, "solver": "saga"},
    cached=True,
    run_url="http://mlflow.example/#/experiments/1/runs/run-head",
    label="PR #12",
)


STAGING = rpt.Baseline(
    "staging",
    "staging v0.0.3",
    True,
    version="v0.0.3",
    commit="a" * 40,
    run_id="run-3",
    metrics={"accuracy": 0.95, "log_loss": 0.2, "precision": 0.9},
    params={"C": "1.0", "seed": "42", "penalty": "l2"},
)


PRODUCTION = rpt.Baseline("production", "production", False, note="no model in production yet")


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} changed; if intended, regenerate with UPDATE_GOLDEN=1"


class FixedCertainty:
    """``evidence.Certainty`` with given intervals: the head's, and by baseline key the
    difference head - baseline; and given plots."""

    def __init__(
        self,
        head: dict[str, Interval],
        differences: dict[str, dict[str, Interval]],
        plots: Any = None,
    ) -> None:
        self.head, self.differences, self._plots = head, differences, plots

    def gate(self, env: Any, baseline: Any) -> Any:
        certainty = self

        class Evidence:
            def interval(self, metric: str, confidence: float) -> Interval | None:
                return certainty.head.get(metric)

            def difference(self, metric: str, confidence: float) -> Interval | None:
                return certainty.differences.get(baseline.key, {}).get(metric) if baseline else None

        return Evidence()

    def repeats(self) -> None:
        return None

    def table(self, baseline: Any) -> dict[str, Interval]:
        if baseline is None:
            return dict(self.head)
        return dict(self.differences.get(baseline.key, {}))

    def plots(self, head_label: str, baselines: Any) -> Any:
        return self._plots


def interval(value: float, low: float, high: float) -> Interval:
    return Interval(value, low, high, 0.95, 2000, paired=True)
