"""One training per fingerprint on a shared tracking server, however many jobs ask at once.

Twenty pull requests at once, two of them with the same inputs: without care, both
miss the run cache and both train. A job that is about to train *claims* the
fingerprint by creating its RUNNING run (tagged with the fingerprint, as every run
is), waits a moment for concurrent creations to land (``SETTLE``), and then looks at
every live claim of the fingerprint: the oldest one trains. A job whose claim is
not the oldest deletes its own (it leaves no trace) and waits for the oldest one's
run to finish, then reuses it like any cache hit.

Nothing can block forever:

- the wait is bounded (``tracking.wait``); past it, the job says so and trains;
- a claim whose run ends FAILED or KILLED, or is deleted, is claimed again;
- a claim whose trainer died is abandoned: on the same host, its process is gone;
  anywhere, its heartbeat (``mlci.heartbeat``, renewed every ``HEARTBEAT_EVERY``
  seconds while it trains) is older than ``STALE_AFTER`` seconds. The waiter marks
  it KILLED, says why, and claims again.

MLflow has no compare-and-set, so the election relies on time: the run's start
time is the claimant's clock, and a claim created within ``SETTLE`` seconds of
another's search is seen by it, as long as one request takes less than that and
runners' clocks agree to well under a second (NTP). Both hold on GitHub's runners;
where they do not, the worst case is the old one: both jobs train.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from mlci.tracking import OWNER_HOST_TAG, OWNER_PID_TAG, RunRecord, owner_tags

if TYPE_CHECKING:
    from mlci.tracking import Tracking

HEARTBEAT_TAG = "mlci.heartbeat"  # epoch seconds: the claimant is alive and training
SETTLE = 1.0  # seconds between creating a claim and electing (a request's time plus clock skew)
HEARTBEAT_EVERY = 15.0
STALE_AFTER = 120.0  # seconds without a heartbeat after which a claim is abandoned
POLL_EVERY = 2.0  # seconds between looks at the run waited for (growing to POLL_MAX)
POLL_MAX = 10.0
PROGRESS_EVERY = 30.0  # seconds between "still waiting" lines


def _seconds(name: str, default: float) -> float:
    """A tuning knob from the environment (tests and slow networks), else the default."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value >= 0 else default


def settle() -> float:
    return _seconds("MLCI_CLAIM_SETTLE", SETTLE)


def stale_after() -> float:
    return _seconds("MLCI_CLAIM_STALE_AFTER", STALE_AFTER)


def heartbeat_every() -> float:
    return _seconds("MLCI_CLAIM_HEARTBEAT", HEARTBEAT_EVERY)


def claim_tags(now: float | None = None) -> dict[str, str]:
    """Tags a claim is created with (besides the fingerprint): who, and alive when."""
    return {**owner_tags(), HEARTBEAT_TAG: f"{time.time() if now is None else now:.0f}"}


def abandoned(
    run: RunRecord, now: float, limit: float, host: str, alive: Callable[[int], bool]
) -> str | None:
    """Why a live claim is abandoned (its trainer died), or None if it may still finish. Pure."""
    pid = run.tags.get(OWNER_PID_TAG, "")
    if run.tags.get(OWNER_HOST_TAG) == host and pid.isdigit() and not alive(int(pid)):
        return f"its mlci (pid {pid}) on this host is gone"
    last = float(run.start_time) / 1000 if run.start_time else None  # a claim without heartbeats
    with suppress(ValueError):
        last = float(run.tags.get(HEARTBEAT_TAG, ""))
    if last is not None and now - last > limit:
        return f"no heartbeat for {now - last:.0f}s (more than {limit:.0f}s)"
    return None


def elect(claims: list[RunRecord]) -> RunRecord | None:
    """The claim that trains: the oldest (by start time, then run id). Pure."""
    return min(claims, key=lambda r: (r.start_time or 0, r.run_id), default=None)


