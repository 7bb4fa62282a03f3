"""GitHub's REST API through PyGithub: the one module that imports it.

Transient failures (5xx, primary and secondary rate limits, ``Retry-After``)
are retried by PyGithub's own ``GithubRetry``, configured here. Objects are
made lazily, so a pull request event costs only the requests that do work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError

if TYPE_CHECKING:
    from github import Github

ACTIONS_BOT = "github-actions[bot]"
STATUS_DESCRIPTION_LIMIT = 140


class GitHubError(MlciError):
    pass


class GitHubForbidden(GitHubError):
    """403/404 on a write: a read-only token, as a fork's pull request gets."""


@dataclass(frozen=True)
class CommentResult:
    action: str  # "created" or "updated"
    comment_id: int
    url: str


def _translate(what: str, exc: Exception) -> GitHubError:
    from github import GithubException

    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else exc.data
        if exc.status in (403, 404) and "rate limit" not in str(message).lower():
            return GitHubForbidden(
                f"GitHub refused {what}: {exc.status} {message}",
                hint="the token cannot write here (a fork's pull request gets a read-only token); "
                "the report is in the job summary",
            )
        return GitHubError(
            f"GitHub API: {what} failed: {exc.status} {message}",
            hint="GitHub may be unavailable; the report is on disk and in the job summary, re-run the job",
        )
    return GitHubError(f"GitHub API: {what} failed: {type(exc).__name__}: {exc}", hint="check GITHUB_API_URL")


class GitHubApi:
    def __init__(
        self,
        token: str,
        api_url: str,
        repository: str,
        *,
        retries: int = 5,
        backoff: float = 1.0,
        secondary_rate_wait: float = 60.0,
        max_rate_limit_wait: float = 900.0,
        seconds_between_writes: float = 0.5,
    ) -> None:
        from github import Auth, Github, GithubRetry

        self.repository = repository
        self._gh: Github = Github(
            auth=Auth.Token(token),
            base_url=api_url.rstrip("/"),
            per_page=100,
            retry=GithubRetry(
                total=retries,
                backoff_factor=backoff,
                secondary_rate_wait=secondary_rate_wait,
                max_rate_limit_wait=max_rate_limit_wait,
            ),
            seconds_between_requests=None,
            seconds_between_writes=seconds_between_writes,
            lazy=True,
        )
        self._repo = self._gh.get_repo(repository)

    def author(self) -> str:
        """Whose comments are ours: the token's user, or the Actions bot (whose
        token cannot read ``GET /user``)."""
        from github import GithubException

        try:
            return str(self._gh.get_user().login)
        except GithubException as exc:
            if exc.status in (401, 403, 404):
                return ACTIONS_BOT
            raise _translate("reading the token's user", exc) from exc
        except Exception as exc:  # retries exhausted, connection refused, ...
            raise _translate("reading the token's user", exc) from exc

    def upsert_comment(self, pr: int, body: str, marker: str, author: str) -> CommentResult:
        """Edit our comment with ``marker`` in place, or create it: one comment per PR and model.

        A comment by someone else that quotes the marker is left alone.
        """
        try:
            issue = self._repo.get_issue(pr)
            for comment in issue.get_comments():
                if (
                    marker in (comment.body or "")
                    and comment.user is not None
                    and comment.user.login == author
                ):
                    comment.edit(body)
                    return CommentResult("updated", int(comment.id), str(comment.html_url))
            created = issue.create_comment(body)
            return CommentResult("created", int(created.id), str(created.html_url))
        except MlciError:
            raise
        except Exception as exc:
            raise _translate(f"writing the comment on #{pr}", exc) from exc

    def pull_head_sha(self, number: int) -> str:
        """The head commit of pull request ``number`` (GitHub's word, not an artifact's)."""
        try:
            return str(self._repo.get_pull(number).head.sha)
        except Exception as exc:
            raise _translate(f"reading pull request #{number}", exc) from exc

    def set_status(
        self, sha: str, context: str, state: str, description: str, target_url: str | None
    ) -> None:
        if len(description) > STATUS_DESCRIPTION_LIMIT:
            description = description[: STATUS_DESCRIPTION_LIMIT - 1] + "…"
        kwargs: dict[str, Any] = {"state": state, "description": description, "context": context}
        if target_url:
            kwargs["target_url"] = target_url
        try:
            self._repo.get_commit(sha).create_status(**kwargs)
        except Exception as exc:
            raise _translate(f"setting status {context} on {sha[:12]}", exc) from exc
