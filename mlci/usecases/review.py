"""``mlci diff``, ``mlci gate`` and ``mlci report``: the head run against its baselines."""

from __future__ import annotations

import dataclasses
import posixpath
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlci import config as cfg
from mlci import gitrepo, policy, project, registry, render, tags
from mlci import report as rpt
from mlci.errors import ConfigError, MlciError
from mlci.usecases import baselines, training

if TYPE_CHECKING:
    from mlci.context import Context
    from mlci.evidence import Certainty


AUTO = "auto"  # gather's policy_from: the branch a pull request from here would merge into


@dataclass(frozen=True)
class Review:
    """A head judged: the report, the head's run, the config that judged it (the base's
    policy applied), and the base's own config where the policy came from a base."""

    report: rpt.Report
    result: training.TrainResult
    config: cfg.Config
    base_policy: cfg.Config | None


def gather(
    ctx: Context,
    *,
    base: str | None,
    environments: Sequence[str] = (),
    gate_environments: Sequence[str] | None = None,
    gate_branch: str | None = None,
    pr: int | None = None,
    run_link: str | None = None,
    head_label: str | None = None,
    run_sources: Sequence[training.RunSource] = (),
    write_bundle: bool = False,
    policy_from: str | None = AUTO,
    notes: Sequence[str] = (),
    allow_training: bool = True,
) -> Review:
    """Train (or reuse) the head run, find its baselines, and judge it (``mlci.verdict``).

    The policy (gates, ``requires``, goals, data checks) is the one on ``policy_from``,
    read from git: CI passes a pull request's base branch, a push None (the pushed
    commit's own). ``AUTO``, on a laptop: ``base``, else the branch of the one
    environment asked about, unless HEAD is that branch: the policy CI would judge a
    pull request into it by. Inputs that are a registered version already are judged by
    the metrics its tag records: nothing is trained or downloaded for them.
    ``gate_branch``: gate the environment of that branch (by the policy that judges)."""
    resolved = ctx.resolve()
    policy_branch = (
        _policy_branch(resolved.config, base, gate_environments, environments)
        if policy_from == AUTO
        else policy_from
    )
    config, base_policy, found = _policy(ctx, resolved, policy_branch)
    gated = _gated(ctx, config, environments, gate_environments, gate_branch)
    root = gitrepo.toplevel(config.root)
    state = registry.read_state(root).get(config.model.name) if root else None
    data = _check_data(ctx, config, state, gated) if config.data else None
    result = _registered_head(resolved, state, ctx.log)
    if result is None and data is not None and not data.trained:
        result = _untrained(resolved)
    if result is None:
        result = training.train(
            resolved,
            ctx,
            use_cache=True,
            pr_number=pr,
            command_stdout=sys.stderr,
            run_sources=run_sources,
            write_bundle=write_bundle,
            allow_training=allow_training,
            data_checked=data.checked if data is not None else None,
        )
    head_info = gitrepo.head_info(config.root)
    head = rpt.Head(
        run_id=result.run_id,
        fingerprint=result.fingerprint,
        commit=result.git_commit,
        branch=head_info.branch if head_info else None,
        metrics=result.metrics,
        params=result.params,
        cached=result.cached,
        run_url=result.run_url,
        label=head_label or (f"PR #{pr}" if pr else "this change"),
    )
    asked = list(environments) or list(config.baselines)
    against = _baselines(ctx, config, state, [*asked, *(e for e in gated if e not in asked)], base)
    report = rpt.build(
        config,
        head,
        against,
        gate_environments=gated,
        history=baselines.history(state, config.key_metric),
        pr=pr,
        run_link=run_link,
        certainty=_certainty(ctx, config, result, state),
        state=state,
        data=data,
        notes=[*notes, *found],
    )
    report = dataclasses.replace(
        report,
        # The gated environments' models judge; the table shows the ones asked for.
        comparisons=tuple(
            c for c in report.comparisons if c.baseline.key in asked or c.baseline.key == "base"
        ),
        policy_from=policy_branch if base_policy is not None else None,
        policy_changes=tuple(policy.diff(base_policy, resolved.config)),
    )
    if config.report.plots or any(c.baseline.plots for c in report.comparisons):
        from mlci.usecases import figures

        shown = figures.beside_report(
            ctx.tracking(config),
            config.root / ".mlci",
            (head.label, result.run_id, result.tags),
            [c.baseline for c in report.comparisons],
            ctx.log,
        )
        report = dataclasses.replace(report, figures=tuple(shown))
    return Review(report, result, config, base_policy)


def _policy(
    ctx: Context, resolved: project.Resolved, branch: str | None
) -> tuple[cfg.Config, cfg.Config | None, list[str]]:
    """The config that judges: this checkout's training settings, the policy (gates,
    ``requires``, goals, data checks) of ``branch``'s mlci.yaml where it has one. Also
    that base config, and the notes on where the policy came from."""
    base_policy, notes = (None, []) if branch is None else load_base_policy(resolved.config, branch, ctx.log)
    return policy.judged_by(resolved.config, base_policy), base_policy, notes


