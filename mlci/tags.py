"""The git-tag registry's grammar and state, in GTO's exact format. Pure.

    <model>@v1.2.0          register a version (on the commit that was trained)
    <model>@v1.2.0!         deregister it
    <model>#<env>#6         assign the version on that commit to an environment
    <model>#<env>!#7        unassign that version from the environment
    <model>@deprecated      deprecate the model

These are the names GTO 1.x writes. The counter of an assignment is one more
than the highest counter on any tag of the model. An environment's current
version is, as in GTO, the one whose assignment is newest among those not
unassigned since (so unassigning the current version falls back to the one
before it). Only annotated tags count.
The message of a tag mlci writes starts with GTO's one-line summary and then
carries a machine-readable line, ``mlci-metadata: {json}``, so a CI runner
with no tracking server can still diff against the model in production.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# GTO's own grammar (gto/constants.py), so that both tools read the same tags.
_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
_DIRNAME = r"[a-zA-Z0-9\-_./]+"
_SEMVER = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<buildmetadata>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
# An artifact may carry GTO's "path=" prefix (a "path:name" artifact, ':' written '=').
_ARTIFACT = rf"(?:{_DIRNAME}=)?{_NAME}"
TAG_RE = re.compile(
    rf"^(?P<artifact>{_ARTIFACT})"
    rf"(((#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?))"
    r"|@((?P<deprecated>deprecated)|(?P<created>created)))"
    r"(#(?P<counter>[0-9]+))?$"
)
VERSION_RE = re.compile(rf"^v{_SEMVER}$")
METADATA_PREFIX = "mlci-metadata: "


class Action(str, enum.Enum):
    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"
    CREATE = "create"


@dataclass(frozen=True)
class TagName:
    model: str
    action: Action
    version: str | None = None
    environment: str | None = None
    counter: int | None = None


def parse_name(name: str) -> TagName | None:
    """A tag name in GTO's grammar, or None for any other tag."""
    match = TAG_RE.match(name)
    if not match:
        return None
    model = match["artifact"].replace("=", ":")
    counter = int(match["counter"]) if match["counter"] else None
    cancel = match["cancel"] == "!"
    if match["version"]:
        action = Action.DEREGISTER if cancel else Action.REGISTER
        return TagName(model, action, version=match["version"], counter=counter)
    if match["stage"]:
        action = Action.UNASSIGN if cancel else Action.ASSIGN
        return TagName(model, action, environment=match["stage"], counter=counter)
    if match["deprecated"]:
        return TagName(model, Action.DEPRECATE, counter=counter)
    return TagName(model, Action.CREATE, counter=counter)


def _artifact(model: str) -> str:
    return model.replace(":", "=")


def version_tag(model: str, version: str) -> str:
    return f"{_artifact(model)}@{version}"


def deregister_tag(model: str, version: str) -> str:
    return f"{_artifact(model)}@{version}!"


def assign_tag(model: str, environment: str, counter: int) -> str:
    return f"{_artifact(model)}#{environment}#{counter}"


def unassign_tag(model: str, environment: str, counter: int) -> str:
    return f"{_artifact(model)}#{environment}!#{counter}"


def deprecate_tag(model: str) -> str:
    return f"{_artifact(model)}@deprecated"


# --------------------------------------------------------------------------- semver


@dataclass(frozen=True, order=True)
class SemVer:
    major: int
    minor: int
    patch: int
    # A release sorts after its pre-releases: (1, ()) > (0, ("rc", 1)).
    pre: tuple[int, tuple[tuple[int, int | str], ...]] = (1, ())

    @classmethod
    def parse(cls, text: str) -> SemVer | None:
        match = VERSION_RE.match(text)
        if not match:
            return None
        pre: tuple[int, tuple[tuple[int, int | str], ...]] = (1, ())
        if match["prerelease"]:
            parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in match["prerelease"].split("."))
            pre = (0, parts)
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"]), pre)

    def bump(self, part: str) -> SemVer:
        if part == "major":
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        if part == "patch":
            return SemVer(self.major, self.minor, self.patch + 1)
        raise ValueError(f"unknown bump {part!r}: expected major, minor or patch")

    def __str__(self) -> str:
        text = f"v{self.major}.{self.minor}.{self.patch}"
        if self.pre[0] == 0:
            text += "-" + ".".join(str(p[1]) for p in self.pre[1])
        return text


