"""``mlci init --adopt``'s engine: read an existing ML repository and write the
``mlci.yaml`` that fits it, never touching a file the project already has.

Inference is pure (``infer`` takes the list of files and a way to read one),
so every rule has a table-driven test. What it finds, it says, with where it
found it; what it guessed, it marks for the user to check.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlci import config as cfg
from mlci import dvc, safeinput
from mlci.params import yaml_scalar

DATA_EXTENSIONS = (
    ".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".xml", ".npy", ".npz", ".feather",
    ".arrow", ".h5", ".hdf5", ".avro", ".orc", ".xlsx", ".zip", ".gz",
)  # fmt: skip
MODEL_EXTENSIONS = (
    ".pkl", ".pickle", ".joblib", ".onnx", ".pt", ".pth", ".h5", ".keras", ".cbm", ".ubj",
    ".skops", ".safetensors", ".bst", ".model", ".sav",
)  # fmt: skip
PARAMS_FILES = ("params.yaml", "params.yml", "params.json", "config/params.yaml", "conf/params.yaml")
_STRING = re.compile(r"""(?P<q>["'])(?P<s>[^"'\n]{1,200})(?P=q)""")
_METRICS_NAME = re.compile(r"(metric|score|eval|result|accuracy)", re.IGNORECASE)
_MAKE_TARGET = re.compile(r"^(train|training|model)\s*:", re.MULTILINE)
_SKIPPED_DIRS = (".github/", ".dvc/", ".mlci/", "docs/", "node_modules/", ".venv/", "venv/")


@dataclass(frozen=True)
class Finding:
    key: str  # the mlci.yaml key, e.g. "train.command"
    value: Any
    why: str  # where it was found
    check: bool = False  # a guess: the user should look


@dataclass
class Inferred:
    command: str | None = None
    params: str | None = None
    metrics: str | None = None
    model: str | None = None
    inputs: list[str] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)
    own_cache: bool = False
    metric_names: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def found(self, key: str, value: Any, why: str, *, check: bool = False) -> None:
        self.findings.append(Finding(key, value, why, check))


TextOf = Callable[[str], "str | None"]


def _strings(text: str) -> list[str]:
    return [m.group("s") for m in _STRING.finditer(text)]


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return safeinput.load_yaml(text)[0]
    except safeinput.BadInput:
        return None


def _dvc_stages(files: Sequence[str], text_of: TextOf) -> dict[str, dict[str, Any]]:
    data = _load(text_of(dvc.PIPELINE_FILE)) if dvc.PIPELINE_FILE in files else None
    stages = data.get("stages") if isinstance(data, dict) else None
    return {str(k): v for k, v in stages.items() if isinstance(v, dict)} if isinstance(stages, dict) else {}


def _paths(entries: Any) -> list[str]:
    """DVC's deps/outs/metrics lists: a path, or {path: {options}}."""
    out: list[str] = []
    for item in entries if isinstance(entries, list) else []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out += [str(k) for k in item]
    return [posixpath.normpath(p.replace("\\", "/")) for p in out if p]


def _looks_like_model(path: str) -> bool:
    name = posixpath.basename(path).lower()
    return name.endswith(MODEL_EXTENSIONS) or name in ("model", "models") or name.startswith("model")


def infer(files: Sequence[str], text_of: TextOf) -> Inferred:
    """What ``mlci.yaml`` should say for a project with ``files`` (relative paths of
    the files git sees: tracked, or untracked and not ignored): the command, then what the
    training code names (its params, metrics and model files), the inputs, and the metric
    names a metrics file on disk holds."""
    found = Inferred()
    listed = set(files)
    stages = _dvc_stages(files, text_of)
    script, outputs = _command(found, files, listed, stages, text_of)
    literals = _literals(files, listed, stages, script, text_of)
    _params(found, listed, stages, literals)
    _metrics(found, stages, literals, outputs)
    _model(found, stages, literals, outputs)
    _inputs(found, files, listed, stages, outputs, text_of)
    _metric_names(found, text_of)
    return found


def _command(
    found: Inferred, files: Sequence[str], listed: set[str], stages: Mapping[str, Any], text_of: TextOf
) -> tuple[str | None, set[str]]:
    """The command that trains (``dvc repro``, a Makefile's train target, a train*.py), the
    training script it runs, and the outputs a DVC pipeline declares."""
    outputs: set[str] = set()
    script: str | None = None
    if stages:
        found.command = "dvc repro"
        found.found(
            "train.command",
            "dvc repro",
            f"{dvc.PIPELINE_FILE} has stages {', '.join(stages)}; "
            "`dvc repro` runs the ones whose inputs changed",
        )
        found.own_cache = True
        found.found("train.own_cache", True, "dvc repro skips stages that are up to date")
        found.rewrites = [dvc.LOCK_FILE]
        found.found(
            "train.rewrites",
            [dvc.LOCK_FILE],
            f"dvc repro rewrites {dvc.LOCK_FILE}: not an input, never blocks registration, "
            "put back after a run with --set",
        )
        for spec in stages.values():
            outputs |= set(_paths(spec.get("outs"))) | set(_paths(spec.get("metrics")))
            outputs |= set(_paths(spec.get("plots")))
    else:
        makefile = next((m for m in ("Makefile", "makefile", "GNUmakefile") if m in listed), None)
        make_text = text_of(makefile) if makefile else None
        target = _MAKE_TARGET.search(make_text or "")
        if makefile and target:
            found.command = f"make {target.group(1)}"
            found.found("train.command", found.command, f"{makefile} has a {target.group(1)!r} target")
            recipe = re.match(r"[^\n]*\n((?:\t[^\n]*\n?)*)", (make_text or "")[target.start() :])
            scripts = re.findall(r"[\w./-]+\.py", recipe.group(1) if recipe else "")
            script = next((s for s in scripts if s in listed), None)
        else:
            scripts = sorted(
                (f for f in files if re.fullmatch(r"(src/|scripts?/)?train[\w-]*\.py", f)),
                key=lambda f: (f.count("/"), f != "train.py", len(f), f),
            )
            if scripts:
                script = scripts[0]
                found.command = f"python {script}"
                others = f" (also: {', '.join(scripts[1:])})" if scripts[1:] else ""
                found.found("train.command", found.command, f"the training script {script}{others}")
            else:
                found.found(
                    "train.command",
                    None,
                    "no dvc.yaml, no Makefile train target and no train*.py: write the command that trains",
                    check=True,
                )
    return script, outputs


def _literals(
    files: Sequence[str], listed: set[str], stages: Mapping[str, Any], script: str | None, text_of: TextOf
) -> list[str]:
    """What the training code reads and writes: the string literals in it."""
    code_files = [script] if script else []
    for spec in stages.values():
        code_files += [d for d in _paths(spec.get("deps")) if d.endswith(".py") and d in listed]
    code_files += [f for f in files if f.endswith(".py") and f not in code_files and "train" in f]
    literals: list[str] = []
    for name in dict.fromkeys(code_files):
        literals += _strings(text_of(name) or "")
    return literals


def _params(found: Inferred, listed: set[str], stages: Mapping[str, Any], literals: list[str]) -> None:
    """The params file: DVC's, one the code names, or a usual name at the root."""
    dvc_params = [
        str(k)
        for spec in stages.values()
        for item in spec.get("params") or []
        if isinstance(item, dict)
        for k in item
    ]
    candidates = [p for p in dvc_params if p in listed]
    if stages and "params.yaml" in listed:
        candidates.insert(0, "params.yaml")
    candidates += [
        p for p in PARAMS_FILES if p in listed and (p in literals or posixpath.basename(p) in literals)
    ]
    candidates += [p for p in PARAMS_FILES if p in listed]
    if candidates:
        found.params = candidates[0]
        why = "DVC's params file" if stages and found.params == "params.yaml" else "the code reads it"
        if found.params not in literals and not stages:
            why = "a params file at the project root"
        found.found("train.params", found.params, why)
    else:
        found.found(
            "train.params",
            None,
            "no params file: the params are not tracked (hyper-parameters in code change only with the code)",
        )


def _metrics(found: Inferred, stages: Mapping[str, Any], literals: list[str], outputs: set[str]) -> None:
    """The metrics file: DVC's metrics, or one the code names."""
    metric_files: list[str] = []
    for spec in stages.values():
        metric_files += _paths(spec.get("metrics"))
    if not metric_files:
        metric_files = [
            posixpath.normpath(s)
            for s in literals
            if s.lower().endswith((".json", ".txt", ".yaml", ".yml"))
            and _METRICS_NAME.search(posixpath.basename(s))
        ]
    metric_files = list(dict.fromkeys(metric_files))
    if metric_files:
        found.metrics = metric_files[0]
        others = (
            f"; mlci reads one metrics file (others: {', '.join(metric_files[1:])})"
            if metric_files[1:]
            else ""
        )
        source = f"{dvc.PIPELINE_FILE} metrics" if stages else "named in the training code"
        found.found("train.metrics", found.metrics, f"{source}{others}", check=bool(metric_files[1:]))
    else:
        found.metrics = "metrics.json"
        found.found(
            "train.metrics",
            "metrics.json",
            "no metrics file found in the code: make the command write its metrics "
            "to metrics.json, or fix this",
            check=True,
        )
    outputs.add(found.metrics)


def _model(found: Inferred, stages: Mapping[str, Any], literals: list[str], outputs: set[str]) -> None:
    """The model file or folder: a DVC output that looks like one, or one the code saves."""
    models = [o for o in sorted(outputs) if _looks_like_model(o)] if stages else []
    if not models:
        models = [
            posixpath.normpath(s)
            for s in literals
            if s.lower().endswith(MODEL_EXTENSIONS) and "/" not in s[:1]
        ]
    models = list(dict.fromkeys(models))
    if models:
        found.model = models[0]
        others = f" (also: {', '.join(models[1:])})" if models[1:] else ""
        source = f"an output of {dvc.PIPELINE_FILE}" if stages else "saved by the training code"
        found.found("train.model", found.model, f"{source}{others}", check=bool(models[1:]))
        outputs.add(found.model)
    else:
        found.found(
            "train.model",
            None,
            "no model file found: versions record the run (metrics, params, commit); set train.model to the "
            "file or folder the command writes to version its bytes",
            check=True,
        )


def _inputs(
    found: Inferred,
    files: Sequence[str],
    listed: set[str],
    stages: Mapping[str, Any],
    outputs: set[str],
    text_of: TextOf,
) -> None:
    """The inputs: code, params, requirements, and data in git or DVC."""
    inputs: list[str] = []
    if any(f.endswith(".py") for f in files):
        inputs.append("**/*.py")
    for extra in (found.params, dvc.PIPELINE_FILE if stages else None):
        if extra and extra not in inputs:
            inputs.append(extra)
    if found.command and found.command.startswith("make "):
        inputs.append(next(m for m in ("Makefile", "makefile", "GNUmakefile") if m in listed))
    inputs += sorted(f for f in files if re.fullmatch(r"requirements[\w.-]*\.txt|environment\.ya?ml", f))
    tracked = dvc.parse(files, text_of)
    for path in sorted(tracked):
        if tracked[path].source.endswith(".dvc") and path not in outputs:
            inputs.append(path)
    data_dirs: set[str] = set()
    for name in files:
        if name.startswith(_SKIPPED_DIRS) or name in outputs or not name.lower().endswith(DATA_EXTENSIONS):
            continue
        top = name.split("/", 1)[0]
        if "/" in name:
            data_dirs.add(f"{top}/**")
        else:
            inputs.append(name)
    inputs += sorted(data_dirs)
    found.inputs = list(dict.fromkeys(inputs))
    found.found("train.inputs", found.inputs, "code, params, requirements, and data in git or DVC")


def _metric_names(found: Inferred, text_of: TextOf) -> None:
    """The metric names a metrics file already on disk holds (none yet: no gates)."""
    data = _load(text_of(found.metrics)) if found.metrics else None
    if isinstance(data, Mapping):
        from mlci.params import flatten

        found.metric_names = [
            k
            for k, v in flatten(dict(data)).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        found.found("metrics", found.metric_names, f"the names in {found.metrics} as it is now")
    else:
        found.found(
            "environments",
            "staging, production (no gates)",
            f"{found.metrics} is not there yet, so mlci knows no metric to gate on: add gates after "
            "the first `mlci train`",
            check=True,
        )


_KEY_WORDS = ("accuracy", "acc", "f1", "auc", "roc_auc", "r2", "rmse", "mae", "loss", "precision", "recall")


def key_metric(names: Sequence[str]) -> str | None:
    for word in _KEY_WORDS:
        for name in names:
            if word in re.split(r"[^a-z0-9]+", name.lower()):
                return name
    return names[0] if names else None


def config_text(name: str, found: Inferred, schema_line: str = "") -> str:
    """The adopted project's ``mlci.yaml``, commented with where each value came from
    (``schema_line``: the comment that names the schema for editors)."""
    why = {f.key: f for f in found.findings}

    def note(key: str) -> str:
        finding = why.get(key)
        if finding is None:
            return ""
        mark = "CHECK: " if finding.check else ""
        return f"  # {mark}{finding.why}"

    command = found.command or "echo 'set train.command in mlci.yaml' >&2; exit 1"
    lines = [
        *([schema_line] if schema_line else []),
        "# How mlci trains, compares, gates and promotes this model.",
        "# Written by `mlci init --adopt`: review every line marked CHECK.",
        "# `mlci config validate` checks it; `mlci fingerprint --json` lists the inputs.",
        "model:",
        f"  name: {name}",
        "",
        "train:",
        f"  command: {yaml_scalar(command)}{note('train.command')}",
        "  # Everything that determines a training result (`mlci fingerprint --json` lists the files):",
        "  inputs:",
        *[f"    - {yaml_scalar(p)}" for p in found.inputs],
    ]
    if found.params:
        lines.append(f"  params: {yaml_scalar(found.params)}{note('train.params')}")
    else:
        lines.append(f"  # params: params.yaml{note('train.params')}")
    lines.append(f"  metrics: {yaml_scalar(found.metrics or 'metrics.json')}{note('train.metrics')}")
    if found.model:
        lines.append(f"  model: {yaml_scalar(found.model)}{note('train.model')}")
    else:
        lines.append(f"  # model: model.pkl{note('train.model')}")
    if found.rewrites:
        lines.append(
            f"  rewrites: [{', '.join(yaml_scalar(r) for r in found.rewrites)}]{note('train.rewrites')}"
        )
    if found.own_cache:
        lines.append(f"  own_cache: true{note('train.own_cache')}")
    key = key_metric(found.metric_names)
    if found.metric_names:
        lines += ["", "metrics:"]
        lines += [f"  {yaml_scalar(m)}: {{goal: {cfg.infer_goal(m)}}}" for m in found.metric_names]
    lines += [
        "",
        "environments:",
        "  staging:",
        "    branch: staging",
    ]
    if key:
        lines += [
            "    gates:  # CHECK: the thresholds are a start, not a judgement",
            f"      - metric: {yaml_scalar(key)}",
            '        max_regression: "2%"',
        ]
    lines += [
        "  production:",
        "    branch: production",
        "    requires: staging",
    ]
    if key:
        lines += [
            "    gates:",
            f"      - metric: {yaml_scalar(key)}",
            '        max_regression: "1%"',
        ]
    if key:
        lines += ["", "report:", f"  key_metric: {yaml_scalar(key)}"]
    return "\n".join(lines) + "\n"
