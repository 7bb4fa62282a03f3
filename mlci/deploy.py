"""Deploy hooks (``environments.<env>.deploy``): promotion that deploys.

A hook is the project's own command (and an optional smoke test) that mlci runs
with a version's bytes at hand. The order makes two promises: the
environment's tag never names a version whose deploy or smoke test failed, and
a deployed model is never left without its tag.

1. The gates pass, and the version's bytes are fetched from its store and
   checked against the sha256 its tag records, into ``MLCI_MODEL_DIR``.
2. ``deploy.command`` runs, then ``deploy.smoke``. Each sees ``MLCI_MODEL_DIR``,
   ``MLCI_MODEL_NAME``, ``MLCI_MODEL_VERSION``, ``MLCI_ENVIRONMENT``,
   ``MLCI_MODEL_URI`` and ``MLCI_MODEL_SHA256`` (the smoke test also
   ``MLCI_ENVIRONMENT_URL`` when the command printed ``environment_url: URL``),
   and never a GitHub or Actions credential (``mlci.trainer.withheld``).
3. Only when both pass is the assignment tag published, then the MLflow alias.
4. When the command or the smoke test fails, or the tag cannot be published,
   the hook runs again for the version the environment's tag names (the one it
   held before), so what runs is what the tag says; nothing is tagged, the
   alias does not move, and the promotion exits 1 naming the step, its exit
   code and the end of its output.

In GitHub Actions a job that holds a write token never runs a hook: the hook
is the repository's code, and a process in the same job can read its parent's
environment. The reusable workflow splits the promotion into jobs around it
(mlci.commands.hook_stages).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from mlci import config as cfg
from mlci import fingerprint as fp
from mlci import models, stores, tags, trainer
from mlci.errors import MlciError

DEPLOY_DIR = "deploy"  # .mlci/deploy/<env>/<version>: the bytes a hook deployed, kept for the server
_URL_RE = re.compile(r"^\s*environment[_ ]url\s*[:=]\s*(https?://[^\s\"'<>]+)\s*$", re.IGNORECASE)
_WRITE_TOKENS = ("GITHUB_TOKEN", "GH_TOKEN")
_TAIL_LINES = 15


class DeployFailed(MlciError):
    pass


@dataclass(frozen=True)
class Step:
    name: str  # "deploy" or "smoke"
    command: str
    returncode: int
    seconds: float
    tail: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "command": self.command,
            "exit_code": self.returncode,
            "seconds": round(self.seconds, 2),
            "timed_out": self.timed_out,
        }


@dataclass(frozen=True)
class Deployed:
    environment: str
    version: str
    steps: tuple[Step, ...] = ()
    url: str | None = None
    restored: Deployed | None = None  # after a failure: the hook run for the version the tag names
    note: str = ""  # why there was nothing to restore, or what restoring left behind
    model_dir: Path | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def message(self) -> str:
        if not self.steps:
            return f"the deploy of {self.version} to {self.environment} did not run: {self.note}"
        failed = self.failed
        if failed is None:
            return f"deployed {self.version} to {self.environment}" + (f" ({self.url})" if self.url else "")
        how = (
            f"timed out after {failed.seconds:.0f}s"
            if failed.timed_out
            else f"exited with {failed.returncode}"
        )
        text = f"the {failed.name} of {self.version} to {self.environment} failed: `{failed.command}` {how}"
        tail = "\n".join(failed.tail.strip().splitlines()[-_TAIL_LINES:])
        return text + (f"\n{tail}" if tail else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "version": self.version,
            "ok": self.ok,
            "url": self.url,
            "steps": [s.to_json() for s in self.steps],
            "restored": self.restored.to_json() if self.restored else None,
            "note": self.note or None,
        }


class _Tee:
    """The hook's standard output, to our log stream and kept for ``environment_url:``."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.text: list[str] = []

    def write(self, chunk: str) -> int:
        self.sink.write(chunk)
        if sum(len(t) for t in self.text) < 1_000_000:
            self.text.append(chunk)
        return len(chunk)

    def flush(self) -> None:
        self.sink.flush()

    def url(self) -> str | None:
        found = [m[1] for line in "".join(self.text).splitlines() if (m := _URL_RE.match(line))]
        return found[-1] if found else None


def refuse_write_token(environ: Mapping[str, str]) -> None:
    """A hook never runs beside a GitHub write token in GitHub Actions."""
    held = [name for name in _WRITE_TOKENS if environ.get(name)]
    if environ.get("GITHUB_ACTIONS") == "true" and held:
        raise DeployFailed(
            f"this job holds {held[0]}, and a deploy hook is the repository's own code: "
            "mlci does not run it here (a process in this job could read the token)",
            hint="mlci's reusable workflow runs hooks in its deploy job, which holds a read-only token "
            "(mlci ci --stage deploy); in a workflow of your own, do the same",
        )