FIRST_VERSION = "v0.0.1"


def next_version(taken: Iterable[str], bump: str = "patch") -> str:
    """The next version after the greatest ever used (deregistered ones count:
    a version name is never reused); v0.0.1 for the first."""
    versions = [v for v in (SemVer.parse(t) for t in taken) if v is not None]
    if not versions:
        return FIRST_VERSION
    return str(max(versions).bump(bump))


def next_counter(names: Iterable[TagName], model: str) -> int:
    return 1 + max((t.counter for t in names if t.model == model and t.counter is not None), default=0)


# --------------------------------------------------------------------------- metadata


def message(summary: str, metadata: Mapping[str, Any]) -> str:
    """A tag message: GTO's one-line summary, a blank line, mlci's metadata line."""
    body = json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"), default=str)
    return f"{summary}\n\n{METADATA_PREFIX}{body}\n"


def metadata_from(text: str) -> dict[str, Any]:
    """mlci's metadata from a tag message; {} when there is none (a GTO-written tag)
    or it is malformed (``build_state`` skips such tags, saying why)."""
    return _checked_metadata(text)[0]


_NONE = type(None)
# The types of the metadata keys mlci reads; other keys are kept and ignored.
_METADATA_TYPES: dict[str, tuple[type, ...]] = {
    "version": (str,),
    "fingerprint": (str, _NONE),
    "metrics": (dict, _NONE),
    "params": (dict, _NONE),
    "commit": (str, _NONE),
    "run_commit": (str, _NONE),
    "mlflow_run_id": (str, _NONE),
    "mlflow_model_version": (str, int, _NONE),
    "mlflow_model_id": (str, _NONE),
    "inputs_digest": (str, _NONE),
    "pr": (int, _NONE),
    "model_sha256": (str, _NONE),
    "store": (str, _NONE),
    "asset": (str, _NONE),
    "predictions": (dict, _NONE),
    "repeats": (dict, _NONE),
    "data": (dict, _NONE),
    "data_profile": (dict, _NONE),
    "data_profile_asset": (str, _NONE),
    "predictions_asset": (str, _NONE),
    "time": (int, float),
    "previous": (str, _NONE),
    "replaced": (str, _NONE),
    "rollback": (bool, _NONE),
    "reason": (str, _NONE),
}


