from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mlci import config as cfg
from mlci.errors import ConfigError, ExitCode, MlciError

MINIMAL = """\
model:
  name: churn
train:
  command: python train.py
"""

FULL = """\
model:
  name: churn
  description: Churn model
train:
  command: python train.py --fast
  inputs: [train.py, "data/**"]
  params: params.yaml
  metrics: out/metrics.json
  model: out/model
metrics:
  accuracy: {goal: maximize}
  latency_ms: minimize
  val_loss: {}
tracking:
  uri: http://127.0.0.1:5000
  experiment: churn-exp
environments:
  staging:
    gates:
      - metric: accuracy
        min: 0.9
        max_regression: "2%"
      - metric: val_loss
        max: 0.5
        min_improvement: 0.01
  production:
    branch: main
    requires: staging
    gates:
      - metric: accuracy
        min: 0.93
report:
  baselines: [production, base]
  template: report.md.j2
  key_metric: accuracy
"""


@pytest.mark.parametrize(
    ("metric", "goal"),
    [
        ("accuracy", "maximize"),
        ("f1", "maximize"),
        ("r2", "maximize"),
        ("roc_auc", "maximize"),
        ("loss", "minimize"),
        ("val_loss", "minimize"),
        ("log_loss", "minimize"),
        ("logloss", "minimize"),
        ("trainLoss".lower(), "minimize"),
        ("rmse", "minimize"),
        ("test.rmse", "minimize"),
        ("mse", "minimize"),
        ("mae", "minimize"),
        ("mean_squared_error", "minimize"),
        ("error", "minimize"),
        ("error_rate", "minimize"),
        ("precision", "maximize"),
        ("msec", "maximize"),  # a token, not a substring: 'msec' is not 'mse'
        ("macro_f1", "maximize"),
    ],
)
def test_infer_goal(metric: str, goal: str) -> None:
    assert cfg.infer_goal(metric) == goal


def test_minimal_config_gets_defaults() -> None:
    config = cfg.parse(MINIMAL, Path("mlci.yaml"))
    assert config.model.name == "churn"
    assert config.train == cfg.TrainConfig(command="python train.py")
    assert config.train.inputs == ("**/*.py",)
    assert config.train.metrics == "metrics.json"
    assert config.train.model is None  # no model file unless train.model names one
    assert config.tracking.uri is None
    assert config.experiment == "churn"
    assert config.environments == ()
    assert config.baselines == ("base",)
    assert config.key_metric is None


def test_full_config() -> None:
    config = cfg.parse(FULL, Path("/repo/mlci.yaml"))
    assert config.root == Path("/repo")
    assert config.train.inputs == ("train.py", "data/**")
    assert config.metrics == {
        "accuracy": "maximize",
        "latency_ms": "minimize",
        "val_loss": "minimize",
    }
    assert config.goal("latency_ms") == "minimize"
    assert config.goal("unlisted_loss") == "minimize"
    staging, production = config.environments
    assert staging.branch == "staging"  # defaults to the environment's name
    assert staging.requires is None
    assert staging.gates[0] == cfg.GateRule(
        metric="accuracy", min=0.9, max_regression=cfg.Threshold(2.0, percent=True)
    )
    assert staging.gates[1] == cfg.GateRule(metric="val_loss", max=0.5, min_improvement=cfg.Threshold(0.01))
    assert production.branch == "main"
    assert production.requires == "staging"
    assert config.environment("production") is production
    assert config.baselines == ("production", "base")
    assert config.report.template == "report.md.j2"
    assert config.tracking.experiment == "churn-exp"


def test_config_is_frozen() -> None:
    config = cfg.parse(MINIMAL, Path("mlci.yaml"))
    with pytest.raises(AttributeError):
        config.model = None  # type: ignore[misc,assignment]


