"""``mlci promote`` and ``mlci rollback``: assign a version to an environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlci import config as cfg
from mlci import fingerprint as fp
from mlci import gates, models, project, registry, stores, tags
from mlci.errors import MlciError

if TYPE_CHECKING:
    from mlci.context import Context


@dataclass
class PromoteResult:
    model: str
    environment: str
    version: str
    previous: str | None
    changed: bool
    tag: str | None
    pushed: bool
    verdict: gates.Verdict | None
    blocked: str | None = None  # why nothing was assigned (a gate or `requires`)
    alias_set: bool = False
    model_sha256: str | None = None
    held: bool = False  # blocked by a rollback's pin, not by a gate
    deployed: dict[str, Any] | None = None  # the deploy hook's run (mlci.deploy.Deployed.to_json())

    @property
    def passed(self) -> bool:
        return self.blocked is None

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "verdict"}
        data["passed"] = self.passed
        data["gates"] = verdict_json(self.verdict)
        return data


def verdict_json(verdict: gates.Verdict | None) -> dict[str, Any] | None:
    return verdict.to_json() if verdict is not None else None


def _open(
    ctx: Context, environment: str, push: bool | None
) -> tuple[cfg.Config, cfg.Environment, registry.Workspace, tags.ModelState]:
    """The config, the environment, the registry made whole, and the model's state."""
    config = ctx.config
    env = config.environment(environment)
    ws = registry.open_workspace(config.root, ctx.environ, push)
    registry.ensure_complete(ws, ctx.log)
    return config, env, ws, _model_state(ws, config.model.name)


def _model_state(ws: registry.Workspace, model: str) -> tags.ModelState:
    state = registry.read_state(ws.root).get(model)
    if state is None or not state.versions:
        raise MlciError(
            f"{model} has no registered version in {ws.root}",
            hint="register one first: mlci train && mlci register",
        )
    return state


def _candidate_version(
    state: tags.ModelState, version: str | None, config: cfg.Config, log: Callable[[str], None]
) -> str:
    if version is not None:
        return models.active_version(state, version, "promote another version")
    fingerprint = fp.compute(config, project.load_params(config, [])).digest
    found = state.version_of_fingerprint(fingerprint)
    if found is None:
        raise MlciError(
            f"the current inputs (fingerprint {fingerprint[:12]}) are not a registered version "
            f"of {state.name}",
            hint="register them (mlci register), or name one with --version "
            f"(latest: {state.latest or 'none'})",
        )
    log(f"the current inputs are {state.name} {found}")
    return found


def judge(
    ctx: Context,
    state: tags.ModelState,
    env: cfg.Environment,
    candidate: str,
    current: str | None,
    *,
    explicit: bool,
    rollback: bool,
) -> gates.Verdict:
    """The registered version ``candidate`` against ``env`` and the version in it now
    (``mlci.verdict``), on the metrics their tags record and, for rules with a
    confidence, their predictions or repeats (paired on the same rows, as the pull
    request's report judged them)."""
    from mlci import report as rpt
    from mlci import verdict

    baseline = (
        rpt.Baseline(
            env.name, f"{env.name} {current}", found=True, version=current, metrics=_metrics(state, current)
        )
        if current
        else rpt.Baseline(env.name, env.name, found=False)
    )
    case = verdict.Case(
        ctx.config,
        _metrics(state, candidate),
        state.versions[candidate].metadata.get("fingerprint"),
        state,
        {env.name: baseline},
        certainty=_certainty(ctx, state, env, candidate),
        data=None if rollback else _data(ctx, state, env, candidate),
        version=candidate,
        explicit=explicit,
        rollback=rollback,
    )
    return verdict.judge(case, env.name)


def _data(ctx: Context, state: tags.ModelState, env: cfg.Environment, candidate: str) -> Any:
    """The data ``candidate`` was made from, judged as a pull request's is: the checks of
    ``data:`` on the profiles its run recorded, and each against the data of the model in
    ``env`` now (a rollback goes back to data that was fine: none)."""
    config = ctx.config
    if not config.data:
        return None
    from mlci import verdict
    from mlci.usecases import datasets

    version = models.version_of(config.model.name, state.versions[candidate])
    profiles = datasets.version_profiles(ctx, config, version)
    checked, comparisons, undecided = datasets.from_profiles(
        ctx, config, profiles, state, whose=f"{config.model.name} {candidate}'s run", environments=[env.name]
    )
    for words in undecided:
        ctx.log(f"not decided from {candidate}'s data profile: {words}")
    return verdict.Data(checked, comparisons)


