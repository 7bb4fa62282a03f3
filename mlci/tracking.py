"""MLflow: the one module that talks to it.

``import mlflow`` and opening a store cost about two seconds, more than the
whole budget of a run-cache hit. So the cache lookup has fast paths that
never import mlflow: a read-only query of the embedded sqlite store, and
MLflow's documented REST API (``runs/search``) for a tracking server. Any
surprise on a fast path (an unknown schema, an auth challenge, TLS settings)
falls back to ``MlflowClient``, which is always right, just slower.

Library errors are translated here into ``TrackingError`` with a hint.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlci import sqlite_runs, store_template, tracking_rest
from mlci.errors import TrackingError
from mlci.runs import (
    FINGERPRINT_TAG as FINGERPRINT_TAG,
)
from mlci.runs import (
    MAX_PAGES,
    SEARCH_LIMIT,
    finished_with_tag,
)
from mlci.runs import (
    MODEL_DIGEST_TAG as MODEL_DIGEST_TAG,
)
from mlci.runs import (
    MODEL_ID_TAG as MODEL_ID_TAG,
)
from mlci.runs import (
    OVERRIDES_TAG as OVERRIDES_TAG,
)
from mlci.runs import (
    PREDICTIONS_DIGEST_TAG as PREDICTIONS_DIGEST_TAG,
)
from mlci.runs import (
    PREDICTIONS_METRICS_TAG as PREDICTIONS_METRICS_TAG,
)
from mlci.runs import (
    PREDICTIONS_TAG as PREDICTIONS_TAG,
)
from mlci.runs import (
    REPEAT_OF_TAG as REPEAT_OF_TAG,
)
from mlci.runs import (
    REPEATS_TAG as REPEATS_TAG,
)
from mlci.runs import (
    RESTORED_TAG as RESTORED_TAG,
)
from mlci.runs import (
    ROWS_TAG as ROWS_TAG,
)
from mlci.runs import (
    SEED_TAG as SEED_TAG,
)
from mlci.runs import (
    RunRecord as RunRecord,
)
from mlci.runs import (
    is_http as is_http,
)
from mlci.runs import (
    sqlite_path as sqlite_path,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

_T = TypeVar("_T")

# Held by a background warm-up (Tracking.warm_up) while it imports MLflow and opens the
# store. MLflow's modules import each other in circles, and two threads importing them at
# once can each be handed the other's half-made module ("partially initialized module"):
# every other import of MLflow here waits for the warm-up first (_mlflow_loaded).
_IMPORTING = threading.RLock()  # re-entrant: the warm-up itself may pass through _mlflow_loaded


# Whether this process will use MLflow's client after training (it registers or promotes
# a model: the push flow, the demo). A run recorded without MLflow then still loads it in
# the background while the command trains, where it costs nothing.
_CLIENT_AHEAD = threading.Event()


def expect_client() -> None:
    """Say that this process will use MLflow's client later (see ``client_ahead``)."""
    _CLIENT_AHEAD.set()


def client_ahead() -> bool:
    return _CLIENT_AHEAD.is_set()


def _mlflow_loaded() -> None:
    """Wait for a warm-up's import of MLflow to finish; return at once when none runs."""
    with _IMPORTING:
        pass


_MAX_PARAM_LENGTH = 6000
MAX_ARTIFACT = 256 * 1024 * 1024  # one artifact read on a fast path (predictions, a profile)


DEFAULT_TIMEOUT = 20.0  # seconds a tracking server has to answer one request (tracking.timeout)
HTTP_RETRIES = 2  # MLflow's own default is 7 with exponential backoff: over four minutes
_UNREACHABLE = ("max retries exceeded", "connectionerror", "connection refused", "timed out", "timeout")
_CORRUPT = ("file is not a database", "database disk image is malformed", "file is encrypted")
_DISK_FULL = ("database or disk is full", "no space left on device", "errno 28", "disk quota exceeded")


def disk_full(what: str, uri: str) -> TrackingError:
    """The disk that holds the store (or the temporary folder MLflow stages files in) is full."""
    import tempfile

    path = sqlite_path(uri)
    where = path.parent if path is not None else Path(tempfile.gettempdir())
    return TrackingError(
        f"MLflow: {what} failed: no space left on the disk that holds {where}",
        hint=f"free space on it (`df -h {where}` shows how much is left) and run again; "
        "the store itself is not damaged",
    )


def time_bound(timeout: float) -> float:
    """How long mlci waits at most for a tracking server that does not answer:
    the first try and ``HTTP_RETRIES`` retries, each up to ``timeout``, plus backoff."""
    return (HTTP_RETRIES + 1) * timeout + float(sum(2**i for i in range(HTTP_RETRIES)))


class TrackingUnreachable(TrackingError):
    """The tracking server did not answer within its bound."""


