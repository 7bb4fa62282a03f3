"""``mlci data check`` and ``mlci data diff``: the declared datasets, checked and compared.

The same checks run first in ``mlci train`` (a failing check stops before the
command runs: no wasted compute). A run records each dataset's digest (tags
``mlci.data.<name>``) and profile (the artifact ``data-profile.json``), so a
comparison needs the two profiles, never the baseline's data.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import config as cfg
from mlci import data, gitrepo, registry, stores, tags

if TYPE_CHECKING:
    from mlci.context import Context
    from mlci.tracking import Tracking

DATA_TAG_PREFIX = "mlci.data."  # + dataset name: its digest, on the run
PROFILE_DIGEST_TAG = "mlci.data_profile_sha256"  # the run's data-profile.json (checked wherever fetched)
HEAD_PROFILES = "head-data-profile.json"  # beside a pull request's report.json: its datasets' profiles
CHECKS_TAG = "mlci.data_checks_sha256"  # the checks (data: in mlci.yaml) the run's data passed


@dataclass(frozen=True)
class Checked:
    """One dataset, checked and profiled."""

    dataset: cfg.Dataset
    profile: dict[str, Any]
    problems: tuple[data.Problem, ...]

    @property
    def present(self) -> bool:
        return bool(self.profile.get("present"))

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.name,
            "path": self.dataset.path,
            "present": self.present,
            "digest": self.profile.get("digest"),
            "rows": self.profile.get("rows"),
            "columns": len(self.profile.get("columns") or {}),
            "passed": not self.problems,
            "problems": [p.to_json() for p in self.problems],
            **({} if self.present else {"note": f"not present locally (DVC: {self.profile.get('source')})"}),
        }


def check_all(
    config: cfg.Config, log: Callable[[str], None], tracking: Tracking | None = None
) -> list[Checked]:
    """Every declared dataset, read, checked and profiled; one DVC tracks and this
    checkout lacks is reported as not present (its recorded hash is its digest). With
    ``tracking``, the checks a finished run recorded for these very files are taken
    instead where they still hold (``_recorded``): nothing is read but the files' bytes."""
    all_located = [data.locate(config, dataset) for dataset in config.data]
    if tracking is not None:
        reused = _recorded(config, all_located, tracking, log)
        if reused is not None:
            return reused
    found = []
    for dataset, located in zip(config.data, all_located, strict=True):
        if not located.present:
            assert located.dvc is not None
            log(
                f"data.{dataset.name}: not present locally (DVC tracks it: {located.dvc.source}); not checked"
            )
            found.append(Checked(dataset, data.profile(located, None), ()))
            continue
        frame = data.read(located)
        problems = tuple(data.check(dataset, frame))
        found.append(Checked(dataset, data.profile(located, frame), problems))
        width = len(frame.columns)
        verdict = "passes its checks" if not problems else f"{len(problems)} failed check(s)"
        log(f"data.{dataset.name}: {len(frame)} rows, {width} columns: {verdict}")
        for problem in problems:
            log(f"  [FAIL] {problem.message}")
    return found


def failed(checked: Sequence[Checked]) -> list[data.Problem]:
    return [p for c in checked for p in c.problems]


def raise_if_failed(checked: Sequence[Checked]) -> None:
    problems = failed(checked)
    if problems:
        raise data.DataCheckFailed(
            f"the data breaks {len(problems)} check(s), so nothing was trained:\n"
            + "\n".join(f"  {p.message}" for p in problems),
            hint="fix the data, or the checks under data: in mlci.yaml; `mlci data check` checks again",
        )


def run_records(checked: Sequence[Checked], folder: Path) -> tuple[dict[str, str], Path | None]:
    """The run's tags (each dataset's digest) and its profiles file, written into ``folder``."""
    if not checked:
        return {}, None
    import hashlib

    path = folder / data.PROFILE_FILE
    profiles = {c.dataset.name: c.profile for c in checked}
    text = json.dumps(profiles, separators=(",", ":"), sort_keys=True)
    path.write_text(text, encoding="utf-8")
    found = {f"{DATA_TAG_PREFIX}{c.dataset.name}": str(c.profile.get("digest")) for c in checked}
    found[PROFILE_DIGEST_TAG] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    found[CHECKS_TAG] = checks_digest([c.dataset for c in checked])
    return found, path


def checks_digest(datasets: Sequence[cfg.Dataset]) -> str:
    """sha256 of the declared datasets and their checks, as mlci.yaml states them now."""
    import dataclasses
    import hashlib

    declared = [dataclasses.asdict(d) for d in datasets]
    return hashlib.sha256(json.dumps(declared, sort_keys=True, default=str).encode()).hexdigest()


