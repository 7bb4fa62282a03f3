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
from mlci import dvc, pycode, requirements, safeinput
from mlci.params import yaml_scalar

MODEL_EXTENSIONS = (
    ".pkl", ".pickle", ".joblib", ".onnx", ".pt", ".pth", ".h5", ".keras", ".cbm", ".ubj",
    ".skops", ".safetensors", ".bst", ".model", ".sav",
)  # fmt: skip
PARAMS_FILES = ("params.yaml", "params.yml", "params.json", "config/params.yaml", "conf/params.yaml")
_STRING = re.compile(r"""(?P<q>["'])(?P<s>[^"'\n]{1,200})(?P=q)""")
_METRICS_NAME = re.compile(r"(metric|score|eval|result|accuracy)", re.IGNORECASE)
_MAKE_TARGET = re.compile(r"^(train|training|model)\s*:", re.MULTILINE)


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
    exclude: list[tuple[str, str]] = field(default_factory=list)  # (glob, why it is not an input)
    model_name: str | None = None  # the name the project gives its model (dvc.yaml artifacts)
    parameters: list[tuple[str, Any]] = field(default_factory=list)  # train.parameters
    parameters_from: str | None = None  # MLproject: train.parameters read from it
    overrides: str = "file"
    environments: list[str] = field(default_factory=list)  # MLproject's python_env / conda_env files
    mlflow: bool = False  # the code logs to MLflow itself (its metrics are the run's)
    requirements: list[str] = field(default_factory=list)  # files the workflows install from
    mlflow_model: bool = False  # the code logs its model to MLflow itself
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
    data = _dvc_pipeline(files, text_of)
    stages = data.get("stages")
    return {str(k): v for k, v in stages.items() if isinstance(v, dict)} if isinstance(stages, dict) else {}


def _dvc_pipeline(files: Sequence[str], text_of: TextOf) -> dict[str, Any]:
    data = _load(text_of(dvc.PIPELINE_FILE)) if dvc.PIPELINE_FILE in files else None
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class _TopLevel:
    """dvc.yaml's top-level declarations (DVC 3): the project's metrics, plots and artifacts."""

    metrics: list[str]
    plots: list[str]
    models: list[tuple[str, str]]  # (artifact name, path), models first


def _top_level(data: Mapping[str, Any]) -> _TopLevel:
    plots: list[str] = []
    listed = data.get("plots")
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, str):
            plots.append(item)
        elif isinstance(item, dict):
            for key, spec in item.items():
                axes = [spec.get(a) for a in ("x", "y")] if isinstance(spec, dict) else []
                named = [str(k) for axis in axes if isinstance(axis, dict) for k in axis]
                plots += named or ([str(key)] if "." in str(key) else [])
    declared = data.get("artifacts")
    artifacts: dict[Any, Any] = declared if isinstance(declared, dict) else {}
    models = [
        (str(name), posixpath.normpath(spec["path"]))
        for name, spec in sorted(
            artifacts.items(), key=lambda kv: not (isinstance(kv[1], dict) and kv[1].get("type") == "model")
        )
        if isinstance(spec, dict) and isinstance(spec.get("path"), str) and spec["path"]
    ]
    return _TopLevel(_paths(data.get("metrics")), [posixpath.normpath(p) for p in plots], models)


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
    top = _top_level(_dvc_pipeline(files, text_of))
    script, outputs = _command(found, files, listed, stages, text_of)
    outputs |= set(top.metrics) | set(top.plots)
    paths, scripts = _code(files, listed, stages, script, text_of)
    found.mlflow = any(s.mlflow for s in scripts.values())
    found.mlflow_model = any(s.mlflow_model for s in scripts.values())
    _params(found, listed, stages, paths, scripts)
    _command_line(found, script, scripts)
    _metrics(found, stages, paths, outputs, top)
    _model(found, stages, paths, outputs, top)
    _inputs(found, files, listed, stages, outputs, text_of)
    _requirements(found, files, text_of)
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
    elif _mlproject(found, listed, text_of):
        script = next((w for w in (found.command or "").split() if w.endswith(".py") and w in listed), None)
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


MLPROJECT = "MLproject"


