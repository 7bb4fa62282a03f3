"""Reading files a user, a pull request or a training script wrote: bounded and strict.

Every reader here has a size limit checked before reading, accepts regular
files only (never a FIFO or ``/dev/zero``), and turns any malformed content
into ``BadInput`` with the line where the problem is, never a crash, a hang or
unbounded memory:

- YAML: plain data only (mappings, lists, strings, numbers, booleans, null),
  merge keys (``<<: *defaults``) supported, custom tags refused, at most
  ``MAX_NODES`` values once aliases are expanded (an alias bomb is an error,
  not gigabytes), at most ``MAX_DEPTH`` levels of nesting, no recursive alias;
  a duplicate key is an error naming it (PyYAML would keep the last one).
- JSON: the same limits; a duplicate key is an error naming it.

Callers wrap ``BadInput`` into their own error (config, params, metrics).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_NODES = 100_000
MAX_DEPTH = 64
KeyPath = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)


@dataclass
class BadInput(Exception):
    """What is wrong with an input file, and the line (1-based) and key path, when known."""

    problem: str
    line: int | None = None
    key_path: KeyPath = ()

    def __str__(self) -> str:
        return self.problem

    def where(self, source: str) -> str:
        """``source:line: key.path`` for a message."""
        out = f"{source}:{self.line}" if self.line else source
        return f"{out}: {dotted(self.key_path)}" if self.key_path else out


def dotted(key_path: KeyPath) -> str:
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def read_text(path: Path, *, limit: int, what: str, follow: bool = True) -> str:
    """A regular file's text (UTF-8), refused when it is larger than ``limit`` bytes.

    ``OSError`` (missing file and the like) is the caller's to word; size, kind
    and encoding problems are ``BadInput``.
    """
    return _decode(read_bytes(path, limit=limit, what=what, follow=follow))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(f"not UTF-8 text (byte {exc.start} cannot be decoded)", line) from None


def read_bytes(path: Path, *, limit: int, what: str, follow: bool = True) -> bytes:
    """A regular file's bytes, at most ``limit`` of them, checked before reading.
    With ``follow=False`` a symbolic link is refused (untrusted folders)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and path.is_symlink():
            raise BadInput(f"{what} is a symbolic link, which is not followed here") from None
        raise exc
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{what} must be a regular file, and {path} is not")
        if st.st_size > limit:
            raise BadInput(f"{what} is {st.st_size} bytes, more than the limit of {limit}")
        data = handle.read(limit + 1)
    if len(data) > limit:  # it grew while we read it
        raise BadInput(f"{what} is more than the limit of {limit} bytes")
    return data


# --------------------------------------------------------------------------- YAML


# Texts already read in this process, each with what it reads as (a command reads
# mlci.yaml and params.yaml again at each step; `mlci demo` 27 times): a copy is handed out.
_READ: dict[str, tuple[Any, dict[KeyPath, int]]] = {}
_READ_ENTRIES = 64
PARSES = 0  # YAML texts parsed in this process (the cache's misses), for the tests that count


def load_yaml(text: str) -> tuple[Any, dict[KeyPath, int]]:
    """Plain data from YAML text, and the line of every key path. Each text is parsed once
    per process; every call gets its own copy of the data."""
    import copy

    found = _READ.get(text)
    if found is None:
        found = _parse_yaml(text)
        if len(_READ) >= _READ_ENTRIES:
            _READ.pop(next(iter(_READ)))
        _READ[text] = found
    return copy.deepcopy(found[0]), dict(found[1])


def _parse_yaml(text: str) -> tuple[Any, dict[KeyPath, int]]:
    global PARSES
    import yaml

    PARSES += 1

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise BadInput(f"not valid YAML: {exc.problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise BadInput(f"not valid here: nested deeper than {MAX_DEPTH} levels") from None
    lines: dict[KeyPath, int] = {}
    if root is None:
        return None, lines
    return _Builder(lines).build(root, (), 0), lines


class _Builder:
    def __init__(self, lines: dict[KeyPath, int]) -> None:
        import yaml

        self.yaml = yaml
        self.constructor = yaml.constructor.SafeConstructor()
        self.lines = lines
        self.budget = MAX_NODES
        self.stack: set[int] = set()

    def fail(self, node: Any, problem: str, key_path: KeyPath) -> BadInput:
        return BadInput(problem, node.start_mark.line + 1, key_path)

    def scalar(self, node: Any, key_path: KeyPath) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(node, f"the tag {node.tag!r} is not supported: write plain values", key_path)
        try:
            return self.constructor.construct_object(node, deep=True)
        except (self.yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.fail(node, f"cannot read the value {node.value[:40]!r}: {problem}", key_path) from None

    def build(self, node: Any, key_path: KeyPath, depth: int) -> Any:
        yaml = self.yaml
        self.budget -= 1
        if self.budget < 0:
            raise self.fail(
                node,
                f"the file expands to more than {MAX_NODES} values (aliases of aliases?)",
                key_path,
            )
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels", key_path)
        self.lines.setdefault(key_path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, key_path)
        if id(node) in self.stack:
            raise self.fail(node, "an alias refers to a mapping or list that contains it", key_path)
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    raise self.fail(
                        node, f"the tag {node.tag!r} is not supported: write a plain list", key_path
                    )
                return [self.build(item, (*key_path, i), depth + 1) for i, item in enumerate(node.value)]
            if node.tag != _MAP_TAG:
                raise self.fail(
                    node, f"the tag {node.tag!r} is not supported: write a plain mapping", key_path
                )
            return self.mapping(node, key_path, depth)
        finally:
            self.stack.discard(id(node))

    def mapping(self, node: Any, key_path: KeyPath, depth: int) -> dict[str, Any]:
        yaml = self.yaml
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be a plain value, not a mapping or list", key_path)
            key = self.scalar(key_node, key_path)
            key = key if isinstance(key, str) else str(key)
            child = (*key_path, key)
            line = key_node.start_mark.line + 1
            if key in out:
                raise BadInput(f"duplicate key (first on line {first_line[key]})", line, child)
            first_line[key] = line
            self.lines.setdefault(child, line)
            out[key] = self.build(value_node, child, depth + 1)
        # Merge keys: explicit keys win, then earlier merged mappings over later ones.
        for merge in merges:
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise self.fail(
                        source, "a merge key (<<) takes a mapping, or a list of mappings", key_path
                    )
                merged = self.build(source, key_path, depth + 1)
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out


# --------------------------------------------------------------------------- JSON


def load_json(text: str) -> Any:
    """Plain data from JSON text; duplicate keys and deep nesting are errors."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise BadInput(f"duplicate key {key!r}", None, (key,))
            out[key] = value
        return out

    depth = _json_depth(text)
    if depth > MAX_DEPTH:
        raise BadInput(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise BadInput(f"not valid JSON: {exc}") from None


def _json_depth(text: str) -> int:
    """The deepest bracket nesting, outside strings (a cheap pre-check)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest
