"""The GitHub Actions runtime: context from the environment, outputs, the job
summary, annotations and masks. The environment is passed in, never read here.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlci import safeinput
from mlci.errors import MlciError


class CiError(MlciError):
    pass


@dataclass(frozen=True)
class Context:
    in_actions: bool
    event_name: str | None
    event_path: Path | None
    repository: str | None  # "owner/name"
    api_url: str
    server_url: str
    run_id: str | None
    sha: str | None
    ref: str | None
    step_summary: Path | None
    output: Path | None

    @property
    def run_link(self) -> str | None:
        if self.repository and self.run_id:
            return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"
        return None


def context(environ: Mapping[str, str]) -> Context:
    def path(name: str) -> Path | None:
        value = environ.get(name)
        return Path(value) if value else None

    return Context(
        in_actions=environ.get("GITHUB_ACTIONS") == "true",
        event_name=environ.get("GITHUB_EVENT_NAME") or None,
        event_path=path("GITHUB_EVENT_PATH"),
        repository=environ.get("GITHUB_REPOSITORY") or None,
        api_url=environ.get("GITHUB_API_URL") or "https://api.github.com",
        server_url=environ.get("GITHUB_SERVER_URL") or "https://github.com",
        run_id=environ.get("GITHUB_RUN_ID") or None,
        sha=environ.get("GITHUB_SHA") or None,
        ref=environ.get("GITHUB_REF") or None,
        step_summary=path("GITHUB_STEP_SUMMARY"),
        output=path("GITHUB_OUTPUT"),
    )


def load_payload(path: Path) -> dict[str, Any]:
    try:
        data = safeinput.load_json(
            safeinput.read_text(path, limit=64 * 1024 * 1024, what="the event payload")
        )
    except safeinput.BadInput as exc:
        raise CiError(
            f"event payload {exc.where(str(path))}: {exc.problem}", hint="pass a webhook payload"
        ) from None
    except FileNotFoundError:
        raise CiError(f"event payload {path} does not exist", hint="pass --payload FILE") from None
    except (OSError, ValueError) as exc:
        raise CiError(
            f"event payload {path} is not readable JSON: {exc}", hint="pass a webhook payload"
        ) from None
    if not isinstance(data, dict):
        raise CiError(f"event payload {path} is not a JSON object", hint="pass a webhook payload")
    return data


def set_outputs(ctx: Context, values: Mapping[str, str]) -> None:
    """Step outputs, each as ``name<<DELIMITER`` so a value may span lines."""
    if ctx.output is None:
        return
    with open(ctx.output, "a", encoding="utf-8") as f:
        for name, value in values.items():
            delimiter = f"mlci_{secrets.token_hex(8)}"
            f.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(ctx: Context, markdown: str) -> bool:
    if ctx.step_summary is None:
        return False
    from mlci import redact

    markdown = redact.text(markdown)
    with open(ctx.step_summary, "a", encoding="utf-8") as f:
        f.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotate(stream: IO[str], level: str, message: str, in_actions: bool) -> None:
    """A workflow command (``::warning::``) in Actions, a plain line elsewhere."""
    if in_actions:
        stream.write(f"::{level}::{_escape(message)}\n")
    else:
        stream.write(f"mlci: {level}: {message}\n")
    stream.flush()


def mask(stream: IO[str], secret: str, in_actions: bool) -> None:
    if in_actions and secret:
        stream.write(f"::add-mask::{secret}\n")
        stream.flush()