def test_to_dict_round_trips_through_the_parser() -> None:
    import yaml

    config = cfg.parse(FULL, Path("mlci.yaml"))
    data = config.to_dict()

    # None values are the defaults: drop them and parse again.
    def prune(value):  # type: ignore[no-untyped-def]
        if isinstance(value, dict):
            return {k: prune(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [prune(v) for v in value]
        return value

    again = cfg.parse(yaml.safe_dump(prune(data), sort_keys=False), Path("mlci.yaml"))
    assert again.to_dict() == data


@pytest.mark.parametrize(
    ("threshold", "baseline", "amount", "text"),
    [
        (cfg.Threshold(2.0, percent=True), 0.9, 0.018, "2%"),
        (cfg.Threshold(2.0, percent=True), -10.0, 0.2, "2%"),
        (cfg.Threshold(0.01), 0.9, 0.01, "0.01"),
        (cfg.Threshold(0.5, percent=True), 200.0, 1.0, "0.5%"),
    ],
)
def test_threshold(threshold: cfg.Threshold, baseline: float, amount: float, text: str) -> None:
    assert threshold.amount(baseline) == pytest.approx(amount)
    assert str(threshold) == text


def test_effective_tracking_uri() -> None:
    config = cfg.parse(MINIMAL, Path("/repo/mlci.yaml"))
    assert cfg.effective_tracking_uri(config, {}) == "sqlite:////repo/.mlci/mlflow.db"
    assert cfg.effective_tracking_uri(config, {"MLFLOW_TRACKING_URI": "http://x"}) == "http://x"
    full = cfg.parse(FULL, Path("/repo/mlci.yaml"))
    assert cfg.effective_tracking_uri(full, {}) == "http://127.0.0.1:5000"
    assert cfg.effective_tracking_uri(full, {"MLFLOW_TRACKING_URI": "http://y"}) == "http://y"


def test_unknown_environment_names_the_configured_ones() -> None:
    config = cfg.parse(FULL, Path("mlci.yaml"))
    with pytest.raises(ConfigError, match=r"no environment named 'prod' \(configured: staging, production\)"):
        config.environment("prod")


# Each case: a YAML text, and the problem lines expected in the error, in order.
# A line is "mlci.yaml:LINE: KEY.PATH: message".
BAD = [
    pytest.param(
        "",
        ["mlci.yaml:?: model: required key is missing", "train: required key is missing"],
        id="empty",
    ),
    pytest.param("- a\n- b\n", ["mlci.yaml:1: (top level): expected a mapping"], id="not-a-mapping"),
    pytest.param(
        MINIMAL + "enviroments: {}\n",
        ["mlci.yaml:5: enviroments: unknown key; did you mean 'environments'?"],
        id="typo-top-level",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  comand: python train.py\n",
        [
            "mlci.yaml:4: train.comand: unknown key; did you mean 'command'?",
            "mlci.yaml:3: train.command: required key is missing",
        ],
        id="typo-nested-and-missing",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  command: x\n  zzz: 1\n",
        ["mlci.yaml:5: train.zzz: unknown key; valid keys: command, inputs, exclude, params, parameters"],
        id="unknown-no-close-match",
    ),
    pytest.param(
        "model:\n  name: -bad name\ntrain:\n  command: x\n",
        ["mlci.yaml:2: model.name: '-bad name' is not a valid model name"],
        id="bad-model-name",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  command: 3\n",
        ["mlci.yaml:4: train.command: expected a non-empty string, got a number (3)"],
        id="command-not-string",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  command: x\n  inputs: [a, 1]\n",
        ["mlci.yaml:5: train.inputs[1]: expected a non-empty string, got a number (1)"],
        id="inputs-item",
    ),
    pytest.param(
        MINIMAL + "metrics:\n  accuracy: {goal: up}\n",
        ["mlci.yaml:6: metrics.accuracy.goal: expected 'maximize' or 'minimize', got a string ('up')"],
        id="bad-goal",
    ),
    pytest.param(
        MINIMAL + "metrics:\n  accuracy: {gaol: maximize}\n",
        ["mlci.yaml:6: metrics.accuracy.gaol: unknown key; did you mean 'goal'?"],
        id="goal-typo",
    ),
    pytest.param(
        MINIMAL + "tracking:\n  uri: ./mlruns\n",
        ["mlci.yaml:6: tracking.uri: './mlruns' is a file store, which current MLflow refuses"],
        id="file-store",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates:\n      - metric: acc\n        min: high\n",
        ["mlci.yaml:9: environments.staging.gates[0].min: expected a finite number, got a string ('high')"],
        id="gate-min-not-number",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates:\n      - metric: acc\n        min: true\n",
        ["environments.staging.gates[0].min: expected a finite number, got a boolean (true)"],
        id="gate-min-bool",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates:\n      - metric: acc\n        max_regression: two\n",
        [
            "mlci.yaml:9: environments.staging.gates[0].max_regression: expected a number >= 0 or a percentage like \"2%\", got a string ('two')"
        ],
        id="threshold-word",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates:\n      - metric: acc\n        min_improvement: -1\n",
        ["environments.staging.gates[0].min_improvement: expected a number >= 0"],
        id="threshold-negative",
    ),
    pytest.param(
        MINIMAL
        + "environments:\n  staging:\n    gates:\n      - metric: acc\n        max_regression: 2 %%\n",
        ["environments.staging.gates[0].max_regression: expected a number >= 0 or a percentage"],
        id="threshold-bad-percent",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates:\n      - metric: acc\n",
        [
            "mlci.yaml:8: environments.staging.gates[0]: a rule needs at least one of min, max, max_regression, min_improvement"
        ],
        id="rule-without-bound",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates:\n      - min: 0.9\n",
        ["mlci.yaml:8: environments.staging.gates[0].metric: required key is missing"],
        id="rule-without-metric",
    ),
    pytest.param(
        MINIMAL
        + "environments:\n  staging:\n    gates:\n      - metric: acc\n        min: 0.9\n        max: 0.5\n",
        ["environments.staging.gates[0]: min 0.9 is greater than max 0.5"],
        id="min-above-max",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates:\n      - metric: acc\n        minimum: 0.9\n",
        ["mlci.yaml:9: environments.staging.gates[0].minimum: unknown key; did you mean 'min'?"],
        id="rule-key-typo",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging:\n    gates: {metric: acc}\n",
        ["mlci.yaml:7: environments.staging.gates: expected a list of rules"],
        id="gates-not-list",
    ),
    pytest.param(
        MINIMAL + "environments:\n  production:\n    requires: staging\n  staging: {}\n",
        [
            "mlci.yaml:7: environments.production.requires: 'staging' is not an environment listed before 'production'"
        ],
        id="requires-later-env",
    ),
    pytest.param(
        MINIMAL + "environments:\n  a: {branch: main}\n  b: {branch: main}\n",
        ["mlci.yaml:7: environments.b.branch: branch 'main' is already bound to environment 'a'"],
        id="branch-twice",
    ),
    pytest.param(
        MINIMAL + "environments:\n  'pro#d': {}\n",
        ["environments.pro#d: 'pro#d' is not a valid environment name"],
        id="bad-env-name",
    ),
    pytest.param(
        MINIMAL + "environments:\n  staging: {}\nreport:\n  baselines: [stagin]\n",
        [
            "mlci.yaml:8: report.baselines[0]: 'stagin' is neither an environment nor 'base' (valid: staging, base); did you mean 'staging'?"
        ],
        id="bad-baseline",
    ),
    pytest.param(
        MINIMAL + "model:\n  name: other\n",
        ["mlci.yaml:5: model: duplicate key (first on line 1)"],
        id="duplicate-key",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  command: python t.py\n  repeats: 0\n",
        ["mlci.yaml:5: train.repeats: expected a whole number from 1 to 20, got a number (0)"],
        id="repeats-zero",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  command: python t.py\n  repeats: '5'\n",
        ["mlci.yaml:5: train.repeats: expected a whole number from 1 to 20, got a string ('5')"],
        id="repeats-text",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  command: python t.py\n  repeats: 21\n",
        ["mlci.yaml:5: train.repeats: expected a whole number from 1 to 20, got a number (21)"],
        id="repeats-too-many",
    ),
    pytest.param(
        "model:\n  name: churn\ntrain:\n  command: [unclosed\n",
        ["mlci.yaml:5: not valid YAML"],
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_config_is_reported_precisely(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        cfg.parse(text, Path("mlci.yaml"))
    message = info.value.message
    position = 0
    for line in expected:
        line = line.replace("mlci.yaml:?: ", "")
        found = message.find(line, position)
        assert found >= 0, f"expected {line!r} in:\n{message}"
        position = found
    assert info.value.hint


def test_all_problems_reported_at_once() -> None:
    text = "model:\n  name: churn\n  nmae: x\ntrain:\n  command: x\n  inptus: []\ntrakcing: {}\n"
    with pytest.raises(ConfigError) as info:
        cfg.parse(text, Path("mlci.yaml"))
    assert "3 problems" in info.value.message
    for key in ("model.nmae", "train.inptus", "trakcing"):
        assert key in info.value.message


# --------------------------------------------------------------------------- commands


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlci.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_ok(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _write(tmp_path, FULL)
    result = cli("config", "validate", cwd=tmp_path)
    assert result.code == ExitCode.OK
    assert "valid (model 'churn', environments: staging, production)" in result.out


def test_validate_finds_config_in_a_parent_folder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _write(tmp_path, MINIMAL)
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    result = cli("config", "validate", "--json", cwd=sub)
    assert result.code == ExitCode.OK
    report = json.loads(result.out)
    assert report == {
        "path": str(tmp_path / "mlci.yaml"),
        "valid": True,
        "model": "churn",
        "environments": [],
    }


def test_validate_bad_config_exit_3(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _write(tmp_path, MINIMAL + "enviroments: {}\n")
    result = cli("config", "validate", cwd=tmp_path)
    assert result.code == ExitCode.ERROR
    assert "mlci.yaml:5: enviroments: unknown key; did you mean 'environments'?" in result.err
    assert "hint:" in result.err
    assert "Traceback" not in result.err


def test_config_option_and_env(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "conf"
    other.mkdir()
    path = _write(other, FULL)
    assert cli("config", "validate", "--config", str(path), cwd=tmp_path).code == ExitCode.OK
    monkeypatch.setenv("MLCI_CONFIG", str(path))
    assert cli("config", "validate", cwd=tmp_path).code == ExitCode.OK
    missing = cli("config", "validate", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert missing.code == ExitCode.ERROR
    assert "nope.yaml: no such file" in missing.err


def test_show_prints_resolved_config(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import yaml

    _write(tmp_path, MINIMAL)
    result = cli("config", "show", cwd=tmp_path)
    assert result.code == ExitCode.OK
    data = yaml.safe_load(result.out)
    assert data["train"]["inputs"] == ["**/*.py"]
    assert data["train"]["metrics"] == "metrics.json"
    assert data["tracking"]["experiment"] == "churn"
    db = (tmp_path / ".mlci" / "mlflow.db").resolve().as_posix()
    assert data["tracking"]["effective_uri"] == f"sqlite:///{db}"
    assert data["report"]["baselines"] == ["base"]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    shown = json.loads(cli("config", "show", "--json", cwd=tmp_path).out)
    assert shown["config"]["tracking"]["effective_uri"] == "http://127.0.0.1:5999"
    assert shown["config"]["model"] == {"name": "churn", "description": ""}


def test_a_yaml_text_is_parsed_once_per_process_and_each_reader_gets_its_own_copy() -> None:
    from mlci import safeinput

    text = "model: {name: m}\nlist: [1, 2]\nnested: {a: {b: 1}}\n# a comment unique to this test\n"
    before = safeinput.PARSES
    first, lines = safeinput.load_yaml(text)
    first["list"].append(3)
    first["nested"]["a"]["b"] = 2
    lines.clear()
    second, lines_again = safeinput.load_yaml(text)
    parses = safeinput.PARSES - before
    assert parses == 1
    assert second == {"model": {"name": "m"}, "list": [1, 2], "nested": {"a": {"b": 1}}}
    assert lines_again[("nested", "a", "b")] == 3
    with pytest.raises(safeinput.BadInput):  # a refusal is said every time, never kept
        safeinput.load_yaml("a: [")
    with pytest.raises(safeinput.BadInput):
        safeinput.load_yaml("a: [")


def test_parameters_and_overrides_resolve_into_the_command(tmp_path: Path) -> None:
    from mlci import project

    (tmp_path / "mlci.yaml").write_text(
        "model: {name: m}\n"
        "train:\n"
        "  command: python train.py --alpha {alpha} --depth {depth}\n"
        "  parameters: {alpha: 0.5}\n"
        "  params: params.yaml\n"
    )
    (tmp_path / "params.yaml").write_text("depth: 3  # trees\n")
    (tmp_path / "train.py").write_text("")
    resolved = project.resolve(None, tmp_path, ["alpha=1", "depth=5"], warn=print)
    assert resolved.command == "python train.py --alpha 1 --depth 5"
    assert resolved.params == {"depth": 5, "alpha": 1}
    assert resolved.params_text == "depth: 5  # trees\n"  # only the file's own param goes there
    plain = project.resolve(None, tmp_path, [], warn=print)
    assert plain.command == "python train.py --alpha 0.5 --depth 3" and plain.params_text is None
    assert plain.fingerprint.digest != resolved.fingerprint.digest
    (tmp_path / "params.yaml").write_text("depth: 3\nalpha: 2\n")
    with pytest.raises(MlciError, match=r"alpha: both in params\.yaml and in train\.parameters"):
        project.resolve(None, tmp_path, [], warn=print)


def test_hydra_overrides_go_on_the_command_line_over_the_composed_config(tmp_path: Path) -> None:
    from mlci import project

    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "config.yaml").write_text("defaults:\n  - model: rf\n  - _self_\nseed: 0\n")
    (tmp_path / "conf" / "model" / "rf.yaml").write_text("n_estimators: 20\nmax_depth: 3\n")
    (tmp_path / "mlci.yaml").write_text(
        "model: {name: m}\ntrain:\n  command: python src/train.py\n  params: conf/config.yaml\n  overrides: hydra\n"
    )
    resolved = project.resolve(None, tmp_path, ["model.n_estimators=5"], warn=print)
    assert resolved.command == "python src/train.py model.n_estimators=5"
    assert resolved.params == {"seed": 0, "model": {"n_estimators": 5, "max_depth": 3}}
    assert resolved.params_text is None  # the config files stay as they are
    with pytest.raises(MlciError, match=r"'model\.n_trees' is not a param"):
        project.resolve(None, tmp_path, ["model.n_trees=5"], warn=print)
    with pytest.raises(ConfigError, match=r"train\.overrides: hydra: --set goes to the command"):
        cfg.parse("model: {name: m}\ntrain:\n  command: python t.py\n  overrides: hydra\n", Path("mlci.yaml"))


@pytest.mark.parametrize(
    "train",
    [
        "  command: python t.py --alpha {alpha}\n  parameters: {alpha: 0.5}\n",
        "  command: python t.py {alpha}\n  parameters: MLproject\n",
        "  command: python src/t.py\n  params: conf/config.yaml\n  overrides: hydra\n",
        "  command: python t.py --alpha {alpha}\n  parameters: {alpha: 0.5}\n  params: params.yaml\n",
    ],
    ids=["parameters", "mlproject", "hydra", "parameters-and-file"],
)
def test_a_commits_fingerprint_read_from_git_is_its_checkouts(tmp_path: Path, train: str) -> None:
    """The base branch's run is found by the fingerprint of its commit, read from git without
    a checkout: with train.parameters (from mlci.yaml or MLproject) and Hydra's composed config
    it must be the fingerprint the checkout computes."""
    from mlci import fingerprint as fp
    from mlci import project
    from tests.helpers import run

    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "config.yaml").write_text("defaults:\n  - model: rf\nseed: 0\n")
    (tmp_path / "conf" / "model" / "rf.yaml").write_text("depth: 3\n")
    (tmp_path / "MLproject").write_text("entry_points:\n  main:\n    parameters: {alpha: {default: 0.1}}\n")
    (tmp_path / "params.yaml").write_text("depth: 2\n")
    (tmp_path / "t.py").write_text("")
    (tmp_path / "mlci.yaml").write_text(f"model: {{name: m}}\ntrain:\n{train}  inputs: ['**']\n")
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "x"], tmp_path)
    resolved = project.resolve(None, tmp_path, [], warn=print)
    at = fp.compute_at(resolved.config, "HEAD", project.committed_params)
    assert at is not None and at.digest == resolved.fingerprint.digest
    assert resolved.params  # the case has params to lose
