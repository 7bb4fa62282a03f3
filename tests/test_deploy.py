"""Deploy hooks: promotion deploys and smoke-tests before the tag, and every failure
point leaves the environment on the version its tag names (real git with a bare
remote, real MLflow, the hook a real command)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from mlci import config as cfg
from mlci.errors import ConfigError, ExitCode
from tests.helpers import run
from tests.lifecycle import aliases, commit, new_model, ok, project, remote_tags

HOOK = """\
import json, os, pathlib, sys
step, log = sys.argv[1], pathlib.Path(os.environ["DEPLOY_LOG"])
version = os.environ["MLCI_MODEL_VERSION"]
folder = pathlib.Path(os.environ["MLCI_MODEL_DIR"])
seen = {k: v for k, v in os.environ.items() if k.startswith("MLCI_")}
seen["files"] = sorted(p.name for p in folder.iterdir())
seen["token"] = "GITHUB_TOKEN" in os.environ or "ACTIONS_RUNTIME_TOKEN" in os.environ
with log.open("a") as out:
    out.write(json.dumps({"step": step, **seen}) + "\\n")
if os.environ.get("FAIL") == f"{step} {version}":
    print(f"{step} of {version} broke: connection refused", file=sys.stderr)
    sys.exit(3)
if step == "deploy":
    print(f"environment_url: http://127.0.0.1:8911/{version}")
"""

DEPLOY = """\
    deploy:
      command: {python} hook.py deploy
      smoke: {python} hook.py smoke
      timeout: 20s
