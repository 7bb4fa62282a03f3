"""``mlci publish``: post the report of an untrusted job (the fork-safe flow).

The artifact comes from a job that ran a fork's code, so it is data, and only
the data a fork controls anyway: the metrics and params its training produced.
Everything that judges them comes from elsewhere: the pull request (its head
commit, which must be the one the trusted event names, and its base branch)
from GitHub's API, the policy (gates, ``requires``, goals) from ``mlci.yaml``
on that base branch, the baselines from the registry's tags, all in this
trusted checkout. mlci recomputes the verdict and renders the comment from
that data with its own template: no markdown, verdict or environment from the
artifact is ever posted, and nothing from it is run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlci import ci_env, gitrepo, policy, registry, safeinput, tags, verdict
from mlci import config as cfg
from mlci import report as rpt
from mlci.config import MODEL_NAME_RE
from mlci.metrics import MAX_METRICS
from mlci.usecases import baselines, review
from mlci.usecases.ci import PULL_REQUEST_FILE, report_artifact, status_context

if TYPE_CHECKING:
    from mlci.context import Context
    from mlci.evidence import Certainty

REPORT_FILE = "report.json"
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_MAX_NAMES = 1000


def _bad(what: str) -> ci_env.CiError:
    return ci_env.CiError(f"the report artifact is not trustworthy: {what}", hint="nothing was posted")


_MAX_FILE = 4 * 1024 * 1024


def _read(path: Path) -> Any:
    """One file of the artifact: no symbolic link, a regular file, bounded, strict JSON."""
    try:
        return safeinput.load_json(safeinput.read_text(path, limit=_MAX_FILE, what=path.name, follow=False))
    except safeinput.BadInput as exc:
        raise _bad(f"{exc.where(path.name)}: {exc.problem}") from None


def _load(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        meta = _read(folder / PULL_REQUEST_FILE)
        data = _read(folder / REPORT_FILE)
    except FileNotFoundError as exc:
        raise ci_env.CiError(
            f"{exc.filename} is missing from the report folder {folder}",
            hint="download the artifact the pull request job uploaded (mlci-report)",
        ) from None
    except (OSError, ValueError) as exc:
        raise ci_env.CiError(f"the report in {folder} is unreadable: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(data, dict):
        raise _bad("its files are not JSON objects")
    return meta, data


def _folder_for(folder: Path, model: str) -> Path:
    """The report folder itself, or among its subfolders (one artifact per model,
    as download-artifact lays them out) the one for ``model``."""
    if (folder / PULL_REQUEST_FILE).is_file() or not folder.is_dir():
        return folder
    name = report_artifact(model)
    if (folder / name).is_symlink():
        raise _bad(f"{name} is a symbolic link")
    if (folder / name / PULL_REQUEST_FILE).is_file():
        return folder / name
    raise ci_env.CiError(
        f"no report for model {model!r} in {folder} (looked for {name}/{PULL_REQUEST_FILE})",
        hint="the pull request job uploads one artifact per model, mlci-report-<model>; "
        "download them with `pattern: mlci-report-*`",
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _head(meta: dict[str, Any], data: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """What the artifact may tell: the model, the pull request number, and the head's
    fingerprint, metrics and params, each checked as data."""
    model, number = meta.get("model"), meta.get("number")
    if not isinstance(model, str) or not MODEL_NAME_RE.match(model):
        raise _bad(f"model {model!r}")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise _bad(f"pull request number {number!r}")
    head = data.get("head")
    if not isinstance(head, dict):
        raise _bad("report.json has no head")
    metrics, params = head.get("metrics"), head.get("params")
    if not isinstance(metrics, dict):
        raise _bad("the head's metrics are not a mapping")
    if len(metrics) > MAX_METRICS:
        raise _bad(f"the head has {len(metrics):,} metrics, more than a run records ({MAX_METRICS:,})")
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        number_value = _number(value)
        if not isinstance(name, str) or not name or number_value is None:
            raise _bad(f"metric {str(name)[:50]!r} is not a finite number by name")
        clean[name] = number_value
    if not isinstance(params, dict):
        raise _bad("the head's params are not a mapping")
    if len(params) > _MAX_NAMES:
        raise _bad(f"the head has {len(params):,} params, more than mlci reports ({_MAX_NAMES:,})")
    fingerprint = head.get("fingerprint")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise _bad(f"fingerprint {str(fingerprint)[:70]!r}")
    run_id = head.get("run_id")
    return (
        model,
        number,
        {
            "metrics": clean,
            "params": {str(k): v if isinstance(v, str) else json.dumps(v)[:500] for k, v in params.items()},
            "fingerprint": fingerprint,
            "run_id": run_id if isinstance(run_id, str) and len(run_id) <= 64 else None,
            "repeats": head.get("repeats"),  # checked as data where it is used (evidence.repeats_from)
        },
    )


def _certainty(
    ctx: Context,
    config: cfg.Config,
    folder: Path,
    metrics: Mapping[str, float],
    repeats: object,
    state: tags.ModelState | None,
) -> Certainty | None:
    """Intervals from the head's repeats the report records (each metric per seed, counted
    only where their mean is the report's own value), else from the predictions it
    carries (the training job put them there), so rules with a confidence are judged as
    the training job judged them, and the table shows the head's intervals; each
    environment's version's repeats or predictions (from its tag, or where it kept
    them: its release) give the differences."""
    from mlci import evidence, stats

    environ, log = ctx.environ, ctx.log
    head: evidence.Source | None = evidence.repeats_from(repeats, metrics) if repeats else None
    if head is None:
        head = evidence.from_report(folder, metrics, log)
    if head is None:
        return None
    tracking = ctx.tracking(config)

    def base_of(baseline: rpt.Baseline) -> evidence.Source | None:
        return evidence.for_named_version(config, environ, state, baseline.version, tracking, log)

    return evidence.Certainty(head, config.interval_confidence or stats.DEFAULT_CONFIDENCE, base_of)


def _data(
    ctx: Context,
    config: cfg.Config,
    folder: Path,
    state: tags.ModelState | None,
    notes: list[str],
    trained: bool,
) -> verdict.Data:
    """The base's data checks, judged on the profiles the pull request's run recorded
    (data, read as data: this job never reads the fork's files), and each profile against
    each environment's model's. What a profile cannot decide is said in a note; a
    declared dataset with no profile fails."""
    from mlci.usecases import datasets

    path = folder / datasets.HEAD_PROFILES
    raw = _read(path) if path.is_file() or path.is_symlink() else {}
    if not isinstance(raw, dict):
        raise _bad(f"{path.name} is not a JSON object")
    checked, comparisons, undecided = datasets.from_profiles(
        ctx, config, raw, state, whose="the pull request's run"
    )
    failing = bool(datasets.failed(checked))
    if undecided:
        notes.append(
            "judged from the pull request's data profile, which cannot decide: "
            + "; ".join(undecided[:10])
            + (f"; and {len(undecided) - 10} more" if len(undecided) > 10 else "")
            + " (merging checks the data itself)"
        )
    drifted = any(d.problems for ds in comparisons.values() for d in ds)
    return verdict.Data(
        checked,
        comparisons,
        trained=trained,
        # Its run trained nothing, and its profile shows no reason: a check it cannot decide.
        why=None if failing or drifted else "failed a check its profile cannot show (its own run said so)",
    )


def publish(
    ctx: Context,
    folder: Path,
    *,
    head_sha: str,
    token: str | None,
    out: IO[str] | None = None,
    sweep_folder: Path | None = None,
) -> dict[str, Any]:
    """Post the pull request job's report; with ``sweep_folder`` (the matrix jobs' result
    files), its comment also ranks the sweep's candidates, judged by the same gate.

    The steps: the artifact read as data and matched to the pull request GitHub names,
    the report judged again (the base's policy, the registry's baselines), then posted."""
    from mlci import render

    job = ci_env.context(ctx.environ)
    out = out or sys.stdout  # bound per call: a default of sys.stdout would freeze the one at import
    if not token or not job.repository:
        raise ci_env.CiError(
            "publishing needs a token and GITHUB_REPOSITORY", hint="run it in GitHub Actions, or pass --token"
        )
    ci_env.mask(out, token, job.in_actions)
    api, pull, number, head_data = _pull_request(ctx, job, folder, head_sha, token)
    report, template, env, config = _judge(
        ctx, job, folder, pull, number, head_data, token, sweep_folder, api
    )
    if env is not None and report.passed and not report.verdicts[0].held:
        from mlci.usecases.ci import with_approvers

        report = with_approvers(report, api, env)
    body = render.render_report(report, "markdown", template=template)
    ci_env.append_summary(job, body)  # the same report, in this job's summary, before posting
    comment = api.upsert_comment(number, body, report.marker)
    ctx.log(f"{comment.action} the comment on #{number}: {comment.url}")
    verdict = report.verdicts[0] if report.verdicts else None
    result: dict[str, Any] = {
        "pr": number,
        "comment": comment.action,
        "status": None,
        "passed": report.passed,
        "gates": verdict.to_json() if verdict else None,
    }
    if env is not None and verdict is not None:
        state_word = "success" if report.passed else "failure"
        context = status_context(config, env.name)
        api.set_status(head_sha, context, state_word, verdict.summary(), job.run_link)
        result["status"] = {"context": context, "state": state_word}
        ctx.log(f"status {context} on {head_sha[:12]}: {state_word}")
    return result


def _pull_request(
    ctx: Context, job: ci_env.Context, folder: Path, head_sha: str, token: str
) -> tuple[Any, Any, int, dict[str, Any]]:
    """The artifact's report, checked as data, for this checkout's model, and the pull
    request it names as GitHub tells it, whose head must be the run's: the API, the pull
    request, its number, and the head's data."""
    from mlci import github_api

    here = ctx.config  # this trusted checkout, not the pull request's
    meta, data = _load(_folder_for(folder, here.model.name))
    model, number, head_data = _head(meta, data)
    if here.model.name != model:
        raise _bad(f"it is for model {model!r}, and {here.path} configures {here.model.name!r}")
    assert job.repository is not None
    api = github_api.GitHubApi(token, job.api_url, job.repository, **github_api.retry_settings(ctx.environ))
    pull = api.pull(number)
    if pull.head_sha != head_sha:
        raise ci_env.CiError(
            f"the report names pull request #{number}, whose head is {pull.head_sha[:12]}, "
            f"but the run that made it was for {head_sha[:12]}",
            hint="nothing was posted: the artifact does not belong to this run",
        )
    return api, pull, number, head_data


