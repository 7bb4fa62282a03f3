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


# Two configs that differ in every setting mlci.yaml has: which one a pull request's
# judged config takes each setting from is what policy.SETTINGS says.
_HEAD_ALL = """\
model: {name: head-model, description: head}
train:
  command: python head.py
  inputs: ["head/**"]
  exclude: ["head/*.md"]
  parameters: head-MLproject
  overrides: hydra
  params: head-params.yaml
  metrics: head-metrics.json
  model: head-model
  rewrites: [head.lock]
  own_cache: true
  withhold_env: [HEAD_*]
  predictions: head-predictions.csv
  timeout: 11
  repeats: 2
metrics: {accuracy: {goal: minimize}}
tracking: {uri: "http://head.example:5000", experiment: head, timeout: 11, wait: 11}
environments:
  staging: {branch: head-branch, gates: [{metric: accuracy, min: 0.1}]}
report: {baselines: [base], template: head.md.j2, key_metric: head_metric, plots: [head.png]}
registry: {store: github}
data:
  cancer:
    path: head/*.csv
    format: csv
    key: head_id
    rows: {min: 1, max: 2}
    drift: 0.9
    columns: {head_id: {type: str}}
sweep: {grid: {C: [1, 2]}}
"""
_BASE_ALL = """\
model: {name: base-model, description: base}
train:
  command: python base.py
  inputs: ["base/**"]
  exclude: ["base/*.md"]
  parameters: {base_seed: 2}
  params: base-params.yaml
  metrics: base-metrics.json
  model: base-model
  rewrites: [base.lock]
  own_cache: false
  withhold_env: [BASE_*]
  predictions: base-predictions.parquet
  timeout: 22
  repeats: 3
metrics: {accuracy: {goal: maximize}}
tracking: {uri: "http://base.example:5000", experiment: base, timeout: 22, wait: 22}
environments:
  staging: {branch: base-branch, gates: [{metric: accuracy, min: 0.9}]}
report: {baselines: [staging], template: base.md.j2, key_metric: base_metric, plots: [base.png]}
registry: {store: mlflow}
data:
  cancer:
    path: base/*.parquet
    format: parquet
    key: base_id
    rows: {min: 3, max: 4}
    drift: 0.2
    columns: {base_id: {type: int}}
sweep: {candidates: [{C: 3}], limit: 5}
"""


def _settings(config: cfg.Config) -> dict[str, object]:
    """Every setting of ``config`` by the names policy.SETTINGS uses, read from the
    dataclasses themselves: a setting added to them and not classified is a new name."""
    import dataclasses

    found: dict[str, object] = {}
    for top in dataclasses.fields(config):
        value = getattr(config, top.name)
        if top.name == "path":
            continue
        if dataclasses.is_dataclass(value):
            for inner in dataclasses.fields(value):
                found[f"{top.name}.{inner.name}"] = getattr(value, inner.name)
        elif top.name == "data":
            for inner in dataclasses.fields(cfg.Dataset):
                found[f"data.{inner.name}"] = tuple(getattr(d, inner.name) for d in value)
        else:
            found[top.name] = value
    return found


def test_every_setting_is_classified_and_each_comes_from_its_side() -> None:
    head, base = _config(_HEAD_ALL), _config(_BASE_ALL)
    names = set(_settings(head))
    assert names == set(policy.SETTINGS), (
        f"classify every mlci.yaml setting in policy.SETTINGS (head, base or writer): "
        f"unclassified {sorted(names - set(policy.SETTINGS))}, gone {sorted(set(policy.SETTINGS) - names)}"
    )
    h, b = _settings(head), _settings(base)
    assert all(h[name] != b[name] for name in names if name != "data.name"), "the fixtures differ everywhere"
    judged, writing = _settings(policy.judged_by(head, base)), _settings(policy.for_writing(head, base))
    for name, side in policy.SETTINGS.items():
        if name == "data.name":
            continue  # datasets are matched by name: the same on both sides here
        expected_judged = b[name] if side == policy.BASE else h[name]
        expected_writing = h[name] if side == policy.HEAD else b[name]
        assert judged[name] == expected_judged, f"{name} ({side}) in a job that trains"
        assert writing[name] == expected_writing, f"{name} ({side}) in a job that holds a write token"


def test_a_writing_job_without_a_base_config_renders_and_reaches_nothing_the_pull_request_names() -> None:
    head = _config(_HEAD_ALL)
    writing = policy.for_writing(head, None)
    assert writing.report.template is None and writing.tracking == cfg.TrackingConfig()
    assert writing.registry == cfg.RegistryConfig() and writing.environments == head.environments
