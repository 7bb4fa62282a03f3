"""What a Python training script says about itself, read with ``ast`` (never run). Pure.

``mlci init --adopt`` asks three things of the training code: which paths it builds
(string literals, ``Path(...) / ...``, ``os.path.join``, ``Path(__file__).parent``,
followed through module-level names where every part is literal); which parameters its
command line declares (argparse, click, typer) or whether Hydra configures it; and
whether it logs to MLflow itself.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_SOURCE = 1024 * 1024  # bytes of one script read; more is not a training script
_UNKNOWN = object()  # a value the code computes at run time


@dataclass(frozen=True)
class CodePath:
    path: str  # relative to the project root, '/'-separated
    certain: bool  # every part literal; False: a literal file name joined to a folder mlci cannot know
    line: int


@dataclass(frozen=True)
class Param:
    name: str  # as the code reads it (argparse's dest, click's and typer's parameter name)
    flag: str | None  # "--alpha"; None: a positional argument
    default: Any = None
    has_default: bool = False


@dataclass
class Script:
    """What one script declares."""

    paths: list[CodePath] = field(default_factory=list)
    cli: str | None = None  # "argparse", "click", "typer", "hydra"
    params: list[Param] = field(default_factory=list)
    hydra_config: str | None = None  # the config file Hydra composes, relative to the project
    mlflow: bool = False  # imports mlflow and logs (start_run, log_metric(s), autolog, log_model)
    mlflow_model: bool = False  # logs a model to MLflow itself


def parse(source: str, script: str) -> Script | None:
    """``source``, the text of ``script`` (its path relative to the project root), or None
    when it is not Python this interpreter can parse."""
    try:
        tree = ast.parse(source[:MAX_SOURCE], filename=script)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found = Script()
    names = _Names(posixpath.dirname(script))
    inside: set[int] = set()  # the parts of a path already read whole
    try:
        for node in _walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    names.values[target.id] = names.value(node.value)
            if isinstance(node, ast.expr) and id(node) not in inside and _path_of(node, names, found):
                inside.update(id(n) for n in ast.walk(node))
        _cli(tree, names, found)
        _mlflow(tree, found)
    except RecursionError:
        return None
    found.paths = list({(p.path, p.certain): p for p in found.paths}.values())
    return found


def _walk(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, statements in the order they run (``ast.walk`` is breadth first)."""
    yield tree
    for child in ast.iter_child_nodes(tree):
        yield from _walk(child)


class _Partial(str):
    """A path whose folder the code computes at run time: only its literal tail is known."""


class _Names:
    def __init__(self, folder: str) -> None:
        self.folder = folder  # the script's folder: what __file__'s parent is
        self.values: dict[str, Any] = {"__file__": _File(folder)}

    def value(self, node: ast.AST) -> Any:
        """A path or string the expression is, or ``_UNKNOWN``."""
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else _UNKNOWN
        if isinstance(node, ast.Name):
            return self.values.get(node.id, _UNKNOWN)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return _join([self.value(node.left), self.value(node.right)])
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            if node.attr == "parent" and isinstance(base, (str, _File)):
                return _parent(base)
            return _UNKNOWN
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node)
        return _UNKNOWN

    def _fstring(self, node: ast.JoinedStr) -> Any:
        """An f-string: whole where every part is known, else its literal tail (a file name)."""
        text, known = "", True
        for part in node.values:
            value = self.value(part.value) if isinstance(part, ast.FormattedValue) else self.value(part)
            if isinstance(value, str) and not isinstance(value, _File):
                text += value
            else:
                text, known = "", False
        if known:
            return text
        tail = text.lstrip("/")
        return _Partial(tail) if text.startswith("/") and tail else _UNKNOWN  # f"{out}/metrics.json"

    def _call(self, node: ast.Call) -> Any:
        func = _dotted(node.func)
        args = [self.value(a) for a in node.args]
        if func in ("Path", "pathlib.Path", "PurePath", "pathlib.PurePath", "os.path.join", "join"):
            if func == "join" and not args:
                return _UNKNOWN
            return _join(args) if args else ""
        if func in ("os.path.dirname", "dirname") and len(args) == 1:
            return _parent(args[0]) if isinstance(args[0], (str, _File)) else _UNKNOWN
        if func in ("os.path.abspath", "os.path.realpath", "abspath", "realpath") and len(args) == 1:
            return args[0]
        if func in ("Path.cwd", "pathlib.Path.cwd", "os.getcwd"):
            return ""
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute", "expanduser"):
            return self.value(node.func.value)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "joinpath":
            return _join([self.value(node.func.value), *args])
        return _UNKNOWN