def _with_figures(ctx: Context, report: rpt.Report, folder: Path, api: Any) -> rpt.Report:
    """The project's plots the artifact carries (each checked as an image) and each
    baseline's version's, linked to the rolling release's assets (read-only here, with the
    job's one client: the job that may write contents uploads them, ``mlci publish-plots``)."""
    from mlci.usecases import figures

    found = figures.from_folder(folder, ctx.log)
    baselines = [c.baseline for c in report.comparisons]
    if not found and not any(b.plots for b in baselines):
        return report
    assets = figures.release_assets(api, ctx.log)
    shown = figures.for_publishing(report.head.label, found, baselines, assets)
    return dataclasses.replace(report, figures=tuple(shown))


def upload_plots(
    ctx: Context, folder: Path, *, token: str | None, out: IO[str] | None = None
) -> dict[str, Any]:
    """``mlci publish-plots``: the plots a pull request job's artifact carries, each checked
    and rebuilt as an image, uploaded to the rolling release (once each). Nothing else of
    the artifact is read; nothing from it is run or rendered."""
    from mlci import github_api
    from mlci.usecases import figures

    job = ci_env.context(ctx.environ)
    out = out or sys.stdout
    if not token or not job.repository:
        raise ci_env.CiError(
            "publishing plots needs a token and GITHUB_REPOSITORY",
            hint="run it in GitHub Actions, or pass --token",
        )
    ci_env.mask(out, token, job.in_actions)
    # The artifact as downloaded by name holds the report itself; several, by pattern, one
    # folder per model (this checkout's mlci.yaml, the default branch's, names ours).
    mine = folder if (folder / PULL_REQUEST_FILE).is_file() else _folder_for(folder, ctx.config.model.name)
    found = figures.from_folder(mine, ctx.log)
    if not found:
        ctx.log("no plots in the report: nothing to upload")
        return {"release": figures.RELEASE, "uploaded": [], "present": [], "pruned": []}
    api = github_api.GitHubApi(token, job.api_url, job.repository, **github_api.retry_settings(ctx.environ))
    return figures.upload(api, found, ctx.log)


