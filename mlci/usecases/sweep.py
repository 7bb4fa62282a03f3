"""Sweeps: many candidates of one pull request, trained side by side and compared.

``sweep:`` in mlci.yaml lists candidates (a grid's combinations, or sets of params);
each is a set of ``--set`` overrides. ``mlci sweep plan`` prints them as a GitHub
Actions matrix; each matrix job trains one (``mlci sweep train N``, which is
``mlci train --set ...`` for candidate N, with the run cache); ``mlci sweep report``
collects their runs (from the tracking store, or from the jobs' result files) into
a leaderboard: ranked by the key metric, each candidate judged by the gate of the
environment the pull request targets, the best one named with the command that
makes it the pull request's params (``mlci sweep apply N``).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import ci_env, gitrepo, registry
from mlci import params as prm
from mlci.errors import ConfigError, MlciError, ParamsError

if TYPE_CHECKING:
    from mlci import config as cfg
    from mlci import gates, project, tags
    from mlci.context import Context

RESULT_DIR = "sweep"  # under .mlci/: candidate-N.json, what a matrix job uploads
RESULT_PREFIX = "candidate-"
_MAX_RESULT = 256 * 1024
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Candidate:
    number: int  # 1-based, in the order of sweep: in mlci.yaml
    values: tuple[tuple[str, Any], ...]

    @property
    def overrides(self) -> tuple[str, ...]:
        """As ``mlci train --set`` takes them."""
        return tuple(f"{key}={prm.yaml_scalar(value)}" for key, value in self.values)

    @property
    def name(self) -> str:
        return ", ".join(self.overrides)

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.number, "name": self.name, "params": dict(self.values)}


def candidates(config: cfg.Config) -> list[Candidate]:
    if config.sweep is None:
        raise ConfigError(
            f"{config.path}: no sweep: section, so there are no candidates",
            hint="add one, e.g. `sweep: {grid: {C: [0.1, 1.0, 10.0]}}` (the README's Sweeps section)",
        )
    return [Candidate(i + 1, values) for i, values in enumerate(config.sweep.candidates)]


def candidate(config: cfg.Config, number: int) -> Candidate:
    found = candidates(config)
    if not 1 <= number <= len(found):
        raise ConfigError(
            f"no sweep candidate {number}: {config.path.name} has {len(found)} (1 to {len(found)})",
            hint="`mlci sweep plan` lists them",
        )
    return found[number - 1]


def resolve(ctx: Context, one: Candidate) -> project.Resolved:
    """The project with candidate ``one``'s params, as ``mlci train --set ...`` sees it."""
    try:
        return ctx.resolve(one.overrides)
    except ParamsError as exc:
        raise ParamsError(
            f"sweep candidate {one.number} ({one.name}): {exc.message}",
            hint=exc.hint or "fix the keys under sweep: in mlci.yaml",
        ) from None


def plan(ctx: Context) -> dict[str, Any]:
    """The candidates as a matrix for ``strategy.matrix`` (``{"include": [...]}``), each with
    its ``--set`` arguments and its fingerprint (checked now: a bad key fails the plan,
    not twenty jobs)."""
    config = ctx.config
    include = []
    for one in candidates(config):
        resolved = resolve(ctx, one)
        include.append(
            {**one.to_json(), "set": list(one.overrides), "fingerprint": resolved.fingerprint.digest}
        )
    return {"include": include}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Result:
    """One candidate's run, or the lack of one."""

    candidate: Candidate
    fingerprint: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    cached: bool | None = None

    @property
    def trained(self) -> bool:
        return self.run_id is not None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.candidate.to_json(),
            "fingerprint": self.fingerprint,
            "run_id": self.run_id,
            "run_url": self.run_url,
            "metrics": dict(self.metrics),
            "cached": self.cached,
        }


def write_result(root: Path, result: Result) -> Path:
    import json

    folder = root / ".mlci" / RESULT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{RESULT_PREFIX}{result.candidate.number}.json"
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def result_artifact(model: str, number: int) -> str:
    return f"mlci-sweep-{model.replace('/', '--')}-{number}"


