"""The tag grammar and registry state: table-driven, no git."""

from __future__ import annotations

import pytest

from mlci import tags
from mlci.tags import Action, TagName, TagRecord


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("churn@v1.2.0", TagName("churn", Action.REGISTER, version="v1.2.0")),
        ("churn@v1.2.0!#5", TagName("churn", Action.DEREGISTER, version="v1.2.0", counter=5)),
        ("churn@v1.2.0!", TagName("churn", Action.DEREGISTER, version="v1.2.0")),
        ("churn#prod#6", TagName("churn", Action.ASSIGN, environment="prod", counter=6)),
        ("churn#prod", TagName("churn", Action.ASSIGN, environment="prod")),  # GTO's simple form
        ("churn#prod!#7", TagName("churn", Action.UNASSIGN, environment="prod", counter=7)),
        ("churn@deprecated#8", TagName("churn", Action.DEPRECATE, counter=8)),
        ("churn@deprecated", TagName("churn", Action.DEPRECATE)),
        ("churn@created", TagName("churn", Action.CREATE)),
        (
            "my/model_v2@v0.0.1-rc.1+build.5",
            TagName("my/model_v2", Action.REGISTER, version="v0.0.1-rc.1+build.5"),
        ),
        (
            "models/a=nn#stage#1",
            TagName("models/a:nn", Action.ASSIGN, environment="stage", counter=1),
        ),
        ("Churn-X#Prod_1#12", TagName("Churn-X", Action.ASSIGN, environment="Prod_1", counter=12)),
        ("v1.2.0", None),  # an ordinary release tag
        ("churn", None),
        ("churn@1.2.0", None),  # no v
        ("churn@V1.2.0", None),
        ("churn@v1.2", None),
        ("churn@v01.2.0", None),
        ("churn#prod#x", None),
        ("-churn@v1.0.0", None),
        ("churn-@v1.0.0", None),
    ],
)
def test_parse_name(name: str, expected: TagName | None) -> None:
    assert tags.parse_name(name) == expected


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: tags.version_tag("churn", "v1.2.0"), "churn@v1.2.0"),
        (lambda: tags.deregister_tag("churn", "v1.2.0"), "churn@v1.2.0!"),
        (lambda: tags.assign_tag("churn", "production", 7), "churn#production#7"),
        (lambda: tags.unassign_tag("churn", "production", 8), "churn#production!#8"),
        (lambda: tags.deprecate_tag("churn"), "churn@deprecated"),
        (lambda: tags.assign_tag("models/a:nn", "prod", 1), "models/a=nn#prod#1"),
    ],
)
def test_names_round_trip(make, expected: str) -> None:  # type: ignore[no-untyped-def]
    name = make()
    assert name == expected
    assert tags.parse_name(name) is not None


@pytest.mark.parametrize(
    ("taken", "bump", "expected"),
    [
        ([], "patch", "v0.0.1"),
        ([], "major", "v0.0.1"),  # the first version is always v0.0.1
        (["v0.0.1"], "patch", "v0.0.2"),
        (["v0.0.1"], "minor", "v0.1.0"),
        (["v0.3.7"], "major", "v1.0.0"),
        (["v0.0.9", "v0.0.10", "v0.0.2"], "patch", "v0.0.11"),  # semver order, not text
        (["v1.0.0-rc.1"], "patch", "v1.0.1"),
        (["v1.0.0", "v1.0.0-rc.2"], "patch", "v1.0.1"),
        (["junk", "v0.1.0"], "patch", "v0.1.1"),
    ],
)
def test_next_version(taken: list[str], bump: str, expected: str) -> None:
    assert tags.next_version(taken, bump) == expected


def test_semver_order() -> None:
    order = [
        "v0.0.1",
        "v0.1.0-alpha",
        "v0.1.0-alpha.1",
        "v0.1.0-beta",
        "v0.1.0-rc.1",
        "v0.1.0",
        "v1.0.0",
    ]
    parsed = [tags.SemVer.parse(v) for v in order]
    assert parsed == sorted(parsed)  # type: ignore[type-var]
    assert str(tags.SemVer.parse("v1.2.3-rc.1")) == "v1.2.3-rc.1"
    with pytest.raises(ValueError):
        tags.SemVer(1, 0, 0).bump("huge")


def test_next_counter_counts_every_action_of_the_model() -> None:
    names = [
        tags.parse_name(n)
        for n in ["a@v0.0.1", "a#prod#3", "a@v0.0.1!#7", "a#prod!#5", "b#prod#40", "a@deprecated#6"]
    ]
    assert tags.next_counter([n for n in names if n], "a") == 8
    assert tags.next_counter([n for n in names if n], "b") == 41
    assert tags.next_counter([], "c") == 1