def who(run: RunRecord) -> str:
    """Whose job a claim is, in words: "pull request #3 on host h (pid 12)"."""
    parts = []
    if run.tags.get("mlci.pr"):
        parts.append(f"pull request #{run.tags['mlci.pr']}")
    elif run.tags.get("mlci.git.branch"):
        parts.append(f"branch {run.tags['mlci.git.branch']}")
    if run.tags.get(OWNER_HOST_TAG):
        parts.append(f"on host {run.tags[OWNER_HOST_TAG]}")
    if run.tags.get(OWNER_PID_TAG):
        parts.append(f"(pid {run.tags[OWNER_PID_TAG]})")
    return " ".join(parts) or "another job"


def contest(tracking: Tracking, fingerprint: str, mine: str, log: Callable[[str], None]) -> RunRecord | None:
    """After creating claim ``mine``: abandon the dead claims, and elect among the rest.
    None: ``mine`` won, this job trains; else the claim to wait for."""
    from mlci.tracking import _alive

    time.sleep(settle())
    now = time.time()
    host = owner_tags()[OWNER_HOST_TAG]
    live = []
    for run in tracking.live_claims(fingerprint):
        why = None if run.run_id == mine else abandoned(run, now, stale_after(), host, _alive)
        if why is None:
            live.append(run)
            continue
        tracking.abandon(run.run_id, why)
        log(f"MLflow run {run.run_id} of {who(run)} claimed these inputs but {why}: marked KILLED")
    leader = elect(live)
    return None if leader is None or leader.run_id == mine else leader


def wait_for(
    tracking: Tracking,
    leader: RunRecord,
    fingerprint: str,
    deadline: float,
    log: Callable[[str], None],
) -> RunRecord | None:
    """Wait until ``leader``'s run finishes: its FINISHED run (to reuse), or None when it
    failed, was abandoned or deleted, or the wait reached ``deadline`` (each said)."""
    from mlci.tracking import _alive

    host = owner_tags()[OWNER_HOST_TAG]
    poll = POLL_EVERY
    said = time.monotonic()
    started = time.monotonic()
    while True:
        if time.monotonic() >= deadline:
            log(
                f"waited {time.monotonic() - started:.0f}s for MLflow run {leader.run_id} of {who(leader)}, "
                "still training the same inputs: training here instead "
                "(tracking.wait in mlci.yaml sets how long to wait)"
            )
            return None
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        poll = min(poll * 1.5, POLL_MAX)
        current, stage = tracking.run_state(leader.run_id)
        status = current.status
        if stage != "active":
            log(f"MLflow run {leader.run_id} was deleted while training these inputs: claiming them again")
            return None
        if status == "FINISHED":
            found = tracking.find_finished_run(fingerprint)
            if found is not None:
                waited = time.monotonic() - started
                log(f"MLflow run {found.run_id} of {who(leader)} finished after {waited:.0f}s of waiting")
                return found
            return None  # finished without the fingerprint's record (renamed?): train here
        if status != "RUNNING":
            log(f"MLflow run {leader.run_id} of {who(leader)} ended {status}: training these inputs here")
            return None
        why = abandoned(current, time.time(), stale_after(), host, _alive)
        if why is not None:
            tracking.abandon(leader.run_id, why)
            log(f"MLflow run {leader.run_id} of {who(leader)} {why}: marked KILLED; claiming these inputs")
            return None
        if time.monotonic() - said >= PROGRESS_EVERY:
            said = time.monotonic()
            log(
                f"still waiting for MLflow run {leader.run_id} of {who(leader)} "
                f"({time.monotonic() - started:.0f}s so far, up to {deadline - started:.0f}s)"
            )


class Heartbeat:
    """Renews a claim's heartbeat while its job trains (a daemon thread; never raises)."""

    def __init__(self, tracking: Tracking, run_id: str) -> None:
        self._tracking = tracking
        self._run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlci-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_every()):
            with suppress(Exception):  # a missed beat only makes the claim look older
                self._tracking.set_tag(self._run_id, HEARTBEAT_TAG, f"{time.time():.0f}")
