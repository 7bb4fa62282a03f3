"""``mlci ci``: the one command the GitHub actions call; a repository event drives the lifecycle.

- ``pull_request`` (opened, synchronize, reopened): train (run cache), diff
  against the baselines, gate for the environment bound to the PR's base
  branch, write the report to disk and to the job summary, then upsert the
  sticky comment and set the commit status ``mlci/<env>`` on the PR head.
- ``push`` to an environment branch: train (run cache), gate, register (or
  reuse the version of these inputs), promote to that environment.
- anything else: nothing to do.

The report is on disk before any network call. A read-only token (a fork's
pull request) degrades to the job summary with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlci import ci_env, gitrepo, registry, render, tags
from mlci import config as cfg
from mlci import report as rpt
from mlci.errors import ExitCode, MlciError
from mlci.tracking import expect_client

if TYPE_CHECKING:
    from mlci.context import Context
from mlci.usecases import review

PR_ACTIONS = {"opened", "synchronize", "reopened"}
PULL_REQUEST_FILE = "pull_request.json"


@dataclass
class CiResult:
    event: str
    outcome: str  # "reported", "promoted", "blocked", "skipped"
    message: str
    environment: str | None = None
    verdict: str | None = None  # "pass", "fail", or None (no environment to gate)
    fingerprint: str | None = None
    version: str | None = None
    model_sha256: str | None = None
    report_path: str | None = None
    comment: dict[str, Any] | None = None
    statuses: list[dict[str, str]] = field(default_factory=list)
    posted: bool = False
    degraded: bool = False
    exit_code: int = ExitCode.OK
    gates: dict[str, Any] | None = None  # the verdict (mlci.verdict), as `mlci gate --json` gives it

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _write_report(
    job: ci_env.Context, config: cfg.Config, report: rpt.Report, template: render.TemplateSource | None
) -> tuple[str, Path]:
    """The report to disk (markdown and JSON) and to the job summary: before any network call."""
    from mlci import redact

    markdown = redact.text(render.render_report(report, "markdown", template=template))
    folder = config.root / ".mlci"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.md"
    path.write_text(markdown, encoding="utf-8")
    (folder / "report.json").write_text(redact.json_text(rpt.to_json(report)) + "\n", encoding="utf-8")
    ci_env.append_summary(job, markdown)
    return markdown, path


def run(
    ctx: Context,
    *,
    event: str | None,
    payload_path: Path | None,
    base: str | None,
    branch: str | None,
    pr: int | None,
    token: str | None,
    dry_run: bool,
    out: IO[str] | None = None,
    api_factory: Callable[..., Any] | None = None,
    stage: str = "all",
) -> CiResult:
    """``stage``: ``all`` does everything for the event; ``train`` runs the training
    command and writes the report but posts, tags and pushes nothing (the job
    without a write token); ``publish`` never runs the training command (the job
    with one: the run must already be recorded)."""
    if stage not in STAGES:
        raise ci_env.CiError(f"--stage {stage!r}: use one of {', '.join(STAGES)}")
    log = ctx.log
    job = ci_env.context(ctx.environ)
    out = out or sys.stdout  # bound per call: a default of sys.stdout would freeze the one at import
    event = event or job.event_name
    if not event:
        raise ci_env.CiError(
            "no event: not in GitHub Actions (GITHUB_EVENT_NAME is unset) and no --event",
            hint="replay one locally: mlci ci --event pull_request --base staging",
        )
    if token:
        ci_env.mask(out, token, job.in_actions)
    path = payload_path or (job.event_path if job.event_name == event else None)
    payload = ci_env.load_payload(path) if path else None
    if event in ("pull_request", "pull_request_target"):
        if stage == "publish":
            raise ci_env.CiError(
                "--stage publish of a pull request is `mlci publish`: "
                "it judges the report the train stage wrote",
                hint="mlci publish REPORT_DIR --head-sha SHA",
            )
        return _pull_request(ctx, job, payload, base, pr, token, dry_run, out, api_factory, stage)
    if event == "push":
        return _push(ctx, job, payload, branch, dry_run, out, stage)
    message = f"event {event!r}: nothing for mlci to do"
    log(message)
    return CiResult(event, "skipped", message)


@dataclass(frozen=True)
class _PullRequest:
    """The pull request an event names: its number, the branch it merges into, its head."""

    number: int  # 0: a replay without --pr
    base: str
    head_sha: str
    fork: bool  # from another repository: its workflow has a read-only token


def _pull_request(
    ctx: Context,
    job: ci_env.Context,
    payload: dict[str, Any] | None,
    base: str | None,
    pr: int | None,
    token: str | None,
    dry_run: bool,
    out: IO[str],
    api_factory: Callable[..., Any] | None,
    stage: str = "all",
) -> CiResult:
    """The steps: the event read, the head reviewed (trained or reused, judged by the
    base's policy), the report written to disk, then posted (a comment and a status)."""
    pull = _the_pull_request(ctx, payload, base, pr)
    if isinstance(pull, CiResult):
        return pull
    reviewed = review.gather(
        ctx,
        base=pull.base,
        gate_branch=pull.base,
        pr=pull.number or None,
        run_link=job.run_link,
        policy_from=pull.base,
        **run_store_options(job, ctx.environ, ctx.config, token, ctx.log),
    )
    config, report = reviewed.config, reviewed.report
    env = next((e for e in config.environments if e.branch == pull.base), None)
    held = bool(report.verdicts and report.verdicts[0].held)
    if env is not None and not held and report.passed and token and not pull.fork and not dry_run:
        api = _write_api(job, {**ctx.environ, "GITHUB_TOKEN": token}, retries=1)
        report = with_approvers(report, api, env)
    markdown, path = _write_pull_request(ctx, job, pull, reviewed, report, env)
    verdict = None if env is None else ("pass" if report.passed else "fail")
    res = CiResult(
        "pull_request",
        "reported",
        f"report for #{pull.number} written to {path}",
        environment=env.name if env else None,
        verdict=verdict,
        fingerprint=reviewed.result.fingerprint,
        report_path=str(path),
        exit_code=ExitCode.GATE_FAILED if verdict == "fail" else ExitCode.OK,
        gates=_gates(report),
    )
    if stage == "train":
        ctx.log(f"not posting (--stage train): the report is in {path}; the publishing job posts it")
        return res
    why = (
        "--dry-run"
        if dry_run
        else "no token"
        if not token
        else "no repository"
        if not job.repository
        else "no PR"
        if not pull.number
        else None
    )
    if why is not None or not token:
        ctx.log(f"not posting ({why}); the comment would be:")
        out.write(markdown)
        if env:
            context = status_context(config, env.name)
            state = "success" if verdict == "pass" else "failure"
            ctx.log(
                f"and the status {context} on {pull.head_sha[:12]} would be {state}: "
                f"{report.verdicts[0].summary()}"
            )
        return res
    return _post(ctx, job, pull, config, report, env, markdown, path, token, api_factory, out, res)


def _the_pull_request(
    ctx: Context, payload: dict[str, Any] | None, base: str | None, pr: int | None
) -> _PullRequest | CiResult:
    """The pull request of the event's payload (or of a replay's --base and --pr); a
    skipped result for an action mlci has nothing to do for."""
    if payload is None:
        if base is None:
            raise ci_env.CiError(
                "replaying a pull request needs its base branch",
                hint="pass --base BRANCH (e.g. --base staging)",
            )
        return _PullRequest(pr or 0, base, gitrepo.rev_parse(ctx.cwd, "HEAD") or "", fork=False)
    action = payload.get("action")
    if action not in PR_ACTIONS:
        message = f"pull_request {action!r}: nothing for mlci to do"
        ctx.log(message)
        return CiResult("pull_request", "skipped", message)
    try:
        request = payload["pull_request"]
        return _PullRequest(
            int(payload.get("number") or request["number"]),
            base or request["base"]["ref"],
            request["head"]["sha"],
            _is_fork(request),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ci_env.CiError(
            f"the pull_request payload lacks {exc}", hint="pass a GitHub pull_request webhook payload"
        ) from None


def _write_pull_request(
    ctx: Context,
    job: ci_env.Context,
    pull: _PullRequest,
    reviewed: review.Review,
    report: rpt.Report,
    env: cfg.Environment | None,
) -> tuple[str, Path]:
    """Everything on disk before any network call, beside report.md and report.json: the
    head's predictions and data profiles (the trusted job judges them again) and
    pull_request.json (what it needs to post the report later: the fork-safe flow); and
    the step outputs."""
    from mlci import evidence
    from mlci.usecases import datasets

    config, result, log = reviewed.config, reviewed.result, ctx.log
    # What is posted is rendered by the base's template, read from git at the base.
    template = (
        review.base_template(ctx.config, reviewed.base_policy, pull.base)
        if reviewed.base_policy is not None
        else review.template_for(config)
    )
    markdown, path = _write_report(job, config, report, template)
    evidence.copy_for_report(ctx.tracking(config), result.run_id, result.tags, path.parent, log)
    profiles = path.parent / datasets.HEAD_PROFILES
    profiles.unlink(missing_ok=True)
    if report.data is not None:
        text = json.dumps(dict(report.data.profiles), separators=(",", ":"), sort_keys=True)
        profiles.write_text(text, encoding="utf-8")
    verdict = None if env is None else ("pass" if report.passed else "fail")
    ci_env.set_outputs(
        job,
        {
            "verdict": verdict or "none",
            "fingerprint": result.fingerprint,
            "report-path": str(path),
            "report-artifact": report_artifact(config.model.name),
            # The project's plots in the report: the job that uploads them runs only then.
            "plots": "true" if any(path.parent.glob("plot-*")) else "false",
            **bundle_outputs(config, result),
        },
    )
    meta = {
        "model": config.model.name,
        "number": pull.number,
        "head_sha": pull.head_sha,
        "environment": env.name if env else None,
        "verdict": verdict,
        "description": report.verdicts[0].summary() if env and report.verdicts else "",
        "run_link": job.run_link,
    }
    (path.parent / PULL_REQUEST_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return markdown, path


def _post(
    ctx: Context,
    job: ci_env.Context,
    pull: _PullRequest,
    config: cfg.Config,
    report: rpt.Report,
    env: cfg.Environment | None,
    markdown: str,
    path: Path,
    token: str,
    api_factory: Callable[..., Any] | None,
    out: IO[str],
    res: CiResult,
) -> CiResult:
    """The sticky comment, and the status ``mlci/<env>`` on the head; a read-only token
    (a fork's) leaves the report in the job summary, with a warning."""
    from mlci import github_api

    assert job.repository is not None  # checked before: no repository, nothing is posted
    factory = api_factory or github_api.GitHubApi
    api = factory(
        token,
        job.api_url,
        job.repository,
        **github_api.retry_settings(ctx.environ),
        fork=pull.fork,
    )
    try:
        comment = api.upsert_comment(pull.number, markdown, report.marker)
        res.comment = {"action": comment.action, "id": comment.comment_id, "url": comment.url}
        ctx.log(f"{comment.action} the comment on #{pull.number}: {comment.url}")
        if env:
            context = status_context(config, env.name)
            state = "success" if report.passed else "failure"
            api.set_status(pull.head_sha, context, state, report.verdicts[0].summary(), job.run_link)
            res.statuses.append({"context": context, "state": state, "sha": pull.head_sha})
            ctx.log(f"status {context} on {pull.head_sha[:12]}: {state}")
        res.posted = True
    except github_api.GitHubForbidden as exc:
        res.degraded = True
        ci_env.annotate(
            out, "warning", f"{exc.message}. The report is in the job summary and in {path}.", job.in_actions
        )
    return res


def _push(
    ctx: Context,
    job: ci_env.Context,
    payload: dict[str, Any] | None,
    branch: str | None,
    dry_run: bool,
    out: IO[str],
    stage: str = "all",
) -> CiResult:
    """The steps: the branch pushed to (an environment's, or nothing to do), the head
    reviewed (trained once, judged by the pushed commit's policy, the report on disk),
    the reasons not to move the environment (a failed gate, a newer commit there), the
    version registered, and then either promoted or handed to the deploy job."""
    env = _the_environment(ctx, job, payload, branch)
    if isinstance(env, CiResult):
        return env
    if stage in ("deploy", "assign", "restore"):
        return _hook_stage(ctx, env, job, stage)
    expect_client()  # a model that passes is registered: MLflow loads while it trains
    config, environ, log = ctx.config, ctx.environ, ctx.log
    reviewed = review.gather(
        ctx,
        base=None,
        environments=[env.name],
        gate_environments=[env.name],
        run_link=job.run_link,
        head_label=env.branch,
        allow_training=stage != "publish",
        policy_from=None,  # the pushed commit's own policy
        **run_store_options(job, environ, config, environ.get("GITHUB_TOKEN"), log),
    )
    report, result = reviewed.report, reviewed.result
    _, path = _write_report(job, config, report, review.template_for(config))  # the merged branch's
    ci_env.set_outputs(job, bundle_outputs(config, result))
    res = CiResult(
        "push",
        "blocked",
        "",
        environment=env.name,
        fingerprint=result.fingerprint,
        report_path=str(path),
        gates=_gates(report),
        verdict="pass" if report.passed else "fail",
    )
    stopped = _not_promoted(ctx, job, env, report, res, stage, dry_run)
    if stopped is not None:
        return stopped
    from mlci.usecases import registration

    registered = registration.register(ctx, bump="patch", version=None, push=None)
    api = _write_api(job, environ)
    if stage == "publish" and env.deploy is not None:
        return _hand_to_deploy_job(ctx, job, env, registered, api, res)
    return _promote(ctx, job, env, registered, api, res, out)


def _the_environment(
    ctx: Context, job: ci_env.Context, payload: dict[str, Any] | None, branch: str | None
) -> cfg.Environment | CiResult:
    """The environment whose branch was pushed to; a skipped result for any other ref."""
    ref = (payload or {}).get("ref") or (f"refs/heads/{branch}" if branch else job.ref)
    if not ref:
        raise ci_env.CiError(
            "replaying a push needs its branch", hint="pass --branch BRANCH (e.g. --branch staging)"
        )
    if not ref.startswith("refs/heads/"):
        message = f"push of {ref}: not a branch, nothing for mlci to do"
        ctx.log(message)
        return CiResult("push", "skipped", message)
    name = ref.removeprefix("refs/heads/")
    env = next((e for e in ctx.config.environments if e.branch == name), None)
    if env is None:
        message = f"push to {name!r}: not an environment branch, nothing for mlci to do"
        ctx.log(message)
        return CiResult("push", "skipped", message)
    return env


def _not_promoted(
    ctx: Context,
    job: ci_env.Context,
    env: cfg.Environment,
    report: rpt.Report,
    res: CiResult,
    stage: str,
    dry_run: bool,
) -> CiResult | None:
    """``res`` when the push stops before registering: its verdict failed, this job only
    trains (``--stage train``), the environment holds a newer commit's model, or
    ``--dry-run``; None when it goes on."""
    fingerprint = res.fingerprint or ""
    if not report.passed:
        res.message = f"{env.name}: blocked by its gates: {report.verdicts[0].summary()}"
        res.exit_code = ExitCode.GATE_FAILED
        ctx.log(res.message)
        ci_env.set_outputs(job, {"verdict": "fail", "fingerprint": fingerprint, "version": ""})
        return res
    if stage == "train":
        res.outcome = "trained"
        res.message = f"{env.name}: the gates pass; the publishing job registers and promotes"
        ctx.log(res.message)
        hook = "true" if env.deploy is not None else "false"
        ci_env.set_outputs(job, {"verdict": "pass", "fingerprint": fingerprint, "deploy-hook": hook})
        return res
    newer = _newer_in(ctx.config, env.name)
    if newer is not None:
        res.outcome = "skipped"
        res.message = (
            f"{env.name} already holds {newer.version} from a newer commit ({newer.commit[:12]}); "
            "this older push does not move it back"
        )
        ctx.log(res.message)
        return res
    if dry_run:
        res.outcome = "reported"
        res.message = f"--dry-run: would register these inputs and promote them to {env.name}"
        ctx.log(res.message)
        return res
    return None


def _hand_to_deploy_job(
    ctx: Context, job: ci_env.Context, env: cfg.Environment, registered: Any, api: Any, res: CiResult
) -> CiResult:
    """A hook is the repository's code: the deploy job runs it, without this job's token.
    This job checks the version's bytes exist with their digest and opens the deployment."""
    from mlci import deploy, models

    config, log = ctx.config, ctx.log
    notifier = deploy.GitHubDeployments(api, env.name, job.run_link, log) if api is not None else None
    model_state = registry.read_state(gitrepo.toplevel(config.root) or config.root).get(config.model.name)
    assert model_state is not None
    target = models.version_of(config.model.name, model_state.versions[registered.version])
    models.resolve_for_promotion(config, ctx.environ, target, log, ctx.tracking())  # its bytes, its digest
    if notifier is not None:
        notifier.started(target, registered.commit)
    res.outcome = "registered"
    res.version = registered.version
    res.message = (
        f"registered {registered.version}; the deploy job deploys it, then it is tagged into {env.name}"
    )
    log(res.message)
    ci_env.set_outputs(
        job,
        {
            "verdict": "pass",
            "version": registered.version,
            "deploy-hook": "true",
            "deployment-id": str(notifier.id) if notifier is not None and notifier.id else "",
            "model-sha256": registered.model_sha256 or "",
        },
    )
    return res


def _promote(
    ctx: Context,
    job: ci_env.Context,
    env: cfg.Environment,
    registered: Any,
    api: Any,
    res: CiResult,
    out: IO[str],
) -> CiResult:
    """The registered version assigned to the environment (``promotion.assign``: its gates
    again, on the version, and its deploy hook), and ``mlci-promoted`` sent."""
    from mlci import deploy
    from mlci.usecases import promotion

    config, log = ctx.config, ctx.log
    promoted = promotion.assign(
        ctx,
        environment=env.name,
        version=registered.version,
        push=None,
        automatic=True,
        notify=deploy.GitHubDeployments(api, env.name, job.run_link, log) if api is not None else None,
    )
    res.version = registered.version
    res.model_sha256 = promoted.model_sha256 or registered.model_sha256
    if promoted.held:
        res.outcome = "held"
        res.message = f"{config.model.name} {registered.version} not promoted: {promoted.blocked}"
        log(res.message)
        ci_env.annotate(out, "notice", res.message, job.in_actions)
    elif promoted.blocked:
        res.message = f"{env.name}: {registered.version} blocked: {promoted.blocked}"
        res.exit_code = ExitCode.GATE_FAILED
        res.verdict = "fail"
        log(res.message)
    else:
        res.outcome = "promoted"
        state = "promoted to" if promoted.changed else "already in"
        res.message = f"{config.model.name} {registered.version} {state} {env.name}"
        log(res.message)
        if promoted.changed and api is not None:
            _dispatch_promoted(api, config, env.name, registered.tag, registered.commit, promoted, log)
    ci_env.set_outputs(
        job,
        {
            "verdict": res.verdict or "",
            "fingerprint": res.fingerprint or "",
            "version": registered.version,
            "model-sha256": res.model_sha256 or "",
        },
    )
    return res


STAGES = ("all", "train", "publish", "deploy", "assign", "restore")
PROMOTED_EVENT = "mlci-promoted"


def _hook_stage(ctx: Context, env: cfg.Environment, job: ci_env.Context, stage: str) -> CiResult:
    """The deploy, assign and restore stages of a promotion with a hook (mlci.usecases.deployment)."""
    from mlci.usecases import deployment

    environ, log = ctx.environ, ctx.log
    if env.deploy is None:
        message = f"{env.name} has no deploy hook: --stage {stage} has nothing to do"
        log(message)
        return CiResult("push", "skipped", message, environment=env.name)
    if stage == "deploy":
        found = deployment.deploy_stage(ctx, env, job)
    elif stage == "restore":
        found = deployment.restore_stage(ctx, env)
    else:
        return _assign_stage(ctx, env, job)
    return CiResult(
        "push",
        found["outcome"],
        found["message"],
        environment=env.name,
        version=environ.get("MLCI_VERSION") or None,
        exit_code=deployment.exit_code(found),
    )


def _assign_stage(ctx: Context, env: cfg.Environment, job: ci_env.Context) -> CiResult:
    """After the deploy job: tag what it deployed, or mark the deployment failed."""
    config, environ, log = ctx.config, ctx.environ, ctx.log
    from mlci import deploy
    from mlci.usecases import deployment, promotion

    version = deployment.version_from(environ)

    def blocked(message: str) -> CiResult:
        return CiResult(
            "push",
            "blocked",
            message,
            environment=env.name,
            version=version,
            verdict="fail",
            exit_code=ExitCode.GATE_FAILED,
        )

    api = _write_api(job, environ)
    raw_id = environ.get("MLCI_DEPLOYMENT_ID", "")
    notifier = (
        deploy.GitHubDeployments(
            api, env.name, job.run_link, log, existing=int(raw_id) if raw_id.isdigit() else None
        )
        if api is not None
        else None
    )
    if environ.get("MLCI_DEPLOYED") != "true":
        why = environ.get("MLCI_DEPLOY_MESSAGE") or "the deploy job did not deploy it"
        if notifier is not None:
            notifier.finished(False, why)
        message = f"{config.model.name} {version} not promoted to {env.name}: {why}"
        log(message)
        return blocked(message)
    url = environ.get("MLCI_ENVIRONMENT_URL") or None
    done = deploy.Deployed(env.name, version, (deploy.Step("deploy", "the deploy job", 0, 0.0, ""),), url)
    try:
        promoted = promotion.assign(
            ctx,
            environment=env.name,
            version=version,
            push=None,
            automatic=True,
            notify=notifier,
            predeployed=done,
        )
    except MlciError:
        ci_env.set_outputs(job, {"restore": "true"})
        raise
    if promoted.blocked:
        message = f"{env.name}: {version} blocked: {promoted.blocked}"
        log(message)
        ci_env.set_outputs(job, {"restore": "true"})
        return blocked(message)
    message = f"{config.model.name} {version} promoted to {env.name}"
    log(message)
    if promoted.changed and api is not None:
        state = registry.read_state(gitrepo.toplevel(config.root) or config.root).get(config.model.name)
        registered_as = state.versions[version] if state else None
        if registered_as is not None:
            _dispatch_promoted(api, config, env.name, registered_as.tag, registered_as.commit, promoted, log)
    ci_env.set_outputs(job, {"version": version, "model-sha256": promoted.model_sha256 or "", "restore": ""})
    return CiResult(
        "push",
        "promoted",
        message,
        environment=env.name,
        version=version,
        verdict="pass",
        model_sha256=promoted.model_sha256,
    )


def _gates(report: rpt.Report) -> dict[str, Any] | None:
    """The gated environment's verdict, as ``mlci gate --json`` gives it."""
    if not report.verdicts:
        return None
    verdict = report.verdicts[0]
    return verdict.to_json()


def _write_api(job: ci_env.Context, environ: Mapping[str, str], retries: int | None = None) -> Any:
    """The GitHub API for a promotion's deployment and dispatch: in Actions, with a token."""
    token = environ.get("GITHUB_TOKEN")
    if not (job.in_actions and token and job.repository):
        return None
    from mlci import github_api

    settings = github_api.retry_settings(environ)
    if retries is not None:
        settings["retries"] = retries
    return github_api.GitHubApi(token, job.api_url, job.repository, **settings)


def with_approvers(report: rpt.Report, api: Any, env: cfg.Environment) -> rpt.Report:
    """When the gate passes, who is to approve the merge's promotion: the required
    reviewers of the GitHub Environment the promoting job runs in (named after the
    branch). Nothing when it has none, or the token cannot read it."""
    if api is None:
        return report
    approvers = api.environment_reviewers(env.branch)
    if not approvers:
        return report
    note = (
        f"merging promotes only once {', '.join(approvers)} approve{'s' if len(approvers) == 1 else ''} "
        f"the deployment (required reviewers of the GitHub environment {env.branch})"
    )
    return dataclasses.replace(report, notes=(*report.notes, note))


def _dispatch_promoted(
    api: Any,
    config: cfg.Config,
    environment: str,
    tag: str,
    commit: str,
    promoted: Any,
    log: Callable[[str], None],
) -> None:
    """``mlci-promoted``: tags pushed with the Actions token start no workflow, a
    repository_dispatch does (a listener serves the model with ``mlci pull``)."""
    from mlci import github_api

    payload = {
        "model": config.model.name,
        "version": promoted.version,
        "environment": environment,
        "tag": tag,
        "commit": commit,
        "sha256": promoted.model_sha256,
        "environment_url": (promoted.deployed or {}).get("url"),
    }
    try:
        api.dispatch(PROMOTED_EVENT, payload)
    except github_api.GitHubError as exc:
        log(f"warning: {exc.message.splitlines()[0]} (hint: {exc.hint})")
        return
    log(f"sent {PROMOTED_EVENT}: {config.model.name} {promoted.version} in {environment}")


def _newer_in(config: cfg.Config, environment: str) -> tags.Event | None:
    """The environment's assignment, if it is of a commit that descends from HEAD:
    pushes can finish out of order, and the later commit's model must stay."""
    root = gitrepo.toplevel(config.root)
    head = gitrepo.rev_parse(root, "HEAD") if root else None
    state = registry.read_state(root).get(config.model.name) if root else None
    current = state.current(environment) if state else None
    if root is None or head is None or current is None or current.commit == head:
        return None
    return current if gitrepo.is_ancestor(root, head, current.commit) else None


def _is_fork(request: Mapping[str, Any]) -> bool:
    """A pull request from another repository: GitHub gives its workflow a read-only token."""
    head = (request.get("head") or {}).get("repo") or {}
    base = (request.get("base") or {}).get("repo") or {}
    if head.get("fork") is True:
        return True
    return bool(head.get("full_name")) and head.get("full_name") != base.get("full_name")


def status_context(config: cfg.Config, environment: str) -> str:
    """The commit status branch protection requires: ``mlci/<env>`` for the model at
    the repository's root, ``mlci/<model>/<env>`` for one in a folder, so that two
    models in one repository never overwrite each other's status."""
    root = gitrepo.toplevel(config.root)
    at_root = root is None or config.root.resolve() == root.resolve()
    return f"mlci/{environment}" if at_root else f"mlci/{config.model.name}/{environment}"


def report_artifact(model: str) -> str:
    """The fork-safe flow's artifact name: one per model (GitHub's names hold no '/')."""
    return f"mlci-report-{model.replace('/', '--')}"


def run_store_options(
    job: ci_env.Context,
    environ: Mapping[str, str],
    config: cfg.Config,
    token: str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """In GitHub Actions: find runs in workflow artifacts, and bundle a run
    trained here for the upload step (the run cache across branches)."""
    if not job.in_actions:
        return {}
    from mlci.stores import github as gh_store

    sources = []
    if token:
        source = gh_store.run_artifacts({**environ, "GITHUB_TOKEN": token}, config.root, log)
        if source is not None:
            sources.append(source)
    return {"run_sources": sources, "write_bundle": True}


def bundle_outputs(config: cfg.Config, result: Any) -> dict[str, str]:
    """What the workflow's upload step needs: set only when this job trained."""
    from mlci.stores import bundle

    if not getattr(result, "bundle", None):
        return {"run-bundle": "", "run-artifact": ""}
    return {
        "run-bundle": str(result.bundle),
        "run-artifact": bundle.artifact_name(config.model.name, result.fingerprint),
    }


def error_summary(environ: Mapping[str, str], error: MlciError) -> None:
    """In Actions, an error also lands in the job summary and as an annotation."""
    job = ci_env.context(environ)
    if not job.in_actions:
        return
    ci_env.append_summary(job, f"### ❌ mlci failed\n\n```\n{error.message}\n```\n\n{error.hint or ''}\n")
    ci_env.annotate(sys.stdout, "error", error.message, True)