def _mlproject(found: Inferred, listed: set[str], text_of: TextOf) -> bool:
    """MLflow's project file: its main entry point's command (``{name}`` placeholders, as mlci
    takes them) and its parameters' defaults. Whether it gave the command."""
    data = _load(text_of(MLPROJECT)) if MLPROJECT in listed else None
    points = data.get("entry_points") if isinstance(data, dict) else None
    main = points.get("main") if isinstance(points, dict) else None
    command = main.get("command") if isinstance(main, dict) else None
    if not isinstance(command, str) or not command.strip():
        return False
    assert isinstance(main, dict) and isinstance(data, dict)
    found.command = " ".join(command.split())
    found.found("train.command", found.command, f"{MLPROJECT}'s entry point main")
    listed_params = main.get("parameters")
    declared: dict[Any, Any] = listed_params if isinstance(listed_params, dict) else {}
    missing: list[str] = []
    for name, spec in declared.items():
        default = spec.get("default") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not cfg.PARAMETER_RE.match(name):
            continue
        if isinstance(default, (str, int, float, bool)):
            found.parameters.append((name, default))
        else:
            missing.append(name)
    if found.parameters:
        found.parameters_from = MLPROJECT
        shown = ", ".join(f"{k}={v}" for k, v in found.parameters)
        found.found(
            "train.parameters",
            MLPROJECT,
            f"the defaults of {MLPROJECT}'s entry point main ({shown}), read each run",
        )
    if missing:
        found.found(
            "train.parameters",
            missing,
            f"{MLPROJECT} gives {', '.join(missing)} no default: add one to train.parameters",
            check=True,
        )
    envs = [data.get(k) for k in ("python_env", "conda_env")]
    found.environments += [e for e in envs if isinstance(e, str) and e in listed]
    return True


def _command_line(found: Inferred, script: str | None, scripts: Mapping[str, pycode.Script]) -> None:
    """The forms a script's own command line takes: ``--name {name}`` for each option with a
    literal default (argparse, click, typer), or Hydra overrides for --set."""
    parsed = scripts.get(script or "")
    if parsed is None or found.command is None or not found.command.startswith("python "):
        return
    if parsed.cli == "hydra":
        if parsed.hydra_config and found.params == parsed.hydra_config:
            found.overrides = "hydra"
            found.found(
                "train.overrides",
                "hydra",
                f"{script} is a Hydra app composing {parsed.hydra_config}: --set a.b=1 reaches it as "
                "the override a.b=1",
            )
        return
    if found.params is not None or found.parameters:
        return  # the params live in a file the code reads: --set edits it
    options = [p for p in parsed.params if p.flag and p.has_default and p.default is not None]
    if not options:
        return
    found.findings = [f for f in found.findings if f.key != "train.command"]
    found.parameters = [(p.name, p.default) for p in options if cfg.PARAMETER_RE.match(p.name)]
    found.command += "".join(f" {p.flag} {{{p.name}}}" for p in options if cfg.PARAMETER_RE.match(p.name))
    found.found(
        "train.command",
        found.command,
        f"{script} takes its parameters on the command line ({parsed.cli}): mlci passes each, "
        "--set changes it",
    )
    found.found(
        "train.parameters", ", ".join(f"{k}={v}" for k, v in found.parameters), f"the defaults in {script}"
    )


def _code(
    files: Sequence[str], listed: set[str], stages: Mapping[str, Any], script: str | None, text_of: TextOf
) -> tuple[list[pycode.CodePath], dict[str, pycode.Script]]:
    """What the training code reads and writes (the paths it builds, in the order written;
    a literal joined to a folder computed at run time is uncertain), and each script read."""
    code_files = [script] if script else []
    for spec in stages.values():
        code_files += [d for d in _paths(spec.get("deps")) if d.endswith(".py") and d in listed]
    code_files += [f for f in files if f.endswith(".py") and f not in code_files and "train" in f]
    paths: list[pycode.CodePath] = []
    scripts: dict[str, pycode.Script] = {}
    for name in dict.fromkeys(code_files):
        text = text_of(name) or ""
        parsed = pycode.parse(text, name)
        if parsed is None:  # not Python this interpreter reads: its string literals, taken as they are
            paths += [pycode.CodePath(posixpath.normpath(v), True, 0) for v in _strings(text)]
            continue
        scripts[name] = parsed
        paths += parsed.paths
    return paths, scripts


