"""Globs relative to a project's root, as regexes over '/'-separated paths. Pure.

``train.inputs``, ``train.outputs`` and a dataset's ``path`` are globs: the
config checks each one when it loads, the fingerprint selects files by them.
"""

from __future__ import annotations

import re
from functools import lru_cache


def _segment(part: str) -> str:
    out = ""
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                body = part[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += f"[{body.replace(chr(92), chr(92) * 2)}]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return out


MAX_WILDCARDS = 6  # runs of '*' in one pattern: each multiplies the worst-case matching time


def _parts(pattern: str) -> list[str]:
    """A pattern's segments, with runs of '*' made one ('***' is '*', '**/**' is '**'):
    equivalent, and they would make the regex backtrack exponentially."""
    parts: list[str] = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        part = part if part == "**" else re.sub(r"\*+", "*", part)
        if part == "**" and parts and parts[-1] == "**":
            continue
        parts.append(part)
    return parts


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob relative to the project root, as a regex over '/'-separated paths.

    ``*`` and ``?`` stay within one folder; ``**`` as a whole segment spans any
    number of folders; a pattern that names a folder matches everything in it.
    """
    pattern = pattern.strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.strip("/")
    parts = _parts(pattern)
    if sum(len(re.findall(r"\*+", p)) for p in parts) > MAX_WILDCARDS:
        raise ValueError(f"too many wildcards (at most {MAX_WILDCARDS} runs of '*')")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment(part) + ("" if last else "/")
    # Also everything below a matching folder.
    return re.compile(f"(?:{regex})(?:/.*)?" if regex else ".*")
