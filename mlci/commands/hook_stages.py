"""The push flow's stages around a deploy hook, in GitHub Actions.

A hook is the repository's code, so it never runs in a job that holds a write
token. With a hook, the promotion is four jobs:

- ``publish`` (write): registers the version and opens its GitHub deployment
  (``in_progress``); it assigns nothing.
- ``deploy`` (read-only token): fetches the version's bytes, runs the hook and
  its smoke test; on failure deploys back the version the environment's tag
  names. Outputs ``deployed`` and ``environment-url``.
- ``assign`` (write): if it deployed, publishes the assignment tag and the
  alias, marks the deployment ``success`` and sends ``mlci-promoted``; if not,
  marks it ``failure``. A tag that cannot be published sets ``restore``.
- ``restore`` (read-only): deploys back the version the environment's tag names.

The jobs hand each other the version, the deployment's id, and the outcome in
``MLCI_VERSION``, ``MLCI_DEPLOYMENT_ID``, ``MLCI_DEPLOYED``,
``MLCI_ENVIRONMENT_URL`` and ``MLCI_DEPLOY_MESSAGE`` (the workflow sets them
from job outputs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mlci import ci_env, deploy
from mlci import config as cfg
from mlci.errors import ExitCode, MlciError


def version_from(environ: Mapping[str, str]) -> str:
    version = environ.get("MLCI_VERSION", "")
    if not version:
        raise ci_env.CiError(
            "this stage needs the version the publish stage registered (MLCI_VERSION)",
            hint="the reusable workflow passes it from the promote job's output `version`",
        )
    return version


def deploy_stage(
    config: cfg.Config, env: cfg.Environment, environ: Mapping[str, str], ctx: Any, log: Callable[[str], None]
) -> dict[str, Any]:
    """The hook for the registered version; after a failure, the tagged one back."""
    from mlci.commands import deploy as deploy_cmd

    version = version_from(environ)
    state = deploy_cmd.model_state(config, environ, log)
    if state is None:
        raise MlciError(f"{config.model.name} has no versions", hint="the publish stage registers one first")
    registration = state.versions.get(version)
    if registration is None:
        raise MlciError(f"{config.model.name} has no version {version}", hint="was it registered?")
    done = deploy.deploy_or_fall_back(
        config,
        env,
        state,
        version,
        environ,
        log,
        mlflow_version=registration.metadata.get("mlflow_model_version"),
        read_only_token=True,
    )
    message = done.message().splitlines()[0]
    ci_env.set_outputs(
        ctx,
        {"deployed": "true" if done.ok else "false", "environment-url": done.url or "", "message": message},
    )
    return {"outcome": "deployed" if done.ok else "blocked", "message": message, "deployed": done.to_json()}


def restore_stage(
    config: cfg.Config, env: cfg.Environment, environ: Mapping[str, str], log: Callable[[str], None]
) -> dict[str, Any]:
    from mlci.commands import deploy as deploy_cmd

    done = deploy_cmd.run(
        config.path,
        config.root,
        environ=environ,
        environment=env.name,
        version=None,
        log=log,
        read_only_token=True,
    )
    return {"outcome": "restored" if done.ok else "blocked", "message": done.message().splitlines()[0]}


def exit_code(found: Mapping[str, Any]) -> int:
    return ExitCode.OK if found["outcome"] in ("deployed", "restored", "promoted") else ExitCode.GATE_FAILED
