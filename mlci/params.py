"""Training params: the params file plus ``--set`` overrides, resolved to plain data.

Pure: no I/O beyond parsing the text it is given.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from mlci.errors import ParamsError


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


def canonical_json(data: Any) -> str:
    """One spelling per value: sorted keys, no spaces, no NaN."""
    return json.dumps(
        data,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )
