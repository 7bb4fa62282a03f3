"""``mlci.yaml``: one schema, validated on load into frozen dataclasses.

Every problem is reported with the file, the line, the key path and what was
expected; an unknown key is an error (a typo must not silently disable a
gate) and names the closest valid key. All problems in a file are reported at
once, so a user fixes them in one pass.

This module is pure apart from reading the one file it is given: the
environment is passed in where it matters (``effective_tracking_uri``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlci import redact, safeinput
from mlci.errors import ConfigError

CONFIG_FILE = "mlci.yaml"
EMBEDDED_TRACKING_URI = "sqlite:///.mlci/mlflow.db"

Goal = Literal["maximize", "minimize"]
GOALS: tuple[Goal, ...] = ("maximize", "minimize")

# GTO's grammar for artifact names; environment names follow it minus "/",
# because they sit between "#" separators in assignment tags.
PARAMETER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
OVERRIDE_MODES = ("file", "hydra")
MODEL_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-/_]*[a-zA-Z0-9])?$")
ENV_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-_]*[a-zA-Z0-9])?$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")

# Name tokens that mean "lower is better". Everything else is maximized.
_MINIMIZE_TOKENS = frozenset(
    {"loss", "error", "err", "rmse", "mse", "mae", "mape", "logloss", "rmsle", "msle", "wer", "cer"}
)

BASE_BASELINE = "base"

# The JSON Schema of mlci.yaml (what `mlci config schema` prints, what editors check
# with, what docs/configuration.md is made from) is the one list of keys: the checker
# below takes every mapping's keys, and which of them are required, from it.
SCHEMA_PATH = Path(__file__).parent / "schemas" / "mlci.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    import json

    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def schema_node(where: str) -> dict[str, Any]:
    """The schema of one mapping: ``""`` (the file), a top-level key (``"train"``),
    ``"#name"`` for a definition (``"#environment"``), or ``"#dataset.rows"``."""
    node = schema()
    if where.startswith("#"):
        name, _, rest = where[1:].partition(".")
        node = node["$defs"][name]
        where = rest
    for part in filter(None, where.split(".")):
        node = node["properties"][part]
    return node


def keys_of(where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A mapping's keys, and the ones it requires, from the schema."""
    node = schema_node(where)
    return tuple(node["properties"]), tuple(node.get("required", ()))


def infer_goal(metric: str) -> Goal:
    """The goal a metric has when the config does not say.

    ``val_loss``, ``mean_squared_error``, ``rmse`` and ``logloss`` minimize;
    ``accuracy``, ``f1`` and ``r2`` maximize.
    """
    tokens = [t for t in re.split(r"[^a-z0-9]+", metric.lower()) if t]
    if any(t in _MINIMIZE_TOKENS for t in tokens):
        return "minimize"
    if any(t.endswith(("loss", "error")) for t in tokens):
        return "minimize"
    return "maximize"


@dataclass(frozen=True)
class Threshold:
    """A relative gate amount: an absolute number, or a percentage of the baseline."""

    value: float
    percent: bool = False

    def amount(self, baseline: float) -> float:
        return abs(baseline) * self.value / 100.0 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{self.value:g}"


@dataclass(frozen=True)
class GateRule:
    metric: str
    min: float | None = None
    max: float | None = None
    max_regression: Threshold | None = None
    min_improvement: Threshold | None = None
    confidence: float | None = None  # judge on the bootstrap interval at this level (e.g. 0.95)


OnInconclusive = Literal["fail", "pass"]
_ON_INCONCLUSIVE: dict[str, OnInconclusive] = {"fail": "fail", "pass": "pass"}


@dataclass(frozen=True)
class DeployHook:
    """``environments.<env>.deploy``: what runs on promotion, before the tag (mlci.deploy)."""

    command: str
    smoke: str | None = None  # a smoke test, run after the command; failing it fails the deploy
    timeout: float = 1800.0  # seconds, for each of the two


@dataclass(frozen=True)
class Environment:
    name: str
    branch: str
    requires: str | None = None
    gates: tuple[GateRule, ...] = ()
    confidence: float | None = None  # for every rule that does not set its own
    on_inconclusive: OnInconclusive | None = None  # None: "fail" for production, "pass" elsewhere
    deploy: DeployHook | None = None

    @property
    def inconclusive_passes(self) -> bool:
        """What a result the data cannot decide counts as (production fails it by default)."""
        if self.on_inconclusive is not None:
            return self.on_inconclusive == "pass"
        return self.name != "production"

    def confidence_of(self, rule: GateRule) -> float | None:
        return rule.confidence if rule.confidence is not None else self.confidence

    @property
    def judged_on_intervals(self) -> list[str]:
        """The metrics of the rules that have a confidence (their own or this environment's)."""
        return [rule.metric for rule in self.gates if self.confidence_of(rule) is not None]


@dataclass(frozen=True)
class ModelConfig:
    name: str
    description: str = ""


_DATASET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_REPEATS = 20  # train.repeats: each is a whole training; their metrics travel in the version's tag