"""


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = project(tmp_path)
    (root / "hook.py").write_text(HOOK)
    config = root / "mlci.yaml"
    text = config.read_text().replace(
        "  staging:\n", "  staging:\n" + DEPLOY.format(python=sys.executable), 1
    )
    config.write_text(text)
    commit(root, "a deploy hook")
    monkeypatch.setenv("DEPLOY_LOG", str(tmp_path / "deploys.log"))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_not_for_hooks")  # a PAT on a laptop: never seen by a hook
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("FAIL", raising=False)
    return root


def _log(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "deploys.log"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [json.loads(line) for line in lines]


def _steps(entries: list[dict[str, Any]]) -> list[str]:
    return [f"{e['step']} {e['MLCI_MODEL_VERSION']}" for e in entries]


def _staging(root: Path) -> str | None:
    from mlci import registry

    state = registry.read_state(root).get("demo")
    event = state.current("staging") if state else None
    return event.version if event else None


def test_promotion_deploys_and_smoke_tests_before_the_tag(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.9)
    promoted = ok(cli, root, "promote", "staging")
    deploy, smoke = _log(tmp_path)
    assert _steps([deploy, smoke]) == ["deploy v0.0.1", "smoke v0.0.1"]
    assert deploy["MLCI_ENVIRONMENT"] == "staging" and deploy["MLCI_MODEL_NAME"] == "demo"
    assert deploy["MLCI_MODEL_URI"].startswith("models:/demo/")
    assert deploy["MLCI_MODEL_SHA256"] == promoted["model_sha256"]
    assert deploy["files"] and deploy["token"] is False  # the bytes at hand; no credential
    assert Path(deploy["MLCI_MODEL_DIR"]).is_dir()  # kept for a server the hook started
    assert smoke["MLCI_ENVIRONMENT_URL"] == "http://127.0.0.1:8911/v0.0.1"
    assert promoted["deployed"]["ok"] is True and promoted["deployed"]["url"].endswith("/v0.0.1")
    assert [s["step"] for s in promoted["deployed"]["steps"]] == ["deploy", "smoke"]
    assert "demo#staging#1" in remote_tags(root) and aliases(root) == {"staging": "1"}

    # By hand: the version the tag names, and only that one.
    again = ok(cli, root, "deploy", "staging")
    assert again["ok"] is True and _steps(_log(tmp_path)) == ["deploy v0.0.1", "smoke v0.0.1"]
    other = cli("deploy", "staging", "--version", "v0.0.9", cwd=root)
    assert other.code == ExitCode.ERROR and "mlci deploys only what the environment's tag names" in other.err
    assert "mlci promote staging --version v0.0.9" in other.err
    none = cli("deploy", "production", cwd=root)
    assert none.code == ExitCode.ERROR and "has no deploy hook" in none.err and "Traceback" not in none.err


@pytest.mark.slow
@pytest.mark.parametrize("step", ["deploy", "smoke"])
def test_a_failed_step_deploys_the_tagged_version_back_and_tags_nothing(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.9)
    ok(cli, root, "promote", "staging")
    _log(tmp_path)
    new_model(cli, root, 0.91)
    monkeypatch.setenv("FAIL", f"{step} v0.0.2")
    result = cli("promote", "staging", "--json", cwd=root)
    assert result.code == ExitCode.GATE_FAILED and "Traceback" not in result.err
    out = json.loads(result.out)
    assert f"the {step} of v0.0.2 to staging failed" in out["blocked"] and "exited with 3" in out["blocked"]
    assert f"{step} of v0.0.2 broke: connection refused" in out["blocked"]  # the end of its output
    assert "staging runs v0.0.1 again" in out["blocked"]
    tried = ["deploy v0.0.2"] + (["smoke v0.0.2"] if step == "smoke" else [])
    assert _steps(_log(tmp_path)) == [*tried, "deploy v0.0.1", "smoke v0.0.1"]
    assert _staging(root) == "v0.0.1" and "demo#staging#2" not in remote_tags(root)
    assert aliases(root) == {"staging": "1"}  # the alias did not move either
    assert out["deployed"]["restored"]["ok"] is True


def test_a_tag_that_cannot_be_pushed_deploys_the_tagged_version_back(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.9)
    ok(cli, root, "promote", "staging")
    new_model(cli, root, 0.91)
    _log(tmp_path)
    hook = tmp_path / "remote.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: no assignments today' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = cli("promote", "staging", cwd=root)
    assert result.code == ExitCode.ERROR and "Traceback" not in result.err
    assert "v0.0.2 was deployed to staging and its tag could not be published" in result.err
    assert "staging runs v0.0.1 again" in result.err
    assert _steps(_log(tmp_path)) == ["deploy v0.0.2", "smoke v0.0.2", "deploy v0.0.1", "smoke v0.0.1"]
    assert _staging(root) == "v0.0.1"  # no half-made assignment, locally or on the remote
    assert "demo#staging#2" not in run(["git", "tag", "-l"], root)


def test_a_first_deploy_that_fails_has_nothing_to_go_back_to(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.9)
    monkeypatch.setenv("FAIL", "smoke v0.0.1")
    result = cli("promote", "staging", cwd=root)
    assert result.code == ExitCode.GATE_FAILED
    assert "staging had no model before: nothing to deploy back" in result.err
    assert _staging(root) is None and _steps(_log(tmp_path)) == ["deploy v0.0.1", "smoke v0.0.1"]


def test_a_hook_past_its_timeout_is_killed_and_fails(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, monkeypatch)
    config = root / "mlci.yaml"
    config.write_text(
        config.read_text()
        .replace("hook.py smoke\n", '-c "import time; time.sleep(30)"\n')
        .replace("timeout: 20s", "timeout: 1s")
    )
    commit(root, "a slow smoke test")
    new_model(cli, root, 0.9)
    result = cli("promote", "staging", cwd=root)
    assert result.code == ExitCode.GATE_FAILED and "the smoke of v0.0.1 to staging failed" in result.err
    assert "timed out after 1s" in result.err and _staging(root) is None


def test_a_job_holding_a_write_token_runs_no_hook(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.9)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = cli("promote", "staging", cwd=root)
    assert result.code == ExitCode.ERROR and "a deploy hook is the repository's own code" in result.err
    assert _log(tmp_path) == [] and _staging(root) is None


@pytest.mark.parametrize(
    ("deploy", "says"),
    [
        ("5", "environments.staging.deploy: expected a mapping"),
        ("{smoke: ./smoke.sh}", "environments.staging.deploy.command: required key is missing"),
        ("{command: ./d.sh, timeout: -1}", "environments.staging.deploy.timeout: expected a positive number"),
        ("{command: ./d.sh, smok: x}", "did you mean 'smoke'?"),
    ],
)
def test_deploy_config_errors_say_where(deploy: str, says: str) -> None:
    text = f"model: {{name: demo}}\ntrain: {{command: x}}\nenvironments:\n  staging:\n    deploy: {deploy}\n"
    with pytest.raises(ConfigError) as caught:
        cfg.parse(text, Path("/repo/mlci.yaml"))
    assert says in caught.value.message


def test_a_deploy_command_alone_is_a_hook() -> None:
    text = "model: {name: demo}\ntrain: {command: x}\nenvironments:\n  staging:\n    deploy: ./deploy.sh\n"
    hook = cfg.parse(text, Path("/repo/mlci.yaml")).environment("staging").deploy
    assert hook == cfg.DeployHook("./deploy.sh") and hook.timeout == 1800


def test_no_hook_runs_when_the_config_has_none(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.95)
    ok(cli, root, "promote", "staging")
    _log(tmp_path)
    promoted = ok(cli, root, "promote", "production")  # production declares no hook
    assert promoted["deployed"] is None and _log(tmp_path) == []
    assert os.environ.get("GITHUB_ACTIONS") is None


def test_a_github_deployment_follows_the_hook(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """in_progress when the gates pass, then success with the URL the hook printed, or
    failure with the step that failed; the environment stays on the version its tag names."""
    from mlci import deploy, github_api
    from mlci.context import Context
    from mlci.usecases import promotion as promote
    from tests.github_stub import github_stub

    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.9)
    with github_stub() as gh:
        api = github_api.GitHubApi("ghs_deployments", gh.base_url, "octo/churn", retries=0)

        def promote_staging() -> promote.PromoteResult:
            notifier = deploy.GitHubDeployments(api, "staging", "https://ci.example/run/1", lambda _: None)
            return promote.assign(
                Context(root, os.environ), environment="staging", version=None, push=None, notify=notifier
            )

        assert promote_staging().passed
        assert [(s["state"], s["environment_url"]) for s in gh.deployment_statuses] == [
            ("in_progress", ""),
            ("success", "http://127.0.0.1:8911/v0.0.1"),
        ]
        assert gh.deployments[0]["payload"]["version"] == "v0.0.1"
        new_model(cli, root, 0.91)
        monkeypatch.setenv("FAIL", "smoke v0.0.2")
        failed = promote_staging()
        assert failed.blocked and "the smoke of v0.0.2 to staging failed" in failed.blocked
        assert [s["state"] for s in gh.deployment_statuses[2:]] == ["in_progress", "failure"]
        assert gh.deployment_statuses[-1]["description"].startswith("the smoke of v0.0.2 to staging failed")
        assert gh.deployments[1]["payload"]["version"] == "v0.0.2" and _staging(root) == "v0.0.1"


@pytest.mark.slow
def test_the_workflow_stages_deploy_tag_and_restore_around_a_hook(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The reusable workflow's jobs, one after another as GitHub Actions runs them: the
    deploy job (read-only token) runs the hook; the assign job (write token) tags what it
    deployed, or, when the tag cannot be pushed, asks the restore job to deploy back."""
    from tests.github_helpers import actions_env as _actions_env
    from tests.github_helpers import outputs
    from tests.github_stub import github_stub

    root = _project(tmp_path, monkeypatch)
    new_model(cli, root, 0.9)
    ok(cli, root, "promote", "staging")
    new_model(cli, root, 0.91)
    _log(tmp_path)

    def stage(name: str, **handover: str):  # type: ignore[no-untyped-def]
        for key in ("MLCI_DEPLOYED", "MLCI_ENVIRONMENT_URL", "MLCI_DEPLOYMENT_ID", "MLCI_DEPLOY_MESSAGE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in {"MLCI_VERSION": "v0.0.2", **handover}.items():
            monkeypatch.setenv(key, value)
        return cli("ci", "--event", "push", "--branch", "staging", "--stage", name, "--json", cwd=root)

    with github_stub() as gh:
        _actions_env(monkeypatch, tmp_path, gh)
        deployed = stage("deploy")
        assert deployed.code == ExitCode.OK, deployed.err
        (deploy, smoke) = _log(tmp_path)
        assert _steps([deploy, smoke]) == ["deploy v0.0.2", "smoke v0.0.2"] and deploy["token"] is False
        found = outputs(tmp_path)
        assert found["deployed"] == "true" and found["environment-url"] == "http://127.0.0.1:8911/v0.0.2"

        hook = tmp_path / "remote.git" / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'protected' >&2\nexit 1\n")
        hook.chmod(0o755)
        handover = {"MLCI_DEPLOYED": "true", "MLCI_ENVIRONMENT_URL": found["environment-url"]}
        refused = stage("assign", **handover)
        assert (
            refused.code == ExitCode.ERROR
            and "the restore job deploys back the version the tag names" in refused.err
        )
        assert outputs(tmp_path)["restore"] == "true" and _staging(root) == "v0.0.1"
        assert _log(tmp_path) == []  # the job holding the write token ran no hook
        restored = stage("restore")
        assert restored.code == ExitCode.OK, restored.err
        assert _steps(_log(tmp_path)) == ["deploy v0.0.1", "smoke v0.0.1"]  # what the tag names

        hook.unlink()
        assigned = stage("assign", **handover)
        assert assigned.code == ExitCode.OK, assigned.err
        assert json.loads(assigned.out)["outcome"] == "promoted" and _staging(root) == "v0.0.2"
        assert [s["state"] for s in gh.deployment_statuses][-1] == "success"
        assert gh.deployment_statuses[-1]["environment_url"] == "http://127.0.0.1:8911/v0.0.2"
        assert [d["client_payload"]["version"] for d in gh.dispatches] == ["v0.0.2"]

        new_model(cli, root, 0.92)
        opened = gh.deployments[-1]["id"]  # as the publish stage hands it over
        failed = stage(
            "assign",
            MLCI_DEPLOYMENT_ID=str(opened),
            MLCI_VERSION="v0.0.3",
            MLCI_DEPLOYED="false",
            MLCI_DEPLOY_MESSAGE="the smoke of v0.0.3 failed",
        )
        assert failed.code == ExitCode.GATE_FAILED and _staging(root) == "v0.0.2"
        assert "demo v0.0.3 not promoted to staging: the smoke of v0.0.3 failed" in failed.err
        assert (gh.deployment_statuses[-1]["state"], gh.deployment_statuses[-1]["deployment_id"]) == (
            "failure",
            opened,
        )