def _metadata_fault(data: Mapping[str, Any]) -> str | None:
    for key, value in data.items():
        types = _METADATA_TYPES.get(key)
        if types is None or (type(value) in types and type(value) is not bool):
            continue  # the common case, decided without isinstance's walk
        if isinstance(value, bool) and bool not in types:
            return f"{key!r} is {json.dumps(value)}"
        if not isinstance(value, types):
            return f"{key!r} is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}"
    for name, value in (data.get("metrics") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"metric {name!r} is not a number"
    return None


_DECODE = json.JSONDecoder().raw_decode


def _checked_metadata(text: str) -> tuple[dict[str, Any], str | None]:
    """The metadata of a message and what is wrong with it (then the metadata is {})."""
    at = text.find(METADATA_PREFIX)
    while at > 0 and text[at - 1] != "\n":  # only at the start of a line
        at = text.find(METADATA_PREFIX, at + 1)
    if at < 0:
        return {}, None
    end = text.find("\n", at)
    line = text[at + len(METADATA_PREFIX) : end if end >= 0 else len(text)]
    line = line.strip(" \t\r")
    try:
        # json.loads without its two wrappers (a registry parses thousands of these).
        data, stop = _DECODE(line)
        if stop != len(line):
            raise json.JSONDecodeError("Extra data", line, stop)
    except (ValueError, RecursionError) as exc:
        return {}, f"its mlci-metadata is not valid JSON ({str(exc)[:80]})"
    if not isinstance(data, dict):
        return {}, "its mlci-metadata is not a JSON object"
    fault = _metadata_fault(data)
    return (data, None) if fault is None else ({}, f"its mlci-metadata is malformed: {fault}")


def register_summary(model: str, version: str) -> str:
    return f"Registering artifact {model} version {version}"


def assign_summary(model: str, environment: str, version: str) -> str:
    return f"Assigning stage {environment} to artifact {model} version {version}"


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class TagRecord:
    """One tag as git stores it (from ``git for-each-ref``)."""

    name: str
    commit: str  # the commit the tag points at (peeled)
    annotated: bool
    tagger: str = ""
    tagger_email: str = ""
    timestamp: int = 0  # seconds since the epoch
    message: str = ""
    problem: str = ""  # why the registry cannot use this tag (read from git), if it cannot


@dataclass(frozen=True)
class Event:
    """A registry event: a parsed, annotated tag. Its metadata is parsed on first use
    (most of a large registry's messages are never read)."""

    tag: str
    action: Action
    model: str
    commit: str
    version: str | None  # for assignments, the version on the tagged commit
    environment: str | None
    counter: int | None
    tagger: str
    tagger_email: str
    timestamp: int
    message: str
    _metadata: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _time: float | None = field(default=None, repr=False, compare=False)  # event_time, once read

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            object.__setattr__(self, "_metadata", metadata_from(self.message))
        assert self._metadata is not None
        return self._metadata


@dataclass
class ModelState:
    name: str
    versions: dict[str, Event] = field(default_factory=dict)  # version -> its registration
    deregistered: dict[str, Event] = field(default_factory=dict)
    # env -> version -> the assignment in effect (removed when unassigned)
    assignments: dict[str, dict[str, Event]] = field(default_factory=dict)
    deprecated: Event | None = None
    events: list[Event] = field(default_factory=list)  # newest first

    def active_versions(self) -> list[str]:
        """Registered and not deregistered, greatest first."""
        live = [v for v in self.versions if v not in self.deregistered]
        return sorted(live, key=lambda v: SemVer.parse(v) or SemVer(0, 0, 0), reverse=True)

    @property
    def latest(self) -> str | None:
        live = self.active_versions()
        return live[0] if live else None

    @property
    def environments(self) -> list[str]:
        return list(self.assignments)

    def current(self, environment: str) -> Event | None:
        """The newest assignment in effect for ``environment`` (of a version
        not deregistered), or None."""
        live = [e for v, e in self.assignments.get(environment, {}).items() if v not in self.deregistered]
        return max(live, key=_order_key) if live else None

    def pin(self, environment: str) -> Event | None:
        """The rollback that holds ``environment`` where it is, if any: a rollback pins
        until a later assignment (``mlci unpin``, or an explicit promotion) replaces it."""
        event = self.current(environment)
        return event if event is not None and event.metadata.get("rollback") else None

    def version_of_fingerprint(self, fingerprint: str) -> str | None:
        for version in self.active_versions():
            if self.versions[version].metadata.get("fingerprint") == fingerprint:
                return version
        return None

    def version_on_commit(self, commit: str) -> str | None:
        for version, event in self.versions.items():
            if event.commit == commit:
                return version
        return None

    def was_assigned(self, version: str, environment: str) -> bool:
        return any(
            e.action is Action.ASSIGN and e.environment == environment and e.version == version
            for e in self.events
        )

    def assignment_history(self, environment: str) -> list[Event]:
        """Assign and unassign events of ``environment``, newest first."""
        return [
            e
            for e in self.events
            if e.environment == environment and e.action in (Action.ASSIGN, Action.UNASSIGN)
        ]

    def taken_versions(self) -> list[str]:
        return [*self.versions, *self.deregistered]


@dataclass(frozen=True)
class Skipped:
    """A tag in the registry's grammar that the registry cannot use, and why."""

    tag: str
    why: str


def build_state(records: Sequence[TagRecord], skipped: list[Skipped] | None = None) -> dict[str, ModelState]:
    """The registry from raw tags: lightweight tags and foreign names are ignored;
    a registry tag that is malformed (its object, its metadata, a second version
    on one commit) is left out and added to ``skipped``: one bad tag never stops
    the others from being read."""
    parsed: list[tuple[TagRecord, TagName]] = []
    metadata: dict[str, dict[str, Any]] = {}  # parsed once here, kept on the event
    for record in records:
        if not record.annotated:
            continue
        name = parse_name(record.name)
        if name is None:
            continue
        why = record.problem or None
        if not why and METADATA_PREFIX in record.message:
            metadata[record.name], why = _checked_metadata(record.message)
        if why:
            if skipped is not None:
                skipped.append(Skipped(record.name, why))
            continue
        parsed.append((record, name))
    # Registrations first, so that assignments can name their version. GTO allows
    # one version of a model per commit: the first registered stands.
    commit_versions: dict[tuple[str, str], str] = {}
    models: dict[str, ModelState] = {}
    when = {record.name: _when(record) for record, _ in parsed}  # read once: both sorts use it
    registrations = sorted(
        ((r, n) for r, n in parsed if n.action is Action.REGISTER and n.version),
        key=lambda item: when[item[0].name],
    )
    second: set[str] = set()
    for record, name in registrations:
        assert name.version is not None
        first = commit_versions.setdefault((name.model, record.commit), name.version)
        if first != name.version:
            second.add(record.name)
            if skipped is not None:
                skipped.append(
                    Skipped(
                        record.name,
                        f"commit {record.commit[:12]} already has version {first} of {name.model} "
                        "(one version per commit, as GTO requires)",
                    )
                )
    if second:
        parsed = [(r, n) for r, n in parsed if r.name not in second]

    def order(item: tuple[TagRecord, TagName]) -> tuple[int, float, str]:
        # Counters order the assignments of a model; tags without one go first, by time.
        record, name = item
        return (name.counter if name.counter is not None else -1, when[record.name], record.name)

    for record, name in sorted(parsed, key=order):
        state = models.setdefault(name.model, ModelState(name.model))
        version = name.version or commit_versions.get((name.model, record.commit))
        event = Event(
            tag=record.name,
            action=name.action,
            model=name.model,
            commit=record.commit,
            version=version,
            environment=name.environment,
            counter=name.counter,
            tagger=record.tagger,
            tagger_email=record.tagger_email,
            timestamp=record.timestamp,
            message=record.message,
            _metadata=metadata.get(record.name, {}),
            _time=when[record.name],
        )
        state.events.append(event)
        if name.action is Action.REGISTER and name.version:
            state.versions.setdefault(name.version, event)
        elif name.action is Action.DEREGISTER and name.version:
            state.deregistered[name.version] = event
        elif name.action is Action.DEPRECATE:
            state.deprecated = event
        elif name.action in (Action.ASSIGN, Action.UNASSIGN) and name.environment:
            active = state.assignments.setdefault(name.environment, {})
            key = version or record.commit
            if name.action is Action.ASSIGN:
                active[key] = event
            else:
                active.pop(key, None)
    for state in models.values():
        state.events.sort(key=_newest_first_key, reverse=True)
    return models


def _order_key(event: Event) -> tuple[int, float]:
    # The counter orders assignments; GTO's counter-less "simple" ones go by time.
    return (event.counter if event.counter is not None else -1, event_time(event))


_TIME_RE = re.compile(r'"time":([0-9]+(?:\.[0-9]+)?)')


def _precise(message: str, timestamp: int) -> float:
    """The tag's time: mlci's precise one when it wrote the tag, else git's (seconds).
    Read with a regex: parsing every message's JSON would dominate a large registry."""
    match = _TIME_RE.search(message) if METADATA_PREFIX in message else None
    if match and int(float(match[1])) == timestamp:
        return float(match[1])
    return float(timestamp)


def _when(record: TagRecord) -> float:
    return _precise(record.message, record.timestamp)


def recorded_metrics(metadata: Mapping[str, Any]) -> dict[str, float]:
    """The metrics a tag's metadata records: numbers only (another tool's tag may hold anything)."""
    raw = metadata.get("metrics")
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k): float(v) for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def pin_message(event: Event) -> str:
    """What a held promotion says about the pin."""
    import datetime as dt

    day = dt.datetime.fromtimestamp(event_time(event), tz=dt.timezone.utc).strftime("%Y-%m-%d")
    reason = event.metadata.get("reason") or "no reason recorded"
    return (
        f"{event.environment} is pinned to {event.version} by a rollback on {day}: {reason}; "
        f"`mlci unpin {event.environment}` resumes automatic promotion"
    )


def event_time(event: Event) -> float:
    if event._time is None:
        object.__setattr__(event, "_time", _precise(event.message, event.timestamp))
    assert event._time is not None
    return event._time


def _newest_first_key(event: Event) -> tuple[float, int]:
    return (event_time(event), event.counter if event.counter is not None else -1)