@dataclass(frozen=True)
class TrainConfig:
    command: str
    inputs: tuple[str, ...] = ("**/*.py",)
    exclude: tuple[str, ...] = ()  # globs never inputs (files that cannot affect training: docs, CI)
    params: str | None = None
    # Params with their defaults, for a command that takes them on its command line
    # ({name} in train.command, as MLproject's parameters): (name, default) pairs, in order.
    parameters: tuple[tuple[str, Any], ...] = ()
    parameters_from: str | None = None  # an MLproject file whose main entry point gives them, read each run
    overrides: str = "file"  # where --set goes: into the params file, or "hydra": command-line overrides
    metrics: str = "metrics.json"
    model: str | None = None  # a folder or file the command writes; None: the project has no model file
    rewrites: tuple[str, ...] = ()  # tracked files the command rewrites (a pipeline's lock file)
    own_cache: bool = False  # the command skips work whose inputs did not change (dvc repro, make)
    withhold_env: tuple[str, ...] = ()  # environment variables (fnmatch patterns) the command never sees
    predictions: str | None = None  # a CSV/Parquet file of the evaluation rows' predictions (mlci.stats)
    timeout: float | None = None  # seconds; None: no limit
    repeats: int = 1  # runs of the command, with MLCI_SEED 0..repeats-1, gated on their mean


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None  # None: the embedded sqlite store under .mlci/
    experiment: str | None = None  # None: the model name
    timeout: float = 20.0  # seconds a tracking server has to answer one request
    wait: float = 3600.0  # seconds a job waits for another job training the same inputs (mlci.claims)


STORE_SETTINGS = ("auto", "local", "mlflow", "github")


SWEEP_LIMIT = 20  # candidates a sweep may have unless sweep.limit says more
SWEEP_MAX = 256  # GitHub's limit on the jobs of one matrix


@dataclass(frozen=True)
class SweepConfig:
    """Candidates to train side by side on a pull request (mlci.sweep): each one a set of
    param overrides (dotted keys, as ``--set`` takes them), from a grid or listed."""

    candidates: tuple[tuple[tuple[str, Any], ...], ...]  # each: (key, value) pairs, in order
    limit: int = SWEEP_LIMIT
    from_grid: bool = False


@dataclass(frozen=True)
class RegistryConfig:
    store: str = "auto"  # where a registered version's bytes live: one of STORE_SETTINGS


@dataclass(frozen=True)
class ReportConfig:
    baselines: tuple[str, ...] | None = None  # None: every environment, then the base branch
    template: str | None = None
    key_metric: str | None = None
    plots: tuple[str, ...] = ()  # image files the training writes (mlci.images), shown in the report


DATA_TYPES = ("int", "float", "number", "str", "bool", "datetime")
DATA_FORMATS = ("csv", "parquet", "jsonl")


@dataclass(frozen=True)
class ColumnCheck:
    """What one column of a declared dataset must be (``data.<name>.columns.<column>``)."""

    name: str
    type: str | None = None  # one of DATA_TYPES
    nulls: float | None = None  # the largest share of nulls allowed, 0..1 (0: none)
    min: float | None = None
    max: float | None = None
    allowed: tuple[str | int | float | bool, ...] | None = None
    drift: float | None = None  # the largest population stability index against the baseline


@dataclass(frozen=True)
class Dataset:
    """A declared dataset (``data.<name>``): where it is, and the checks it must pass."""

    name: str
    path: str  # a file or a glob, relative to the project
    format: str | None = None  # one of DATA_FORMATS; None: from each file's suffix
    columns: tuple[ColumnCheck, ...] = ()
    key: tuple[str, ...] = ()  # columns whose values together are unique
    rows_min: int | None = None
    rows_max: int | None = None
    drift: float | None = None  # the largest PSI for every column without its own

    def drift_of(self, column: str) -> float | None:
        own = next((c.drift for c in self.columns if c.name == column), None)
        return own if own is not None else self.drift


