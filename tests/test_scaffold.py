from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlci import config as cfg
from mlci import scaffold
from mlci.errors import ExitCode
from tests.helpers import REPO_ROOT, TEMPLATES, project_files, run

EXPECTED_FILES = {
    ".github/workflows/mlci-pr.yml",
    ".github/workflows/mlci-promote.yml",
    ".github/zizmor.yml",
    "deploy/serve.py",  # production's deploy hook: serves the model on 127.0.0.1
    "deploy/smoke.py",  # and its smoke test: one prediction request
    ".gitignore",
    "README.md",
    "mlci.yaml",
    "params.yaml",
    "requirements.txt",
    "train.py",
}
DATA_FILES = {"classifier": "data/cancer.csv", "regressor": "data/diabetes.csv"}  # each scaffold's dataset


def test_cli_template_choices_match_the_template_folders() -> None:
    from mlci.cli import Template

    assert sorted(t.value for t in Template) == scaffold.templates() == sorted(TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES)
def test_init_writes_a_valid_project(cli, tmp_path: Path, template: str) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "my-model"
    result = cli("init", str(target), "--template", template)
    assert result.code == ExitCode.OK, result.err
    expected = EXPECTED_FILES | {DATA_FILES[template]}
    assert set(project_files(target)) == expected
    assert f"Created {template} project 'my-model'" in result.out
    for name in expected:
        assert f"create    {name}" in result.out
    config = cfg.load(target / "mlci.yaml")
    assert config.model.name == "my-model"
    assert [e.name for e in config.environments] == ["staging", "production"]
    assert config.environment("production").requires == "staging"
    assert all(env.gates for env in config.environments)
    assert ".mlci/" in (target / ".gitignore").read_text().splitlines()
    for name in ("mlci-pr.yml", "mlci-promote.yml"):
        workflow = (target / ".github/workflows" / name).read_text()
        assert "branches: [staging, production]" in workflow
        assert "uses: mlci-dev/mlci/.github/workflows/mlci.yml@v0.1.0" in workflow
    assert "{{" not in (target / "README.md").read_text()


def test_name_option_and_name_from_folder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", str(tmp_path / "a"), "--name", "churn/v2").code == ExitCode.OK
    assert cfg.load(tmp_path / "a" / "mlci.yaml").model.name == "churn/v2"
    assert cli("init", str(tmp_path / "My Project!")).code == ExitCode.OK
    assert cfg.load(tmp_path / "My Project!" / "mlci.yaml").model.name == "My-Project"


@pytest.mark.parametrize(
    ("folder", "expected"),
    [("churn", "churn"), ("My Project!", "My-Project"), ("_x_", "x"), ("a.b", "a-b"), ("!!!", "")],
)
def test_model_name_from_folder(folder: str, expected: str) -> None:
    assert scaffold.model_name_from(Path(folder)) == expected


def test_bad_name_is_rejected_before_writing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("init", str(tmp_path / "p"), "--name", "bad name")
    assert result.code == ExitCode.ERROR
    assert "'bad name' is not a valid model name" in result.err
    assert "--name" in result.err
    assert not (tmp_path / "p").exists()
    nameless = cli("init", str(tmp_path / "!!!"))
    assert nameless.code == ExitCode.ERROR
    assert "pass --name NAME" in nameless.err


