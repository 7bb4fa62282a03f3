"""Secrets never leave mlci: URLs lose their credentials, known secret values become ``***``.

``url`` is for a URL mlci is about to print or write (a tracking URI, a run
link); ``text`` is the net every output passes through (errors, logs, the job
summary, the pull request comment, ``report.json``): it redacts every URL in
the text and every value of a secret-looking environment variable (a token,
a password, the training command's stderr echoing one).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
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
# A URL's userinfo as people write it: a password may hold ) ] | ' @ unencoded, so the
# userinfo runs to the last @ before the host (no space, slash, ? or # in between).
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/?#]*@(?=[^\s/?#@]*(?:[/?#\s]|$))")
_MIN_SECRET = 6  # at least this long: masked wherever it appears
_MIN_SHORT_SECRET = 3  # shorter ones (3 to 5 characters): masked where they stand as a word


def url(value: str) -> str:
    """``value`` without the userinfo (``user:password@``) and secret query parameters."""
    value = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", value)
    try:
        parts = urlsplit(value)
        netloc = parts.netloc
    except ValueError:
        return MASK if "@" in value else value
    changed = False
    if "@" in netloc and not netloc.startswith(f"{MASK}@"):
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


def _userinfo_secrets(value: str) -> list[str]:
    """The password (and the whole userinfo) of a URL with credentials, as written and
    percent-decoded: an environment value like MLFLOW_TRACKING_URI carries them."""
    from urllib.parse import unquote

    if "://" not in value or "@" not in value:
        return []
    found = _USERINFO.search(value)
    if found is None:
        return []
    userinfo = value[found.end(1) : found.end() - 1]
    out = [userinfo, unquote(userinfo)]
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        out += [password, unquote(password)]
    return out


SCANS = 0  # environments scanned for secrets in this process (a test counts them)


@functools.lru_cache(maxsize=8)
def _secrets_of(items: frozenset[tuple[str, str]]) -> tuple[str, ...]:
    global SCANS
    SCANS += 1
    values = {v for k, v in items if is_secret_name(k)}
    for _, value in items:
        values.update(_userinfo_secrets(value))
    return tuple(values)


_ENVIRON_SECRETS: tuple[tuple[tuple[str, str], ...], tuple[str, ...]] | None = None


def _environ_secrets() -> tuple[str, ...]:
    """The process environment's secrets, scanned once and again only after it changed
    (tests and the trainer's guard change it; a command's output does not)."""
    global _ENVIRON_SECRETS
    items = tuple(os.environ.items())
    if _ENVIRON_SECRETS is None or _ENVIRON_SECRETS[0] != items:
        _ENVIRON_SECRETS = (items, _secrets_of(frozenset(items)))
    return _ENVIRON_SECRETS[1]


def secret_values(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> list[str]:
    """Values of secret-looking environment variables, and passwords in URLs there,
    longest first (values under three characters are no secret anyone could keep)."""
    values = set(_environ_secrets() if environ is None else _secrets_of(frozenset(environ.items())))
    values.update(extra)
    return sorted((v for v in values if _could_be_secret(v)), key=len, reverse=True)


# Values a secret-looking variable often holds that are settings, not secrets: masking
# them would blank every "true" in a log.
_PLAIN_VALUES = frozenset(
    {"true", "false", "yes", "no", "none", "null", "on", "off", "auto", "basic", "bearer"}
)


def _could_be_secret(value: str) -> bool:
    if len(value) >= _MIN_SECRET:
        return True
    return len(value) >= _MIN_SHORT_SECRET and value.lower() not in _PLAIN_VALUES and not value.isdigit()


@functools.lru_cache(maxsize=32)
def _masker(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for every secret, longest first: a long one wherever it appears, a
    short one (3 to 5 characters) where it stands alone, so that a word holding it
    survives. Masking is then one pass over the text, however many secrets there are."""
    parts = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            parts.append(re.escape(secret))
        elif secret:
            parts.append(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])")
    return re.compile("|".join(parts)) if parts else None


def mask(value: str, secrets: Iterable[str]) -> str:
    """``value`` with each of ``secrets`` masked: a long one wherever it appears, a short
    one (3 to 5 characters) where it stands alone, so that a word holding it survives."""
    pattern = _masker(tuple(secrets))
    return value if pattern is None else pattern.sub(MASK, value)