@dataclass(frozen=True)
class Config:
    path: Path
    model: ModelConfig
    train: TrainConfig
    metrics: Mapping[str, Goal] = field(default_factory=dict)
    tracking: TrackingConfig = TrackingConfig()
    environments: tuple[Environment, ...] = ()
    report: ReportConfig = ReportConfig()
    registry: RegistryConfig = RegistryConfig()
    data: tuple[Dataset, ...] = ()
    sweep: SweepConfig | None = None

    @property
    def root(self) -> Path:
        return self.path.parent

    def goal(self, metric: str) -> Goal:
        return self.metrics.get(metric) or infer_goal(metric)

    def environment(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.environments) or "none"
        raise ConfigError(
            f"{self.path}: no environment named {name!r} (configured: {known})",
            hint=f"add it under 'environments:' in {self.path.name}, or use one of those",
        )

    @property
    def interval_confidence(self) -> float | None:
        """The level a report shows intervals at: the highest any rule is judged at
        (None: no rule asks for one)."""
        levels = [env.confidence_of(r) for env in self.environments for r in env.gates]
        return max((c for c in levels if c is not None), default=None)

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.model.name

    @property
    def baselines(self) -> tuple[str, ...]:
        if self.report.baselines is not None:
            return self.report.baselines
        return (*(e.name for e in self.environments), BASE_BASELINE)

    @property
    def key_metric(self) -> str | None:
        if self.report.key_metric:
            return self.report.key_metric
        for env in self.environments:
            for rule in env.gates:
                return rule.metric
        return next(iter(self.metrics), None)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, defaults filled in, as plain YAML-able data."""

        def threshold(t: Threshold | None) -> float | str | None:
            return None if t is None else (str(t) if t.percent else t.value)

        return {
            "model": dataclasses.asdict(self.model),
            "train": {
                **dataclasses.asdict(self.train),
                "inputs": list(self.train.inputs),
                "exclude": list(self.train.exclude),
                "parameters": self.train.parameters_from or dict(self.train.parameters),
                "rewrites": list(self.train.rewrites),
                "withhold_env": list(self.train.withhold_env),
            },
            "metrics": {name: {"goal": goal} for name, goal in self.metrics.items()},
            "tracking": {
                "uri": self.tracking.uri,
                "experiment": self.experiment,
                "timeout": self.tracking.timeout,
                "wait": self.tracking.wait,
            },
            "environments": {
                env.name: {
                    "branch": env.branch,
                    "requires": env.requires,
                    "confidence": env.confidence,
                    "on_inconclusive": "pass" if env.inconclusive_passes else "fail",
                    "deploy": dataclasses.asdict(env.deploy) if env.deploy else None,
                    "gates": [
                        {
                            k: v
                            for k, v in {
                                "metric": r.metric,
                                "min": r.min,
                                "max": r.max,
                                "max_regression": threshold(r.max_regression),
                                "min_improvement": threshold(r.min_improvement),
                                "confidence": r.confidence,
                            }.items()
                            if v is not None
                        }
                        for r in env.gates
                    ],
                }
                for env in self.environments
            },
            "registry": {"store": self.registry.store},
            "sweep": None
            if self.sweep is None
            else {"candidates": [dict(c) for c in self.sweep.candidates], "limit": self.sweep.limit},
            "report": {
                "baselines": list(self.baselines),
                "template": self.report.template,
                "key_metric": self.key_metric,
                "plots": list(self.report.plots),
            },
        }


def effective_tracking_uri(config: Config, environ: Mapping[str, str]) -> str:
    """``MLFLOW_TRACKING_URI`` wins over ``tracking.uri``, which wins over the embedded store."""
    uri = environ.get("MLFLOW_TRACKING_URI") or config.tracking.uri
    if not uri:
        return f"sqlite:///{(config.root / '.mlci' / 'mlflow.db').as_posix()}"
    # A relative sqlite path means the project's folder, not wherever mlci runs.
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return f"{prefix}{(config.root / uri[len(prefix) :]).as_posix()}"
    return uri


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class StoreChoice:
    name: str  # "local", "mlflow" or "github"
    why: str


def choose_store(config: Config, environ: Mapping[str, str]) -> StoreChoice:
    """Where registering puts a version's bytes: ``registry.store``, or with ``auto``
    the tracking server when one is configured, else GitHub releases in GitHub
    Actions, else the embedded store."""
    setting = config.registry.store
    uri = effective_tracking_uri(config, environ)
    server = uri.startswith(("http://", "https://", "databricks"))
    if setting != "auto":
        return StoreChoice(setting, f"registry.store: {setting} in {config.path.name}")
    if server:
        return StoreChoice("mlflow", "auto: a tracking server is configured: its artifact store")
    if environ.get("GITHUB_ACTIONS") == "true":
        return StoreChoice(
            "github",
            "auto: GitHub Actions without a tracking server, a release on the version tag keeps them",
        )
    return StoreChoice("local", "auto: no tracking server and not in CI: the embedded store under .mlci/")


def find_config(start: Path) -> Path:
    """The nearest ``mlci.yaml`` in ``start`` or one of its parents."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_FILE} in {start} or any folder above it",
        hint="run `mlci init DIR` to scaffold a project, or pass --config PATH",
    )


def load_for(path: Path | None, cwd: Path) -> Config:
    """The config at ``path`` (--config), or the nearest ``mlci.yaml`` above ``cwd``."""
    return load(path if path is not None else find_config(cwd))


MAX_CONFIG_BYTES = 1024 * 1024


def load(path: Path) -> Config:
    try:
        text = safeinput.read_text(path, limit=MAX_CONFIG_BYTES, what=CONFIG_FILE)
    except safeinput.BadInput as exc:
        raise ConfigError(f"{exc.where(str(path))}: {exc.problem}") from None
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file",
            hint="run `mlci init DIR` to scaffold a project, or pass --config PATH",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return parse(text, path)


def parse(text: str, path: Path) -> Config:
    data, lines = _load_located_yaml(text, path)
    checker = _Checker(path, lines)
    config = checker.config(data)
    if checker.problems:
        count = len(checker.problems)
        raise ConfigError(
            f"{path}: {count} problem{'s' if count > 1 else ''}:\n"
            + "\n".join(f"  {p}" for p in checker.problems),
            hint="fix the keys above (docs/configuration.md, or `mlci config schema`, lists every key); "
            "`mlci config validate` checks again",
        )
    assert config is not None
    return config


