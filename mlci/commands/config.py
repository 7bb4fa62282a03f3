"""``mlci config show`` and ``mlci config validate``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from mlci import config as cfg
from mlci import redact


def show(path: Path | None, *, cwd: Path, environ: Mapping[str, str], as_json: bool) -> str:
    import yaml

    config = cfg.load_for(path, cwd)
    data = config.to_dict()
    if data["tracking"]["uri"]:
        data["tracking"]["uri"] = redact.url(data["tracking"]["uri"])
    data["tracking"]["effective_uri"] = redact.url(cfg.effective_tracking_uri(config, environ))
    choice = cfg.choose_store(config, environ)
    data["registry"]["effective_store"] = choice.name
    data["registry"]["why"] = choice.why
    if as_json:
        return json.dumps({"path": str(config.path), "config": data}, indent=2) + "\n"
    header = f"# {config.path} (resolved, defaults filled in)\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def validate(path: Path | None, *, cwd: Path, as_json: bool) -> str:
    config = cfg.load_for(path, cwd)
    envs = [e.name for e in config.environments]
    if as_json:
        return json.dumps(
            {
                "path": str(config.path),
                "valid": True,
                "model": config.model.name,
                "environments": envs,
            }
        )
    return f"{config.path}: valid (model {config.model.name!r}, environments: {', '.join(envs) or 'none'})"
