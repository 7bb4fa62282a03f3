"""The policy that judges a pull request comes from its base branch: table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlci import config as cfg
from mlci import policy

BASE = """\
model: {name: churn}
train: {command: python train.py}
metrics:
  accuracy: {goal: maximize}
environments:
  staging:
    gates:
      - {metric: accuracy, min: 0.95, max_regression: "2%"}
      - {metric: roc_auc, min: 0.97}
  production:
    requires: staging
    gates:
      - {metric: accuracy, min: 0.95}
data:
  train:
    path: data/train.csv
    key: id
    rows: {min: 500}
    drift: 0.25
    columns:
      id: {type: int, nulls: 0}
      label: {type: int, allowed: [0, 1]}
"""


def _config(text: str) -> cfg.Config:
    return cfg.parse(text, Path("/repo/mlci.yaml"))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (BASE, BASE, []),
        (
            "min: 0.95, max_regression",
            "min: 0.5, max_regression",
            ["staging · accuracy: min 0.95 → 0.5"],
        ),
        ('max_regression: "2%"', 'max_regression: "50%"', ["staging · accuracy: max_regression 2% → 50%"]),
        ('min: 0.95, max_regression: "2%"}', "min: 0.95}", ["staging · accuracy: max_regression 2% → none"]),
        ("      - {metric: roc_auc, min: 0.97}\n", "", ["staging · roc_auc: min 0.97 → none"]),
        ("    requires: staging\n", "", ["production: requires staging → none"]),
        (
            "accuracy: {goal: maximize}",
            "accuracy: {goal: minimize}",
            ["metric accuracy: goal maximize → minimize"],
        ),
        (
            "  production:\n    requires: staging\n    gates:\n      - {metric: accuracy, min: 0.95}\n",
            "",
            ["production: environment defined → none"],
        ),
        # A pull request cannot loosen how sure a gate is, or what it does when unsure.
        (
            "{metric: roc_auc, min: 0.97}",
            "{metric: roc_auc, min: 0.97, confidence: 0.6}",
            ["staging · roc_auc: confidence none → 0.6"],
        ),
        (
            "    requires: staging\n",
            "    requires: staging\n    on_inconclusive: pass\n    confidence: 0.9\n",
            ["production: confidence none → 0.9", "production: on_inconclusive fail → pass"],
        ),
        (
            "    requires: staging\n",
            "    requires: staging\n    deploy: {command: ./ship.sh, smoke: ./ping.sh}\n",
            ["production: deploy none → ./ship.sh (smoke: ./ping.sh)"],
        ),
        # Nor its data checks (where the data is, is a training setting, not policy).
        ("rows: {min: 500}", "rows: {min: 5}", ["data train: rows.min 500 → 5"]),
        ("    drift: 0.25\n", "", ["data train: drift 0.25 → none"]),
        ("    key: id\n", "", ["data train: key [id] → none"]),
        ("allowed: [0, 1]", "allowed: [0, 1, 2]", ["data train · label: allowed [0, 1] → [0, 1, 2]"]),
        (
            "      label: {type: int, allowed: [0, 1]}\n",
            "",
            [
                "data train · label: column required → none",
                "data train · label: type int → none",
                "data train · label: allowed [0, 1] → none",
            ],
        ),
        ("id: {type: int, nulls: 0}", "id: {type: int}", ["data train · id: nulls 0 → none"]),
        ("path: data/train.csv", "path: data/v2/*.csv", []),
        (
            "data:\n  train:",
            "data:\n  extra: {path: x.csv}\n  train:",
            ["data extra: dataset none → declared"],
        ),
    ],
)
def test_policy_changes_rule_by_rule(old: str, new: str, expected: list[str]) -> None:
    base = _config(BASE)
    head = _config(BASE.replace(old, new, 1))
    assert [c.describe() for c in policy.diff(base, head)] == expected


def test_the_base_policy_judges_with_the_head_training_settings() -> None:
    base = _config(BASE)
    head = _config(
        BASE.replace("min: 0.95, max_regression", "min: 0.5, max_regression").replace(
            "python train.py", "python train2.py"
        )
    )
    judged = policy.judged_by(head, base)
    assert judged.train.command == "python train2.py"  # what is being tested
    assert judged.environment("staging").gates == base.environment("staging").gates  # what judges it
    assert policy.judged_by(head, None) is head
    assert policy.diff(None, head) == []