def _params(
    found: Inferred,
    listed: set[str],
    stages: Mapping[str, Any],
    paths: list[pycode.CodePath],
    scripts: Mapping[str, pycode.Script],
) -> None:
    """The params file: DVC's, a Hydra app's config, one the code names, or a usual name
    at the root."""
    named = [p.path for p in paths if p.certain]
    hydra = [s.hydra_config for s in scripts.values() if s.hydra_config and s.hydra_config in listed]
    if hydra and not stages:
        found.params = hydra[0]
        found.found("train.params", found.params, "the config the Hydra app composes")
        return
    basenames = {posixpath.basename(p.path) for p in paths}
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
        p for p in PARAMS_FILES if p in listed and (p in named or posixpath.basename(p) in basenames)
    ]
    # A YAML or JSON file the code reads through a path it builds (config/train.yaml):
    candidates += [
        p
        for p in named
        if p in listed
        and p.lower().endswith((".yaml", ".yml", ".json"))
        and not _METRICS_NAME.search(posixpath.basename(p))
        and posixpath.basename(p) not in (dvc.PIPELINE_FILE, dvc.LOCK_FILE, "MLproject")
    ]
    candidates += [p for p in PARAMS_FILES if p in listed]
    if candidates:
        found.params = candidates[0]
        why = "DVC's params file" if stages and found.params == "params.yaml" else "the code reads it"
        if found.params not in named and posixpath.basename(found.params) not in basenames and not stages:
            why = "a params file at the project root"
        found.found("train.params", found.params, why)
    else:
        found.found(
            "train.params",
            None,
            "no params file: the params are not tracked (hyper-parameters in code change only with the code)",
        )


def _where(chosen: pycode.CodePath, others: list[str], source: str) -> tuple[str, bool]:
    """Why a path was chosen, and whether it is a guess (the code joins it to a folder it
    computes when it runs, or names other candidates)."""
    why = source + (f" (also: {', '.join(others)})" if others else "")
    if not chosen.certain:
        why += (
            f"; the code joins {chosen.path!r} to a folder it computes when it runs"
            f"{f' (line {chosen.line})' if chosen.line else ''}: set the path it writes"
        )
    return why, bool(others) or not chosen.certain


def _metrics(
    found: Inferred,
    stages: Mapping[str, Any],
    paths: list[pycode.CodePath],
    outputs: set[str],
    top: _TopLevel,
) -> None:
    """The metrics file: DVC's metrics, or one the code names."""
    metric_files = [pycode.CodePath(p, True, 0) for p in top.metrics]
    for spec in stages.values():
        metric_files += [pycode.CodePath(p, True, 0) for p in _paths(spec.get("metrics"))]
    if not metric_files:
        metric_files = [
            p
            for p in paths
            if p.path.lower().endswith((".json", ".txt", ".yaml", ".yml"))
            and _METRICS_NAME.search(posixpath.basename(p.path))
        ]
    chosen = list({p.path: p for p in reversed(metric_files)}.values())[::-1]
    if chosen:
        found.metrics = chosen[0].path
        source = "named in the training code"
        if top.metrics and chosen[0].path in top.metrics:
            source = f"{dvc.PIPELINE_FILE}'s top-level metrics"
        elif stages:
            source = f"{dvc.PIPELINE_FILE} metrics"
        others = [p.path for p in chosen[1:]]
        why, check = _where(chosen[0], others, source)
        if others:
            why += "; mlci reads one metrics file"
        found.found("train.metrics", found.metrics, why, check=check)
    elif found.mlflow:
        found.metrics = "metrics.json"
        found.found(
            "train.metrics",
            "metrics.json",
            "the code writes none: the metrics it logs to MLflow (in the run mlci starts) are the run's",
        )
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


def _model(
    found: Inferred,
    stages: Mapping[str, Any],
    paths: list[pycode.CodePath],
    outputs: set[str],
    top: _TopLevel,
) -> None:
    """The model file or folder: dvc.yaml's model artifact, a DVC output that looks like
    one, or one the code saves."""
    if top.models:
        name, found.model = top.models[0]
        found.found("train.model", found.model, f"the artifact {name!r} in {dvc.PIPELINE_FILE}")
        if cfg.MODEL_NAME_RE.match(name):
            found.model_name = name
            found.found("model.name", name, f"the artifact's name in {dvc.PIPELINE_FILE}, as GTO names it")
        outputs.add(found.model)
        return
    models = [pycode.CodePath(o, True, 0) for o in sorted(outputs) if _looks_like_model(o)] if stages else []
    if not models:
        models = [p for p in paths if p.path.lower().endswith(MODEL_EXTENSIONS)]
    chosen = list({p.path: p for p in reversed(models)}.values())[::-1]
    if chosen:
        found.model = chosen[0].path
        source = f"an output of {dvc.PIPELINE_FILE}" if stages else "saved by the training code"
        why, check = _where(chosen[0], [p.path for p in chosen[1:]], source)
        found.found("train.model", found.model, why, check=check)
        outputs.add(found.model)
    elif found.mlflow_model:
        found.found(
            "train.model",
            None,
            "the code logs its model to MLflow (log_model): that model is the version's bytes",
        )
    else:
        found.found(
            "train.model",
            None,
            "no model file found: versions record the run (metrics, params, commit); set train.model to the "
            "file or folder the command writes to version its bytes",
            check=True,
        )


