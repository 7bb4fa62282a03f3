"""One checkout's project, resolved: its config, params and fingerprint, and its stores.

What several commands need before they do their own work lives here, so that
commands never import each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import config as cfg
from mlci import fingerprint as fp
from mlci import params as prm
from mlci import safeinput, swap
from mlci.errors import ParamsError

if TYPE_CHECKING:
    from mlci.tracking import Tracking

OVERRIDES_TAG = "mlci.overrides"  # a run trained with --set: its inputs are not all in git


@dataclass(frozen=True)
class Resolved:
    config: cfg.Config
    params: dict[str, Any]
    overrides: tuple[str, ...]
    fingerprint: fp.Fingerprint
    params_text: str | None = None  # the params file's text with the overrides; None: no overrides
    command: str = ""  # train.command as it runs: placeholders filled, Hydra overrides added


MAX_PARAMS_BYTES = 4 * 1024 * 1024


def load_params(config: cfg.Config, overrides: Sequence[str]) -> dict[str, Any]:
    """The params file (empty if the config names none) and ``train.parameters``, with
    ``--set`` overrides applied."""
    return _load_params(config, overrides)[0]


def _params_source(config: cfg.Config) -> str:
    declared = config.train.parameters_from or ("train.parameters" if config.train.parameters else None)
    names = [n for n in (config.train.params, declared) if n]
    return " and ".join(names) or "the params"


Read = Callable[[str], "str | None"]  # a project file's text by its relative path (None: no such file)


def working_tree(config: cfg.Config) -> Read:
    """Project files as the working tree has them, bounded."""

    def read(name: str) -> str | None:
        path = config.root / name
        if not path.is_file() or not path.resolve().is_relative_to(config.root.resolve()):
            return None
        return safeinput.read_text(path, limit=MAX_PARAMS_BYTES, what=name)

    return read


def parameters(config: cfg.Config, read: Read | None = None) -> dict[str, Any]:
    """``train.parameters``: as mlci.yaml lists them, or the defaults of an MLproject's entry
    point ``main`` (read each time, so an edit of MLproject's defaults takes effect), from
    the working tree or, with ``read``, from a commit."""
    if config.train.parameters_from is None:
        return dict(config.train.parameters)
    where = f"{config.train.parameters_from} (train.parameters in {config.path.name})"
    try:
        text = (read or working_tree(config))(config.train.parameters_from)
        if text is None:
            raise ParamsError(f"{where} does not exist", hint="fix train.parameters in mlci.yaml")
        data = safeinput.load_yaml(text)[0]
    except (safeinput.BadInput, OSError) as exc:
        raise ParamsError(f"{where}: {getattr(exc, 'problem', exc)}") from None
    points = data.get("entry_points") if isinstance(data, dict) else None
    main = points.get("main") if isinstance(points, dict) else None
    declared = main.get("parameters") if isinstance(main, dict) else None
    if not isinstance(declared, dict):
        raise ParamsError(
            f"{where} declares no parameters of an entry point main",
            hint="list them under entry_points: main: parameters:, or in train.parameters",
        )
    out: dict[str, Any] = {}
    for name, spec in declared.items():
        default = spec.get("default") if isinstance(spec, dict) else None
        if isinstance(name, str) and isinstance(default, (str, int, float, bool)):
            out[name] = default
    return out


def committed_params(config: cfg.Config, read: Read) -> dict[str, Any]:
    """The params a clean checkout resolves (no overrides), its files read through ``read``
    (a commit's): the params file (Hydra's composed), with ``train.parameters``."""
    data: Any = {}
    if config.train.params:
        text = read(config.train.params.removeprefix("./"))
        if text is None:
            raise ParamsError(f"no params file {config.train.params}")
        data = prm.from_text(text, config.train.params) or {}
        if not isinstance(data, dict):
            raise ParamsError(f"params file {config.train.params} must hold a mapping")
        if config.train.overrides == "hydra":
            data = _hydra_composed(config, data, read)
    return prm.apply_overrides({**data, **parameters(config, read)}, [], config.train.params or "the params")


def _load_params(config: cfg.Config, overrides: Sequence[str]) -> tuple[dict[str, Any], str]:
    """``load_params``, and the params file's text as read ("" with none)."""
    defaults = parameters(config)
    if config.train.params is None:
        if overrides and not defaults:
            raise ParamsError(
                f"--set needs a params file or train.parameters, and {config.path.name} names neither",
                hint="set train.params in mlci.yaml (for example params.yaml), or name the command's "
                "parameters in train.parameters",
            )
        return prm.apply_overrides(defaults, overrides, _params_source(config)), ""
    data, text = _read_params_file(config)
    clash = sorted(set(defaults) & set(data))
    if clash:
        raise ParamsError(
            f"{', '.join(clash)}: both in {config.train.params} and in train.parameters",
            hint="name each param once: in the params file, or in train.parameters",
        )
    return prm.apply_overrides({**data, **defaults}, overrides, _params_source(config)), text


def _read_params_file(config: cfg.Config) -> tuple[dict[str, Any], str]:
    assert config.train.params is not None
    path = config.root / config.train.params
    try:
        text = safeinput.read_text(path, limit=MAX_PARAMS_BYTES, what="the params file")
        data = prm.from_text(text, path.name)
    except FileNotFoundError:
        raise ParamsError(
            f"params file {path} does not exist (train.params in {config.path.name})",
            hint="create it, or fix train.params in mlci.yaml",
        ) from None
    except safeinput.BadInput as exc:
        raise ParamsError(
            f"params file {exc.where(str(path))}: {exc.problem}",
            hint="the params file holds plain YAML data: names and values",
        ) from None
    except OSError as exc:
        raise ParamsError(f"params file {path}: cannot read: {exc.strerror or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(
            f"params file {path} must hold a mapping of names to values",
            hint="write it as `name: value` lines",
        )
    if config.train.overrides == "hydra":
        data = _hydra_composed(config, data, working_tree(config))
    return data, text


def _hydra_composed(config: cfg.Config, data: dict[str, Any], read: Read) -> dict[str, Any]:
    """A Hydra primary config with its defaults list's config groups read in (``- model: rf``
    reads ``model/rf.yaml`` beside it, under ``model``): the params as the code sees them,
    for the run's record and for --set to check its keys against."""
    import posixpath

    folder = posixpath.dirname((config.train.params or "").removeprefix("./"))
    out = {k: v for k, v in data.items() if k != "defaults"}
    for entry in data.get("defaults") or [] if isinstance(data.get("defaults"), list) else []:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        ((group, option),) = entry.items()
        if not isinstance(group, str) or not isinstance(option, str) or group.startswith(("/", "override ")):
            continue
        for suffix in (".yaml", ".yml"):
            name = posixpath.normpath(posixpath.join(folder, group, f"{option}{suffix}"))
            if not cfg.inside(name):
                break
            try:
                text = read(name)
                loaded = prm.from_text(text, name) if text is not None else None
            except safeinput.BadInput:
                break
            if text is None:
                continue
            if isinstance(loaded, dict):
                node = out
                for part in group.split("/")[:-1]:
                    node = node.setdefault(part, {})
                node.setdefault(group.split("/")[-1], {}).update(
                    {k: v for k, v in loaded.items() if k != "defaults"}
                )
            break
    return out


def resolve(
    config_path: Path | None, cwd: Path, overrides: Sequence[str], *, warn: Callable[[str], None]
) -> Resolved:
    return resolve_config(cfg.load_for(config_path, cwd), overrides, warn=warn)


def resolve_config(config: cfg.Config, overrides: Sequence[str], *, warn: Callable[[str], None]) -> Resolved:
    """``config``'s inputs resolved: its params (with ``overrides``) and their fingerprint."""
    changeable = [
        config.train.params,
        *config.train.rewrites,
        config.train.metrics,
        config.train.model,
        config.train.predictions,
    ]
    swap.recover(fp.ensure_state_dir(config.root), warn, [config.root / name for name in changeable if name])
    params, original = _load_params(config, overrides)
    to_file = [o for o in overrides if in_file(config, o)]
    params_text = params_file_text(config, original, to_file) if to_file else None
    command = prm.fill_command(config.train.command, params, _params_source(config))
    if config.train.overrides == "hydra" and overrides:
        import shlex

        command += "".join(f" {shlex.quote(item.strip())}" for item in overrides)
    fingerprint = fp.compute(config, params, params_text=params_text)
    for pattern in fingerprint.unmatched:
        hit = fingerprint.ignored.get(pattern)
        if hit:
            warn(
                f"train.inputs pattern {pattern!r} names {hit}, which git ignores, so it is not an input "
                "(and DVC does not track it): track it with git or `dvc add`, or drop the pattern"
            )
        else:
            warn(f"train.inputs pattern {pattern!r} matches no file")
    if not fingerprint.files:
        warn("no input files: the fingerprint covers only the params and the command")
    return Resolved(config, params, tuple(overrides), fingerprint, params_text, command)


def in_file(config: cfg.Config, override: str) -> bool:
    """Whether ``--set`` ``override`` goes into the params file (not train.parameters, and not
    a Hydra override)."""
    if config.train.params is None or config.train.overrides == "hydra":
        return False
    top = override.partition("=")[0].strip().split(".")[0]
    return top not in parameters(config)


def params_file_text(config: cfg.Config, original: str, overrides: Sequence[str]) -> str:
    """The params file (whose text is ``original``) as the training code must read it
    with the overrides: YAML edited in place (comments, order and untouched values kept
    byte for byte), JSON written anew. Checked to read back as the file with exactly
    those overrides applied."""
    assert config.train.params is not None
    path = config.root / config.train.params
    try:
        expected = prm.apply_overrides(
            prm.from_text(original, path.name) or {}, overrides, config.train.params
        )
    except safeinput.BadInput as exc:
        raise ParamsError(f"params file {exc.where(str(path))}: {exc.problem}") from None
    if path.suffix.lower() == ".json":
        text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    else:
        try:
            text = prm.edit_yaml(original, [prm.parse_override(item) for item in overrides])
        except ParamsError as exc:
            raise ParamsError(
                f"cannot write the overridden params into {path}: {exc.message}",
                hint=exc.hint or "write the overridden params as plain `name: value` lines",
            ) from None
    try:
        back = prm.from_text(text, path.name)
    except safeinput.BadInput as exc:
        back = exc
    if not prm.same_data(back, expected):
        raise ParamsError(
            f"cannot write the overridden params into {path}: the file would not read back as the "
            "params mlci resolved (a value shared through a YAML anchor or merge key?)",
            hint="write the overridden params as plain `name: value` lines in the params file",
        )
    return text


def make_tracking(config: cfg.Config, environ: Mapping[str, str]) -> Tracking:
    """The project's MLflow store; the embedded one keeps its artifacts under .mlci/."""
    from mlci.tracking import Tracking

    uri = cfg.effective_tracking_uri(config, environ)
    local = uri.startswith("sqlite:")
    if local:
        fp.ensure_state_dir(config.root)
    return Tracking(
        uri,
        config.experiment,
        artifact_root=config.root / fp.STATE_DIR / "artifacts" if local else None,
        environ=environ,
        timeout=config.tracking.timeout,
    )


@dataclass(frozen=True)
class Uncommitted:
    path: str
    untracked: bool


def uncommitted_inputs(resolved: Resolved) -> list[Uncommitted]:
    """Uncommitted changes that a version's commit would not reproduce: to the
    fingerprint's inputs, to mlci.yaml, to the params file and to the files holding
    the hashes of DVC-tracked inputs. Everything else (outputs, notes, scratch
    files, a lock file the command rewrites) may stay uncommitted."""
    from mlci import gitrepo

    config = resolved.config
    root = config.root
    changed = gitrepo.changed_files(root)
    if not changed:
        return []
    watched = {config.path.name}
    if config.train.params:
        watched.add(config.train.params.removeprefix("./"))
    watched |= {entry.source.split(" (")[0] for entry in resolved.fingerprint.dvc.values()}
    inputs, _ = fp.select(changed, config.train.inputs, fp.outputs(config), config.train.exclude)
    hits = sorted({name for name in changed if name in watched} | set(inputs))
    return [Uncommitted(name, changed[name]) for name in hits]