def test_metadata_round_trip() -> None:
    text = tags.message("Registering artifact churn version v0.0.1", {"metrics": {"acc": 0.9}, "pr": 12})
    assert text.splitlines()[0] == "Registering artifact churn version v0.0.1"
    assert tags.metadata_from(text) == {"metrics": {"acc": 0.9}, "pr": 12}
    assert tags.metadata_from("Registering artifact churn version v0.0.1\n") == {}  # GTO's own
    assert tags.metadata_from("x\nmlci-metadata: {broken\n") == {}


def _rec(name: str, commit: str, t: int, message: str = "", annotated: bool = True) -> TagRecord:
    return TagRecord(
        name=name,
        commit=commit,
        annotated=annotated,
        tagger="T",
        tagger_email="t@x",
        timestamp=t,
        message=message,
    )


def test_build_state() -> None:
    records = [
        _rec(
            "churn@v0.0.1",
            "c1",
            10,
            tags.message("r", {"fingerprint": "f1", "metrics": {"acc": 0.9}}),
        ),
        _rec("churn@v0.0.2", "c2", 20, tags.message("r", {"fingerprint": "f2"})),
        _rec("churn@v0.0.3", "c3", 30),
        _rec("churn#staging#1", "c1", 11),
        _rec("churn#staging#2", "c2", 21),
        _rec("churn#production#3", "c1", 22),
        # Same second as #4, older counter: the counter decides, not the time.
        _rec("churn#production!#5", "c1", 40),
        _rec("churn#production#4", "c1", 40),
        _rec("churn@v0.0.3!#6", "c3", 41),
        _rec("churn#qa#7", "c9", 42),  # a commit with no version
        _rec("churn#staging#99", "c3", 50, annotated=False),  # lightweight: ignored
        _rec("release-1.0", "c1", 5),  # not a registry tag
        _rec("other@v1.0.0", "x1", 1),
    ]
    state = tags.build_state(records)
    assert sorted(state) == ["churn", "other"]
    churn = state["churn"]
    assert churn.active_versions() == ["v0.0.2", "v0.0.1"]
    assert churn.latest == "v0.0.2"
    assert set(churn.taken_versions()) == {"v0.0.1", "v0.0.2", "v0.0.3"}
    assert churn.current("staging").version == "v0.0.2"  # type: ignore[union-attr]
    assert churn.current("production") is None  # unassigned by the highest counter
    assert churn.current("qa").version is None  # type: ignore[union-attr]
    assert churn.current("nowhere") is None
    assert churn.version_of_fingerprint("f1") == "v0.0.1"
    assert churn.version_of_fingerprint("nope") is None
    assert churn.version_on_commit("c2") == "v0.0.2"
    assert churn.was_assigned("v0.0.1", "staging")
    assert not churn.was_assigned("v0.0.2", "production")
    assert [e.tag for e in churn.assignment_history("staging")] == [
        "churn#staging#2",
        "churn#staging#1",
    ]
    assert churn.events[0].tag == "churn#qa#7"  # newest first
    assert churn.versions["v0.0.1"].metadata["metrics"] == {"acc": 0.9}


def test_unassign_falls_back_and_deregistered_versions_are_not_current() -> None:
    """GTO's semantics: an unassign removes that version from the environment only."""
    base = [
        _rec("m@v0.0.1", "c1", 1),
        _rec("m@v0.0.2", "c2", 2),
        _rec("m#prod#1", "c1", 3),
        _rec("m#prod#2", "c2", 4),
    ]
    assert tags.build_state(base)["m"].current("prod").version == "v0.0.2"  # type: ignore[union-attr]
    unassigned = tags.build_state([*base, _rec("m#prod!#3", "c2", 5)])["m"]
    assert unassigned.current("prod").version == "v0.0.1"  # type: ignore[union-attr]
    deregistered = tags.build_state([*base, _rec("m@v0.0.2!", "c2", 5)])["m"]
    assert deregistered.current("prod").version == "v0.0.1"  # type: ignore[union-attr]
    reassigned = tags.build_state([*base, _rec("m#prod!#3", "c2", 5), _rec("m#prod#4", "c2", 6)])["m"]
    assert reassigned.current("prod").version == "v0.0.2"  # type: ignore[union-attr]
    assert reassigned.environments == ["prod"]