def _recorded(
    config: cfg.Config, located: Sequence[data.Located], tracking: Tracking, log: Callable[[str], None]
) -> list[Checked] | None:
    """The checks a finished run recorded for these very files, where they still hold: the
    same checks (mlci.yaml's data: as it is now) passed on files with the same digests, so
    reading and checking them again (pandas, a second or more) would say the same,
    whatever else the inputs changed (params, code). The profiles are the run's own (their
    sha256 checked). None where any of that differs or cannot be read: then the data is
    read and checked again."""
    if not config.data or not _has_store(tracking):
        return None  # a store never made has no run (and opening it would make it)
    if not all(loc.present for loc in located):
        return None
    digests = {loc.dataset.name: loc.digest() for loc in located}
    first = config.data[0].name
    run = tracking.find_finished_run_tagged(f"{DATA_TAG_PREFIX}{first}", digests[first])
    if run is None or run.tags.get(CHECKS_TAG) != checks_digest(config.data):
        return None
    if any(run.tags.get(f"{DATA_TAG_PREFIX}{name}") != digest for name, digest in digests.items()):
        return None
    profiles = run_profiles(tracking, run.run_id, log)
    if profiles is None or not all(isinstance(profiles.get(d.name), dict) for d in config.data):
        return None
    for dataset in config.data:
        log(f"data.{dataset.name}: passes its checks (run {run.run_id} checked these files; not read again)")
    return [Checked(dataset, profiles[dataset.name], ()) for dataset in config.data]


def lineage(run_tags: Mapping[str, str]) -> dict[str, str]:
    """Dataset name -> digest, from a run's tags."""
    return {k[len(DATA_TAG_PREFIX) :]: v for k, v in run_tags.items() if k.startswith(DATA_TAG_PREFIX)}


def check(ctx: Context) -> tuple[dict[str, Any], bool]:
    """``mlci data check``: every declared dataset read and checked."""
    config, log = ctx.config, ctx.log
    if not config.data:
        log("no datasets declared: add a data: section to mlci.yaml (see the README's data checks)")
    checked = check_all(config, log)
    passed = not failed(checked)
    return {"passed": passed, "datasets": [c.to_json() for c in checked]}, passed


# --------------------------------------------------------------------------- diff


MAX_PROFILES_BYTES = 16 * 1024 * 1024


