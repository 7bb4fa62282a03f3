"""Secrets never leave mlci: URLs lose their credentials, known secret values become ``***``.

``url`` is for a URL mlci is about to print or write (a tracking URI, a run
link); ``text`` is the net every output passes through (errors, logs, the job
summary, the pull request comment, ``report.json``): it redacts every URL in
the text and every value of a secret-looking environment variable (a token,
a password, the training command's stderr echoing one).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters whose values are credentials (signed URLs, tokens in links).
_SECRET_QUERY = re.compile(r"token|secret|passw|pwd|key|sig|code|auth|credential|session", re.IGNORECASE)
# Environment variables whose values are credentials (a word of the name).
_SECRET_ENV = re.compile(
    r"(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|APIKEY|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?|AUTH)(?:_|$)"
    r"|SECRET",
    re.IGNORECASE,
)
# GitHub and Actions credentials by name (fnmatch patterns), whatever they are
# called elsewhere: masked in output, and never given to the training command.
GITHUB_CREDENTIALS = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_*",
    "ACTIONS_CACHE_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_RUNTIME_URL",
    "INPUT_TOKEN",
    "INPUT_GITHUB-TOKEN",
    "INPUT_GITHUB_TOKEN",
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>`|)\]]+")
_MIN_SECRET = 6  # shorter values would mask ordinary words


def url(value: str) -> str:
    """``value`` without the userinfo (``user:password@``) and secret query parameters."""
    try:
        parts = urlsplit(value)
        netloc = parts.netloc
    except ValueError:
        return MASK if "@" in value else value
    changed = False
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
        changed = True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, MASK if _SECRET_QUERY.search(k) else v) for k, v in pairs]
        if masked != pairs:
            query = urlencode(masked, safe="*")
            changed = True
    if not changed:
        return value
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def is_credential(name: str, extra: Iterable[str] = ()) -> bool:
    """A GitHub or Actions credential, or a name ``extra`` matches (fnmatch patterns)."""
    return any(fnmatch.fnmatchcase(name, p) for p in (*GITHUB_CREDENTIALS, *extra))


def is_secret_name(name: str) -> bool:
    return is_credential(name) or bool(_SECRET_ENV.search(name))


def secret_values(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> list[str]:
    """Values of secret-looking environment variables, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET}
    values.update(v for v in extra if len(v) >= _MIN_SECRET)
    return sorted(values, key=len, reverse=True)


def text(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` with every URL's credentials and every known secret value masked."""
    if not value:
        return value
    out = _URL.sub(lambda m: url(m.group(0)), value)
    for secret in secret_values(environ):
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def data(value: object, environ: Mapping[str, str] | None = None) -> object:
    """``text`` over every string in JSON-like data (for report.json)."""
    if isinstance(value, str):
        return text(value, environ)
    if isinstance(value, dict):
        return {k: data(v, environ) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [data(v, environ) for v in value]
    return value
