"""One source for mlci.yaml: the JSON Schema (`mlci config schema`), the checker of
`mlci config validate` and docs/configuration.md agree, checked with a real JSON Schema
validator (jsonschema, which check-jsonschema and editors' YAML servers implement)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlci import config as cfg
from mlci.errors import ConfigError, ExitCode
from tests.helpers import REPO_ROOT, TEMPLATES

EXAMPLE = cfg.SCHEMA_PATH.parent / "mlci.example.yaml"


def _validator() -> Any:
    import jsonschema

    schema = cfg.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_errors(data: Any) -> list[tuple[list[str | int], str]]:
    """Every error, with those inside an ``anyOf`` (where the value is one of several shapes)."""
    found = []
    pending = list(_validator().iter_errors(data))
    while pending:
        error = pending.pop()
        found.append((list(error.absolute_path), error.message))
        pending.extend(error.context or ())
    return found


def _checker_problems(text: str) -> list[str]:
    try:
        cfg.parse(text, Path("mlci.yaml"))
    except ConfigError as exc:
        return str(exc).splitlines()[1:]
    return []


def test_mlci_config_schema_prints_the_schema_at_its_stable_path(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("config", "schema", cwd=tmp_path)  # no mlci.yaml needed
    assert result.code == ExitCode.OK, result.err
    assert json.loads(result.out) == json.loads(
        (REPO_ROOT / "mlci" / "schemas" / "mlci.schema.json").read_text()
    )
    assert json.loads(result.out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _configs() -> list[tuple[str, str]]:
    found = [
        (str(p.relative_to(REPO_ROOT)), p.read_text()) for p in sorted(REPO_ROOT.glob("examples/*/mlci.yaml"))
    ]
    found.append(("the complete example", EXAMPLE.read_text()))
    return found


@pytest.mark.parametrize(("name", "text"), _configs(), ids=[n for n, _ in _configs()])
def test_every_example_passes_the_schema_and_the_checker(name: str, text: str) -> None:
    assert _schema_errors(yaml.safe_load(text)) == []
    assert _checker_problems(text) == []


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_scaffold_names_the_schema_and_passes_it(cli, tmp_path: Path, template: str) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", str(tmp_path / "p"), "--template", template).code == ExitCode.OK
    text = (tmp_path / "p" / "mlci.yaml").read_text()
    first = text.splitlines()[0]
    assert first == (
        "# yaml-language-server: $schema="
        "https://raw.githubusercontent.com/mlci-dev/mlci/v0.1.0/mlci/schemas/mlci.schema.json"
    )
    assert _schema_errors(yaml.safe_load(text)) == []


def test_an_adopted_project_names_the_schema_and_passes_it(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text("import json\njson.dump({'accuracy': 0.9}, open('metrics.json', 'w'))\n")
    (root / "params.yaml").write_text("C: 1.0\n")
    assert cli("init", "--adopt", str(root)).code == ExitCode.OK
    text = (root / "mlci.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=https://raw.githubusercontent.com/")
    assert _schema_errors(yaml.safe_load(text)) == []


def _keys(node: dict[str, Any], prefix: str, defs: dict[str, Any], seen: set[str]) -> set[str]:
    """Every key path the schema allows (``train.inputs``, ``environments.*.gates.*.min``)."""
    found: set[str] = set()
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.rsplit("/", 1)[1]
        if name in seen:
            return found
        return _keys(defs[name], prefix, defs, seen | {name})
    for branch in node.get("anyOf", []):
        found |= _keys(branch, prefix, defs, seen)
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        found.add(path)
        found |= _keys(sub, f"{path}.", defs, seen)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        found.add(f"{prefix}*")
        found |= _keys(extra, f"{prefix}*.", defs, seen)
    if isinstance(node.get("items"), dict):
        found |= _keys(node["items"], f"{prefix}*.", defs, seen)
    return found


def _used(data: Any, prefix: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            found.add(path)
            found |= _used(value, f"{path}.")
    elif isinstance(data, list):
        for value in data:
            found |= _used(value, f"{prefix}*.")
    return found


def test_the_complete_example_uses_every_key_of_the_schema() -> None:
    schema = cfg.schema()
    allowed = _keys(schema, "", schema["$defs"], set())
    used = _used(yaml.safe_load(EXAMPLE.read_text()))
    generic = {
        re.sub(r"^(metrics|environments|data|sweep\.grid|train\.parameters)\.[^.]+", r"\1.*", k) for k in used
    }
    generic = {re.sub(r"\.columns\.[^.]+", ".columns.*", k) for k in generic}
    # A sweep has a grid or a candidate list, never both: the example shows the grid.
    missing = {k for k in allowed - generic if not k.startswith("sweep.candidates")}
    assert not missing, f"the complete example (mlci/schemas/mlci.example.yaml) lacks {sorted(missing)}"
    assert generic <= allowed, generic - allowed


# A misspelt key in each mapping mlci.yaml has: the checker and the schema both refuse it,
# at the same place, and the checker names the key it meant.
BASE = {"model": {"name": "m"}, "train": {"command": "python train.py"}}
MISSPELT = [
    ({"modle": {"name": "m"}}, "modle", "model"),
    ({"model": {"name": "m", "descripton": "x"}}, "model.descripton", "description"),
    ({"train": {"command": "c", "input": ["x"]}}, "train.input", "inputs"),
    ({"metrics": {"accuracy": {"gaol": "maximize"}}}, "metrics.accuracy.gaol", "goal"),
    ({"tracking": {"url": "http://h:5000"}}, "tracking.url", "uri"),
    ({"environments": {"staging": {"gatse": []}}}, "environments.staging.gatse", "gates"),
    (
        {"environments": {"staging": {"gates": [{"metric": "a", "minimum": 1}]}}},
        "environments.staging.gates[0].minimum",
        "min",
    ),
    (
        {"environments": {"prod": {"deploy": {"command": "x", "smoek": "y"}}}},
        "environments.prod.deploy.smoek",
        "smoke",
    ),
    ({"report": {"baseline": ["base"]}}, "report.baseline", "baselines"),
    ({"registry": {"stores": "local"}}, "registry.stores", "store"),
    ({"data": {"d": {"path": "a.csv", "colums": {}}}}, "data.d.colums", "columns"),
    ({"data": {"d": {"path": "a.csv", "rows": {"mn": 1}}}}, "data.d.rows.mn", "min"),
    ({"data": {"d": {"path": "a.csv", "columns": {"c": {"tpye": "int"}}}}}, "data.d.columns.c.tpye", "type"),
    ({"sweep": {"grid": {"C": [1, 2]}, "limt": 4}}, "sweep.limt", "limit"),
]


def _merged(extra: dict[str, Any]) -> dict[str, Any]:
    data = {**BASE, **extra}
    if "modle" in data:
        data.pop("model")
    if "command" in data.get("train", {}):
        return data
    return data


@pytest.mark.parametrize(("extra", "where", "meant"), MISSPELT, ids=[w for _, w, _ in MISSPELT])
def test_a_misspelt_key_is_refused_by_the_schema_and_the_checker_alike(
    extra: dict[str, Any], where: str, meant: str
) -> None:
    data = _merged(extra)
    problems = _checker_problems(yaml.safe_dump(data, sort_keys=False))
    assert any(f": {where}: unknown key; did you mean {meant!r}?" in p for p in problems), problems
    errors = _schema_errors(data)
    parent = re.sub(r"\[(\d+)\]", r".\1", where).split(".")[:-1]
    key = where.rsplit(".", 1)[-1]
    assert any([str(p) for p in path] == parent and f"'{key}'" in message for path, message in errors), errors


def test_the_checker_takes_its_keys_from_the_schema() -> None:
    """Every mapping the checker walks is a schema location (so no key list is kept twice)."""
    source = (REPO_ROOT / "mlci" / "config.py").read_text()
    places = re.findall(r"self\.mapping\(.*\"([^\"]*)\"\)", source)
    assert len(places) >= 14
    for place in places:
        keys, _ = cfg.keys_of(place)
        assert keys, place
    assert "allowed: tuple[str, ...]" not in source  # no hand-kept key list is left


def test_the_checkers_constants_are_the_schemas() -> None:
    schema = cfg.schema()
    defs, top = schema["$defs"], schema["properties"]
    assert tuple(top["registry"]["properties"]["store"]["enum"]) == cfg.STORE_SETTINGS
    assert tuple(defs["type"]["enum"]) == cfg.DATA_TYPES
    assert tuple(defs["dataset"]["properties"]["format"]["enum"]) == cfg.DATA_FORMATS
    assert tuple(defs["goal"]["enum"]) == cfg.GOALS
    assert top["model"]["properties"]["name"]["pattern"] == cfg.MODEL_NAME_RE.pattern
    assert top["environments"]["propertyNames"]["pattern"] == cfg.ENV_NAME_RE.pattern
    train = top["train"]["properties"]
    assert train["repeats"]["maximum"] == cfg.MAX_REPEATS
    assert train["repeats"]["default"] == cfg.TrainConfig.repeats
    assert train["inputs"]["default"] == list(cfg.TrainConfig("x").inputs)
    assert train["metrics"]["default"] == cfg.TrainConfig.metrics
    assert train["own_cache"]["default"] is cfg.TrainConfig.own_cache
    tracking = top["tracking"]["properties"]
    assert tracking["timeout"]["default"] == cfg.TrackingConfig.timeout
    assert tracking["wait"]["default"] == cfg.TrackingConfig.wait
    assert defs["deploy"]["properties"]["timeout"]["default"] == cfg.DeployHook.timeout
    sweep = top["sweep"]["properties"]
    assert sweep["limit"]["default"] == cfg.SWEEP_LIMIT and sweep["limit"]["maximum"] == cfg.SWEEP_MAX