def _environment_dir(config: cfg.Config, environment: str) -> Path:
    return config.root / fp.STATE_DIR / DEPLOY_DIR / environment


def model_dir(config: cfg.Config, environment: str, version: str) -> Path:
    return _environment_dir(config, environment) / version


def fetch(
    config: cfg.Config,
    environment: str,
    version: stores.Version,
    environ: Mapping[str, str],
    log: Callable[[str], None],
) -> Path:
    """The version's model folder for a hook, checked against its tag's sha256, kept
    in ``.mlci/deploy/<env>/<version>`` (a server the hook started may read it)."""
    if not stores.has_model(version):
        raise DeployFailed(
            f"{version.tag} has no model file (train.model is not set): there is nothing to deploy",
            hint="set train.model in mlci.yaml, or remove the environment's deploy hook",
        )
    dest = model_dir(config, environment, version.version)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    store = stores.for_version(version, config, environ, log)
    digest = models.fetch(store, version, dest, log)
    log(f"the bytes of {version.tag} for {environment}: sha256 {digest.sha256[:12]} in {dest}")
    return dest


def prune(config: cfg.Config, environment: str, keep: set[str]) -> None:
    """Drop the bytes of versions this environment no longer runs or falls back to."""
    folder = _environment_dir(config, environment)
    if folder.is_dir():
        for old in folder.iterdir():
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)


def run_hook(
    config: cfg.Config,
    env: cfg.Environment,
    version: stores.Version,
    folder: Path,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    *,
    model_uri: str | None = None,
) -> Deployed:
    """The environment's deploy command, then its smoke test (if the command passed)."""
    hook = env.deploy
    assert hook is not None
    variables = {
        **trainer.withheld(environ, config.train.withhold_env),
        "MLCI_MODEL_DIR": str(folder),
        "MLCI_MODEL_NAME": version.model,
        "MLCI_MODEL_VERSION": version.version,
        "MLCI_ENVIRONMENT": env.name,
        "MLCI_MODEL_URI": model_uri or folder.resolve().as_uri(),
        "MLCI_MODEL_SHA256": version.digest or "",
    }
    steps: list[Step] = []
    url = None
    for name, command in (("deploy", hook.command), ("smoke", hook.smoke)):
        if command is None:
            continue
        if url:
            variables["MLCI_ENVIRONMENT_URL"] = url
        log(f"{name} {version.version} to {env.name}: {command}")
        tee = _Tee(sys.stderr)
        outcome = trainer.run_command(
            command,
            cwd=config.root,
            env=variables,
            stdout=cast(IO[Any], tee),
            stderr=sys.stderr,
            timeout=hook.timeout,
        )
        step = Step(
            name, command, outcome.returncode, outcome.seconds, outcome.stderr_tail, outcome.timed_out
        )
        steps.append(step)
        outcome_word = "done" if step.ok else "failed"
        log(f"{name} {version.version} to {env.name}: {outcome_word} in {outcome.seconds:.2f}s")
        if name == "deploy":
            url = tee.url()
        if not step.ok:
            break
    return Deployed(env.name, version.version, tuple(steps), url, model_dir=folder)


def deploy(
    config: cfg.Config,
    env: cfg.Environment,
    version: stores.Version,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    *,
    mlflow_version: object = None,
    read_only_token: bool = False,
) -> Deployed:
    """Fetch the version's bytes and run the hook for them (``mlflow_version``: its MLflow
    model version, for ``MLCI_MODEL_URI``; ``read_only_token``: this job's token, if any,
    can write nothing: the workflow's deploy job)."""
    if not read_only_token:
        refuse_write_token(environ)
    folder = fetch(config, env.name, version, environ, log)
    uri = f"models:/{version.model}/{mlflow_version}" if mlflow_version else None
    done = run_hook(config, env, version, folder, environ, log, model_uri=uri)
    log(done.message().splitlines()[0])
    return done