def test_bad_actions_ref(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("init", str(tmp_path / "p"), "--actions-ref", "nonsense")
    assert result.code == ExitCode.ERROR
    assert "OWNER/REPO@REF" in result.err
    ok = cli("init", str(tmp_path / "q"), "--actions-ref", "acme/mlci-fork@v2")
    assert ok.code == ExitCode.OK
    assert (
        "uses: acme/mlci-fork/.github/workflows/mlci.yml@v2"
        in (tmp_path / "q/.github/workflows/mlci-pr.yml").read_text()
    )
    assert '"acme/mlci-fork/*": ref-pin' in (tmp_path / "q/.github/zizmor.yml").read_text()


def test_refuses_non_empty_folder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "p"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = cli("init", str(target))
    assert result.code == ExitCode.ERROR
    assert "is not empty" in result.err
    assert "--force" in result.err
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_force_lists_every_overwrite_and_keeps_other_files(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "p"
    assert cli("init", str(target)).code == ExitCode.OK
    (target / "train.py").write_text("# my edits\n")
    (target / "notes.txt").write_text("mine")
    result = cli("init", str(target), "--force")
    assert result.code == ExitCode.OK
    assert "overwrite train.py" in result.out
    assert "unchanged params.yaml" in result.out
    assert (target / "notes.txt").read_text() == "mine"
    assert "# my edits" not in (target / "train.py").read_text()


def test_target_is_a_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "f").write_text("x")
    result = cli("init", str(tmp_path / "f"))
    assert result.code == ExitCode.ERROR
    assert "is not a folder" in result.err


def test_git_option_makes_first_commit_and_branches(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "p"
    result = cli("init", str(target), "--git")
    assert result.code == ExitCode.OK, result.err
    assert "branches: main, staging, production" in result.out
    branches = run(["git", "branch", "--format=%(refname:short)"], target).split()
    assert sorted(branches) == ["main", "production", "staging"]
    assert run(["git", "status", "--porcelain"], target) == ""
    tracked = set(run(["git", "ls-files"], target).split())
    assert tracked == EXPECTED_FILES | {DATA_FILES["classifier"]}
    log = run(["git", "log", "--format=%an|%s", "--all"], target).strip().splitlines()
    assert log == ["Test Author|Scaffold p with mlci init --template classifier"]
    again = cli("init", str(target), "--force", "--git")
    assert again.code == ExitCode.ERROR
    assert "already a git repository" in again.err


def test_git_without_identity_gives_a_hint(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("EMAIL", "")
    # git falls back to user@hostname when it can; forbid that guess.
    (Path.home() / ".gitconfig").write_text("[user]\n\tuseConfigOnly = true\n")
    try:
        result = cli("init", str(tmp_path / "p"), "--git")
    finally:
        (Path.home() / ".gitconfig").unlink()
    assert result.code == ExitCode.ERROR
    assert "the first commit failed" in result.err
    assert "git config --global user.email" in result.err


@pytest.mark.parametrize("template", TEMPLATES)
def test_examples_are_exactly_what_init_produces(cli, tmp_path: Path, template: str) -> None:  # type: ignore[no-untyped-def]
    fresh = tmp_path / template
    assert cli("init", str(fresh), "--template", template).code == ExitCode.OK
    example = REPO_ROOT / "examples" / template
    assert project_files(example) == project_files(fresh), (
        f"examples/{template} drifted from `mlci init --template {template}`; regenerate it: "
        f"rm -rf examples/{template} && mlci init examples/{template} -t {template}"
    )


@pytest.mark.parametrize(
    ("template", "metrics"),
    [
        ("classifier", {"accuracy", "f1", "roc_auc", "log_loss"}),
        ("regressor", {"rmse", "mae", "r2"}),
    ],
)
def test_train_py_runs_as_is_and_passes_its_own_gates(
    cli, tmp_path: Path, template: str, metrics: set[str]
) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / template
    assert cli("init", str(target), "--template", template).code == ExitCode.OK
    run([sys.executable, "train.py"], target)
    written = json.loads((target / "metrics.json").read_text())
    assert set(written) == metrics
    assert (target / "model" / "MLmodel").is_file()
    config = cfg.load(target / "mlci.yaml")
    # The scaffold's first model must clear its own absolute gates.
    for env in config.environments:
        for rule in env.gates:
            value = written[rule.metric]
            assert rule.min is None or value >= rule.min, (env.name, rule)
            assert rule.max is None or value <= rule.max, (env.name, rule)
    # Deterministic: the same params give the same metrics, under MLCI_OUTPUT_DIR too.
    out = tmp_path / "out"
    env = {**__import__("os").environ, "MLCI_OUTPUT_DIR": str(out)}
    subprocess.run([sys.executable, "train.py"], cwd=target, env=env, check=True, capture_output=True)
    assert json.loads((out / "metrics.json").read_text()) == written
    assert (out / "model" / "MLmodel").is_file()