_NOT_TRAINING = re.compile(r"requirements[-_.](dev|test|tests|lint|docs?|ci)\.txt$", re.IGNORECASE)


def _requirements(found: Inferred, files: Sequence[str], text_of: TextOf) -> None:
    """The files that name what the training code needs, anywhere in the project (the
    workflows install them into the project's Python: ``mlci requirements``)."""
    chosen = [
        f
        for f in files
        if requirements.is_requirements_file(f)
        and not f.startswith((".github/", "docs/"))
        and not _NOT_TRAINING.search(f)
        and (f != "pyproject.toml" or "dependencies" in (text_of(f) or ""))
    ]
    chosen += [e for e in found.environments if e not in chosen]
    found.requirements = sorted(dict.fromkeys(chosen), key=lambda f: (f.count("/"), f))
    if found.requirements:
        found.found(
            "requirements",
            found.requirements,
            "what the training code needs: the workflows install it into the project's Python, "
            "mlci into its own",
        )
    else:
        found.found(
            "requirements",
            None,
            "no requirements file: the workflows install nothing for the training code",
            check=True,
        )


# What cannot change what training computes: never an input of an adopted project, so
# editing it never retrains. Everything else git tracks is an input (a cache that misses
# too often costs a training; one that hits wrongly serves stale metrics).
NOT_INPUTS = (
    ("**/*.md", "documentation"),
    ("**/*.rst", "documentation"),
    ("docs/**", "documentation"),
    ("LICEN[CS]E*", "the licence"),
    ("COPYING*", "the licence"),
    (".github/**", "CI files"),
    (".gitlab-ci.yml", "CI files"),
    (".pre-commit-config.yaml", "CI files"),
    ("mlci.yaml", "mlci's settings: their train section is in the fingerprint already"),
)


def _inputs(
    found: Inferred,
    files: Sequence[str],
    listed: set[str],
    stages: Mapping[str, Any],
    outputs: set[str],
    text_of: TextOf,
) -> None:
    """The inputs: everything git tracks (and the data DVC tracks), but the files that
    cannot affect training and what the pipeline's own stages write."""
    found.inputs = ["**"]
    found.exclude = list(NOT_INPUTS)
    made = {o for o in outputs if o not in (found.metrics, found.model)}
    tracked = dvc.parse(files, text_of)
    for path in sorted(made):
        if path in tracked or path in listed or stages:
            found.exclude.append((path, f"written by a stage of {dvc.PIPELINE_FILE}"))
    found.found(
        "train.inputs",
        found.inputs,
        "everything git tracks, and the data DVC tracks, but what train.exclude names",
    )


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
        "# `mlci config validate` checks it; `mlci fingerprint --explain` lists the inputs.",
        "model:",
        f"  name: {name}",
        "",
        "train:",
        f"  command: {yaml_scalar(command)}{note('train.command')}",
        "  # What decides a training result: a change to any of these files retrains.",
        "  # `mlci fingerprint --explain` lists every file, and why it is an input or not.",
        "  inputs:",
        *[f"    - {yaml_scalar(p)}" for p in found.inputs],
    ]
    if found.exclude:
        lines.append("  exclude:  # cannot change what training computes")
        lines += [f"    - {yaml_scalar(p)}  # {why}" for p, why in found.exclude]
    if found.parameters_from:
        lines.append(f"  parameters: {yaml_scalar(found.parameters_from)}{note('train.parameters')}")
    elif found.parameters:
        lines.append(f"  parameters:{note('train.parameters')}")
        lines += [f"    {k}: {yaml_scalar(v)}" for k, v in found.parameters]
    if found.params:
        lines.append(f"  params: {yaml_scalar(found.params)}{note('train.params')}")
    else:
        lines.append(f"  # params: params.yaml{note('train.params')}")
    lines.append(f"  metrics: {yaml_scalar(found.metrics or 'metrics.json')}{note('train.metrics')}")
    if found.model:
        lines.append(f"  model: {yaml_scalar(found.model)}{note('train.model')}")
    else:
        lines.append(f"  # model: model.pkl{note('train.model')}")
    if found.overrides != "file":
        lines.append(f"  overrides: {found.overrides}{note('train.overrides')}")
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