def restore(
    config: cfg.Config,
    env: cfg.Environment,
    failed: Deployed,
    previous: stores.Version | None,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    *,
    read_only_token: bool = False,
) -> Deployed:
    """After a failed deploy: the hook again, for the version the environment's tag names."""
    import dataclasses

    if previous is None:
        note = f"{env.name} had no model before: nothing to deploy back"
        log(note)
        return dataclasses.replace(failed, note=note)
    log(f"deploying {previous.version} back to {env.name}, the version its tag names")
    try:
        back = deploy(config, env, previous, environ, log, read_only_token=read_only_token)
    except MlciError as exc:
        note = f"deploying {previous.version} back failed too: {exc.message.splitlines()[0]}"
        log(note)
        return dataclasses.replace(failed, note=note)
    note = (
        f"{env.name} runs {previous.version} again"
        if back.ok
        else f"deploying {previous.version} back failed too ({back.message().splitlines()[0]}): "
        f"`mlci deploy {env.name}` tries again"
    )
    log(note)
    return dataclasses.replace(failed, restored=back, note=note)


def deploy_or_fall_back(
    config: cfg.Config,
    env: cfg.Environment,
    state: tags.ModelState,
    candidate: str,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    *,
    mlflow_version: object = None,
    read_only_token: bool = False,
) -> Deployed:
    """The environment's hook for ``candidate``; after a failure, again for the version
    the environment's tag names, so what runs is what the tag says. Bytes that cannot
    be had run nothing: the result says why in its note."""
    version = models.version_of(config.model.name, state.versions[candidate])
    try:
        done = deploy(
            config, env, version, environ, log, mlflow_version=mlflow_version, read_only_token=read_only_token
        )
    except MlciError as exc:
        return Deployed(env.name, candidate, note=exc.message.splitlines()[0])
    if done.ok:
        return done
    return fall_back(config, env, state, done, environ, log, read_only_token=read_only_token)


def fall_back(
    config: cfg.Config,
    env: cfg.Environment,
    state: tags.ModelState,
    failed: Deployed,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    *,
    read_only_token: bool = False,
) -> Deployed:
    """``restore`` for the version the environment's tag names in ``state`` (if any)."""
    event = state.current(env.name)
    previous = (
        models.version_of(config.model.name, state.versions[event.version])
        if event is not None and event.version and event.version in state.versions
        else None
    )
    return restore(config, env, failed, previous, environ, log, read_only_token=read_only_token)


# --------------------------------------------------------------------------- who hears of it


class Notifier:
    """What hears of a promotion as it happens: nothing, by default."""

    def started(self, version: stores.Version, commit: str, *, working: bool = True) -> None:
        """The gates passed: the version is about to be deployed (``working``: a hook
        deploys it, which takes a while) or only assigned."""

    def finished(self, ok: bool, description: str, url: str | None = None) -> None:
        """It is in the environment (``ok``), or it is not, and why."""


class GitHubDeployments(Notifier):
    """A GitHub deployment per promotion (ref: the version's commit; payload: model,
    version, tag, sha256), in_progress, then success or failure, so the repository's
    Environments page shows which version runs where. The tag is the record: a
    deployment GitHub refuses (a token without ``deployments: write``) is a warning."""

    def __init__(
        self,
        api: Any,
        environment: str,
        log_url: str | None,
        log: Callable[[str], None],
        existing: int | None = None,
    ) -> None:
        self.api = api
        self.environment = environment
        self.log_url = log_url
        self.log = log
        self.id: int | None = existing  # opened by an earlier job (the workflow's publish stage)

    def started(self, version: stores.Version, commit: str, *, working: bool = True) -> None:
        from mlci.github_api import GitHubError

        if self.id is not None:
            return

        payload = {
            "model": version.model,
            "version": version.version,
            "tag": version.tag,
            "sha256": version.digest,
        }
        try:
            self.id = self.api.create_deployment(
                commit,
                self.environment,
                payload,
                f"{version.model} {version.version}",
                production=self.environment == "production",
            )
            if working:  # nothing to watch while only a tag is pushed: success follows at once
                self.api.deployment_status(
                    self.id, "in_progress", f"deploying {version.version}", log_url=self.log_url
                )
            state = "in_progress" if working else "created"
            self.log(f"GitHub deployment {self.id} of {version.tag} to {self.environment}: {state}")
        except GitHubError as exc:
            self.log(f"warning: no GitHub deployment: {exc.message.splitlines()[0]}")
            self.id = None

    def finished(self, ok: bool, description: str, url: str | None = None) -> None:
        from mlci.github_api import GitHubError

        if self.id is None:
            return
        state = "success" if ok else "failure"
        try:
            self.api.deployment_status(self.id, state, description, log_url=self.log_url, environment_url=url)
            self.log(f"GitHub deployment {self.id}: {state}")
        except GitHubError as exc:
            self.log(
                f"warning: GitHub deployment {self.id} not set to {state}: {exc.message.splitlines()[0]}"
            )