class _File(str):
    """``__file__``: the script itself."""

    def __new__(cls, folder: str) -> _File:
        return super().__new__(cls, folder)


def _parent(value: str) -> str:
    if isinstance(value, _File):
        return str(value)  # the script's folder
    return posixpath.dirname(value.rstrip("/"))


def _join(parts: Sequence[Any]) -> Any:
    if not parts or any(p is _UNKNOWN or not isinstance(p, str) for p in parts[1:]):
        return _UNKNOWN
    head = parts[0]
    if head is _UNKNOWN:
        tail = posixpath.join(*parts[1:]) if parts[1:] else ""
        return _Partial(tail) if tail else _UNKNOWN
    if isinstance(head, _File):
        head = posixpath.join(str(head), "__file__")  # the script as a path: its parent is its folder
    joined = posixpath.join(head, *parts[1:])
    return _Partial(joined) if isinstance(head, _Partial) else joined


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _path_of(node: ast.expr, names: _Names, found: Script) -> bool:
    """Note the path ``node`` builds, if it builds one; whether it was a path expression."""
    if not isinstance(node, (ast.Constant, ast.BinOp, ast.Call, ast.JoinedStr)):
        return False
    value = names.value(node)
    whole = isinstance(node, ast.JoinedStr)  # its parts are never paths of their own
    if not isinstance(value, str) or isinstance(value, _File) or not value or "\n" in value:
        return whole
    if len(value) > 200 or posixpath.basename(value) == "__file__":
        return whole
    path = posixpath.normpath(value.replace("\\", "/"))
    if path.startswith(("/", "../")) or path in (".", ".."):
        return whole
    found.paths.append(CodePath(path, not isinstance(value, _Partial), getattr(node, "lineno", 0)))
    return True


# ----------------------------------------------------------------------- command lines


def _cli(tree: ast.AST, names: _Names, found: Script) -> None:
    for node in _walk(tree):
        if isinstance(node, ast.Call):
            func = _dotted(node.func)
            if func.endswith("add_argument") and node.args:
                found.cli = found.cli or "argparse"
                param = _argparse(node, names)
                if param is not None:
                    found.params.append(param)
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                name = _dotted(call.func if call else deco)
                if name in ("hydra.main", "main") and call is not None and _is_hydra(tree):
                    found.cli = "hydra"
                    found.hydra_config = _hydra_config(call, names)
                if name in ("click.command", "command", "click.group", "group") and _imports(tree, "click"):
                    found.cli = found.cli or "click"
                    found.params += _click(node, names)
            if found.cli is None and _typer_command(tree, node):
                found.cli = "typer"
                found.params += _typer(node)


def _argparse(node: ast.Call, names: _Names) -> Param | None:
    flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if not flags:
        return None
    keywords = {k.arg: k.value for k in node.keywords if k.arg}
    long = next((f for f in flags if f.startswith("--")), None)
    flag = long or next((f for f in flags if f.startswith("-")), None)
    dest = keywords.get("dest")
    if isinstance(dest, ast.Constant) and isinstance(dest.value, str):
        name = dest.value
    else:
        name = (flag or flags[0]).lstrip("-").replace("-", "_")
    action = keywords.get("action")
    if isinstance(action, ast.Constant) and action.value in ("store_true", "store_false", "count", "help"):
        return None  # a switch: no value to fill in
    default = keywords.get("default")
    return _param(name, flag, default)