def run_profiles(tracking: Tracking, run_id: str, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The profiles a run recorded (None, said in the log, where it has none)."""
    from mlci.errors import MlciError

    try:
        run = tracking.get_run(run_id)
        path = tracking.read_artifact(
            run,
            data.PROFILE_FILE,
            Path(tempfile.mkdtemp(prefix="mlci-profile-")),
            sha256=run.tags.get(PROFILE_DIGEST_TAG),
            limit=MAX_PROFILES_BYTES,
        )
    except MlciError as exc:
        log(f"no data profile for run {run_id}: {exc.message.splitlines()[0]}")
        return None
    return read_profiles(path, f"run {run_id}'s {data.PROFILE_FILE}", log)


def read_profiles(path: Path, where: str, log: Callable[[str], None]) -> dict[str, Any] | None:
    """Profiles read as data: a bounded regular file holding one JSON object."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PROFILES_BYTES:
        log(f"no data profile: {where} is not a regular file under {MAX_PROFILES_BYTES} bytes")
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        log(f"no data profile: {where} is not JSON")
        return None
    return {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else None


@dataclass(frozen=True)
class Baseline:
    label: str
    run_id: str | None
    digests: Mapping[str, str]
    version: stores.Version | None = None  # a registered version: its release may keep the profiles


def env_baseline(state: tags.ModelState | None, env: str) -> Baseline | None:
    """The data of the version now in ``env`` (None: no model there yet)."""
    event = state.current(env) if state else None
    if state is None or event is None or event.version is None:
        return None
    meta = state.versions[event.version].metadata
    recorded: dict[str, Any] = meta["data"] if isinstance(meta.get("data"), dict) else {}
    digests = {str(k): str(v.get("digest")) for k, v in recorded.items() if isinstance(v, dict)}
    run_id = meta.get("mlflow_run_id")
    version = stores.version_of(state.name, event.version, state.versions[event.version].tag, meta)
    return Baseline(f"{env} {event.version}", str(run_id) if run_id else None, digests, version)


def compare(
    config: cfg.Config,
    environ: Mapping[str, str],
    checked: Sequence[Checked],
    baseline: Baseline,
    tracking: Tracking,
    log: Callable[[str], None],
) -> list[data.DatasetDiff]:
    """Each dataset's profile against the baseline's: its version's release keeps them
    (GitHub Actions without a server), else its run in the tracking store; where neither
    has them, against the digest its version records."""
    profiles = _release_profiles(config, environ, baseline.version, log) if baseline.version else None
    if profiles is None and baseline.run_id and _has_store(tracking):
        profiles = run_profiles(tracking, baseline.run_id, log)
    found = []
    for item in checked:
        base_profile = (profiles or {}).get(item.dataset.name)
        if base_profile is None and baseline.digests.get(item.dataset.name):
            base_profile = {"digest": baseline.digests[item.dataset.name], "kept": False}
        found.append(data.diff(item.dataset, item.profile, base_profile, baseline.label))
    return found


def comparisons(
    ctx: Context,
    config: cfg.Config,
    checked: Sequence[Checked],
    state: tags.ModelState | None,
    environments: Sequence[str] | None = None,
) -> dict[str, list[data.DatasetDiff]]:
    """Each dataset's profile against the data of each environment's model (or of each of
    ``environments``), by environment."""
    tracking = ctx.tracking(config)
    found: dict[str, list[data.DatasetDiff]] = {}
    for env in config.environments:
        if environments is not None and env.name not in environments:
            continue
        baseline = env_baseline(state, env.name)
        if baseline is not None:
            found[env.name] = compare(config, ctx.environ, checked, baseline, tracking, ctx.log)
    return found


def from_profiles(
    ctx: Context,
    config: cfg.Config,
    profiles: Mapping[str, Any],
    state: tags.ModelState | None,
    *,
    whose: str,
    environments: Sequence[str] | None = None,
) -> tuple[list[Checked], dict[str, list[data.DatasetDiff]], list[str]]:
    """The declared datasets judged on recorded profiles (read as data: the files are not
    here), each against each environment's model's: the checks, the comparisons, and in
    words each check a profile cannot decide. A declared dataset ``whose`` run recorded no
    profile of fails its checks."""
    checked: list[Checked] = []
    undecided: list[str] = []
    for dataset in config.data:
        found = data.clean_profile(profiles.get(dataset.name))
        if found is None:
            missing = data.Problem(
                dataset.name, None, "required", f"data.{dataset.name}: {whose} recorded no profile of it"
            )
            checked.append(Checked(dataset, {"present": True, "digest": ""}, (missing,)))
            continue
        problems, unsure = data.check_profile(dataset, found)
        checked.append(Checked(dataset, found, tuple(problems)))
        undecided += unsure
    judged = {} if failed(checked) else comparisons(ctx, config, checked, state, environments)
    return checked, judged, undecided


def version_profiles(ctx: Context, config: cfg.Config, version: stores.Version) -> dict[str, Any]:
    """The profiles a registered version's run recorded: from its release where it keeps
    them, else from its run in the tracking store (empty where neither has them)."""
    found = _release_profiles(config, ctx.environ, version, ctx.log)
    run_id = version.metadata.get("mlflow_run_id")
    tracking = ctx.tracking(config)
    if found is None and isinstance(run_id, str) and run_id and _has_store(tracking):
        found = run_profiles(tracking, run_id, ctx.log)
    return found or {}


def _release_profiles(
    config: cfg.Config, environ: Mapping[str, str], version: stores.Version, log: Callable[[str], None]
) -> dict[str, Any] | None:
    """The profiles a version's GitHub release keeps (None where it keeps none)."""
    from mlci.errors import MlciError

    recorded = version.metadata.get("data_profile")
    if version.metadata.get(stores.STORE_KEY) != "github" or not isinstance(recorded, dict):
        return None
    if not version.metadata.get(stores.asset_key("data-profile")):
        return None
    from mlci.stores.github import ReleaseStore

    try:
        store = ReleaseStore.from_environ(config, environ, log)
        path = store.fetch_kept(
            version,
            "data-profile",
            str(recorded.get("sha256")),
            Path(tempfile.mkdtemp(prefix="mlci-profile-")),
        )
    except MlciError as exc:
        log(f"no data profile from {version.tag}'s release: {exc.message.splitlines()[0]}")
        return None
    return read_profiles(path, f"{version.tag}'s data profile", log)


def _has_store(tracking: Tracking) -> bool:
    """Whether the store can hold a run at all (a CI job's store that was never made has none)."""
    from mlci.tracking import sqlite_path

    path = sqlite_path(tracking.uri)
    return path is None or path.exists()


def diff(ctx: Context, *, environments: Sequence[str], base: str | None) -> dict[str, Any]:
    """This checkout's datasets against each baseline's profiles: an environment's
    version (by default, every environment), or the run of ``base``'s merge base."""
    from mlci.usecases import baselines

    config, environ, log = ctx.config, ctx.environ, ctx.log
    for env in environments:
        config.environment(env)
    checked = check_all(config, log)
    root = gitrepo.toplevel(config.root)
    state = registry.read_state(root).get(config.model.name) if root else None
    tracking = ctx.tracking(config)
    against: list[Baseline] = []
    wanted = list(environments) or ([] if base else [e.name for e in config.environments])
    for env in wanted:
        found = env_baseline(state, env)
        if found is None:
            log(f"no model in {env} yet: nothing to compare its data with")
            continue
        against.append(found)
    if base is not None:
        found_base = baselines.base_baseline(config, base, tracking, state, log)
        if found_base.found and found_base.run_id:
            against.append(Baseline(found_base.label, str(found_base.run_id), {}))
        else:
            log(f"nothing to compare with on {base}: {found_base.note}")
    comparisons = [
        d for baseline in against for d in compare(config, environ, checked, baseline, tracking, log)
    ]
    problems = [p for c in comparisons for p in c.problems] + failed(checked)
    return {
        "passed": not problems,
        "datasets": [c.to_json() for c in checked],
        "comparisons": [c.to_json() for c in comparisons],
        "problems": [p.to_json() for p in problems],
    }