def _certainty(ctx: Context, state: tags.ModelState, env: cfg.Environment, candidate: str) -> Any:
    """The versions' predictions or repeats, where a rule asks for intervals (None: the
    rules compare points, and say so)."""
    if not env.judged_on_intervals:
        return None
    from mlci import evidence, stats

    config, environ, log, tracking = ctx.config, ctx.environ, ctx.log, ctx.tracking()

    head = evidence.for_named_version(config, environ, state, candidate, tracking, log)
    if head is None:
        return None
    return evidence.Certainty(
        head,
        config.interval_confidence or stats.DEFAULT_CONFIDENCE,
        lambda b: evidence.for_named_version(config, environ, state, b.version, tracking, log),
    )


def _metrics(state: tags.ModelState, version: str) -> dict[str, float]:
    return tags.recorded_metrics(state.versions[version].metadata)


def assign(
    ctx: Context,
    *,
    environment: str,
    version: str | None,
    push: bool | None,
    rollback_reason: str | None = None,
    automatic: bool = False,
    notify: Any = None,
    predeployed: Any = None,
) -> PromoteResult:
    """Promote (gates and ``requires``), or with ``rollback_reason`` roll back
    (absolute gates only). ``notify`` (a ``mlci.deploy.Notifier``) hears when a
    version that passed its gates starts into the environment, and how it ended."""
    from mlci import deploy as deploy_mod

    notifier = notify or deploy_mod.Notifier()
    environ, log = ctx.environ, ctx.log
    config, env, ws, state = _open(ctx, environment, push)
    model = config.model.name
    current_event = state.current(env.name)
    current = current_event.version if current_event else None

    if rollback_reason is None:
        candidate = _candidate_version(state, version, config, log)
    else:
        candidate = _rollback_target(state, env.name, current, version)
    verdict = judge(
        ctx,
        state,
        env,
        candidate,
        current,
        explicit=version is not None and not automatic,
        rollback=rollback_reason is not None,
    )
    if verdict.held and candidate != current:
        # A rollback holds: only an explicit --version (or unpin) moves a pinned environment.
        why = f"{verdict.held} (or promote a version explicitly with --version)"
        return PromoteResult(
            model, env.name, candidate, current, False, None, False, verdict, blocked=why, held=True
        )
    if candidate == current:
        log(f"{model} {candidate} is already in {env.name}; nothing to do")
        return PromoteResult(model, env.name, candidate, current, False, None, False, None)
    if not verdict.passed:
        return PromoteResult(
            model,
            env.name,
            candidate,
            current,
            False,
            None,
            False,
            verdict,
            blocked=verdict.summary(),
        )

    registration = state.versions[candidate]
    deploys_here = env.deploy is not None and predeployed is None
    if deploys_here:
        deploy_mod.refuse_write_token(environ)  # before anything is fetched or run
    notifier.started(models.version_of(model, registration), registration.commit, working=deploys_here)
    try:
        result = _put_in(
            ctx,
            env,
            ws,
            state,
            candidate,
            current,
            verdict,
            registration,
            rollback_reason,
            predeployed,
        )
    except BaseException as exc:
        notifier.finished(
            False, (getattr(exc, "message", None) or str(exc) or type(exc).__name__).splitlines()[0]
        )
        raise
    if result.blocked:
        notifier.finished(False, result.blocked.splitlines()[0])
    else:
        url = (result.deployed or {}).get("url")
        notifier.finished(True, f"{model} {candidate} in {env.name}", url)
    return result


