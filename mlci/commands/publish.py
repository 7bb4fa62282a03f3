"""``mlci publish``: post a report made by an untrusted job (the fork-safe flow).

The files come from an artifact that a fork's pull request produced, so they
are data to check, not to trust: the pull request number must name a pull
request whose head is the commit the trusted event names, the model and
environment names must be valid, the verdict one of the known ones, and the
comment must carry mlci's marker for that model. Nothing from the files is
run or interpolated into a command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from mlci import ci_env
from mlci.commands.ci import PULL_REQUEST_FILE
from mlci.config import ENV_NAME_RE, MODEL_NAME_RE
from mlci.report import MARKER

REPORT_FILE = "report.md"
MAX_BODY = 65_536


def _load(folder: Path) -> tuple[dict[str, Any], str]:
    try:
        meta = json.loads((folder / PULL_REQUEST_FILE).read_text(encoding="utf-8"))
        body = (folder / REPORT_FILE).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ci_env.CiError(
            f"{exc.filename} is missing from the report folder {folder}",
            hint="download the artifact the pull request job uploaded (mlci-report)",
        ) from None
    except (OSError, ValueError) as exc:
        raise ci_env.CiError(f"the report in {folder} is unreadable: {exc}") from None
    if not isinstance(meta, dict):
        raise ci_env.CiError(f"{folder / PULL_REQUEST_FILE} is not a JSON object")
    return meta, body


def _checked(meta: dict[str, Any], body: str) -> dict[str, Any]:
    def bad(what: str) -> ci_env.CiError:
        return ci_env.CiError(f"the report artifact is not trustworthy: {what}", hint="nothing was posted")

    model, env, verdict, number = (
        meta.get("model"),
        meta.get("environment"),
        meta.get("verdict"),
        meta.get("number"),
    )
    if not isinstance(model, str) or not MODEL_NAME_RE.match(model):
        raise bad(f"model {model!r}")
    if env is not None and (not isinstance(env, str) or not ENV_NAME_RE.match(env)):
        raise bad(f"environment {env!r}")
    if verdict not in ("pass", "fail", None):
        raise bad(f"verdict {verdict!r}")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise bad(f"pull request number {number!r}")
    marker = MARKER.format(model=model)
    if not body.startswith(marker):
        raise bad("the comment does not start with mlci's marker for the model")
    if len(body) > MAX_BODY:
        raise bad(f"the comment has {len(body)} characters, over GitHub's {MAX_BODY}")
    description = meta.get("description")
    return {
        "model": model,
        "environment": env,
        "verdict": verdict,
        "number": number,
        "marker": marker,
        "description": description if isinstance(description, str) else "",
    }


def publish(
    folder: Path,
    *,
    head_sha: str,
    environ: Mapping[str, str],
    token: str | None,
    log: Callable[[str], None],
    out: IO[str] = sys.stdout,
) -> dict[str, Any]:
    from mlci import github_api

    ctx = ci_env.context(environ)
    if not token or not ctx.repository:
        raise ci_env.CiError(
            "publishing needs a token and GITHUB_REPOSITORY", hint="run it in GitHub Actions, or pass --token"
        )
    ci_env.mask(out, token, ctx.in_actions)
    meta, body = _load(folder)
    checked = _checked(meta, body)
    api = github_api.GitHubApi(
        token,
        ctx.api_url,
        ctx.repository,
        retries=int(environ.get("MLCI_GITHUB_RETRIES", "5")),
        backoff=float(environ.get("MLCI_GITHUB_BACKOFF", "1.0")),
    )
    number = checked["number"]
    actual = api.pull_head_sha(number)
    if actual != head_sha:
        raise ci_env.CiError(
            f"the report names pull request #{number}, whose head is {actual[:12]}, "
            f"but the run that made it was for {head_sha[:12]}",
            hint="nothing was posted: the artifact does not belong to this run",
        )
    comment = api.upsert_comment(number, body, checked["marker"], api.author())
    log(f"{comment.action} the comment on #{number}: {comment.url}")
    result: dict[str, Any] = {"pr": number, "comment": comment.action, "status": None}
    if checked["environment"] and checked["verdict"]:
        state = "success" if checked["verdict"] == "pass" else "failure"
        context = f"mlci/{checked['environment']}"
        api.set_status(head_sha, context, state, checked["description"], ctx.run_link)
        result["status"] = {"context": context, "state": state}
        log(f"status {context} on {head_sha[:12]}: {state}")
    return result