def _judge(
    ctx: Context,
    job: ci_env.Context,
    folder: Path,
    pull: Any,
    number: int,
    head_data: dict[str, Any],
    token: str,
    sweep_folder: Path | None,
    api: Any,
) -> tuple[rpt.Report, Any, cfg.Environment | None, cfg.Config]:
    """The report judged again in this job: the policy, the report's settings and where it
    connects from the base branch (its template read from git at the base), the baselines
    from the registry's tags, the head's intervals and data from the artifact's data.
    Returns the report, its template, the environment gated and the config that judged."""
    here, log = ctx.config, ctx.log
    root = gitrepo.toplevel(here.root)
    if root is not None:
        registry.ensure_complete(registry.open_workspace(root, ctx.environ, push=False), log)
    base_policy, notes = review.load_base_policy(here, pull.base_ref, log)
    config = policy.for_writing(here, base_policy)
    template = review.base_template(here, base_policy, pull.base_ref)
    env = next((e for e in config.environments if e.branch == pull.base_ref), None)
    state = registry.read_state(root).get(here.model.name) if root else None
    head = rpt.Head(
        run_id=head_data["run_id"],
        fingerprint=head_data["fingerprint"],
        commit=pull.head_sha,
        branch=pull.head_ref or None,
        metrics=head_data["metrics"],
        params=head_data["params"],
        cached=False,
        label=f"PR #{number}",
    )
    report_folder = _folder_for(folder, here.model.name)
    trusted = ctx.with_environ({**ctx.environ, "GITHUB_TOKEN": token})  # its stores, read with the token
    certainty = _certainty(trusted, config, report_folder, head.metrics, head_data["repeats"], state)
    judged_data = (
        _data(trusted, config, report_folder, state, notes, bool(head.metrics)) if config.data else None
    )
    notes.append(
        "the metrics come from the pull request's own run; "
        "mlci judged them in a job that ran none of its code"
    )
    report = rpt.build(
        config,
        head,
        [baselines.env_baseline(state, e.name) for e in config.environments],
        gate_environments=[env.name] if env else [],
        history=baselines.history(state, config.key_metric),
        pr=number,
        run_link=job.run_link,
        certainty=certainty,
        state=state,
        data=judged_data,
        notes=notes,
    )
    report = dataclasses.replace(report, policy_from=pull.base_ref if base_policy else None)
    report = _with_figures(ctx, report, report_folder, api)
    if sweep_folder is not None:
        from mlci.usecases import sweep

        results = sweep.from_folder(sweep_folder, here)
        board = sweep.leaderboard(here, results, state, env.name if env else None)
        report = dataclasses.replace(report, sweep=board)
        log(f"sweep: {len(board.rows)} of {len(results)} candidates have a run")
    return report, template, env, config