def _put_in(
    ctx: Context,
    env: cfg.Environment,
    ws: registry.Workspace,
    state: tags.ModelState,
    candidate: str,
    current: str | None,
    verdict: gates.Verdict,
    registration: tags.Event,
    rollback_reason: str | None,
    predeployed: Any = None,
) -> PromoteResult:
    """Deploy (the environment's hook), then tag, then alias: a version that passed.
    ``predeployed``: an earlier job deployed it (the workflow's deploy stage)."""
    from mlci import deploy as deploy_mod

    config, environ, log = ctx.config, ctx.environ, ctx.log
    model = config.model.name
    # Only bytes that exist with the tag's digest are assigned; a cold MLflow
    # store gets the version's model version back from them.
    resolved = models.resolve_for_promotion(
        config, environ, models.version_of(model, registration), log, ctx.tracking()
    )
    mlflow_version = resolved.mlflow_version or registration.metadata.get("mlflow_model_version")
    deployed = None
    if env.deploy is not None and predeployed is not None:
        deployed = predeployed
    elif env.deploy is not None:  # deployed (and smoke-tested) before the tag names it
        deployed = deploy_mod.deploy_or_fall_back(
            config, env, state, candidate, environ, log, mlflow_version=mlflow_version
        )
        if not deployed.ok:
            return PromoteResult(
                model,
                env.name,
                candidate,
                current,
                False,
                None,
                False,
                verdict,
                blocked=deployed.message()
                + (f"\n{deployed.note}" if deployed.note and deployed.steps else ""),
                deployed=deployed.to_json(),
            )

    published = _tag(
        ctx,
        env,
        ws,
        state,
        candidate,
        verdict,
        registration,
        rollback_reason,
        resolved,
        mlflow_version,
        deployed,
        predeployed,
    )
    if published is None:
        log(f"{model} {candidate} was put in {env.name} by another job meanwhile")
        return PromoteResult(
            model,
            env.name,
            candidate,
            current,
            False,
            None,
            False,
            verdict,
            deployed=deployed.to_json() if deployed else None,
        )
    if deployed is not None:
        deploy_mod.prune(config, env.name, {candidate})
    tag = published.plan.tags[0].name
    verb = "rolled back" if rollback_reason is not None else "promoted"
    where = f", pushed to {registry.REMOTE}" if published.pushed else " (local only: not pushed)"
    log(f"{verb} {model} {candidate} to {env.name}: tag {tag}{where}")
    alias_set = (
        False
        if resolved.mirror_skipped
        else _set_alias(ctx, model, env.name, registration.tag, mlflow_version)
    )
    return PromoteResult(
        model,
        env.name,
        candidate,
        current,
        True,
        tag,
        published.pushed,
        verdict,
        alias_set=alias_set,
        model_sha256=resolved.version.digest,
        deployed=deployed.to_json() if deployed else None,
    )


def _tag(
    ctx: Context,
    env: cfg.Environment,
    ws: registry.Workspace,
    state: tags.ModelState,
    candidate: str,
    verdict: gates.Verdict,
    registration: tags.Event,
    rollback_reason: str | None,
    resolved: models.Resolved,
    mlflow_version: object,
    deployed: Any,
    predeployed: Any,
) -> registry.Published | None:
    """The assignment tag published (None: another job put ``candidate`` in meanwhile).
    Where it cannot be and the hook deployed the version, what runs goes back to what the
    tag says (here, or by the restore job where this job holds a write token)."""
    from mlci import deploy as deploy_mod

    config, log = ctx.config, ctx.log
    model = config.model.name

    def make_plan(fresh: dict[str, tags.ModelState]) -> registry.Plan | None:
        now = fresh.get(model) or state
        in_effect = now.current(env.name)
        if in_effect is not None and in_effect.version == candidate:
            return None
        metadata: dict[str, Any] = {
            "version": candidate,
            "environment": env.name,
            "fingerprint": registration.metadata.get("fingerprint"),
            "metrics": registration.metadata.get("metrics"),
            "previous": in_effect.version if in_effect else None,
            "mlflow_model_version": mlflow_version,
            "gates": verdict.summary(),
            stores.DIGEST_KEY: resolved.version.digest,
            "verified": resolved.verified,
        }
        if rollback_reason is not None:
            metadata.update(rollback=True, reason=rollback_reason, replaced=metadata["previous"])
        return _assignment_plan(
            now, model, env.name, candidate, registration, metadata, "rollback" if rollback_reason else None
        )

    try:
        published = registry.publish(ws, make_plan, log)
    except MlciError as exc:
        if deployed is None:
            raise
        if predeployed is not None:  # this job holds a write token: the restore job deploys back
            raise MlciError(
                f"{exc.message}\n{model} {candidate} was deployed to {env.name} and its tag could not be "
                "published: the restore job deploys back the version the tag names",
                hint=exc.hint,
            ) from exc
        # Deployed, and the tag could not say so: what runs goes back to what the tag says.
        restored = deploy_mod.fall_back(config, env, state, deployed, ctx.environ, log)
        raise MlciError(
            f"{exc.message}\n{model} {candidate} was deployed to {env.name} and its tag could not be "
            f"published: {restored.note}",
            hint=exc.hint,
        ) from exc
    return published