def _gated(
    ctx: Context,
    config: cfg.Config,
    environments: Sequence[str],
    gate_environments: Sequence[str] | None,
    gate_branch: str | None,
) -> list[str]:
    """The environments judged: the one ``gate_branch`` promotes to (a pull request into
    it), else ``gate_environments``, else the ones asked about, else every one. Unknown
    names fail here, with the known ones listed."""
    for env in environments:
        config.environment(env)
    if gate_branch is not None:
        gate_environments = [e.name for e in config.environments if e.branch == gate_branch][:1]
        if not gate_environments:
            ctx.log(f"{gate_branch!r} is not an environment branch: reporting without gates")
    gated = (
        list(gate_environments)
        if gate_environments is not None
        else list(environments) or [e.name for e in config.environments]
    )
    for env in gated:
        config.environment(env)
    return gated


def _baselines(
    ctx: Context, config: cfg.Config, state: tags.ModelState | None, keys: Sequence[str], base: str | None
) -> list[rpt.Baseline]:
    """The model each of ``keys`` names (an environment's, or ``base``'s), and ``base``'s
    where it is given."""
    keys = [*keys, *(["base"] if base is not None and "base" not in keys else [])]
    against: list[rpt.Baseline] = []
    for key in keys:
        if key != cfg.BASE_BASELINE:
            against.append(baselines.env_baseline(state, key))
        elif gitrepo.toplevel(config.root) is None:
            against.append(rpt.Baseline("base", "base", found=False, note="not a git repository"))
        else:
            ref = base or (config.environments[0].branch if config.environments else "main")
            against.append(baselines.base_baseline(config, ref, ctx.tracking(config), state, ctx.log))
    return against


def _policy_branch(
    config: cfg.Config,
    base: str | None,
    gate_environments: Sequence[str] | None,
    environments: Sequence[str],
) -> str | None:
    """The branch whose policy judges a laptop's verdict as CI would (``gather``'s AUTO)."""
    if base is not None:
        branch = base
    else:
        named = list(gate_environments) if gate_environments is not None else list(environments)
        if len(named) != 1:
            return None
        branch = config.environment(named[0]).branch
    root = gitrepo.toplevel(config.root)
    if root is None:
        return None
    head = gitrepo.rev_parse(root, "HEAD")
    at_branch = head is not None and any(gitrepo.rev_parse(root, ref) == head for ref in _base_refs(branch))
    return None if at_branch else branch


def _check_data(ctx: Context, config: cfg.Config, state: tags.ModelState | None, gated: Sequence[str]) -> Any:
    """The declared datasets, checked, and against each environment's model's data: the
    data first, so data no gated environment takes trains nothing."""
    from mlci import verdict
    from mlci.usecases import datasets

    checked = datasets.check_all(config, ctx.log, ctx.tracking(config))
    if datasets.failed(checked):
        return verdict.Data(checked, {}, trained=False)
    comparisons = datasets.comparisons(ctx, config, checked, state)
    drifted = [env for env in gated if any(d.problems for d in comparisons.get(env, []))]
    return verdict.Data(checked, comparisons, trained=not (gated and drifted == list(gated)))


def _certainty(
    ctx: Context, config: cfg.Config, result: Any, state: tags.ModelState | None
) -> Certainty | None:
    """Where a report's intervals come from (``evidence.Certainty``): the head run's
    predictions (or, for inputs that are a registered version, the version's), and each
    baseline's: a version's where it kept them, else its run's in the tracking store.
    None when the head has none (then every rule is a point rule, said once where a
    rule asks)."""
    from mlci import evidence, stats
    from mlci.tracking import PREDICTIONS_TAG, REPEATS_TAG

    environ, log, tracking = ctx.environ, ctx.log, ctx.tracking(config)

    def of_version(name: str | None) -> evidence.Source | None:
        return evidence.for_named_version(config, environ, state, name, tracking, log)

    if result.tags.get(PREDICTIONS_TAG) or result.tags.get(REPEATS_TAG):
        head = evidence.for_run(tracking, result.run_id, result.tags, log)
    else:
        head = of_version(state.version_of_fingerprint(result.fingerprint) if state else None)
    if head is None:
        if config.interval_confidence is not None:
            log(
                "gates with a confidence are judged on point values: "
                "the run has no predictions (train.predictions) and no repeats (train.repeats)"
            )
        return None

    def base_of(baseline: rpt.Baseline) -> evidence.Source | None:
        if baseline.version is not None:
            return of_version(baseline.version)
        run_id = str(baseline.run_id)  # Certainty asks only for baselines with a run or a version
        try:
            tags = tracking.get_run(run_id).tags
        except MlciError as exc:
            log(f"no paired intervals against {baseline.label}: {exc.message.splitlines()[0]}")
            return None
        return evidence.for_run(tracking, run_id, tags, log)

    return evidence.Certainty(head, config.interval_confidence or stats.DEFAULT_CONFIDENCE, base_of)


