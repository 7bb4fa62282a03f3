"""What a head is compared with: the model each environment holds (its tag's metrics), the
run or version of the base branch's inputs, and the key metric's history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlci import config as cfg
from mlci import gitrepo, registry, tags
from mlci import report as rpt
from mlci.tags import SemVer

HISTORY_LENGTH = 10


def env_baseline(state: tags.ModelState | None, env: str) -> rpt.Baseline:
    from mlci.usecases import figures

    event = state.current(env) if state else None
    if event is None or event.version is None or state is None:
        return rpt.Baseline(env, env, found=False, note=f"no model in {env} yet")
    registration = state.versions.get(event.version)
    meta = registration.metadata if registration else {}
    metrics = tags.recorded_metrics(meta)
    return rpt.Baseline(
        key=env,
        label=f"{env} {event.version}",
        found=True,
        version=event.version,
        commit=event.commit,
        run_id=meta.get("mlflow_run_id"),
        metrics=metrics,
        params=meta.get("params") or {},
        note="" if metrics else "its tag records no metrics (registered by another tool?)",
        plots=tuple(figures.listed(meta.get(figures.METADATA_KEY))),
    )


def base_baseline(
    config: cfg.Config,
    ref: str,
    tracking: Any,
    state: tags.ModelState | None,
    log: Callable[[str], None],
) -> rpt.Baseline:
    from mlci import fingerprint as fp
    from mlci import project

    root = config.root
    # A CI checkout has the base branch only as origin's remote-tracking branch.
    commit = gitrepo.rev_parse(root, ref) or gitrepo.rev_parse(root, f"{registry.REMOTE}/{ref}")
    if commit is None:
        return rpt.Baseline("base", f"base {ref}", found=False, note=f"no branch or commit {ref!r} here")
    base = gitrepo.merge_base(root, "HEAD", commit)
    if base is None:
        return rpt.Baseline("base", f"base {ref}", found=False, note=f"HEAD and {ref} share no history")
    label = f"base {ref}@{base[:7]}"
    # The base's inputs, read from git: any run or version of the same inputs is the
    # base's model, wherever it was trained (often the pull request that was merged).
    inputs = fp.compute_at(config, base, project.committed_params)
    run = tracking.find_finished_run(inputs.digest) if inputs is not None else None
    if run is None and inputs is not None and state is not None:
        version = state.version_of_fingerprint(inputs.digest)
        if version is not None:
            found = _version_baseline(state, version, base, label)
            if found is not None:
                return found
    if run is None:
        run = tracking.find_run_at_commit(base)
    if run is None:
        # The base's model may be a registered version: its tag records the metrics.
        version = state.version_on_commit(base) if state else None
        if state is not None and version is not None:
            found = _version_baseline(state, version, base, label)
            if found is not None:
                return found
        return rpt.Baseline(
            "base",
            label,
            found=False,
            commit=base,
            note=f"no run of the merge base {base[:7]}'s inputs in {_store_words(tracking.uri)} and no "
            "registered version of them, so there is nothing to compare with (inputs get a run when a "
            "pull request trains them; in CI, a shared tracking server keeps every job's runs)",
        )
    return rpt.Baseline(
        "base",
        label,
        found=True,
        commit=base,
        run_id=run.run_id,
        metrics=run.metrics,
        params=run.params,
    )


def _version_baseline(state: tags.ModelState, version: str, base: str, label: str) -> rpt.Baseline | None:
    meta = state.versions[version].metadata
    metrics = tags.recorded_metrics(meta)
    if not metrics:
        return None
    return rpt.Baseline(
        "base",
        f"{label} ({version})",
        found=True,
        version=version,
        commit=base,
        run_id=meta.get("mlflow_run_id"),
        metrics=metrics,
        params=meta.get("params") or {},
    )


def _store_words(uri: str) -> str:
    return "the embedded MLflow store" if uri.startswith("sqlite:") else uri


def history(state: tags.ModelState | None, key_metric: str | None) -> list[tuple[str, float]]:
    if state is None or not key_metric:
        return []
    points = []
    for version in state.active_versions():
        value = (state.versions[version].metadata.get("metrics") or {}).get(key_metric)
        if isinstance(value, (int, float)):
            points.append((version, float(value)))
        if len(points) == HISTORY_LENGTH:
            break
    return sorted(points, key=lambda p: SemVer.parse(p[0]) or SemVer(0, 0, 0))
