"""``mlci deploy ENV``: run the environment's deploy hook by hand, for the version its tag names.

The same hook promotion runs (mlci.deploy), for a new server or after a failed
restore. It deploys only what the environment's tag names: a deployed model is
never left without its tag, so another version goes through ``mlci promote``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlci import config as cfg
from mlci import deploy, gitrepo, models, registry, tags
from mlci.errors import MlciError


def run(
    config_path: Path | None,
    cwd: Path,
    *,
    environ: Mapping[str, str],
    environment: str,
    version: str | None,
    log: Callable[[str], None],
    read_only_token: bool = False,
) -> deploy.Deployed:
    config = cfg.load_for(config_path, cwd)
    env = config.environment(environment)
    if env.deploy is None:
        raise MlciError(
            f"environment {env.name!r} has no deploy hook",
            hint=f"add environments.{env.name}.deploy: {{command: ..., smoke: ...}} to {config.path.name}",
        )
    state = model_state(config, environ, log)
    event = state.current(env.name) if state else None
    if state is None or event is None or not event.version:
        raise MlciError(
            f"{config.model.name} has no version in {env.name}: there is nothing to deploy",
            hint=f"promote one first: mlci promote {env.name}",
        )
    if version is not None and version != event.version:
        raise MlciError(
            f"{env.name} holds {config.model.name} {event.version}, not {version}: "
            "mlci deploys only what the environment's tag names",
            hint=f"mlci promote {env.name} --version {version} deploys it, then tags it",
        )
    registration = state.versions[event.version]
    done = deploy.deploy(
        config,
        env,
        models.version_of(config.model.name, registration),
        environ,
        log,
        mlflow_version=registration.metadata.get("mlflow_model_version"),
        read_only_token=read_only_token,
    )
    if done.ok:
        deploy.prune(config, env.name, {event.version})
    return done


def model_state(
    config: cfg.Config, environ: Mapping[str, str], log: Callable[[str], None]
) -> tags.ModelState | None:
    """The model's registry, complete (a shallow CI checkout's tags fetched): None when it has no tags."""
    root = gitrepo.toplevel(config.root)
    if root is None:
        raise MlciError(f"{config.root} is not in a git repository", hint="the registry is in git tags")
    registry.ensure_complete(registry.open_workspace(root, environ, push=False), log)
    return registry.read_state(root).get(config.model.name)
