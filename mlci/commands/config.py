"""``mlci config show`` and ``mlci config validate``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from mlci import config as cfg
from mlci import redact


def show(path: Path | None, *, cwd: Path, environ: Mapping[str, str], as_json: bool) -> str:
    import yaml

    config = cfg.load_for(path, cwd)
    data = config.to_dict()
    if data["tracking"]["uri"]:
        data["tracking"]["uri"] = redact.url(data["tracking"]["uri"])
    data["tracking"]["effective_uri"] = redact.url(cfg.effective_tracking_uri(config, environ))
    choice = cfg.choose_store(config, environ)
    data["registry"]["effective_store"] = choice.name
    data["registry"]["why"] = choice.why
    if as_json:
        return json.dumps({"path": str(config.path), "config": data}, indent=2) + "\n"
    header = f"# {config.path} (resolved, defaults filled in)\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def validate(path: Path | None, *, cwd: Path, as_json: bool) -> str:
    config = cfg.load_for(path, cwd)
    envs = [e.name for e in config.environments]
    if as_json:
        return json.dumps(
            {
                "path": str(config.path),
                "valid": True,
                "model": config.model.name,
                "environments": envs,
            }
        )
    return f"{config.path}: valid (model {config.model.name!r}, environments: {', '.join(envs) or 'none'})"


def schema_json() -> str:
    """The JSON Schema of mlci.yaml, as editors and validators read it."""
    return json.dumps(cfg.schema(), indent=2, ensure_ascii=False) + "\n"


_DEF_NAMES = {
    "text": "string",
    "duration": 'duration (seconds, or "90s", "30m", "2h")',
    "threshold": 'number ≥ 0, or a percentage ("2%")',
    "confidence": 'confidence level (0.95, or "95%")',
    "psi": "number > 0 (PSI)",
    "goal": "`maximize` or `minimize`",
    "scalar": "string, number or boolean",
    "environment": "[environment](#environmentsname)",
    "rule": "[rule](#gates-rules)",
    "deploy": "[deploy hook](#deploy)",
    "dataset": "[dataset](#dataname)",
    "column": "[column checks](#columnscolumn)",
    "metric": "`{goal: …}`",
    "type": "a column type",
}


def _type(node: dict[str, object]) -> str:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name == "type":
            return _type(cfg.schema()["$defs"]["type"])
        return _DEF_NAMES[name]
    if "anyOf" in node:
        return " or ".join(_type(n) for n in node["anyOf"])  # type: ignore[attr-defined]
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])  # type: ignore[attr-defined]
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type(node['items'])}"  # type: ignore[arg-type]
    if kind == "null":
        return "nothing"
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        if low is not None and high is not None:
            return f"integer {low} to {high}"
        return "integer" if low is None else f"integer ≥ {low}"
    if kind == "object":
        return "mapping"
    if isinstance(kind, list):
        return ", ".join(kind)
    return str(kind)


def _default(node: dict[str, object]) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def _table(node: dict[str, object], prefix: str) -> list[str]:
    required = set(node.get("required", ()))  # type: ignore[call-overload]
    rows = ["| key | type | default | what it is |", "|---|---|---|---|"]
    for key, sub in node["properties"].items():  # type: ignore[attr-defined]
        name = f"`{prefix}{key}`" + (" (required)" if key in required else "")
        description = str(sub.get("description", "")).replace("|", "\\|")
        rows.append(f"| {name} | {_type(sub)} | {_default(sub)} | {description} |")
    return rows


# Run by tests/test_docs.py as it is shown, like every console block of docs/.
_VALIDATE_SESSION = [
    "$ printf 'model: {name: churn}\\ntrain: {command: python train.py}\\n' > mlci.yaml",
    "$ printf 'environments:\\n  staging:\\n    gates:\\n' >> mlci.yaml",
    "$ printf '      - {metric: accuracy, minimum: 0.9, max_regression: two}\\n' >> mlci.yaml",
    "$ mlci config validate",
    "mlci: error: /home/you/mlci.yaml: 2 problems:",
    "  mlci.yaml:6: environments.staging.gates[0].minimum: unknown key; did you mean 'min'?",
    "  mlci.yaml:6: environments.staging.gates[0].max_regression: expected a number >= 0 or a percentage "
    "like \"2%\", got a string ('two')",
    "hint: fix the keys above (docs/configuration.md, or `mlci config schema`, lists every key); "
    "`mlci config validate` checks again",
]


def schema_markdown() -> str:
    """docs/configuration.md: the reference of every key, made from the schema alone."""
    schema = cfg.schema()
    defs = schema["$defs"]
    out = [
        "# `mlci.yaml` reference",
        "",
        "<!-- Generated from mlci/schemas/mlci.schema.json by "
        "`mlci config schema --markdown`; edit the schema, not this page. -->",
        "",
        str(schema["description"]),
        "",
        "Editors that speak the YAML language server (VS Code's YAML extension, JetBrains, "
        "Neovim) complete and check the file from the schema; `mlci init` writes the line "
        "that names it at the top of `mlci.yaml`. `mlci config schema` prints it, for any "
        "other validator.",
        "",
    ]
    top_required = set(schema["required"])
    for key, node in schema["properties"].items():
        out += [
            f"## `{key}`" + (" (required)" if key in top_required else ""),
            "",
            str(node["description"]),
            "",
        ]
        if "properties" in node:
            out += [*_table(node, f"{key}."), ""]
        if key == "metrics":
            out += [
                "Each metric: `NAME:` (goal inferred), `NAME: minimize`, or `NAME: {goal: minimize}`.",
                "",
            ]
        if key == "environments":
            out += ["### `environments.NAME`", "", *_table(defs["environment"], ""), ""]
            out += [
                "### `gates` rules",
                "",
                "Each rule names a metric and at least one of "
                "`min`, `max`, `max_regression`, `min_improvement`.",
                "",
                *_table(defs["rule"], ""),
                "",
            ]
            out += ["### `deploy`", "", "A command (a string), or:", "", *_table(defs["deploy"], ""), ""]
        if key == "data":
            out += ["### `data.NAME`", "", "A path (a string), or:", "", *_table(defs["dataset"], ""), ""]
            kinds = ", ".join(f"`{t}`" for t in defs["type"]["enum"])
            out += [
                "### `columns.COLUMN`",
                "",
                f"Nothing (the column must exist), a type ({kinds}), or:",
                "",
                *_table(defs["column"], ""),
                "",
            ]
    out += [
        "## Checking a file",
        "",
        "`mlci config validate` checks a file against this schema and the rules it cannot "
        "express. Unknown keys are errors (a typo must not silently disable a gate) and name the "
        "closest valid key; every problem in the file is reported at once, with its line and key path:",
        "",
        "```console",
        *_VALIDATE_SESSION,
        "```",
        "",
        "`mlci config show` prints the file resolved, every default filled in, with the tracking "
        "URI in effect and the store registered versions go to (and why).",
        "",
    ]
    example = (cfg.SCHEMA_PATH.parent / "mlci.example.yaml").read_text(encoding="utf-8")
    out += [
        "## A complete example",
        "",
        "Every key, each with what it does:",
        "",
        "```yaml",
        example.rstrip(),
        "```",
        "",
    ]
    return "\n".join(out).rstrip() + "\n"