def unpin(ctx: Context, *, environment: str, push: bool | None) -> PromoteResult:
    """End a rollback's pin: the version stays, assigned again without the pin, so
    automatic promotion resumes. GTO reads it as an ordinary assignment."""
    log = ctx.log
    config, env, ws, state = _open(ctx, environment, push)
    model = config.model.name
    pin = state.pin(env.name)
    if pin is None or pin.version is None:
        current = state.current(env.name)
        version = current.version if current and current.version else "-"
        log(f"{env.name} is not pinned; nothing to do")
        return PromoteResult(model, env.name, version, version, False, None, False, None)
    version = pin.version
    registration = state.versions[version]

    def make_plan(fresh: dict[str, tags.ModelState]) -> registry.Plan | None:
        now = fresh.get(model) or state
        if now.pin(env.name) is None:
            return None
        metadata: dict[str, Any] = {
            "version": version,
            "environment": env.name,
            "fingerprint": registration.metadata.get("fingerprint"),
            "metrics": registration.metadata.get("metrics"),
            "previous": version,
            "mlflow_model_version": registration.metadata.get("mlflow_model_version"),
            "unpinned": pin.tag,
            stores.DIGEST_KEY: registration.metadata.get(stores.DIGEST_KEY),
        }
        return _assignment_plan(now, model, env.name, version, registration, metadata, "unpinned")

    published = registry.publish(ws, make_plan, log)
    if published is None:
        log(f"{env.name} was unpinned by another job meanwhile")
        return PromoteResult(model, env.name, version, version, False, None, False, None)
    tag = published.plan.tags[0].name
    log(f"unpinned {env.name}: {version} stays, automatic promotion resumes (tag {tag})")
    return PromoteResult(model, env.name, version, version, True, tag, published.pushed, None)


def _assignment_plan(
    state: tags.ModelState,
    model: str,
    environment: str,
    version: str,
    registration: tags.Event,
    metadata: dict[str, Any],
    kind: str | None,
) -> registry.Plan:
    """One assignment tag, MODEL#ENV#N with the next counter, on the version's commit."""
    names = [tags.parse_name(e.tag) for e in state.events]
    counter = tags.next_counter([n for n in names if n is not None], model)
    summary = tags.assign_summary(model, environment, version) + (f" ({kind})" if kind else "")
    planned = registry.PlannedTag(
        tags.assign_tag(model, environment, counter), registration.commit, summary, metadata
    )
    return registry.Plan([planned])


def _set_alias(ctx: Context, model: str, alias: str, tag: str, mlflow_version: object) -> bool:
    """MLflow follows git: the alias is set after the tag is published."""
    log = ctx.log
    from mlci.tracking import Registry

    try:
        reg = Registry(ctx.tracking(), model)
        hint = None if mlflow_version is None else str(mlflow_version)
        number = reg.version_for_tag(tag, hint)
        if number is None:
            log(
                f"warning: no MLflow model version points at {tag}; alias {alias!r} not set "
                "(`mlci doctor --fix` re-creates the version)"
            )
            return False
        mlflow_version = number
        reg.set_alias(alias, number)
    except MlciError as exc:
        raise MlciError(
            f"the git tag is published, but setting MLflow alias {alias!r} failed: {exc.message}",
            hint="git is the source of truth: `mlci doctor --fix` brings MLflow in step",
        ) from exc
    log(f"MLflow alias {alias!r} -> version {mlflow_version}")
    return True


def _rollback_target(state: tags.ModelState, environment: str, current: str | None, to: str | None) -> str:
    if to is not None:
        if to not in state.versions or to in state.deregistered:
            raise MlciError(
                f"{state.name} has no active version {to}",
                hint=f"registered: {', '.join(state.active_versions()) or 'none'}",
            )
        return to
    for event in state.assignment_history(environment):
        version = event.version
        usable = version and version != current and version not in state.deregistered
        if event.action is tags.Action.ASSIGN and usable:
            assert version is not None
            return version
    raise MlciError(
        f"{environment} has no earlier version of {state.name} to roll back to",
        hint="name one with --to vX.Y.Z",
    )