def _param(name: str, flag: str | None, default: ast.AST | None) -> Param:
    if default is None:
        return Param(name, flag)
    try:
        value = ast.literal_eval(default)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return Param(name, flag)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return Param(name, flag, value, True)
    return Param(name, flag)


def _click(node: ast.FunctionDef, names: _Names) -> list[Param]:
    params: list[Param] = []
    for deco in node.decorator_list:
        if not isinstance(deco, ast.Call) or not _dotted(deco.func).endswith("option"):
            continue
        flags = [a.value for a in deco.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        long = next((f for f in flags if f.startswith("--")), None)
        if long is None or "/" in long:
            continue
        keywords = {k.arg: k.value for k in deco.keywords if k.arg}
        if isinstance(keywords.get("is_flag"), ast.Constant) and keywords["is_flag"].value is True:  # type: ignore[attr-defined]
            continue
        named = next((f for f in flags if f.isidentifier()), None)
        params.append(_param(named or long[2:].replace("-", "_"), long, keywords.get("default")))
    return params


def _typer_command(tree: ast.AST, node: ast.FunctionDef) -> bool:
    if not _imports(tree, "typer"):
        return False
    decorated = any(
        _dotted(d.func if isinstance(d, ast.Call) else d).endswith(".command") for d in node.decorator_list
    )
    run = any(
        isinstance(n, ast.Call)
        and _dotted(n.func) in ("typer.run", "run")
        and n.args
        and isinstance(n.args[0], ast.Name)
        and n.args[0].id == node.name
        for n in ast.walk(tree)
    )
    return decorated or run


def _typer(node: ast.FunctionDef) -> list[Param]:
    """Typer options: parameters with a default (without one, typer makes an argument)."""
    args = node.args.args
    defaults = node.args.defaults
    params: list[Param] = []
    for arg, default in zip(args[len(args) - len(defaults) :], defaults, strict=False):
        value: ast.AST | None = default
        if isinstance(default, ast.Call) and _dotted(default.func).endswith("Option"):
            value = default.args[0] if default.args else None
        params.append(_param(arg.arg, "--" + arg.arg.replace("_", "-"), value))
    return params


def _imports(tree: ast.AST, module: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == module for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == module:
            return True
    return False


def _is_hydra(tree: ast.AST) -> bool:
    return _imports(tree, "hydra")


def _hydra_config(call: ast.Call, names: _Names) -> str | None:
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    path = names.value(keywords["config_path"]) if "config_path" in keywords else None
    name = names.value(keywords["config_name"]) if "config_name" in keywords else None
    if not isinstance(path, str) or not isinstance(name, str) or isinstance(path, _Partial):
        return None
    base = posixpath.join(names.folder, path)  # Hydra's config_path is relative to the script
    file = name if name.endswith((".yaml", ".yml")) else name + ".yaml"
    joined = posixpath.normpath(posixpath.join(base, file))
    return None if joined.startswith("../") else joined


# ----------------------------------------------------------------------------- MLflow

_MLFLOW_LOGS = ("start_run", "log_metric", "log_metrics", "log_param", "log_params", "autolog")


def _mlflow(tree: ast.AST, found: Script) -> None:
    if not _imports(tree, "mlflow"):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr in _MLFLOW_LOGS or attr == "log_model":
                found.mlflow = True
            if attr == "log_model" or (attr == "autolog" and not _autolog_off(node)):
                found.mlflow_model = True


def _autolog_off(node: ast.Call) -> bool:
    for k in node.keywords:
        if k.arg in ("log_models", "disable") and isinstance(k.value, ast.Constant):
            return bool(k.value.value) is (k.arg == "disable")
    return False