def unreachable(uri: str, timeout: float, detail: str) -> TrackingError:
    from mlci import redact

    return TrackingUnreachable(
        f"MLflow: the tracking server {redact.url(uri)} did not answer: {redact.text(detail)}",
        hint="check that the server is running and reachable from here, and MLFLOW_TRACKING_URI; "
        f"mlci waits up to tracking.timeout ({timeout:g}s, in mlci.yaml) for an answer, its "
        f"headers and body together, and asks {HTTP_RETRIES} times more when none came "
        f"(at most {time_bound(timeout):g}s in all)",
    )


def corrupt_store(path: Path, detail: str) -> TrackingError:
    return TrackingError(
        f"the embedded tracking store {path} is damaged ({detail})",
        hint=f"move it aside (mv {path} {path}.damaged) and run again: mlci starts a new store. "
        "Runs recorded only in it are lost; the registry (git tags) is not, "
        "and `mlci pull` restores a version's model from where its tag says it lives",
    )


class _RedactedStderr(io.TextIOBase):
    """Where MLflow's prints go ("View run ... at: URL"): stderr, without credentials."""

    def write(self, text: str) -> int:
        from mlci import redact

        sys.stderr.write(redact.text(text))
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextmanager
def _translated(what: str, uri: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    # MLflow prints "View run ... at: URL" to stdout: keep stdout for --json.
    try:
        with redirect_stdout(_RedactedStderr()):
            yield
    except TrackingError:
        raise
    except Exception as exc:  # MLflow raises MlflowException, requests' errors, sqlalchemy's ...
        _mlflow_loaded()
        from mlflow.exceptions import MlflowException

        from mlci import redact

        detail = exc.message if isinstance(exc, MlflowException) else f"{type(exc).__name__}: {exc}"
        lowered = f"{type(exc).__name__} {detail}".lower()
        path = sqlite_path(uri)
        if any(s in lowered for s in _DISK_FULL) or getattr(exc, "errno", None) == 28:
            raise disk_full(what, uri) from exc
        if path is not None and any(s in lowered for s in _CORRUPT):
            raise corrupt_store(path, detail.splitlines()[0][:200]) from exc
        if is_http(uri) and any(s in lowered for s in _UNREACHABLE):
            raise unreachable(uri, timeout, detail.splitlines()[0][:300]) from exc
        hint = (
            "check that the tracking server is running and reachable, and MLFLOW_TRACKING_URI"
            if is_http(uri)
            else "check tracking.uri in mlci.yaml and MLFLOW_TRACKING_URI"
        )
        raise TrackingError(f"MLflow: {what} failed against {redact.url(uri)}: {detail}", hint=hint) from exc


class Tracking:
    """One MLflow tracking store and one experiment in it."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        *,
        artifact_root: Path | None,
        environ: Mapping[str, str],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.uri = uri
        self.timeout = timeout
        self.experiment = experiment
        self.artifact_root = artifact_root
        self.environ = environ
        self._client_instance: MlflowClient | None = None
        self._experiment_id: str | None = None
        self.fast_path_used: str | None = None  # for tests and --json: "sqlite", "rest" or None
        self._warming: threading.Thread | None = None

    # ------------------------------------------------------------------ client

    @property
    def client(self) -> MlflowClient:
        warming = self._warming
        if warming is not None:
            warming.join()  # the background warm-up made it (or failed: then make it here, and say why)
            self._warming = None
        if self._client_instance is None:
            with _translated("opening the tracking store", self.uri, self.timeout):
                self._client_instance = self._open_client()
        return self._client_instance

    def _client_environ(self) -> None:
        """What MLflow's client reads from the process environment, set before it loads
        (on the main thread, before a warm-up thread starts: a key added while another
        thread iterates the environment breaks that thread). A user's own setting wins.

        MLflow's telemetry is off unless the user chose (``MLFLOW_DISABLE_TELEMETRY`` or
        ``DO_NOT_TRACK`` set): where its configuration cannot be fetched (a runner without
        internet), MLflow 3.18 removes ``_MLFLOW_TELEMETRY_SESSION_ID`` from the environment
        on a thread of its own while a request of the client's reads the environment for
        proxies, and the request fails with ``KeyError('_MLFLOW_TELEMETRY_SESSION_ID')``
        (seen here: a run's logging failed against a server)."""
        if is_http(self.uri):
            # MLflow reads these from the process environment on each request.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", f"{max(1, round(self.timeout))}")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
        if "DO_NOT_TRACK" not in os.environ:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    def _open_client(self) -> MlflowClient:
        """MlflowClient on this store. Touches no process-wide stream (``_translated`` does,
        so the background warm-up, which runs while the main thread may redirect, calls
        this and never ``client``)."""
        path = sqlite_path(self.uri)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _check_sqlite(path)
        self._client_environ()
        from mlflow.tracking import MlflowClient

        # MLflow (which sets its loggers up on import) and alembic announce
        # every schema migration at INFO: noise in a CI log.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # MLflow logs a database error with its traceback before raising it; mlci reports
        # the error itself, in one message with a hint.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def embedded_store(self) -> Path | None:
        """The embedded store's file, where it exists (None: a server, or a store not made yet)."""
        path = sqlite_path(self.uri)
        return path if path is not None and path.is_file() else None

    @property
    def _artifact_location(self) -> str | None:
        """Where a new experiment keeps its artifacts: mlci's folder (None: MLflow's default)."""
        return self.artifact_root.resolve().as_uri() if self.artifact_root else None

    def experiment_id(self, create: bool) -> str | None:
        if self._experiment_id is not None:
            return self._experiment_id
        with _translated(f"finding experiment {self.experiment!r}", self.uri, self.timeout):
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None and found.lifecycle_stage != "active":
                raise TrackingError(
                    f"MLflow experiment {self.experiment!r} at {self.uri} is deleted",
                    hint="restore it in MLflow, or set tracking.experiment in mlci.yaml to a new name",
                )
            if found is None:
                if not create:
                    return None
                _mlflow_loaded()
                from mlflow.exceptions import MlflowException

                try:
                    made = self.client.create_experiment(
                        self.experiment, artifact_location=self._artifact_location
                    )
                    self._experiment_id = str(made)
                except MlflowException as exc:
                    # Another job made it between the lookup and the create (twenty pull
                    # requests of a new project at once): it is the one to use.
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    found = self.client.get_experiment_by_name(self.experiment)
                    if found is None:
                        raise
                    self._experiment_id = str(found.experiment_id)
            else:
                self._experiment_id = str(found.experiment_id)
        return self._experiment_id

    # ------------------------------------------------------------------ run cache

    def find_finished_run(self, fingerprint: str) -> RunRecord | None:
        """The newest FINISHED, not deleted run with this fingerprint, if any."""
        return self._find(FINGERPRINT_TAG, fingerprint, skip_overrides=False)

    def find_finished_run_tagged(self, key: str, value: str) -> RunRecord | None:
        """The newest FINISHED, not deleted run whose tag ``key`` is ``value``, if any."""
        return self._find(key, value, skip_overrides=False)

    def _find(self, key: str, value: str, *, skip_overrides: bool) -> RunRecord | None:
        """The newest FINISHED, not deleted run whose tag ``key`` is ``value`` (and, with
        ``skip_overrides``, trained without --set): the fast path first (a read-only
        query of the embedded store, MLflow's REST API on a server), the client if not."""
        path = sqlite_path(self.uri)
        if path is not None:
            if not path.exists():
                self.fast_path_used = "sqlite"
                return None
            try:
                found = sqlite_runs.find_finished_run(path, self.experiment, key, value, skip_overrides)
                self.fast_path_used = "sqlite"
                return found
            except sqlite3.Error:
                pass
        elif self._rest_fast_path():
            answered, found = self._via_rest(
                lambda: tracking_rest.find_finished_run(
                    self.uri, self.experiment, key, value, skip_overrides, self.environ, self.timeout
                )
            )
            if answered:
                self.fast_path_used = "rest"
                return found
        return self._client_find(key, value, skip_overrides=skip_overrides)

    def _rest_fast_path(self) -> bool:
        return is_http(self.uri) and not tracking_rest.needs_client_tls(self.environ)

    def _via_rest(self, call: Callable[[], _T], *, idempotent: bool = True) -> tuple[bool, _T | None]:
        """``call`` (MLflow's REST API), and whether it answered: (False, None) where the
        client should answer instead; an unreachable server is an error at once.

        A request that got no answer within ``tracking.timeout`` (a busy server) is asked
        again, ``HTTP_RETRIES`` times with backoff, as MLflow's client would; a creation is
        left to the client (its own retries), as before. A server that began to answer and
        then trickled past the deadline is not asked again: it is not answering."""
        from mlci import transport  # HTTP's modules load only for a server

        for attempt in range(HTTP_RETRIES + 1):
            try:
                return True, call()
            except transport.DeadlineExceeded as exc:
                if exc.received == 0 and not idempotent:
                    return False, None
                if exc.received or attempt == HTTP_RETRIES:
                    raise unreachable(self.uri, self.timeout, str(exc)) from exc
                time.sleep(0.5 * 2**attempt)  # within time_bound, with room for the rest of the command
            except urllib.error.HTTPError:
                return False, None  # the client explains a refusal better
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    return False, None
                raise unreachable(self.uri, self.timeout, str(getattr(exc, "reason", exc))) from exc
            except ConnectionError as exc:
                # Unreachable: MLflow's client would only wait longer to say the same.
                raise unreachable(self.uri, self.timeout, str(getattr(exc, "reason", exc))) from exc
            except (OSError, ValueError, KeyError, TypeError):
                return False, None
        return False, None  # pragma: no cover - the loop returns or raises

    def _client_find(self, key: str, value: str, *, skip_overrides: bool) -> RunRecord | None:
        """``_find`` through MlflowClient: where no fast path answers (and, in tests, the
        reference). Runs trained with --set are passed over page by page, as the embedded
        store's query passes them over: a sweep's candidates never hide the run without."""
        experiment_id = self.experiment_id(create=False)
        if experiment_id is None:
            return None
        token: str | None = None
        for _ in range(MAX_PAGES):
            with _translated("searching runs", self.uri, self.timeout):
                page = self.client.search_runs(
                    [experiment_id],
                    filter_string=finished_with_tag(key, value),
                    max_results=SEARCH_LIMIT if skip_overrides else 1,
                    order_by=["attributes.start_time DESC"],
                    page_token=token,
                )
            for run in page:
                if not (skip_overrides and run.data.tags.get(OVERRIDES_TAG)):
                    return _record(run)
            token = page.token
            if not skip_overrides or not token:
                return None
        return None

    def _search(self, filter_string: str, limit: int, *, ascending: bool = False) -> list[Any]:
        """Runs of the experiment matching ``filter_string``, newest first (oldest first
        with ``ascending``; [] if no experiment)."""
        experiment_id = self.experiment_id(create=False)
        if experiment_id is None:
            return []
        with _translated("searching runs", self.uri, self.timeout):
            return list(
                self.client.search_runs(
                    [experiment_id],
                    filter_string=filter_string,
                    max_results=limit,
                    order_by=[f"attributes.start_time {'ASC' if ascending else 'DESC'}"],
                )
            )

    # ------------------------------------------------------------------ runs

    def start_run(self, *, run_name: str, tags: Mapping[str, str]) -> str:
        experiment_id = self.experiment_id(create=True)
        assert experiment_id is not None
        with _translated("creating a run", self.uri, self.timeout):
            run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        return str(run.info.run_id)

    def start_run_fast(self, *, run_name: str, tags: Mapping[str, str]) -> tuple[str, str] | None:
        """Create a RUNNING run without MLflow's client: a row in an embedded store whose
        schema mlci knows, or MLflow's REST API on a server. Returns (run id, experiment id),
        or None where no fast path applies (a fresh store, an unknown schema, a new
        experiment): then ``start_run`` does it through the client."""
        path = sqlite_path(self.uri)
        if path is not None:
            try:
                if not path.exists() and not store_template.create_store(path):
                    return None
                return sqlite_runs.create_run(path, self.experiment, run_name, tags, self._artifact_location)
            except (sqlite3.Error, OSError, ValueError, KeyError, TypeError):
                return None
        if self._rest_fast_path():
            return self._via_rest(
                lambda: tracking_rest.create_run(
                    self.uri, self.experiment, run_name, tags, self.environ, self.timeout
                ),
                idempotent=False,
            )[1]
        return None

    # ------------------------------------------------------------------ claims (mlci.claims)

    def live_claims(self, fingerprint: str) -> list[RunRecord]:
        """The RUNNING, not deleted runs with this fingerprint, oldest first: jobs training
        these inputs right now. One indexed search (the fingerprint tag, the status)."""
        filter_string = f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}' and attributes.status = 'RUNNING'"
        if self._rest_fast_path():
            answered, found = self._via_rest(
                lambda: tracking_rest.search(
                    self.uri, self.experiment, filter_string, _CLAIMS_LIMIT, "ASC", self.environ, self.timeout
                )[0]
            )
            if answered:
                return found or []
        return [_record(r) for r in self._search(filter_string, _CLAIMS_LIMIT, ascending=True)]

    def run_state(self, run_id: str) -> tuple[RunRecord, str]:
        """One run as it is now, and its lifecycle stage ("active" or "deleted")."""
        if self._rest_fast_path():
            query = urllib.parse.urlencode({"run_id": run_id})
            answered, found = self._via_rest(
                lambda: tracking_rest.call(
                    self.uri, "GET", f"runs/get?{query}", self.environ, timeout=self.timeout
                )
            )
            if answered and found:
                return tracking_rest.record(found["run"]), str(
                    found["run"]["info"].get("lifecycle_stage", "active")
                )
        with _translated(f"reading run {run_id}", self.uri, self.timeout):
            run = self.client.get_run(run_id)
        return _record(run), run.info.lifecycle_stage

    def abandon(self, run_id: str, why: str) -> None:
        """Mark KILLED a RUNNING run whose trainer died, saying why (tag mlci.abandoned)."""
        self.set_tag(run_id, ABANDONED_TAG, why)
        self.end_run(run_id, "KILLED")

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        path = self.embedded_store()
        if path is not None:
            with suppress(sqlite3.Error, OSError):
                if sqlite_runs.set_tag(path, run_id, key, value):
                    return
        if self._rest_fast_path():
            body = {"run_id": run_id, "key": key, "value": value}
            answered, _ = self._via_rest(
                lambda: tracking_rest.call(
                    self.uri, "POST", "runs/set-tag", self.environ, body, timeout=self.timeout
                )
            )
            if answered:
                return
        with _translated(f"tagging run {run_id}", self.uri, self.timeout):
            self.client.set_tag(run_id, key, value)

    def discard_run(self, run_id: str) -> None:
        """End a claim that lost to an older one and delete it: no trace in the experiment."""
        if self._rest_fast_path():
            ended, _ = self._via_rest(
                lambda: tracking_rest.call(
                    self.uri,
                    "POST",
                    "runs/update",
                    self.environ,
                    {"run_id": run_id, "status": "KILLED", "end_time": int(time.time() * 1000)},
                    timeout=self.timeout,
                )
            )
            deleted, _ = self._via_rest(
                lambda: tracking_rest.call(
                    self.uri, "POST", "runs/delete", self.environ, {"run_id": run_id}, self.timeout
                )
            )
            if ended and deleted:
                return
        with _translated(f"deleting run {run_id}", self.uri, self.timeout):
            self.client.set_terminated(run_id, "KILLED")
            self.client.delete_run(run_id)

    def warm_up(self) -> None:
        """Import MLflow and open the store in the background (while training runs);
        the first use of ``client`` waits for it."""
        self._client_environ()

        def work() -> None:
            # On failure the main thread opens it again, and reports the error.
            with _IMPORTING, suppress(Exception):
                self._client_instance = self._open_client()

        self._warming = threading.Thread(target=work, name="mlci-mlflow-warm-up", daemon=True)
        self._warming.start()

    def reap_abandoned(self, log: Callable[[str], None]) -> list[str]:
        """Mark KILLED the RUNNING runs that an mlci on this host started and that
        died without ending them (SIGKILL, a crashed runner). Returns their ids."""
        host = owner_tags()[OWNER_HOST_TAG]
        runs: list[tuple[str, Mapping[str, str]]] | None = None
        path = self.embedded_store()
        if path is not None:
            with suppress(sqlite3.Error, OSError):
                runs = list(sqlite_runs.running_runs(path, self.experiment, OWNER_HOST_TAG, host))
        if runs is None:
            try:
                found = self._search(
                    f"attributes.status = 'RUNNING' and tags.`{OWNER_HOST_TAG}` = '{host}'", 100
                )
            except TrackingUnreachable:
                raise  # the run that follows would only wait as long again to say the same
            except TrackingError:
                return []
            runs = [(run.info.run_id, run.data.tags) for run in found]
        reaped = []
        for run_id, tags in runs:
            pid = tags.get(OWNER_PID_TAG, "")
            if not pid.isdigit() or _alive(int(pid)):
                continue
            self.abandon(run_id, f"mlci (pid {pid}) died while training")
            reaped.append(run_id)
            log(f"MLflow run {run_id} was left RUNNING by an mlci that died (pid {pid}): marked KILLED")
        return reaped

    def logs_without_client(self) -> bool:
        """Whether a run's results go into the store without MLflow's client: an embedded
        store whose tables mlci's rows fit (then nothing needs MLflow warmed up)."""
        path = self.embedded_store()
        return path is not None and sqlite_runs.fits(path)

    def end_run(self, run_id: str, status: str) -> None:
        """Mark a run FAILED or KILLED; never raises (it runs while another error is reported)."""
        path = self.embedded_store()
        if path is not None:
            with suppress(sqlite3.Error, OSError):
                if sqlite_runs.end_run(path, run_id, status):
                    return
        try:
            with redirect_stdout(_RedactedStderr()):
                self.client.set_terminated(run_id, status)
        except Exception as exc:  # the original error matters more than this one
            from mlci import redact

            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            first = next(
                (line for line in lines if any(m in line.lower() for m in _DISK_FULL)),
                next((line for line in lines if "Error" in line), lines[0]),
            )
            logging.getLogger(__name__).warning(
                "could not mark run %s %s: %s", run_id, status, redact.text(first[:200])
            )

    def log_results(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        files: list[Path],
        model_dir: Path | None,
        model_name: str,
        tags: Mapping[str, str] | None = None,
    ) -> str | None:
        """Log params, metrics, files and the model; finish the run. Returns the logged model id.
        Params, metrics and tags go in one batch (one transaction of the store, not one per tag).
        On the embedded store, mlci writes MLflow's rows itself (mlci.sqlite_runs) where they
        fit, without MLflow's import and store (4 s of CPU)."""
        path = self.embedded_store()
        if path is not None:
            try:
                logged = sqlite_runs.log_results(
                    path,
                    run_id,
                    params={k: param_value(v) for k, v in params.items()},
                    metrics=metrics,
                    tags=dict(tags or {}),
                    files=files,
                    model_dir=model_dir,
                    model_name=_logged_model_name(model_name),
                    model_id_tag=MODEL_ID_TAG,
                )
            except (sqlite3.Error, OSError, ValueError, TypeError):
                logged = None  # MLflow's client tries, and reports what fails in its words
            if logged is not None:
                return logged[0]
        _mlflow_loaded()
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        with _translated("logging the run", self.uri, self.timeout):
            for path in files:
                self.client.log_artifact(run_id, str(path))
            model_id = None
            all_tags = dict(tags or {})
            if model_dir is not None:
                model_id = self._log_model(run_id, model_dir, model_name)
                all_tags[MODEL_ID_TAG] = model_id
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, param_value(v)) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in all_tags.items()],
            )
            self.client.set_terminated(run_id, "FINISHED")
        return model_id

    def _log_model(self, run_id: str, model_dir: Path, name: str) -> str:
        """The model folder as an MLflow logged model (MLflow 3's model entity) of the run."""
        experiment_id = self.experiment_id(create=True)
        assert experiment_id is not None
        model = self.client.create_logged_model(
            experiment_id, name=_logged_model_name(name), source_run_id=run_id
        )
        try:
            self.client.log_model_artifacts(model.model_id, str(model_dir))
        except Exception:
            self.client.finalize_logged_model(model.model_id, "FAILED")
            raise
        self.client.finalize_logged_model(model.model_id, "READY")
        return str(model.model_id)

    def import_run(
        self,
        *,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, str],
        metrics: Mapping[str, float],
        model_dir: Path | None,
        model_name: str,
        files: list[Path] | None = None,
    ) -> RunRecord:
        """Record a run made elsewhere (a workflow artifact, a release) in this store,
        with its model (and ``files``, such as its predictions), so that this store's run
        cache and registry have it."""
        run_id = self.start_run(run_name=run_name, tags=tags)
        try:
            self.log_results(
                run_id,
                params=params,
                metrics=metrics,
                files=list(files or []),
                model_dir=model_dir,
                model_name=model_name,
            )
        except BaseException:
            self.end_run(run_id, "FAILED")
            raise
        return self.get_run(run_id)

    def models_of_run(self, run_id: str, experiment_id: str) -> list[tuple[str, str]]:
        """The models the training code logged itself to run ``run_id`` (``mlflow.<flavor>.
        log_model``): (model id, name) pairs, oldest first. The embedded store is read
        directly; a server through MLflow's client."""
        path = self.embedded_store()
        if path is not None:
            with suppress(sqlite3.Error):
                return sqlite_runs.models_of_run(path, run_id)
        with _translated(f"finding the models run {run_id} logged", self.uri, self.timeout):
            found = self.client.search_logged_models(
                experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"
            )
        models = sorted(found, key=lambda m: m.creation_timestamp or 0)
        return [(str(m.model_id), str(m.name)) for m in models if str(m.status) != "FAILED"]

    def model_source(self, model_id: str) -> str:
        """Where a logged model's files are (an artifact URI this store can download)."""
        with _translated(f"finding logged model {model_id}", self.uri, self.timeout):
            return str(self.client.get_logged_model(model_id).artifact_location)

    def download(self, artifact_uri: str, dest: Path) -> Path:
        """Copy the files at ``artifact_uri`` (a model version's source) into ``dest``."""
        _mlflow_loaded()
        import mlflow.artifacts

        dest.mkdir(parents=True, exist_ok=True)
        self.client  # noqa: B018 (opens the store, so its settings apply)
        with _translated(f"downloading {artifact_uri}", self.uri, self.timeout):
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(dest), tracking_uri=self.uri
            )
        return Path(path)

    def get_run(self, run_id: str) -> RunRecord:
        """A run by its id: the fast paths first (the embedded store read-only, MLflow's
        REST API on a server), MLflow's client where neither answers."""
        path = self.embedded_store()
        if path is not None:
            with suppress(sqlite3.Error):
                found = sqlite_runs.get_run(path, run_id)
                if found is not None:
                    self.fast_path_used = "sqlite"
                    return found
        elif self._rest_fast_path():
            query = urllib.parse.urlencode({"run_id": run_id})
            answered, got = self._via_rest(
                lambda: tracking_rest.call(
                    self.uri, "GET", f"runs/get?{query}", self.environ, timeout=self.timeout
                )
            )
            if answered and isinstance(got, dict) and isinstance(got.get("run"), dict):
                with suppress(KeyError, TypeError, ValueError):
                    record = tracking_rest.record(got["run"])
                    self.fast_path_used = "rest"
                    return record
        with _translated(f"reading run {run_id}", self.uri, self.timeout):
            run = self.client.get_run(run_id)
        return _record(run)

    def read_artifact(
        self, run: RunRecord, name: str, dest: Path, *, sha256: str | None, limit: int = MAX_ARTIFACT
    ) -> Path:
        """The file ``name`` among ``run``'s artifacts, copied to ``dest`` (a folder), at most
        ``limit`` bytes, its sha256 checked where the run recorded one. Read without MLflow
        where the artifacts are on this machine's disk (the embedded store), behind the
        server's proxied artifact API (``mlflow-artifacts:``) or at a plain URL; through
        MLflow's client elsewhere (an object store's own credentials and protocol)."""
        from mlci import archive

        if not _safe_artifact_name(name):
            raise TrackingError(
                f"run {run.run_id} names its artifact {name!r}, not a plain relative path",
                hint="the run's tags were edited by hand: train again",
            )
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / Path(name).name
        body = self._artifact_bytes(run, name, limit)
        if body is None:
            found = self.download(f"runs:/{run.run_id}/{name}", dest)
            found = found / Path(name).name if found.is_dir() else found
            if found.stat().st_size > limit:
                raise TrackingError(f"run {run.run_id}'s {name} is over {limit} bytes")
            if found != target:
                target.write_bytes(found.read_bytes())
        else:
            target.write_bytes(body)
        archive.verify(
            archive.file_chunks(target), expected=sha256 or None, source=f"run {run.run_id}'s {name}"
        )
        return target

    def _artifact_bytes(self, run: RunRecord, name: str, limit: int) -> bytes | None:
        """The artifact's bytes by a fast path; None where only MLflow's client can read it."""
        location = run.artifact_uri
        parts = urllib.parse.urlsplit(location)
        if parts.scheme in ("", "file"):
            if not location:
                return None
            root = Path(urllib.parse.unquote(parts.path)) if parts.scheme else Path(location)
            return _local_artifact(root, name, limit, run.run_id)
        if (
            parts.scheme == "mlflow-artifacts"
            and is_http(self.uri)
            and not tracking_rest.needs_client_tls(self.environ)
        ):
            tracking = urllib.parse.urlsplit(self.uri)
            if parts.netloc and parts.netloc != tracking.netloc.rpartition("@")[2]:
                return None  # another host: MLflow's client decides how to reach it
            path = f"{tracking.path.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{parts.path.strip('/')}"
            url = urllib.parse.urlunsplit((tracking.scheme, tracking.netloc, path, "", ""))
            return self._fetch_artifact(f"{url}/{urllib.parse.quote(name)}", limit, run.run_id, name)
        if parts.scheme in ("http", "https"):
            return self._fetch_artifact(
                f"{location.rstrip('/')}/{urllib.parse.quote(name)}", limit, run.run_id, name
            )
        return None

    def _fetch_artifact(self, url: str, limit: int, run_id: str, name: str) -> bytes:
        """A GET of an artifact, asked again after a silent deadline as ``_via_rest`` asks."""
        from mlci import transport

        try:
            for attempt in range(HTTP_RETRIES + 1):
                try:
                    return tracking_rest.request(url, "GET", self.environ, None, self.timeout, limit)
                except transport.DeadlineExceeded as exc:
                    if exc.received or attempt == HTTP_RETRIES:
                        raise unreachable(self.uri, self.timeout, str(exc)) from exc
                    time.sleep(0.5 * 2**attempt)
        except urllib.error.HTTPError as exc:
            from mlci import redact

            hint = "check that the run's artifacts were uploaded and the server proxies artifacts"
            if exc.code in (401, 403):
                hint = "set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and _PASSWORD"
            raise TrackingError(
                f"could not read run {run_id}'s {name} from {redact.url(url)}: HTTP {exc.code}", hint=hint
            ) from exc
        except transport.TooLarge as exc:
            raise TrackingError(f"run {run_id}'s {name} is over {limit} bytes") from exc
        except (urllib.error.URLError, ConnectionError) as exc:
            raise unreachable(self.uri, self.timeout, str(getattr(exc, "reason", exc))) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def find_run_at_commit(self, commit: str) -> RunRecord | None:
        """The newest FINISHED run trained at ``commit`` (without --set overrides)."""
        return self._find(COMMIT_TAG, commit, skip_overrides=True)

    def run_url(self, run_id: str, experiment_id: str) -> str | None:
        if is_http(self.uri):
            from mlci import redact

            return redact.url(f"{self.uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")
        return None


