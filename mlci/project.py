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


MAX_PARAMS_BYTES = 4 * 1024 * 1024


def load_params(config: cfg.Config, overrides: Sequence[str]) -> dict[str, Any]:
    """The params file (empty if the config names none) with ``--set`` overrides applied."""
    return _load_params(config, overrides)[0]


def _load_params(config: cfg.Config, overrides: Sequence[str]) -> tuple[dict[str, Any], str]:
    """``load_params``, and the params file's text as read ("" with none)."""
    if config.train.params is None:
        if overrides:
            raise ParamsError(
                f"--set needs a params file, and {config.path.name} names none",
                hint="set train.params in mlci.yaml (for example params.yaml)",
            )
        return {}, ""
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
    return prm.apply_overrides(data, overrides, config.train.params), text


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
    params_text = params_file_text(config, original, params, overrides) if overrides else None
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
    return Resolved(config, params, tuple(overrides), fingerprint, params_text)


def params_file_text(
    config: cfg.Config, original: str, params: dict[str, Any], overrides: Sequence[str]
) -> str:
    """The params file (whose text is ``original``) as the training code must read it
    with the overrides: YAML edited in place (comments, order and untouched values kept
    byte for byte), JSON written anew. Checked to read back as exactly ``params``."""
    assert config.train.params is not None
    path = config.root / config.train.params
    if path.suffix.lower() == ".json":
        text = json.dumps(params, indent=2, ensure_ascii=False) + "\n"
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
    if not prm.same_data(back, params):
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
