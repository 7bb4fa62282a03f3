"""``mlci sweep train`` and ``mlci sweep report``: the parts of a sweep that train or read
stores (the candidates and the leaderboard themselves are ``mlci.sweep``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlci import ci_env, gitrepo, registry, sweep


def train(
    config_path: Path | None,
    cwd: Path,
    number: int,
    *,
    environ: Mapping[str, str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train candidate ``number`` (``mlci train --set ...``, with the run cache). In GitHub
    Actions, also write its result file and bundle the run, and set the step outputs the
    workflow uploads: result-path, result-artifact, run-bundle, run-artifact."""
    from mlci import config as cfg_mod
    from mlci.commands import ci as ci_cmd
    from mlci.commands import train as train_cmd

    config = cfg_mod.load_for(config_path, cwd)
    one = sweep.candidate(config, number)
    resolved = sweep.resolve(config_path, cwd, one, log)
    ctx = ci_env.context(environ)
    token = environ.get("GITHUB_TOKEN") or None
    log(f"sweep candidate #{one.number} of {len(config.sweep.candidates) if config.sweep else 0}: {one.name}")
    result = train_cmd.train(
        resolved,
        environ=environ,
        use_cache=True,
        log=log,
        command_stdout=sys.stderr,
        **ci_cmd.run_store_options(ctx, environ, resolved.config, token, log),
    )
    outcome = sweep.Result(
        one, result.fingerprint, result.run_id, result.run_url, result.metrics, result.cached
    )
    path = sweep.write_result(resolved.config.root, outcome)
    if ctx.in_actions:
        ci_env.set_outputs(
            ctx,
            {
                "result-path": str(path),
                "result-artifact": sweep.result_artifact(config.model.name, one.number),
                **ci_cmd.bundle_outputs(resolved.config, result),
            },
        )
    return {**outcome.to_json(), "result_path": str(path)}


def report(
    config_path: Path | None,
    cwd: Path,
    *,
    folder: Path | None,
    environment: str | None,
    environ: Mapping[str, str],
    log: Callable[[str], None],
) -> sweep.Leaderboard:
    """The leaderboard: results from ``folder`` (the matrix jobs' files) or the tracking
    store, judged by ``environment``'s gate (default: the first environment)."""
    from mlci import config as cfg_mod

    config = cfg_mod.load_for(config_path, cwd)
    if folder is not None:
        results = sweep.from_folder(folder, config)
    else:
        results = sweep.from_tracking(config, config_path, cwd, environ, log)
    env = environment or (config.environments[0].name if config.environments else None)
    root = gitrepo.toplevel(config.root)
    state = registry.read_state(root).get(config.model.name) if root else None
    return sweep.leaderboard(config, results, state, env)
