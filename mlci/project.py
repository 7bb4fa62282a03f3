"""One checkout's project, resolved: its config, params and fingerprint, and its stores.

What several commands need before they do their own work lives here, so that
commands never import each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import config as cfg
from mlci import fingerprint as fp
from mlci import params as prm
from mlci import safeinput
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


MAX_PARAMS_BYTES = 4 * 1024 * 1024


def load_params(config: cfg.Config, overrides: Sequence[str]) -> dict[str, Any]:
    """The params file (empty if the config names none) with ``--set`` overrides applied."""
    if config.train.params is None:
        if overrides:
            raise ParamsError(
                f"--set needs a params file, and {config.path.name} names none",
                hint="set train.params in mlci.yaml (for example params.yaml)",
            )
        return {}
    path = config.root / config.train.params
    try:
        data = safeinput.load_yaml(safeinput.read_text(path, limit=MAX_PARAMS_BYTES, what="the params file"))[
            0
        ]
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
    return prm.apply_overrides(data, overrides, config.train.params)


def resolve(
    config_path: Path | None, cwd: Path, overrides: Sequence[str], *, warn: Callable[[str], None]
) -> Resolved:
    config = cfg.load_for(config_path, cwd)
    params = load_params(config, overrides)
    fingerprint = fp.compute(config, params)
    for pattern in fingerprint.unmatched:
        warn(f"train.inputs pattern {pattern!r} matches no file")
    if not fingerprint.files:
        warn("no input files: the fingerprint covers only the params and the command")
    return Resolved(config, params, tuple(overrides), fingerprint)


def make_tracking(config: cfg.Config, environ: Mapping[str, str]) -> Tracking:
    """The project's MLflow store; the embedded one keeps its artifacts under .mlci/."""
    from mlci.tracking import Tracking

    uri = cfg.effective_tracking_uri(config, environ)
    local = uri.startswith("sqlite:")
    return Tracking(
        uri,
        config.experiment,
        artifact_root=config.root / fp.STATE_DIR / "artifacts" if local else None,
        environ=environ,
        timeout=config.tracking.timeout,
    )