def _untrained(resolved: project.Resolved) -> training.TrainResult:
    """The head when its data fails its checks: nothing trained, no metrics."""
    head = gitrepo.head_info(resolved.config.root)
    return training.TrainResult(
        run_id="",
        experiment_id="",
        fingerprint=resolved.fingerprint.digest,
        cached=False,
        metrics={},
        params=resolved.params,
        git_commit=head.commit if head else None,
        run_git_commit=None,
        tracking_uri="",
        run_url=None,
    )


def _base_refs(base: str) -> tuple[str, str]:
    """Where the base branch is read from: origin's copy of it (CI), then the branch."""
    return f"{registry.REMOTE}/{base}", base


def load_base_policy(
    head: cfg.Config, base: str, log: Callable[[str], None]
) -> tuple[cfg.Config | None, list[str]]:
    """The policy on the branch the pull request merges into: its mlci.yaml at the
    same path, read from git (the branch, or origin's copy of it in CI)."""
    root = gitrepo.toplevel(head.root)
    if root is None:
        return None, []
    relative = head.path.resolve().relative_to(root.resolve()).as_posix()
    for ref in _base_refs(base):
        text = gitrepo.show_file(root, ref, relative)
        if text is not None:
            break
    else:
        note = f"{base} has no {relative} yet: this pull request's own policy judges it"
        log(note)
        return None, [note]
    try:
        found = cfg.parse(text, head.path)
    except ConfigError as exc:
        first = exc.message.splitlines()[0]
        note = f"{relative} on {base} is not valid ({first}): this pull request's own policy judges it"
        log(f"warning: {note}")
        return None, [note]
    log(f"the policy (gates, requires, goals) comes from {relative} on {base}")
    return found, []


def _registered_head(
    resolved: project.Resolved, state: tags.ModelState | None, log: Callable[[str], None]
) -> training.TrainResult | None:
    """The head as the registered version with the same fingerprint, if there is one."""
    digest = resolved.fingerprint.digest
    version = state.version_of_fingerprint(digest) if state else None
    if state is None or version is None:
        return None
    event = state.versions[version]
    meta = event.metadata
    metrics = tags.recorded_metrics(meta)
    if not metrics:
        return None  # a tag without metrics (another tool's): the run cache decides
    log(f"these inputs are {state.name} {version} ({event.tag}): judged by its recorded metrics, no training")
    return training.TrainResult(
        run_id=str(meta.get("mlflow_run_id") or ""),
        experiment_id="",
        fingerprint=digest,
        cached=True,
        metrics=metrics,
        params=resolved.params,
        git_commit=event.commit,
        run_git_commit=str(meta.get("run_commit") or event.commit),
        tracking_uri="",
        run_url=None,
        model_sha256=str(meta.get("model_sha256") or "") or None,
        restored_from=f"version {event.tag}",
    )


def template_for(config: cfg.Config) -> render.TemplateSource | None:
    """``report.template`` from the work tree (None: mlci's own)."""
    if config.report.template is None:
        return None
    path = config.root / config.report.template
    if not path.is_file() and not path.is_symlink():
        raise ConfigError(
            f"report.template {config.report.template!r} in {config.path.name}: no such file {path}",
            hint="fix the path (relative to mlci.yaml) or remove the key to use the built-in template",
        )
    return render.files_template(path)


def base_template(
    head: cfg.Config, base_policy: cfg.Config | None, base: str
) -> render.TemplateSource | None:
    """The template that renders what is posted for a pull request into ``base``: the base
    branch's ``report.template``, read from git at the base (never the pull request's
    files, whatever its checkout holds), or mlci's own when the base names none."""
    if base_policy is None or base_policy.report.template is None:
        return None
    root = gitrepo.toplevel(head.root)
    if root is None:
        return None
    folder = head.path.resolve().parent.relative_to(root.resolve()).as_posix()
    start = posixpath.normpath(posixpath.join(folder, base_policy.report.template))
    ref = next((r for r in _base_refs(base) if gitrepo.rev_parse(root, r)), None)
    if ref is None:
        return None
    here = posixpath.dirname(start)
    read_already: dict[str, str | None] = {}  # the template is read once to check it, once to render

    def read(name: str) -> str | None:
        if not render.template_name_ok(name):
            return None
        if name in read_already:
            return read_already[name]
        try:
            read_already[name] = gitrepo.regular_blob(
                root, ref, posixpath.join(here, name) if here else name, limit=render.MAX_TEMPLATE
            )
            return read_already[name]
        except gitrepo.BlobRefused as exc:
            raise ConfigError(
                f"report template: {exc}, which mlci does not read",
                hint=f"make it a regular text file of at most {render.MAX_TEMPLATE} bytes on {base}",
            ) from None

    where = f"{ref}:{start}"
    if read(posixpath.basename(start)) is None:
        raise ConfigError(
            f"report.template {base_policy.report.template!r} of mlci.yaml on {base}: no such file {where}",
            hint=f"commit the template to {base}, or remove the key to use the built-in template",
        )
    return render.TemplateSource(posixpath.basename(start), read, where)
