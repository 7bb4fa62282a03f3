"""The inputs fingerprint: the run cache key.

sha256 over everything that determines a training result: the content of
every file matched by ``train.inputs`` (sorted relative paths and content
hashes), the resolved params as canonical JSON, the training command and the
training section of the config. Same fingerprint, same model.

Files git ignores, ``.mlci/`` itself, and the training outputs are never
inputs. A stat cache (path, size, mtime_ns, inode -> sha256) under
``.mlci/`` keeps unchanged files from being read again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci import dvc, gitrepo, safeinput
from mlci.config import Config
from mlci.errors import MlciError
from mlci.globs import glob_regex
from mlci.params import canonical_json

STATE_DIR = ".mlci"
STAT_CACHE = "statcache.json"
_VERSION = "mlci-fingerprint-v1"
_CHUNK = 1 << 20
# A file changed within this window of its cache entry's write could have the
# same mtime as the entry (coarse clocks): such entries are not trusted.
_RACY_NS = 2_000_000_000


_STATE_IGNORE = "# Created by mlci: nothing in .mlci/ belongs in git.\n*\n"


def ensure_state_dir(root: Path) -> Path:
    """``.mlci/`` under ``root``, ignoring itself (as pytest's cache does), so
    mlci's own state never shows as an untracked file whatever .gitignore says."""
    state = root / STATE_DIR
    marker = state / ".gitignore"
    if not marker.exists():
        try:
            state.mkdir(parents=True, exist_ok=True)
            marker.write_text(_STATE_IGNORE, encoding="utf-8")
        except OSError:
            pass  # a read-only checkout: nothing is written there anyway
    return state


def select(
    files: Iterable[str], patterns: Iterable[str], excluded: Iterable[str] = (), skip: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Files matching any pattern, under no excluded prefix and matching no ``skip`` glob
    (``train.exclude``), and the patterns that matched nothing."""
    patterns = list(patterns)
    regexes = [glob_regex(p) for p in patterns]
    blocked = [e.strip("/") for e in excluded if e.strip("/")]
    # One pattern for every excluded prefix: a file is tested once, not once per prefix.
    outside = re.compile("|".join(f"{re.escape(b)}(?:/|$)" for b in blocked)) if blocked else None
    skipped = [glob_regex(p) for p in skip]
    hits = [False] * len(patterns)
    chosen = []
    for name in files:
        if outside is not None and outside.match(name):
            continue
        if skipped and any(regex.fullmatch(name) for regex in skipped):
            continue
        matched = False
        for i, regex in enumerate(regexes):
            if regex.fullmatch(name):
                hits[i] = True
                matched = True
        if matched:
            chosen.append(name)
    unmatched = [p for p, hit in zip(patterns, hits, strict=False) if not hit]
    return sorted(chosen), unmatched


# --------------------------------------------------------------------------- files


def candidate_files(root: Path, *, present: bool = True) -> list[str]:
    """Every file under ``root`` that is not ignored, '/'-separated and relative.

    In a git work tree git decides (all of .gitignore's rules); elsewhere the
    root .gitignore is applied with pathspec's gitignore semantics. ``present=False``:
    a file git tracks may be missing from the work tree (see ``gitrepo.list_files``).
    """
    listed = gitrepo.list_files(root, present=present)
    if listed is not None:
        return listed
    import pathspec

    ignore_file = root / ".gitignore"
    lines = ignore_file.read_text(encoding="utf-8").splitlines() if ignore_file.is_file() else []
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    out: list[str] = []
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = [d for d in dirs if d != ".git" and not spec.match_file(prefix + d + "/")]
        out.extend(prefix + n for n in names if not spec.match_file(prefix + n))
    return sorted(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


class StatCache:
    """(size, mtime_ns, inode) -> sha256 per relative path, kept in .mlci/statcache.json."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        self.changed = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == _VERSION:
                self.entries = data["files"]
        except (OSError, ValueError, KeyError, AttributeError):
            self.entries = {}  # a missing or damaged cache only costs a re-read

    def store(self, name: str, st: os.stat_result, digest: str) -> None:
        if time.time_ns() - st.st_mtime_ns < _RACY_NS:
            return
        self.entries[name] = [st.st_size, st.st_mtime_ns, st.st_ino, digest]
        self.changed = True

    def save(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        if set(self.entries) - keep:
            self.entries = {k: v for k, v in self.entries.items() if k in keep}
            self.changed = True
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": _VERSION, "files": self.entries}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # the cache is an optimisation; never fail a command over it


def hash_files(
    root: Path, names: list[str], cache: StatCache | None, gone: set[str] | None = None
) -> dict[str, str]:
    """sha256 of each file; unchanged files come from the stat cache. With ``gone``, a
    file that does not exist is added to it instead of being an error."""
    digests: dict[str, str] = {}
    todo: list[tuple[str, os.stat_result]] = []
    base = str(root).rstrip("/") + "/"
    entries = cache.entries if cache else {}
    stat = os.stat
    for name in names:  # the loop of a warm re-fingerprint: 10,000 files, nothing but their stats
        try:
            st = stat(base + name)  # not pathlib or os.path.join: they cost more than the stat
        except OSError as exc:
            missing = isinstance(exc, (FileNotFoundError, NotADirectoryError))
            if gone is not None and missing and not os.path.lexists(base + name):  # not a dangling link
                gone.add(name)
                continue
            raise MlciError(f"cannot read input file {root / name}: {exc.strerror}") from exc
        entry = entries.get(name)  # StatCache.lookup, inlined
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns and entry[2] == st.st_ino:
            digests[name] = str(entry[3])
        else:
            todo.append((name, st))
    if todo:
        # hashlib releases the GIL on large buffers: threads hash files in parallel.
        workers = min(len(todo), os.cpu_count() or 1, 8)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda item: _sha256(root / item[0]), todo)
            for (name, st), digest in zip(todo, results, strict=False):
                digests[name] = digest
                if cache:
                    cache.store(name, st, digest)
    return digests


# --------------------------------------------------------------------------- fingerprint


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    files: Mapping[str, str]  # relative path -> sha256 (or "dvc:md5:…", the hash DVC recorded)
    unmatched: tuple[str, ...]  # input patterns that matched no file
    dvc: Mapping[str, dvc.Tracked] = dataclasses.field(default_factory=dict)  # inputs DVC tracks
    # unmatched pattern -> the file it names, which git ignores
    ignored: Mapping[str, str] = dataclasses.field(default_factory=dict)


def compose(files: Mapping[str, str], params: Any, config: Config) -> str:
    """The fingerprint of already-hashed inputs. Pure."""
    h = hashlib.sha256()
    h.update(f"{_VERSION}\n".encode())
    h.update("".join([f"file {name} {files[name]}\n" for name in sorted(files)]).encode())
    h.update(f"params {canonical_json(params)}\n".encode())
    h.update(f"command {config.train.command}\n".encode())
    train = dataclasses.asdict(config.train)
    train["inputs"] = list(config.train.inputs)
    # How the command runs, not what it computes:
    for how_not_what in ("withhold_env", "timeout", "own_cache", "rewrites"):
        del train[how_not_what]
    if train["parameters_from"] is None:
        del train["parameters_from"]
    if not train["parameters"]:
        del train["parameters"]  # as for exclude: projects without them keep their fingerprints
    else:
        train["parameters"] = dict(config.train.parameters)
    if train["overrides"] == "file":
        del train["overrides"]
    if not train["exclude"]:
        del train["exclude"]  # as for repeats: projects without it keep their fingerprints
    else:
        train["exclude"] = list(config.train.exclude)
    if train["repeats"] == 1:
        del train["repeats"]  # the default leaves the fingerprints of projects without it as they were
    h.update(f"train {canonical_json(train)}\n".encode())
    return h.hexdigest()


def outputs(config: Config) -> list[str]:
    """What training writes or rewrites: never an input."""
    out = [STATE_DIR, config.train.metrics, *config.train.rewrites]
    out += [config.train.predictions] if config.train.predictions else []
    return out + ([config.train.model] if config.train.model else [])


def dvc_inputs(
    candidates: list[str],
    patterns: Iterable[str],
    excluded: Iterable[str],
    text_of: Callable[[str], str | None],
    skip: Iterable[str] = (),
) -> dict[str, dvc.Tracked]:
    """Data DVC tracks that the input patterns name (git ignores it: ``select`` cannot see it)."""
    if not any(dvc.is_record(name) for name in candidates):
        return {}
    tracked = dvc.parse(candidates, text_of)
    chosen, _ = select(tracked, patterns, excluded, skip)
    skipped, _ = select(tracked, skip) if skip else ([], [])
    regexes = list(patterns)
    for path in tracked:
        if path not in chosen and path not in skipped and any(dvc.covers(path, p) for p in regexes):
            chosen.append(path)
    return {path: tracked[path] for path in sorted(chosen)}


def _selected(
    candidates: list[str], config: Config, text_of: Callable[[str], str | None]
) -> tuple[list[str], list[str], dict[str, dvc.Tracked]]:
    """The input files among ``candidates``, the input patterns that name nothing, and the
    data DVC tracks that the patterns name (its records read through ``text_of``)."""
    excluded = outputs(config)
    names, unmatched = select(candidates, config.train.inputs, excluded, config.train.exclude)
    data = dvc_inputs(candidates, config.train.inputs, excluded, text_of, config.train.exclude)
    if data:
        unmatched = [
            p for p in unmatched if not any(glob_regex(p).fullmatch(d) or dvc.covers(d, p) for d in data)
        ]
    return names, unmatched, data


def _with_data(hashed: dict[str, str], data: Mapping[str, dvc.Tracked]) -> dict[str, str]:
    """File hashes plus DVC's recorded hash of each tracked input, as the fingerprint takes them."""
    return {**hashed, **{path: f"dvc:{entry.hash}" for path, entry in data.items()}}


def _ignored_match(root: Path, pattern: str) -> str | None:
    """A file on disk that a pattern without wildcards names, although git ignores it."""
    if any(c in pattern for c in "*?["):
        return None
    name = pattern.strip().removeprefix("./").strip("/")
    return name if name and (root / name).exists() else None


def compute(
    config: Config, params: Any, *, use_stat_cache: bool = True, params_text: str | None = None
) -> Fingerprint:
    """``params_text``: the params file as the training code will read it (with ``--set``
    overrides written in); an input is hashed as the code sees it, so training with
    ``--set C=10`` and committing ``C: 10`` to the file are the same inputs."""
    root = config.root

    def text_of(name: str) -> str | None:
        if not os.path.lexists(root / name):
            return None  # a record git tracks, deleted from the work tree
        return safeinput.read_text(root / name, limit=dvc.MAX_BYTES, what=name)

    # Tracked files deleted from the work tree are listed too: the stat of each input
    # finds them (git finding them costs a second call that stats every file).
    candidates = candidate_files(root, present=False)
    names, unmatched, data = _selected(candidates, config, text_of)
    cache = StatCache(root / STATE_DIR / STAT_CACHE) if use_stat_cache else None
    gone: set[str] = set()
    hashed = hash_files(root, names, cache, gone)
    if gone:  # then what the patterns name is what is left
        names, unmatched, data = _selected([c for c in candidates if c not in gone], config, text_of)
    if cache:
        cache.save(hashed)
    if params_text is not None and config.train.params:
        name = config.train.params.removeprefix("./")
        if name in hashed:
            hashed[name] = hashlib.sha256(params_text.encode("utf-8")).hexdigest()
    files = _with_data(hashed, data)
    ignored = {p: hit for p in unmatched if (hit := _ignored_match(root, p))}
    return Fingerprint(
        digest=compose(files, params, config),
        files=files,
        unmatched=tuple(unmatched),
        dvc=data,
        ignored=ignored,
    )


def compute_at(
    config: Config, commit: str, params_of: Callable[[Config, Callable[[str], str | None]], Any]
) -> Fingerprint | None:
    """The fingerprint a clean checkout of ``commit`` would have, read from git without
    a checkout: its mlci.yaml, params (``params_of``: the config then and a reader of the
    commit's files, as ``project.committed_params``) and input files. None when the commit
    has no mlci.yaml or no readable params there."""
    from mlci import config as cfg
    from mlci.errors import MlciError

    root = config.root
    files = gitrepo.tree_files(root, commit)
    if files is None:
        return None
    text = gitrepo.show_file(root, commit, f"./{config.path.name}")
    if text is None:
        return None
    try:
        then = cfg.parse(text, config.path)
        params = params_of(then, lambda name: gitrepo.show_file(root, commit, f"./{name}"))
    except (MlciError, safeinput.BadInput):
        return None
    names, unmatched, data = _selected(list(files), then, lambda n: gitrepo.show_file(root, commit, f"./{n}"))
    blob_sha = gitrepo.blob_digests(root, [files[n] for n in names])
    hashed = _with_data({name: blob_sha[files[name]] for name in names}, data)
    return Fingerprint(
        digest=compose(hashed, params, then), files=hashed, unmatched=tuple(unmatched), dvc=data
    )


@dataclass(frozen=True)
class Explained:
    path: str
    input: bool
    why: str


def explain(config: Config, fingerprint: Fingerprint, candidates: Iterable[str]) -> list[Explained]:
    """Every file git sees (``candidates``) and every input DVC tracks, each with why it is
    an input or why it is not. Pure."""
    state = STATE_DIR + "/"
    made = [(o.strip("/"), key) for key, o in _output_keys(config)]
    patterns = [(p, glob_regex(p)) for p in config.train.inputs]
    skipped = [(p, glob_regex(p)) for p in config.train.exclude]
    params = config.train.params.removeprefix("./") if config.train.params else None
    out: list[Explained] = []
    for name in sorted(set(candidates) | set(fingerprint.files)):
        if name.startswith(state):
            continue
        entry = fingerprint.dvc.get(name)
        if name in fingerprint.files:
            pattern = next((p for p, regex in patterns if regex.fullmatch(name)), None)
            if entry is not None:
                why = f"data DVC tracks (its hash from {entry.source})"
                why += f", named by train.inputs {pattern!r}" if pattern else ", inside a train.inputs folder"
            else:
                why = f"train.inputs {pattern!r}" if pattern else "train.inputs"
            if name == params:
                why += "; the params file (train.params), hashed as the command reads it"
            out.append(Explained(name, True, why))
            continue
        output = next((key for o, key in made if name == o or name.startswith(o + "/")), None)
        excluded = next((p for p, regex in skipped if regex.fullmatch(name)), None)
        if output is not None:
            why = f"an output ({output}): training writes it"
        elif excluded is not None:
            why = f"train.exclude {excluded!r}"
        elif name == config.path.name:
            why = "mlci's settings: their train section is in the fingerprint already"
        else:
            why = "matches no train.inputs pattern"
        out.append(Explained(name, False, why))
    return out


def _output_keys(config: Config) -> list[tuple[str, str]]:
    keys = [("train.metrics", config.train.metrics)]
    keys += [("train.model", config.train.model)] if config.train.model else []
    keys += [("train.predictions", config.train.predictions)] if config.train.predictions else []
    keys += [("train.rewrites", r) for r in config.train.rewrites]
    return keys
