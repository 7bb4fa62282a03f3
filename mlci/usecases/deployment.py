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
from typing import TYPE_CHECKING, Any

from mlci import ci_env, deploy, gitrepo, models, registry, tags
from mlci import config as cfg
from mlci.errors import ExitCode, MlciError

if TYPE_CHECKING:
    from mlci.context import Context


def version_from(environ: Mapping[str, str]) -> str:
    version = environ.get("MLCI_VERSION", "")
    if not version:
        raise ci_env.CiError(
            "this stage needs the version the publish stage registered (MLCI_VERSION)",
            hint="the reusable workflow passes it from the promote job's output `version`",
        )
    return version


def deploy_stage(ctx: Context, env: cfg.Environment, job: Any) -> dict[str, Any]:
    """The hook for the registered version; after a failure, the tagged one back."""
    config, environ, log = ctx.config, ctx.environ, ctx.log

    version = version_from(environ)
    state = model_state(config, environ, log)
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
        job,
        {"deployed": "true" if done.ok else "false", "environment-url": done.url or "", "message": message},
    )
    return {"outcome": "deployed" if done.ok else "blocked", "message": message, "deployed": done.to_json()}


def restore_stage(ctx: Context, env: cfg.Environment) -> dict[str, Any]:
    """The version the environment's tag names, deployed back (after a failed assignment)."""
    done = run(ctx, environment=env.name, version=None, read_only_token=True)
    return {"outcome": "restored" if done.ok else "blocked", "message": done.message().splitlines()[0]}


def exit_code(found: Mapping[str, Any]) -> int:
    return ExitCode.OK if found["outcome"] in ("deployed", "restored", "promoted") else ExitCode.GATE_FAILED


def run(
    ctx: Context, *, environment: str, version: str | None, read_only_token: bool = False
) -> deploy.Deployed:
    """``mlci deploy ENV``: the environment's hook, for the version its tag names."""
    config, environ, log = ctx.config, ctx.environ, ctx.log
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