def _load_located_yaml(text: str, path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """Plain data plus the line of every key path (``safeinput``: bounded, strict)."""
    try:
        data, lines = safeinput.load_yaml(text)
    except safeinput.BadInput as exc:
        raise ConfigError(
            f"{exc.where(str(path))}: {exc.problem}",
            hint="check that line: mlci.yaml holds plain YAML data (merge keys are fine, tags are not)",
        ) from None
    return ({} if data is None else data), lines


_dotted = safeinput.dotted


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int) and abs(value) > 10**30:
        return f"a number of {len(str(abs(value)))} digits"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_short(value)!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (booleans, strings, NaN, infinity, 400-digit integers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def inside(value: str) -> bool:
    """Whether a configured path stays inside the project folder (relative, no way up)."""
    from pathlib import PurePosixPath, PureWindowsPath

    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive or value.startswith("~"):
        return False
    depth = 0
    for part in PurePosixPath(value.replace("\\", "/")).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return depth > 0


class _Checker:
    """Walks the raw data, records every problem, and builds the dataclasses."""

    def __init__(self, path: Path, lines: dict[tuple[str | int, ...], int]) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[str] = []

    # -- reporting

    def problem(self, key_path: tuple[str | int, ...], message: str) -> None:
        line = None
        for n in range(len(key_path), -1, -1):
            line = self.lines.get(key_path[:n])
            if line is not None:
                break
        where = f"{self.path.name}:{line}" if line else self.path.name
        self.problems.append(f"{where}: {_dotted(key_path)}: {message}")

    def expected(self, key_path: tuple[str | int, ...], what: str, got: Any) -> None:
        self.problem(key_path, f"expected {what}, got {_type_name(got)}")

    # -- shapes

    def mapping(self, value: Any, key_path: tuple[str | int, ...], where: str) -> dict[str, Any] | None:
        """``value`` as the mapping the schema describes at ``where`` (see ``schema_node``)."""
        allowed, required = keys_of(where)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.expected(key_path, f"a mapping with keys {', '.join(allowed)}", value)
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                suggestion = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(allowed)}"
                self.problem((*key_path, key), f"unknown key; {suggestion}")
        for key in required:
            if value.get(key) is None:
                self.problem((*key_path, key), "required key is missing")
        return value

    def string(self, value: Any, key_path: tuple[str | int, ...], default: str | None) -> str | None:
        if value is None:
            return default
        if isinstance(value, str) and value.strip():
            if "\x00" in value:
                self.problem(key_path, "contains a NUL character (\\0)")
                return default
            return value
        self.expected(key_path, "a non-empty string", value)
        return default

    def number(self, value: Any, key_path: tuple[str | int, ...]) -> float | None:
        if value is None:
            return None
        number = _finite(value)
        if number is None:
            self.expected(key_path, "a finite number", value)
        return number

    def duration(self, value: Any, key_path: tuple[str | int, ...]) -> float | None:
        """Seconds: a number, or a string like "90s", "30m", "2h"."""
        if value is None:
            return None
        seconds = _finite(value)
        if isinstance(value, str):
            match = _DURATION_RE.match(value)
            if match:
                seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
        if seconds is None or seconds <= 0:
            self.expected(
                key_path, 'a positive number of seconds, or a duration like "90s", "30m", "2h"', value
            )
            return None
        return seconds

    def threshold(self, value: Any, key_path: tuple[str | int, ...]) -> Threshold | None:
        if value is None:
            return None
        what = 'a number >= 0 or a percentage like "2%"'
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = _finite(value)
            if number is not None and number >= 0:
                return Threshold(number)
        elif isinstance(value, str):
            match = _PERCENT_RE.match(value)
            if match:
                return Threshold(float(match.group(1)), percent=True)
        self.expected(key_path, what, value)
        return None

    def string_list(
        self, value: Any, key_path: tuple[str | int, ...], default: tuple[str, ...] | None
    ) -> tuple[str, ...] | None:
        if value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.expected(key_path, "a list of strings", value)
            return default
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip() and "\x00" not in item:
                out.append(item)
            else:
                self.expected((*key_path, i), "a non-empty string", item)
        return tuple(out)

    def project_path(self, value: str | None, key_path: tuple[str | int, ...]) -> None:
        if value is not None and not inside(value):
            self.problem(
                key_path,
                f"{_short(value)!r} is not a path inside the project: write it relative to "
                f"the folder of {CONFIG_FILE}, without leading '/', '~' or '..' out of it",
            )

    def globs(self, raw: Any, patterns: tuple[str, ...] | None, key_path: tuple[str | int, ...]) -> None:
        from mlci.globs import glob_regex

        for i, pattern in enumerate(patterns or ()):
            where = (*key_path, i) if isinstance(raw, list) else key_path
            try:
                glob_regex(pattern)
            except (re.error, RecursionError) as exc:
                self.problem(where, f"{_short(pattern)!r} is not a valid glob: {exc}")
                continue
            except ValueError as exc:
                self.problem(where, f"{_short(pattern)!r}: {exc}")
                continue
            if not inside(pattern.replace("*", "x").replace("?", "x")):
                self.problem(where, f"{_short(pattern)!r} reaches outside the project folder")

    def named(
        self,
        value: str | None,
        key_path: tuple[str | int, ...],
        pattern: re.Pattern[str],
        what: str,
    ) -> None:
        if value is not None and not pattern.match(value):
            self.problem(
                key_path,
                f"{value!r} is not a valid {what} (letters, digits, '-' and '_', "
                "starting and ending with a letter or digit)",
            )

    # -- sections

    def config(self, raw: Any) -> Config | None:
        top = self.mapping(raw, (), "")
        if top is None:
            return None
        model = self.model(top.get("model"))
        train = self.train(top.get("train"))
        metrics = self.metrics(top.get("metrics"))
        tracking = self.tracking(top.get("tracking"))
        environments = self.environments(top.get("environments"))
        report = self.report(top.get("report"), environments)
        registry = self.registry(top.get("registry"))
        data = self.data(top.get("data"))
        sweep = self.sweep(top.get("sweep"))
        if model is None or train is None:
            return None
        return Config(
            path=self.path,
            model=model,
            train=train,
            metrics=metrics,
            tracking=tracking,
            environments=environments,
            report=report,
            registry=registry,
            data=data,
            sweep=sweep,
        )

    def sweep(self, raw: Any) -> SweepConfig | None:
        """sweep: {grid: {KEY: [values]}} or {candidates: [{KEY: value}]}, and a limit."""
        import itertools

        at: tuple[str | int, ...] = ("sweep",)
        if raw is None:
            return None
        s = self.mapping(raw, at, "sweep")
        if s is None:
            return None
        limit = SWEEP_LIMIT
        if s.get("limit") is not None:
            value = s["limit"]
            if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= SWEEP_MAX:
                limit = value
            else:
                self.expected(
                    (*at, "limit"), f"a whole number from 1 to {SWEEP_MAX} (GitHub's matrix limit)", value
                )
        grid, listed = s.get("grid"), s.get("candidates")
        if (grid is None) == (listed is None):
            self.problem(
                at, "write either grid: (every combination) or candidates: (a list), not both or neither"
            )
            return None
        sets: list[tuple[tuple[str, Any], ...]] = []
        if grid is not None:
            if not isinstance(grid, dict) or not grid:
                self.expected((*at, "grid"), "a mapping of param keys to lists of values", grid)
                return None
            # Counted before anything is expanded: the candidates are the product of the
            # axes' lengths (their distinct values), and a grid past the limit is refused
            # from that product alone, in time and memory linear in the file.
            axes = []
            for key, values in grid.items():
                where = (*at, "grid", key)
                self.sweep_key(key, where)
                if not isinstance(values, list) or not values:
                    self.expected(where, "a non-empty list of values", values)
                elif len(values) > SWEEP_MAX:
                    self.problem(
                        where,
                        f"{len(values)} values, more candidates than any sweep may have "
                        f"({SWEEP_MAX}, GitHub's matrix limit): shorten the list",
                    )
                else:
                    axis: dict[str, tuple[str, Any]] = {}
                    for i, v in enumerate(values):
                        value = self.sweep_value(v, (*where, i))
                        axis.setdefault(repr(value), (key, value))
                    axes.append(list(axis.values()))
            count = math.prod(len(axis) for axis in axes)
            if len(axes) != len(grid):
                sets = []
            elif count > limit:
                self.problem(
                    at,
                    f"{count} candidates, more than the limit of {limit} "
                    f"({' × '.join(str(len(a)) for a in axes)} in the grid): shrink the grid, "
                    f"or raise sweep.limit (at most {SWEEP_MAX})",
                )
                return None
            else:
                sets = [tuple(combo) for combo in itertools.product(*axes)]
        else:
            if not isinstance(listed, list) or not listed:
                self.expected((*at, "candidates"), "a non-empty list of param mappings", listed)
                return None
            if len(listed) > SWEEP_MAX:
                self.problem(
                    (*at, "candidates"),
                    f"{len(listed)} candidates, more than any sweep may have ({SWEEP_MAX}, "
                    "GitHub's matrix limit): list fewer",
                )
                return None
            for i, one in enumerate(listed):
                where = (*at, "candidates", i)
                if not isinstance(one, dict) or not one:
                    self.expected(where, "a mapping of param keys to values", one)
                    continue
                for key in one:
                    self.sweep_key(key, (*where, key))
                sets.append(tuple((str(k), self.sweep_value(v, (*where, k))) for k, v in one.items()))
        seen: set[str] = set()
        unique = []
        for one in sets:
            key = repr(sorted((k, repr(v)) for k, v in one))
            if key not in seen:
                seen.add(key)
                unique.append(one)
        if len(unique) > limit:
            self.problem(
                at,
                f"{len(unique)} candidates, more than the limit of {limit}: "
                f"shrink the {'grid' if grid is not None else 'list'}, "
                f"or raise sweep.limit (at most {SWEEP_MAX})",
            )
        return SweepConfig(candidates=tuple(unique), limit=limit, from_grid=grid is not None)

    def sweep_key(self, key: Any, where: tuple[str | int, ...]) -> None:
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")) or "=" in key:
            self.problem(where, f"{key!r} is not a param key: write it as --set takes it (C, model.depth)")

    def sweep_value(self, value: Any, where: tuple[str | int, ...]) -> Any:
        from mlci import params as prm

        if isinstance(value, (dict, list)) or value is None:
            self.expected(where, "a single value (a number, a string or true/false)", value)
            return value
        if isinstance(value, float) and not math.isfinite(value):
            self.expected(where, "a finite number", value)
            return value
        try:
            back = prm.parse_override(f"k={prm.yaml_scalar(value)}")[1]
        except Exception:  # any failure means the same to the user
            back = None
        if isinstance(value, str) and isinstance(back, float):
            return back  # 1e-5, which YAML 1.1 reads as text: a number, as --set reads it
        if back != value or type(back) is not type(value):
            self.problem(where, f"{value!r} does not survive as a --set value; quote it or write it plainly")
        return value

    def data(self, raw: Any) -> tuple[Dataset, ...]:
        at: tuple[str | int, ...] = ("data",)
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.expected(at, "a mapping of dataset names to their path and checks", raw)
            return ()
        found = []
        for name, spec in raw.items():
            if not isinstance(name, str) or not _DATASET_NAME_RE.fullmatch(name):
                self.problem(
                    (*at, str(name)), f"{_short(str(name))!r} is not a dataset name (letters, digits, _ - .)"
                )
                continue
            dataset = self.dataset(name, spec, (*at, name))
            if dataset is not None:
                found.append(dataset)
        return tuple(found)

    def dataset(self, name: str, raw: Any, at: tuple[str | int, ...]) -> Dataset | None:
        if isinstance(raw, str):
            raw = {"path": raw}
        d = self.mapping(raw, at, "#dataset")
        if d is None:
            return None
        path = self.string(d.get("path"), (*at, "path"), None)
        if path is not None:
            self.globs(path, (path,), (*at, "path"))
        fmt = self.string(d.get("format"), (*at, "format"), None)
        if fmt is not None and fmt not in DATA_FORMATS:
            self.problem(
                (*at, "format"), f"{fmt!r} is not a format mlci reads: use one of {', '.join(DATA_FORMATS)}"
            )
        key = self.string_list(d.get("key"), (*at, "key"), ()) or ()
        rows = self.mapping(d.get("rows"), (*at, "rows"), "#dataset.rows")
        bounds: list[int | None] = []
        for end in ("min", "max"):
            value = (rows or {}).get(end)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                self.expected((*at, "rows", end), "a whole number of rows", value)
                value = None
            bounds.append(value)
        if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
            self.problem((*at, "rows"), f"min {bounds[0]} is above max {bounds[1]}")
        drift = self.psi(d.get("drift"), (*at, "drift"))
        columns = []
        raw_columns = d.get("columns")
        if raw_columns is not None and not isinstance(raw_columns, dict):
            self.expected((*at, "columns"), "a mapping of column names to their checks", raw_columns)
            raw_columns = {}
        for column, spec in (raw_columns or {}).items():
            checked = self.column_check(str(column), spec, (*at, "columns", str(column)))
            if checked is not None:
                columns.append(checked)
        if path is None:
            return None
        return Dataset(
            name=name,
            path=path,
            format=fmt if fmt in DATA_FORMATS else None,
            columns=tuple(columns),
            key=key,
            rows_min=bounds[0],
            rows_max=bounds[1],
            drift=drift,
        )

    def psi(self, value: Any, key_path: tuple[str | int, ...]) -> float | None:
        number = self.number(value, key_path)
        if number is not None and number <= 0:
            self.expected(key_path, "a population stability index above 0 (0.1 small, 0.25 large)", value)
            return None
        return number

    def column_check(self, name: str, raw: Any, at: tuple[str | int, ...]) -> ColumnCheck | None:
        if raw is None:
            return ColumnCheck(name)  # only required
        if isinstance(raw, str):
            raw = {"type": raw}
        c = self.mapping(raw, at, "#column")
        if c is None:
            return None
        kind = self.string(c.get("type"), (*at, "type"), None)
        if kind is not None and kind not in DATA_TYPES:
            self.problem((*at, "type"), f"{kind!r} is not a column type: use one of {', '.join(DATA_TYPES)}")
            kind = None
        nulls = None
        raw_nulls = c.get("nulls")
        if raw_nulls is not None:
            share = self.threshold(raw_nulls, (*at, "nulls"))
            if share is not None:
                nulls = share.value / 100 if share.percent else share.value
                if nulls > 1:
                    self.problem((*at, "nulls"), "a share of the rows: 0 to 1, or a percentage up to 100%")
                    nulls = None
        low, high = self.number(c.get("min"), (*at, "min")), self.number(c.get("max"), (*at, "max"))
        if low is not None and high is not None and low > high:
            self.problem(at, f"min {low:g} is above max {high:g}")
        allowed = c.get("allowed")
        if allowed is not None:
            if (
                not isinstance(allowed, list)
                or not allowed
                or not all(isinstance(v, (str, int, float, bool)) for v in allowed)
            ):
                self.expected((*at, "allowed"), "a list of values (strings, numbers, true/false)", allowed)
                allowed = None
            else:
                allowed = tuple(allowed)
        return ColumnCheck(
            name=name,
            type=kind,
            nulls=nulls,
            min=low,
            max=high,
            allowed=allowed,
            drift=self.psi(c.get("drift"), (*at, "drift")),
        )

    def registry(self, raw: Any) -> RegistryConfig:
        at: tuple[str | int, ...] = ("registry",)
        r = self.mapping(raw, at, "registry")
        if r is None:
            return RegistryConfig()
        store = self.string(r.get("store"), (*at, "store"), "auto") or "auto"
        if store not in STORE_SETTINGS:
            self.problem((*at, "store"), f"{store!r} is not a store: use one of {', '.join(STORE_SETTINGS)}")
            return RegistryConfig()
        return RegistryConfig(store=store)

    def model(self, raw: Any) -> ModelConfig | None:
        at: tuple[str | int, ...] = ("model",)
        if raw is None:
            return None
        m = self.mapping(raw, at, "model")
        if m is None:
            return None
        name = self.string(m.get("name"), (*at, "name"), None)
        self.named(name, (*at, "name"), MODEL_NAME_RE, "model name")
        description = self.string(m.get("description"), (*at, "description"), "") or ""
        return ModelConfig(name=name, description=description) if name else None

    def train(self, raw: Any) -> TrainConfig | None:
        at: tuple[str | int, ...] = ("train",)
        if raw is None:
            return None
        t = self.mapping(raw, at, "train")
        if t is None:
            return None
        defaults = TrainConfig(command="")
        command = self.string(t.get("command"), (*at, "command"), None)
        inputs = self.string_list(t.get("inputs"), (*at, "inputs"), defaults.inputs)
        params = self.string(t.get("params"), (*at, "params"), None)
        metrics = self.string(t.get("metrics"), (*at, "metrics"), defaults.metrics)
        model = self.string(t.get("model"), (*at, "model"), None)
        predictions = self.string(t.get("predictions"), (*at, "predictions"), None)
        for key, value in (
            ("params", params),
            ("metrics", metrics),
            ("model", model),
            ("predictions", predictions),
        ):
            self.project_path(value, (*at, key))
        if predictions is not None and not predictions.lower().endswith((".csv", ".parquet", ".pq")):
            self.problem(
                (*at, "predictions"),
                f"{_short(predictions)!r}: mlci reads predictions as CSV (.csv) or Parquet (.parquet); "
                "name one of those",
            )
        if params is not None and not params.lower().endswith((".yaml", ".yml", ".json")):
            self.problem(
                (*at, "params"),
                f"{_short(params)!r}: mlci reads and overrides YAML (.yaml, .yml) and JSON (.json) params "
                "files; name one of those",
            )
        self.globs(t.get("inputs"), inputs, (*at, "inputs"))
        exclude = self.string_list(t.get("exclude"), (*at, "exclude"), ()) or ()
        self.globs(t.get("exclude"), exclude, (*at, "exclude"))
        rewrites = self.string_list(t.get("rewrites"), (*at, "rewrites"), ()) or ()
        for i, name in enumerate(rewrites):
            where = (*at, "rewrites", i) if isinstance(t.get("rewrites"), list) else (*at, "rewrites")
            self.project_path(name, where)
            if any(c in name for c in "*?["):
                self.problem(where, f"{_short(name)!r}: name a file, not a pattern")
        parameters_from = t.get("parameters") if isinstance(t.get("parameters"), str) else None
        if parameters_from is not None:
            self.project_path(parameters_from, (*at, "parameters"))
        parameters = self.parameters(None if parameters_from else t.get("parameters"), (*at, "parameters"))
        overrides = t.get("overrides", "file")
        if overrides not in OVERRIDE_MODES:
            self.expected((*at, "overrides"), " or ".join(repr(m) for m in OVERRIDE_MODES), overrides)
            overrides = "file"
        elif overrides == "hydra" and params is None:
            self.problem(
                (*at, "overrides"),
                "hydra: --set goes to the command as Hydra overrides of the config that "
                "train.params names; set train.params to it (e.g. conf/config.yaml)",
            )
        own_cache = t.get("own_cache", False)
        if not isinstance(own_cache, bool):
            self.expected((*at, "own_cache"), "true or false", own_cache)
            own_cache = False
        withhold = self.string_list(t.get("withhold_env"), (*at, "withhold_env"), ()) or ()
        timeout = self.duration(t.get("timeout"), (*at, "timeout"))
        repeats = t.get("repeats", 1)
        if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
            self.expected((*at, "repeats"), f"a whole number from 1 to {MAX_REPEATS}", repeats)
            repeats = 1
        if command is None:
            return None
        return TrainConfig(
            command=command,
            inputs=inputs or defaults.inputs,
            exclude=exclude,
            params=params,
            parameters=parameters,
            parameters_from=parameters_from,
            overrides=overrides,
            metrics=metrics or defaults.metrics,
            model=model,
            rewrites=rewrites,
            own_cache=own_cache,
            withhold_env=withhold,
            timeout=timeout,
            predictions=predictions,
            repeats=repeats,
        )

    def parameters(self, raw: Any, at: tuple[str | int, ...]) -> tuple[tuple[str, Any], ...]:
        """``train.parameters``: names (as placeholders name them) to scalar defaults."""
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.expected(at, "a mapping of parameter names to default values, or an MLproject file", raw)
            return ()
        out: list[tuple[str, Any]] = []
        for name, value in raw.items():
            if not isinstance(name, str) or not PARAMETER_RE.match(name):
                self.problem((*at, str(name)), "a parameter name is letters, digits, '_' and '-'")
            elif isinstance(value, (dict, list)):
                self.expected((*at, name), "a single value (a number, text, true/false or null)", value)
            else:
                out.append((name, value))
        return tuple(out)

    def metrics(self, raw: Any) -> dict[str, Goal]:
        at: tuple[str | int, ...] = ("metrics",)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.expected(at, "a mapping of metric name to {goal: maximize|minimize}", raw)
            return {}
        out: dict[str, Goal] = {}
        for name, spec in raw.items():
            where = (*at, name)
            goal_value = spec
            if isinstance(spec, dict):
                m = self.mapping(spec, where, "#metric")
                goal_value = m.get("goal") if m else None
                where = (*where, "goal")
            if goal_value is None:
                out[name] = infer_goal(name)
            elif goal_value in GOALS:
                out[name] = goal_value
            else:
                self.expected(where, "'maximize' or 'minimize'", goal_value)
        return out

    def tracking(self, raw: Any) -> TrackingConfig:
        at: tuple[str | int, ...] = ("tracking",)
        t = self.mapping(raw, at, "tracking")
        if t is None:
            return TrackingConfig()
        uri = self.string(t.get("uri"), (*at, "uri"), None)
        if uri is not None and (uri.startswith("file:") or ("://" not in uri and ":" not in uri)):
            self.problem(
                (*at, "uri"),
                f"{uri!r} is a file store, which current MLflow refuses; "
                f"use a database ('{EMBEDDED_TRACKING_URI}') or a server ('http://host:5000')",
            )
        if uri is not None and "://" in uri and not uri.startswith("sqlite:"):
            from urllib.parse import urlsplit

            try:
                parts = urlsplit(uri)
                host, _ = parts.hostname, parts.port
            except ValueError as exc:
                self.problem((*at, "uri"), f"{redact.url(uri)!r} is not a valid URL: {exc}")
            else:
                if parts.scheme in ("http", "https") and not host:
                    self.problem((*at, "uri"), f"{redact.url(uri)!r} names no host: write http://HOST:PORT")
        return TrackingConfig(
            uri=uri,
            experiment=self.string(t.get("experiment"), (*at, "experiment"), None),
            timeout=self.duration(t.get("timeout"), (*at, "timeout")) or TrackingConfig.timeout,
            wait=self.duration(t.get("wait"), (*at, "wait")) or TrackingConfig.wait,
        )

    def environments(self, raw: Any) -> tuple[Environment, ...]:
        at: tuple[str | int, ...] = ("environments",)
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.expected(
                at,
                "a mapping of environment name to "
                "{branch, requires, gates, confidence, on_inconclusive, deploy}",
                raw,
            )
            return ()
        out: list[Environment] = []
        branches: dict[str, str] = {}
        for name, spec in raw.items():
            where = (*at, name)
            self.named(name, where, ENV_NAME_RE, "environment name")
            if name.lower() == "latest" or re.match(r"^[vV]\d+$", name):
                self.problem(where, f"{name!r} is reserved by MLflow's aliases; choose another name")
            e = self.mapping(spec, where, "#environment")
            if e is None:
                continue
            branch = self.string(e.get("branch"), (*where, "branch"), name) or name
            if branch in branches:
                self.problem(
                    (*where, "branch"),
                    f"branch {branch!r} is already bound to environment {branches[branch]!r}",
                )
            branches[branch] = name
            requires = self.string(e.get("requires"), (*where, "requires"), None)
            if requires is not None and requires not in {env.name for env in out}:
                earlier = ", ".join(env.name for env in out) or "none"
                self.problem(
                    (*where, "requires"),
                    f"{requires!r} is not an environment listed before {name!r} "
                    f"(earlier environments: {earlier})",
                )
            gates = tuple(self.gates(e.get("gates"), (*where, "gates")))
            confidence = self.confidence(e.get("confidence"), (*where, "confidence"))
            choice = self.string(e.get("on_inconclusive"), (*where, "on_inconclusive"), None)
            on_inconclusive = _ON_INCONCLUSIVE.get(choice) if choice is not None else None
            if choice is not None and on_inconclusive is None:
                self.problem((*where, "on_inconclusive"), f"{choice!r} is neither 'fail' nor 'pass'")
            out.append(
                Environment(
                    name=name,
                    branch=branch,
                    requires=requires,
                    gates=gates,
                    confidence=confidence,
                    on_inconclusive=on_inconclusive,
                    deploy=self.deploy(e.get("deploy"), (*where, "deploy")),
                )
            )
        return tuple(out)

    def deploy(self, raw: Any, at: tuple[str | int, ...]) -> DeployHook | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = {"command": raw}
        d = self.mapping(raw, at, "#deploy")
        if d is None:
            return None
        command = self.string(d.get("command"), (*at, "command"), None)
        if not command or not command.strip():
            self.problem((*at, "command"), "the command that deploys the model (e.g. ./deploy.sh)")
            return None
        smoke = self.string(d.get("smoke"), (*at, "smoke"), None)
        timeout = self.duration(d.get("timeout"), (*at, "timeout"))
        return DeployHook(command, smoke or None, timeout or DeployHook.timeout)

    def gates(self, raw: Any, at: tuple[str | int, ...]) -> Iterator[GateRule]:
        if raw is None:
            return
        if not isinstance(raw, list):
            self.expected(at, "a list of rules like {metric: accuracy, min: 0.9}", raw)
            return
        kinds = ("min", "max", "max_regression", "min_improvement")
        for i, item in enumerate(raw):
            where = (*at, i)
            r = self.mapping(item, where, "#rule")
            if r is None:
                continue
            metric = self.string(r.get("metric"), (*where, "metric"), None)
            if not any(r.get(k) is not None for k in kinds):
                self.problem(where, f"a rule needs at least one of {', '.join(kinds)}")
            low = self.number(r.get("min"), (*where, "min"))
            high = self.number(r.get("max"), (*where, "max"))
            if low is not None and high is not None and low > high:
                self.problem(where, f"min {low:g} is greater than max {high:g}")
            rule = GateRule(
                metric=metric or "",
                min=low,
                max=high,
                max_regression=self.threshold(r.get("max_regression"), (*where, "max_regression")),
                min_improvement=self.threshold(r.get("min_improvement"), (*where, "min_improvement")),
                confidence=self.confidence(r.get("confidence"), (*where, "confidence")),
            )
            if metric:
                yield rule

    def confidence(self, raw: Any, at: tuple[str | int, ...]) -> float | None:
        """A confidence level: a fraction strictly between 0.5 and 1 (0.95), or a percentage (95%)."""
        if raw is None:
            return None
        if isinstance(raw, str) and not raw.strip().endswith("%"):
            self.expected(at, "a confidence level like 0.95 or 95%", raw)
            return None
        if isinstance(raw, str):
            try:
                value = float(raw.strip()[:-1]) / 100
            except ValueError:
                self.expected(at, "a confidence level like 0.95 or 95%", raw)
                return None
        else:
            number = self.number(raw, at)
            if number is None:
                return None
            value = number
        if not 0.5 < value < 1:
            self.problem(at, f"confidence {raw} is not between 0.5 and 1 (write 0.95, or 95%)")
            return None
        return value

    def report(self, raw: Any, environments: tuple[Environment, ...]) -> ReportConfig:
        at: tuple[str | int, ...] = ("report",)
        r = self.mapping(raw, at, "report")
        if r is None:
            return ReportConfig()
        baselines = self.string_list(r.get("baselines"), (*at, "baselines"), None)
        valid = [e.name for e in environments] + [BASE_BASELINE]
        for i, name in enumerate(baselines or ()):
            if name not in valid:
                close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
                extra = f"; did you mean {close[0]!r}?" if close else ""
                self.problem(
                    (*at, "baselines", i),
                    f"{name!r} is neither an environment nor {BASE_BASELINE!r} "
                    f"(valid: {', '.join(valid)}){extra}",
                )
        template = self.string(r.get("template"), (*at, "template"), None)
        self.project_path(template, (*at, "template"))
        return ReportConfig(
            baselines=baselines,
            template=template,
            key_metric=self.string(r.get("key_metric"), (*at, "key_metric"), None),
            plots=self.plots(r.get("plots"), (*at, "plots")),
        )

    def plots(self, raw: Any, at: tuple[str | int, ...]) -> tuple[str, ...]:
        """``report.plots``: image files in the project, .png or .svg, each name once."""
        from mlci import images

        found = self.string_list(raw, at, ()) or ()
        if len(found) > images.MAX_PLOTS:
            self.problem(at, f"{len(found)} plots, more than a report shows ({images.MAX_PLOTS})")
        names: dict[str, str] = {}
        for i, path in enumerate(found):
            where = (*at, i) if isinstance(raw, list) else at
            self.project_path(path, where)
            name = posixpath.basename(path)
            if posixpath.splitext(name)[1].lower() not in images.SUFFIXES:
                self.problem(
                    where, f"{_short(path)!r} is not a .png or .svg file (the formats mlci publishes)"
                )
            elif not re.fullmatch(images.NAME, name):
                self.problem(
                    where,
                    f"{_short(path)!r}: a plot's file name is letters, digits, '.', '_' and '-', "
                    "starting with a letter or digit, at most 100 characters (it names a release asset)",
                )
            elif name in names:
                self.problem(
                    where, f"{_short(path)!r} has the same file name as {names[name]!r}: name each plot once"
                )
            names.setdefault(name, path)
        return found
