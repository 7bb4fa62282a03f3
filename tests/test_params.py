from __future__ import annotations

import math

import pytest

from mlci import params as prm
from mlci.errors import MetricsError, ParamsError
from mlci.metrics import metrics_from

PARAMS = {"C": 1.0, "seed": 42, "model": {"depth": 3, "name": "lr"}, "tags": ["a"]}


@pytest.mark.parametrize(
    ("item", "path", "value"),
    [
        ("C=0.5", ["C"], 0.5),
        ("seed=7", ["seed"], 7),
        ("model.depth=5", ["model", "depth"], 5),
        ("model.name=svm", ["model", "name"], "svm"),
        ("flag=true", ["flag"], True),
        ("x=null", ["x"], None),
        ("x=", ["x"], ""),
        ("x='1'", ["x"], "1"),
        ("x=a=b", ["x"], "a=b"),
        (" C = 2 ", ["C"], 2),
    ],
)
def test_parse_override(item: str, path: list[str], value: object) -> None:
    assert prm.parse_override(item) == (path, value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("C", "expected KEY=VALUE"),
        ("=1", "expected KEY=VALUE"),
        ("a..b=1", "has an empty part"),
        ("x=[1, 2]", "not a list or mapping"),
        ("x={a: 1}", "not a list or mapping"),
        ("x=[unclosed", "not a YAML scalar"),
    ],
)
def test_parse_override_errors(item: str, message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace("[", r"\[")):
        prm.parse_override(item)


def test_apply_overrides_copies_and_sets() -> None:
    out = prm.apply_overrides(PARAMS, ["C=0.1", "model.depth=9"], "params.yaml")
    assert out["C"] == 0.1
    assert out["model"] == {"depth": 9, "name": "lr"}
    assert PARAMS["model"] == {"depth": 3, "name": "lr"}  # the input is untouched


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("c=1", r"'c' is not a param in params.yaml; did you mean 'C'\?"),
        (
            "model.dept=1",
            r"'model.dept' is not a param in params.yaml; did you mean 'model.depth'\?",
        ),
        ("seed.x=1", r"'seed' in params.yaml is not a mapping"),
        ("zzz=1", r"'zzz' is not a param in params.yaml\nhint"),
    ],
)
def test_apply_overrides_errors(item: str, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        prm.apply_overrides(PARAMS, [item], "params.yaml")


def test_flatten_and_canonical_json() -> None:
    assert prm.flatten(PARAMS) == {
        "C": 1.0,
        "seed": 42,
        "model.depth": 3,
        "model.name": "lr",
        "tags": ["a"],
    }
    assert prm.canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'
    with pytest.raises(ParamsError, match="param x is not a finite number"):
        prm.canonical_json({"x": math.nan})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"accuracy": 0.9}, {"accuracy": 0.9}),
        ({"acc": 1}, {"acc": 1.0}),
        (
            {"test": {"acc": 0.8, "loss": 0.2}, "n": 3},
            {"test.acc": 0.8, "test.loss": 0.2, "n": 3.0},
        ),
    ],
)
def test_metrics_from(data: object, expected: dict[str, float]) -> None:
    assert metrics_from(data, "metrics.json") == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"acc": "high"}, "metric 'acc' is 'high', not a number"),
        ({"acc": True}, "metric 'acc' is True, not a number"),
        ({"acc": None}, "metric 'acc' is None, not a number"),
        ({"test": {"acc": math.nan}}, "metric 'test.acc' is nan, not a finite number"),
        ({"acc": math.inf}, "metric 'acc' is inf, not a finite number"),
        ({"acc": [1, 2]}, "metric 'acc' is \\[1, 2\\], not a number"),
        ([1, 2], "expected a mapping"),
        ({}, "no metrics in the file"),
    ],
)
def test_metrics_from_errors(data: object, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        metrics_from(data, "metrics.json")


# --------------------------------------------------------------------------- command placeholders


@pytest.mark.parametrize(
    ("command", "params", "expected"),
    [
        ("python train.py {alpha} {l1_ratio}", {"alpha": 0.5, "l1_ratio": 0.1}, "python train.py 0.5 0.1"),
        ("python t.py --lr {lr}", {"lr": 1e-05}, "python t.py --lr 1e-05"),
        ("python t.py --depth {model.depth}", PARAMS, "python t.py --depth 3"),
        ("python t.py --name {name}", {"name": "a b; rm -rf /"}, "python t.py --name 'a b; rm -rf /'"),
        ("python t.py --flag {on} --none {x}", {"on": True, "x": None}, "python t.py --flag true --none ''"),
        # The shell's own braces stay as they are: ${VAR}, {{literal}}, awk's { print }.
        ("echo ${HOME} {{x}} | awk '{ print $1 }'", {}, "echo ${HOME} {{x}} | awk '{ print $1 }'"),
    ],
)
def test_placeholders_are_filled_and_quoted(command: str, params: dict[str, object], expected: str) -> None:
    assert prm.fill_command(command, params, "train.parameters") == expected


def test_an_unknown_placeholder_is_an_error_that_names_it() -> None:
    with pytest.raises(ParamsError) as caught:
        prm.fill_command("python t.py --alpha {alpah}", {"alpha": 1}, "train.parameters")
    assert "train.command names {alpah}, which is no param in train.parameters; did you mean {alpha}?" in str(
        caught.value
    )
