"""MLflow's REST API, spoken without MLflow's client: the fast paths of a tracking server.

A run created, found, read, tagged and ended with one HTTP request each, in
milliseconds, where MLflow's client would first take seconds to import. Every
answer is bounded and every failure raises for the caller (``mlci.tracking``) to
fall back to the client.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from mlci.runs import MAX_PAGES, OVERRIDES_TAG, SEARCH_LIMIT, RunRecord, finished_with_tag

_MAX_REST_BODY = 64 * 1024 * 1024  # one REST answer (a page of runs with their tags)
_FAST_PATH_TIMEOUT = 10.0
_REST_EXPERIMENTS: dict[tuple[str, str], str] = {}  # (uri, name) -> id: an experiment's id never changes


def create_run(
    uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str],
    environ: Mapping[str, str],
    timeout: float,
) -> tuple[str, str] | None:
    """MLflow's REST API: the experiment's id (once), then runs/create."""
    try:
        experiment_id = experiment_id_of(uri, experiment, environ, timeout)
    except ValueError:
        return None  # a deleted experiment: the client explains it
    if experiment_id is None:
        return None  # a new experiment: the client creates it
    created = call(
        uri,
        "POST",
        "runs/create",
        environ,
        {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
        timeout=timeout,
    )
    return str(created["run"]["info"]["run_id"]), experiment_id


def needs_client_tls(environ: Mapping[str, str]) -> bool:
    return any(
        environ.get(name)
        for name in (
            "MLFLOW_TRACKING_INSECURE_TLS",
            "MLFLOW_TRACKING_SERVER_CERT_PATH",
            "MLFLOW_TRACKING_CLIENT_CERT_PATH",
        )
    )


def call(
    uri: str,
    method: str,
    endpoint: str,
    environ: Mapping[str, str],
    body: Any = None,
    timeout: float = _FAST_PATH_TIMEOUT,
) -> Any:
    parts = urllib.parse.urlsplit(uri)
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    data = json.dumps(body).encode() if body is not None else None
    return json.loads(
        request(f"{url}/api/2.0/mlflow/{endpoint}", method, environ, data, timeout, _MAX_REST_BODY) or b"{}"
    )


def request(
    url: str, method: str, environ: Mapping[str, str], data: bytes | None, timeout: float, limit: int
) -> bytes:
    """One request to a tracking server with its credentials as MLflow's client sends
    them: a URL's userinfo, else MLFLOW_TRACKING_TOKEN, else _USERNAME and _PASSWORD."""
    import urllib.request

    from mlci import transport

    parts = urllib.parse.urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    request = urllib.request.Request(
        urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, "")), data=data, method=method
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if userinfo:  # http://user:password@host, as requests (and so MLflow) reads it
        pair = urllib.parse.unquote(userinfo)
        request.add_header("Authorization", f"Basic {base64.b64encode(pair.encode()).decode()}")
    elif environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {environ['MLFLOW_TRACKING_TOKEN']}")
    elif environ.get("MLFLOW_TRACKING_USERNAME"):
        pair = f"{environ['MLFLOW_TRACKING_USERNAME']}:{environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
        request.add_header("Authorization", f"Basic {base64.b64encode(pair.encode()).decode()}")
    return transport.fetch(request, deadline=timeout, limit=limit).body


def experiment_id_of(
    uri: str, experiment: str, environ: Mapping[str, str], timeout: float = _FAST_PATH_TIMEOUT
) -> str | None:
    """MLflow's REST API: experiments/get-by-name, once per process (None: no such experiment)."""
    known = _REST_EXPERIMENTS.get((uri, experiment))
    if known is not None:
        return known
    query = urllib.parse.urlencode({"experiment_name": experiment})
    try:
        found = call(uri, "GET", f"experiments/get-by-name?{query}", environ, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            payload = json.loads(exc.read() or b"{}")
            if payload.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
                return None
        raise
    experiment_info = found["experiment"]
    if experiment_info.get("lifecycle_stage") != "active":
        raise ValueError("experiment is not active")  # let the client path explain it
    _REST_EXPERIMENTS[(uri, experiment)] = str(experiment_info["experiment_id"])
    return _REST_EXPERIMENTS[(uri, experiment)]


def search(
    uri: str,
    experiment: str,
    filter_string: str,
    limit: int,
    order: str,
    environ: Mapping[str, str],
    timeout: float = _FAST_PATH_TIMEOUT,
    page_token: str | None = None,
) -> tuple[list[RunRecord], str | None]:
    """MLflow's REST API: the experiment's id (once), then one page of runs/search, as
    RunRecords, with the next page's token (None: the last page)."""
    experiment_id = experiment_id_of(uri, experiment, environ, timeout)
    if experiment_id is None:
        return [], None
    body: dict[str, Any] = {
        "experiment_ids": [experiment_id],
        "filter": filter_string,
        "run_view_type": "ACTIVE_ONLY",
        "max_results": limit,
        "order_by": [f"attributes.start_time {order}"],
    }
    if page_token:
        body["page_token"] = page_token
    result = call(uri, "POST", "runs/search", environ, body, timeout=timeout)
    token = result.get("next_page_token")
    return [record(run) for run in result.get("runs") or []], str(token) if token else None


def record(run: Any) -> RunRecord:
    info, data = run["info"], run.get("data", {})
    return RunRecord(
        run_id=info["run_id"],
        experiment_id=str(info["experiment_id"]),
        status=info["status"],
        start_time=int(info["start_time"]) if info.get("start_time") is not None else None,
        metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
        params={p["key"]: p["value"] for p in data.get("params", [])},
        tags={t["key"]: t["value"] for t in data.get("tags", [])},
        artifact_uri=str(info.get("artifact_uri") or ""),
    )


def find_finished_run(
    uri: str,
    experiment: str,
    key: str,
    value: str,
    skip_overrides: bool,
    environ: Mapping[str, str],
    timeout: float = _FAST_PATH_TIMEOUT,
) -> RunRecord | None:
    """MLflow's REST API: experiments/get-by-name, then runs/search, page by page while
    every run of a page was trained with --set (as ``_client_find``)."""
    token: str | None = None
    for _ in range(MAX_PAGES):
        runs, token = search(
            uri,
            experiment,
            finished_with_tag(key, value),
            SEARCH_LIMIT if skip_overrides else 1,
            "DESC",
            environ,
            timeout,
            token,
        )
        found = next((r for r in runs if not (skip_overrides and r.tags.get(OVERRIDES_TAG))), None)
        if found is not None or not skip_overrides or not token:
            return found
    return None
