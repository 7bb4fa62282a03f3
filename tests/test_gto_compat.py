"""GTO compatibility both ways, against the real GTO (``python -m tests.tools`` installs it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlci import gitrepo, tags
from tests import tools
from tests.helpers import run
from tests.lifecycle import commit, new_model, ok, project


@pytest.fixture(scope="session")
def gto() -> str:
    """The real GTO, installed before the tests by ``python -m tests.tools``."""
    try:
        tools.require("gto")
    except tools.MissingTool as exc:
        pytest.fail(str(exc))
    return str(tools.gto())


def gto_show(gto: str, root: Path) -> dict[str, object]:
    out = subprocess.run([gto, "show", "--json"], cwd=root, capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_gto_reads_what_mlci_writes(cli, tmp_path: Path, gto: str) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    new_model(cli, root, 0.90)
    ok(cli, root, "promote", "staging")
    new_model(cli, root, 0.92)
    ok(cli, root, "promote", "staging")
    ok(cli, root, "promote", "production", "--version", "v0.0.1")
    ok(cli, root, "rollback", "staging", "--reason", "canary")
    new_model(cli, root, 0.95)
    ok(cli, root, "deprecate", "--version", "v0.0.3")
    for record in gitrepo.read_tags(root):
        assert tags.TAG_RE.match(record.name), record.name
    assert gto_show(gto, root) == {
        "demo": {
            "version": "v0.0.2",
            "stage": {"staging": "v0.0.1", "production": "v0.0.1"},
            "registered": True,
            "active": True,
        }
    }
    mine = ok(cli, root, "show")["models"][0]
    assert mine["latest"] == "v0.0.2"
    assert mine["environments"] == {"staging": "v0.0.1", "production": "v0.0.1"}
    history = subprocess.run(
        [gto, "history", "demo", "--json"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    refs = {event["ref"] for event in json.loads(history)}
    assert {"demo@v0.0.1", "demo#staging#1", "demo#production#3", "demo@v0.0.3!"} <= refs
    # Unassigning with mlci falls back the way GTO does.
    ok(cli, root, "deprecate", "--env", "staging")
    assert gto_show(gto, root)["demo"]["stage"] == ok(cli, root, "show")["models"][0]["environments"]  # type: ignore[index]


@pytest.mark.slow
def test_mlci_reads_what_gto_writes(cli, tmp_path: Path, gto: str) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    root.mkdir()
    run(["git", "init", "-q", "-b", "main"], root)
    commit(root, "one")

    def g(*args: str) -> None:
        subprocess.run([gto, *args], cwd=root, check=True, capture_output=True)

    g("register", "nn", "HEAD", "--version", "v0.0.1")
    g("assign", "nn", "--version", "v0.0.1", "--stage", "prod")
    commit(root, "two")
    g("register", "nn", "HEAD", "--bump-minor")
    g("assign", "nn", "--version", "v0.1.0", "--stage", "prod")
    g("assign", "nn", "--version", "v0.1.0", "--stage", "dev")
    g("deprecate", "nn", "v0.1.0", "prod")  # unassign: prod falls back to v0.0.1
    commit(root, "three")
    g("register", "other/model", "HEAD", "--version", "v1.0.0")
    g("deprecate", "other/model", "v1.0.0")  # deregister
    g("register", "gone", "HEAD", "--version", "v0.0.1")
    g("deprecate", "gone")  # deprecate the artifact

    shown = ok(cli, root, "show")  # no mlci.yaml here
    by_name = {m["name"]: m for m in shown["models"]}
    theirs = gto_show(gto, root)
    assert by_name["nn"]["latest"] == theirs["nn"]["version"] == "v0.1.0"  # type: ignore[index]
    assert (
        {k: v for k, v in by_name["nn"]["environments"].items() if v}
        == theirs["nn"]["stage"]
        == {"prod": "v0.0.1", "dev": "v0.1.0"}
    )  # type: ignore[index]
    assert by_name["other/model"]["latest"] is None
    assert by_name["gone"]["deprecated"] is True
    events = ok(cli, root, "history", "nn")
    assert [(e["action"], e["version"], e["environment"]) for e in events][:1] == [
        ("unassign", "v0.1.0", "prod")
    ]
    assert sorted(e["tag"] for e in events) == sorted(
        ["nn@v0.0.1", "nn#prod#1", "nn@v0.1.0", "nn#prod#2", "nn#dev#3", "nn#prod!#4"]
    )