OWNER_HOST_TAG = "mlci.host"
OWNER_PID_TAG = "mlci.pid"
ABANDONED_TAG = "mlci.abandoned"  # why a RUNNING run was marked KILLED: its trainer died


def owner_tags() -> dict[str, str]:
    """Which mlci process runs a training: a later mlci on this host recognises a dead one."""
    import socket

    return {OWNER_HOST_TAG: socket.gethostname(), OWNER_PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _record(run: Any) -> RunRecord:
    """An MLflow ``Run`` as plain data."""
    return RunRecord(
        run_id=run.info.run_id,
        experiment_id=str(run.info.experiment_id),
        status=run.info.status,
        start_time=run.info.start_time,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        artifact_uri=str(run.info.artifact_uri or ""),
    )


COMMIT_TAG = "mlci.git.commit"
_CLAIMS_LIMIT = 50  # jobs training one fingerprint at once, looked at


def _logged_model_name(name: str) -> str:
    # Logged model names may not contain '/'; model names (GTO's grammar) may.
    return name.replace("/", "-")


def param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _MAX_PARAM_LENGTH else text[: _MAX_PARAM_LENGTH - 3] + "..."


# --------------------------------------------------------------------------- fast paths


def _check_sqlite(path: Path) -> None:
    """A damaged database file said as such, before MLflow's migrations trip over it."""
    if not path.exists():
        return
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
        size = path.stat().st_size
    except OSError:
        return
    if size and (size < 100 or header != b"SQLite format 3\x00"):
        raise corrupt_store(path, "not an SQLite database" if size >= 100 else f"truncated to {size} bytes")


def _safe_artifact_name(name: str) -> bool:
    """A relative path inside the run's artifacts: no root, no '..', no backslash or NUL."""
    if not name or "\\" in name or "\0" in name or name.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _local_artifact(root: Path, name: str, limit: int, run_id: str) -> bytes:
    """An artifact of the embedded store, read from disk: a regular file (no link) under
    the run's artifact folder, at most ``limit`` bytes."""
    path = root / name
    try:
        if path.is_symlink() or not path.is_file():
            raise TrackingError(
                f"run {run_id} has no artifact {name} in {root}",
                hint="the run's artifact folder was moved or cleaned: train again (mlci train)",
            )
        if path.stat().st_size > limit:
            raise TrackingError(f"run {run_id}'s {name} is over {limit} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise TrackingError(f"could not read run {run_id}'s {name} in {root}: {exc}") from exc


# --------------------------------------------------------------------------- model registry

GIT_TAG_TAG = "mlci.git_tag"
GIT_COMMIT_TAG = "mlci.git_commit"


def registered_model_name(model: str) -> str:
    """MLflow registered model names may not hold '/' or ':' (GTO names may)."""
    return model.replace("/", ".").replace(":", ".")


@dataclass(frozen=True)
class ModelVersionRecord:
    version: str
    run_id: str | None
    tags: dict[str, str]
    source: str = ""


class Registry:
    """MLflow's model registry for one registered model."""

    def __init__(self, tracking: Tracking, model: str) -> None:
        self.tracking = tracking
        self.name = registered_model_name(model)

    @property
    def uri(self) -> str:
        return self.tracking.uri

    def create_version(
        self, *, run_id: str, model_id: str | None, tags: Mapping[str, str], description: str
    ) -> str:
        _mlflow_loaded()
        from mlflow.exceptions import MlflowException

        client = self.tracking.client
        with _translated(f"registering a version of {self.name}", self.uri, self.tracking.timeout):
            try:
                client.create_registered_model(self.name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            # The logged model's own location, not "models:/ID": MLflow would resolve
            # that through the process-wide default store, not this client's.
            if model_id:
                source = self.tracking.client.get_logged_model(model_id).artifact_location
            else:
                source = f"runs:/{run_id}"  # no model file: the version points at its run
            version = client.create_model_version(
                self.name,
                source,
                run_id=run_id,
                tags=dict(tags),
                description=description,
                model_id=model_id,
                await_creation_for=0,
            )
        return str(version.version)

    def delete_version(self, version: str) -> None:
        with _translated(f"deleting version {version} of {self.name}", self.uri, self.tracking.timeout):
            self.tracking.client.delete_model_version(self.name, version)

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        with _translated(f"tagging version {version} of {self.name}", self.uri, self.tracking.timeout):
            self.tracking.client.set_model_version_tag(self.name, version, key, value)

    def set_alias(self, alias: str, version: str) -> None:
        with _translated(f"setting alias {alias!r} of {self.name}", self.uri, self.tracking.timeout):
            self.tracking.client.set_registered_model_alias(self.name, alias, version)

    def delete_alias(self, alias: str) -> None:
        with _translated(f"removing alias {alias!r} of {self.name}", self.uri, self.tracking.timeout):
            self.tracking.client.delete_registered_model_alias(self.name, alias)

    def versions(self) -> list[ModelVersionRecord]:
        """Every version of the model ([] if it is not registered yet). On the embedded
        store, read from its tables without MLflow (mlci.sqlite_runs.model_versions)."""
        path = self.tracking.embedded_store()
        if path is not None:
            with suppress(sqlite3.Error, OSError, ValueError):
                rows = sqlite_runs.model_versions(path, self.name)
                if rows is not None:
                    return [
                        ModelVersionRecord(version=v, run_id=run, tags=tags, source=source)
                        for v, run, source, tags in rows
                    ]
        _mlflow_loaded()
        from mlflow.exceptions import MlflowException

        with _translated(f"listing versions of {self.name}", self.uri, self.tracking.timeout):
            try:
                self.tracking.client.get_registered_model(self.name)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return []
                raise
            found = self.tracking.client.search_model_versions(f"name = '{self.name}'")
        return [
            ModelVersionRecord(
                version=str(v.version),
                run_id=v.run_id,
                tags=dict(v.tags or {}),
                source=str(v.source or ""),
            )
            for v in found
        ]

    def version_for_tag(self, tag: str, hint: str | None = None) -> str | None:
        """The MLflow version that points back at git tag ``tag`` (the tag's own
        record of it, ``hint``, preferred; `doctor --fix` may have made another)."""
        matches = [v.version for v in self.versions() if v.tags.get(GIT_TAG_TAG) == tag]
        if hint is not None and hint in matches:
            return hint
        return max(matches, key=int) if matches else None

    def aliases(self) -> dict[str, str]:
        """alias -> version."""
        _mlflow_loaded()
        from mlflow.exceptions import MlflowException

        with _translated(f"reading aliases of {self.name}", self.uri, self.tracking.timeout):
            try:
                model = self.tracking.client.get_registered_model(self.name)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return {}
                raise
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}