def text(
    value: str, environ: Mapping[str, str] | None = None, *, secrets: Iterable[str] | None = None
) -> str:
    """``value`` with every URL's credentials and every known secret value masked."""
    if not value:
        return value
    out = value
    if "://" in out:  # both URL patterns need a scheme
        out = _URL.sub(lambda m: url(m.group(0)), _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", out))
    return mask(out, secret_values(environ) if secrets is None else secrets)


def data(value: object, environ: Mapping[str, str] | None = None) -> object:
    """``text`` over every string in JSON-like data (for report.json), keys included
    (a metric named by a secret); the secrets are gathered once for the whole value."""
    return _data_with(value, tuple(secret_values(environ)))


@functools.lru_cache(maxsize=32)
def _json_trigger(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """What, in JSON text, could need masking: a URL (``://``, which every URL pattern
    needs) or a secret as JSON writes it inside a string (escaped as json.dumps escapes)."""
    import json

    escaped = {json.dumps(s)[1:-1] for s in secrets if s}
    return re.compile("|".join(["://", *(re.escape(e) for e in sorted(escaped, key=len, reverse=True))]))


def json_text(value: object, environ: Mapping[str, str] | None = None, *, indent: int | None = 2) -> str:
    """``value`` as JSON with every string redacted as ``text`` would, in one pass over
    the JSON in the common case: the document is written, searched once for anything
    that could need masking, and only then walked string by string (and written again).
    Objects JSON cannot hold are written as their ``str``, and redacted as well."""
    import json

    secrets = tuple(secret_values(environ))
    written = json.dumps(value, default=str)
    if _json_trigger(secrets).search(written) is not None:
        value = _data_with(json.loads(written), secrets)  # str() applied, so every string is walked
    return written if indent is None else pretty_json(value, indent)


def _data_with(value: object, secrets: tuple[str, ...]) -> object:
    def walk(item: object) -> object:
        if isinstance(item, str):
            return text(item, secrets=secrets)
        if isinstance(item, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        return item

    return walk(value)


_LINE = 400  # a container whose JSON fits in this many characters stays on one line


def pretty_json(value: object, indent: int = 2) -> str:
    """JSON for people and scripts alike: each container is on one line if it fits in
    ``_LINE`` characters, else one entry per line. Written by json's C encoder, not its
    pure-Python indenting one (a registry of 10,000 tags: 40 ms, not 250 ms); a container
    too long for one line by its count of entries alone is not encoded to find out."""
    import json

    encode = json.JSONEncoder(default=str, separators=(", ", ": ")).encode

    containers = (dict, list, tuple)

    def long(item: dict[object, object] | list[object] | tuple[object, ...]) -> bool:
        values = item.values() if isinstance(item, dict) else item
        if len(values) > _LINE // 3:
            return True
        # A call only for a nested container: most values are scalars.
        return any(long(v) for v in values if isinstance(v, containers))

    def write(item: object, depth: int) -> str:
        if not isinstance(item, (dict, list, tuple)) or not item:
            return encode(item)
        if not long(item):
            written = encode(item)
            if len(written) <= _LINE:
                return written
        pad, inner = " " * (indent * depth), " " * (indent * (depth + 1))
        if isinstance(item, dict):
            lines = [
                f"{inner}{encode(k if isinstance(k, str) else str(k))}: {write(v, depth + 1)}"
                for k, v in item.items()
            ]
            return "{\n" + ",\n".join(lines) + f"\n{pad}}}"
        lines = [f"{inner}{write(v, depth + 1)}" for v in item]
        return "[\n" + ",\n".join(lines) + f"\n{pad}]"

    return write(value, 0)


def stream_masker(secrets: Iterable[str]) -> Callable[[bytes], bytes]:
    """A mask for a command's live output, line by line (the caller keeps a partial line
    until its end arrives, so a secret is never split across two writes)."""
    kept = tuple(s for s in secrets if _could_be_secret(s))

    def apply(line: bytes) -> bytes:
        if not kept:
            return line
        decoded = line.decode("utf-8", errors="surrogateescape")
        return text(decoded, {}, secrets=kept).encode("utf-8", errors="surrogateescape")

    return apply