def from_folder(folder: Path, config: cfg.Config) -> list[Result]:
    """The matrix jobs' result files (any depth: one folder per downloaded artifact),
    read as data: each must name a candidate of this checkout's plan, with its params;
    the numbers are bounded and finite, the ids plain. Candidates without a file are
    returned untrained."""
    from mlci import safeinput
    from mlci.metrics import metrics_from

    planned = candidates(config)
    found: dict[int, Result] = {}
    if not folder.is_dir():
        raise MlciError(
            f"{folder}: no such folder of sweep results",
            hint="download the matrix jobs' artifacts (mlci-sweep-*) into it",
        )
    for path in sorted(folder.rglob(f"{RESULT_PREFIX}*.json")):
        where = str(path.relative_to(folder))
        try:
            data = safeinput.load_json(safeinput.read_text(path, limit=_MAX_RESULT, what=where, follow=False))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            number = data.get("candidate")
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= len(planned):
                raise ValueError(f"names no candidate of the plan (1 to {len(planned)}): {number!r}")
            one = planned[number - 1]
            if not prm.same_data(data.get("params"), dict(one.values)):
                raise ValueError(f"its params are not candidate {number}'s ({one.name})")
            fingerprint, run_id, url = data.get("fingerprint"), data.get("run_id"), data.get("run_url")
            if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
                raise ValueError("fingerprint is not 64 hex digits")
            if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
                raise ValueError("run_id is not a plain id")
            if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
                url = None
            metrics = metrics_from(data.get("metrics"), where)
        except safeinput.BadInput as exc:
            raise MlciError(
                f"sweep result {exc.where(where)}: {exc.problem}", hint="nothing was posted"
            ) from None
        except (ValueError, MlciError) as exc:
            detail = exc.message if isinstance(exc, MlciError) else str(exc)
            raise MlciError(f"sweep result {where}: {detail}", hint="nothing was posted") from None
        if number in found:
            raise MlciError(
                f"sweep result {where}: a second result for candidate {number}", hint="nothing was posted"
            )
        cached = data.get("cached")
        found[number] = Result(
            one, fingerprint, run_id, url, metrics, cached if isinstance(cached, bool) else None
        )
    return [found.get(one.number) or Result(one) for one in planned]


def from_tracking(ctx: Context) -> list[Result]:
    """Each candidate of the project, its FINISHED run in the tracking store, by its fingerprint."""
    config = ctx.config
    tracking = ctx.tracking(config)
    out = []
    for one in candidates(config):
        digest = resolve(ctx, one).fingerprint.digest
        run = tracking.find_finished_run(digest)
        if run is None:
            out.append(Result(one, digest))
            continue
        url = tracking.run_url(run.run_id, run.experiment_id)
        out.append(Result(one, digest, run.run_id, url, run.metrics))
    return out


# --------------------------------------------------------------------------- the leaderboard


@dataclass(frozen=True)
class Row:
    rank: int
    result: Result
    value: float | None  # the key metric
    verdict: gates.Verdict | None


@dataclass(frozen=True)
class Leaderboard:
    key_metric: str | None
    goal: str
    environment: str | None  # whose gate judged the candidates
    baseline_label: str | None
    rows: tuple[Row, ...]
    missing: tuple[Candidate, ...]
    best: Row | None
    params_file: str | None

    @property
    def best_passes(self) -> bool:
        return self.best is not None and (self.best.verdict is None or self.best.verdict.passed)

    @property
    def command(self) -> str | None:
        return f"mlci sweep apply {self.best.result.candidate.number}" if self.best else None

    def to_json(self) -> dict[str, Any]:
        return {
            "key_metric": self.key_metric,
            "goal": self.goal,
            "environment": self.environment,
            "baseline": self.baseline_label,
            "rows": [
                {
                    "rank": r.rank,
                    **r.result.to_json(),
                    "value": r.value,
                    "verdict": r.verdict.to_json() if r.verdict else None,
                }
                for r in self.rows
            ],
            "missing": [c.to_json() for c in self.missing],
            "best": self.best.result.candidate.number if self.best else None,
            "best_passes": self.best_passes,
            "command": self.command,
        }


