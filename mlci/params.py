"""Training params: the params file plus ``--set`` overrides, resolved to plain data.

Pure: no I/O beyond parsing the text it is given.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mlci import safeinput
from mlci.errors import ParamsError

_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"model.lr=0.1"`` -> (["model", "lr"], 0.1); the value is a YAML scalar."""
    import yaml

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ParamsError(
            f"--set {item!r}: expected KEY=VALUE",
            hint="for example --set C=0.5 or --set model.depth=3",
        )
    parts = key.split(".")
    if any(not p for p in parts):
        raise ParamsError(f"--set {item!r}: {key!r} has an empty part", hint="write keys like a.b.c")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, str) and _EXPONENT_FLOAT.match(raw.strip()):
            value = float(raw)  # YAML 1.1 reads 1e-05 as text; every user means a number
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ParamsError(
            f"--set {item!r}: the value is not a YAML scalar: {exc}",
            hint="quote the value, for example --set name='a: b'",
        ) from None
    if isinstance(value, (dict, list)):
        raise ParamsError(
            f"--set {item!r}: the value must be a single value, not a list or mapping",
            hint="set nested keys one at a time: --set a.b=1 --set a.c=2",
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamsError(
            f"--set {item!r}: {raw.strip()} is not a finite number (NaN or past a float's range)",
            hint="set a finite number; quote it to pass it as text: --set KEY='inf'",
        )
    return parts, value


def apply_overrides(params: Mapping[str, Any], overrides: Iterable[str], source: str) -> dict[str, Any]:
    """A copy of ``params`` with each ``--set KEY=VALUE`` applied.

    A key must already exist in the params file: a typo must not silently add
    a param the training code never reads.
    """
    out = copy.deepcopy(dict(params))
    for item in overrides:
        parts, value = parse_override(item)
        node: Any = out
        for depth, part in enumerate(parts):
            where = ".".join(parts[: depth + 1])
            if not isinstance(node, dict):
                raise ParamsError(
                    f"--set {item!r}: {'.'.join(parts[:depth])!r} in {source} is not a mapping",
                    hint="set a key that exists",
                )
            if part not in node:
                keys = [str(k) for k in node]
                close = [k for k in keys if k.lower() == part.lower()] or difflib.get_close_matches(
                    part, keys, n=1
                )
                extra = f"; did you mean {'.'.join([*parts[:depth], close[0]])!r}?" if close else ""
                raise ParamsError(
                    f"--set {item!r}: {where!r} is not a param in {source}{extra}",
                    hint=f"add {where!r} to {source} first (the training code must read it)",
                )
            if depth == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return out


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"a.b": value}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def non_finite(data: Any, prefix: str = "") -> str | None:
    """The dotted key of the first NaN or infinite number in ``data`` (None: there is none)."""
    if isinstance(data, float) and not math.isfinite(data):
        return prefix or "(the value)"
    if isinstance(data, Mapping):
        for key, value in data.items():
            found = non_finite(value, f"{prefix}.{key}" if prefix else str(key))
            if found is not None:
                return found
    if isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            found = non_finite(value, f"{prefix}[{i}]")
            if found is not None:
                return found
    return None


def canonical_json(data: Any) -> str:
    """One spelling per value: sorted keys, no spaces, no NaN."""
    where = non_finite(data)
    if where is not None:
        raise ParamsError(
            f"param {where} is not a finite number (NaN or infinity), which no fingerprint or "
            "tracking store can record",
            hint="write a finite number, or quote it to make it text",
        )
    return json.dumps(
        data,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )


# --------------------------------------------------------------------------- the file the code reads


def from_text(text: str, name: str) -> Any:
    """A params file's data: JSON for a ``.json`` name, YAML otherwise (``safeinput``: strict)."""
    return safeinput.load_json(text) if name.lower().endswith(".json") else safeinput.load_yaml(text)[0]


def yaml_safe_json(data: Any) -> str:
    """JSON that YAML 1.1 loaders read back with the same types: a float with an
    exponent is written ``1.0e-05``, never ``1e-05`` (which PyYAML reads as text)."""
    return _json(data, "") + "\n"


def _json(value: Any, indent: str) -> str:
    inner = indent + "  "
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = sorted((str(k), v) for k, v in value.items())
        body = ",\n".join(f"{inner}{json.dumps(k, ensure_ascii=False)}: {_json(v, inner)}" for k, v in items)
        return "{\n" + body + "\n" + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + _json(v, inner) for v in value) + "\n" + indent + "]"
    if isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    return json.dumps(value, ensure_ascii=False, default=str)


def edit_yaml(text: str, overrides: Iterable[tuple[list[str], Any]]) -> str:
    """``text`` with each override's scalar replaced in place: comments, order,
    quoting and every other value stay byte for byte as they were."""
    import yaml

    for parts, value in overrides:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        node = root
        for part in parts:
            if not isinstance(node, yaml.MappingNode):
                raise ParamsError(f"cannot set {'.'.join(parts)!r}: {part!r} is not under a mapping")
            for key, child in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    node = child
                    break
            else:
                raise ParamsError(f"cannot set {'.'.join(parts)!r}: no key {part!r} written in the file")
        if not isinstance(node, yaml.ScalarNode) or node.style in ("|", ">"):
            raise ParamsError(
                f"cannot set {'.'.join(parts)!r}: its value in the file is not a one-line value",
                hint="write that param as a plain value (name: value) to override it with --set",
            )
        start, end = node.start_mark.index, node.end_mark.index
        text = text[:start] + yaml_scalar(value) + text[end:]
    return text


def yaml_scalar(value: Any) -> str:
    """One value as a YAML 1.1 scalar that reads back as the same value and type."""
    import yaml

    out = yaml.safe_dump(value, default_flow_style=True, width=2**31 - 1, allow_unicode=True)
    return out.removesuffix("\n").removesuffix("\n...").strip()


def same_data(a: Any, b: Any) -> bool:
    """Equal as data (NaN equals NaN; 1 and 1.0 and True stay distinct)."""
    return json.dumps(_typed(a), sort_keys=True) == json.dumps(_typed(b), sort_keys=True)


def _typed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(v) for v in value]
    return [type(value).__name__, repr(value)]


# {name} in train.command: a param's value, shell-quoted. Not after '$' (the shell's ${VAR})
# and not doubled ({{ is a literal brace), so a command written before placeholders runs as it did.
PLACEHOLDER = re.compile(r"(?<![${])\{([A-Za-z_][A-Za-z0-9_.-]*)\}(?!\})")


def placeholders(command: str) -> list[str]:
    return list(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(command)))


def command_value(value: Any) -> str:
    """A param as the command line gets it: text as it is, a number as YAML writes it
    (``0.1``, ``1e-05``), true/false, null as an empty string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return str(value)


def fill_command(command: str, params: Mapping[str, Any], source: str) -> str:
    """``command`` with each ``{name}`` replaced by the shell-quoted value of the param
    ``name`` (dotted for a nested one)."""
    import shlex

    flat = flatten(dict(params))

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in flat:
            close = difflib.get_close_matches(name, list(flat), n=1)
            extra = f"; did you mean {{{close[0]}}}?" if close else ""
            raise ParamsError(
                f"train.command names {{{name}}}, which is no param in {source}{extra}",
                hint=f"add {name!r} to train.parameters in mlci.yaml (with its default), or to the "
                "params file",
            )
        return shlex.quote(command_value(flat[name]))

    return PLACEHOLDER.sub(value, command)