def leaderboard(
    config: cfg.Config,
    results: Sequence[Result],
    state: tags.ModelState | None,
    environment: str | None,
) -> Leaderboard:
    """Rank the trained candidates by the key metric, judge each by ``environment``'s gate
    (against the model there now, on point values), and name the best one that passes."""
    from mlci import verdict
    from mlci.usecases import baselines

    key = config.key_metric
    goal = config.goal(key) if key else "maximize"
    env = config.environment(environment) if environment else None
    baseline = baselines.env_baseline(state, env.name) if env else None
    trained = [r for r in results if r.trained]

    def order(result: Result) -> tuple[int, float, int]:
        value = result.metrics.get(key) if key else None
        if value is None or math.isnan(value):
            return (1, 0.0, result.candidate.number)
        return (0, -value if goal == "maximize" else value, result.candidate.number)

    rows = []
    for rank, result in enumerate(sorted(trained, key=order), start=1):
        judged = None
        if env is not None and baseline is not None:
            case = verdict.Case(config, result.metrics, result.fingerprint, state, {env.name: baseline})
            judged = verdict.judge(case, env.name)
        rows.append(Row(rank, result, result.metrics.get(key) if key else None, judged))
    passing = [r for r in rows if r.verdict is None or r.verdict.passed]
    best = (passing or rows)[0] if rows else None
    return Leaderboard(
        key_metric=key,
        goal=goal,
        environment=env.name if env else None,
        baseline_label=baseline.label if baseline and baseline.found else None,
        rows=tuple(rows),
        missing=tuple(r.candidate for r in results if not r.trained),
        best=best,
        params_file=config.train.params,
    )


def apply(ctx: Context, number: int) -> dict[str, Any]:
    """Write candidate ``number``'s params into the params file, edited in place (comments
    and order kept): committed, the pull request trains exactly that candidate, and the
    run cache finds the sweep's run."""
    from mlci import project

    config = ctx.config
    one = candidate(config, number)
    if config.train.params is None:
        raise ConfigError(
            f"{config.path}: train.params names no params file, so there is nowhere to write the candidate",
            hint="track the params in a file (train.params), or set them in the code by hand",
        )
    resolved = resolve(ctx, one)
    path = config.root / config.train.params
    original = path.read_text(encoding="utf-8")
    text = project.params_file_text(
        config, original, [o for o in one.overrides if project.in_file(config, o)]
    )
    changed = text != original
    if changed:
        path.write_text(text, encoding="utf-8")
    return {
        "candidate": one.number,
        "name": one.name,
        "params_file": config.train.params,
        "changed": changed,
        "fingerprint": resolved.fingerprint.digest,
    }


def train(ctx: Context, number: int) -> dict[str, Any]:
    """Train candidate ``number`` (``mlci train --set ...``, with the run cache). In GitHub
    Actions, also write its result file and bundle the run, and set the step outputs the
    workflow uploads: result-path, result-artifact, run-bundle, run-artifact."""
    from mlci.usecases import ci as ci_flow
    from mlci.usecases import training

    config, environ, log = ctx.config, ctx.environ, ctx.log
    one = candidate(config, number)
    resolved = resolve(ctx, one)
    job = ci_env.context(environ)
    token = environ.get("GITHUB_TOKEN") or None
    log(f"sweep candidate #{one.number} of {len(config.sweep.candidates) if config.sweep else 0}: {one.name}")
    result = training.train(
        resolved,
        ctx,
        use_cache=True,
        command_stdout=sys.stderr,
        **ci_flow.run_store_options(job, environ, resolved.config, token, log),
    )
    outcome = Result(one, result.fingerprint, result.run_id, result.run_url, result.metrics, result.cached)
    path = write_result(resolved.config.root, outcome)
    if job.in_actions:
        ci_env.set_outputs(
            job,
            {
                "result-path": str(path),
                "result-artifact": result_artifact(config.model.name, one.number),
                **ci_flow.bundle_outputs(resolved.config, result),
            },
        )
    return {**outcome.to_json(), "result_path": str(path)}


def report(ctx: Context, *, folder: Path | None, environment: str | None) -> Leaderboard:
    """The leaderboard: results from ``folder`` (the matrix jobs' files) or the tracking
    store, judged by ``environment``'s gate (default: the first environment)."""
    config = ctx.config
    results = from_folder(folder, config) if folder is not None else from_tracking(ctx)
    env = environment or (config.environments[0].name if config.environments else None)
    root = gitrepo.toplevel(config.root)
    state = registry.read_state(root).get(config.model.name) if root else None
    return leaderboard(config, results, state, env)
