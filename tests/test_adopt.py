"""Adopting existing projects: `mlci init --adopt`, overrides that reach the code,
any model or none, the clean-tree rule, DVC-tracked data, truthful reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlci import adopt, dvc, params, project, swap
from mlci import config as cfg
from mlci import fingerprint as fp
from mlci.errors import ExitCode
from tests import shapes

# --------------------------------------------------------------------------- inference (pure)

DVC_FILES = {
    "dvc.yaml": shapes.DVC_PIPELINE,
    "params.yaml": shapes.DVC_PARAMS,
    "src/prepare.py": shapes.DVC_PREPARE,
    "src/train.py": shapes.DVC_TRAIN,
    "src/evaluate.py": shapes.DVC_EVALUATE,
    "data/data.csv.dvc": "outs:\n- md5: abc123\n  size: 10\n  hash: md5\n  path: data.csv\n",
    "data/.gitignore": "/data.csv\n",
    "requirements.txt": "dvc\n",
    "eval/metrics.json": '{"accuracy": {"test": 0.9}, "roc_auc": {"test": 0.95}}',
}
CONFIG_FILES = {
    "scripts/train.py": shapes.CONFIG_TRAIN,
    "config/train.yaml": shapes.CONFIG_SETTINGS,
    "requirements.txt": "scikit-learn\n",
    "README.md": "# x\n",
}
CML_FILES = {
    "train.py": shapes.CML_TRAIN,
    "params.yaml": shapes.CML_PARAMS,
    "data/train_features.csv": "1,2\n",
    "requirements.txt": "scikit-learn\n",
    "README.md": "# x\n",
}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            DVC_FILES,
            {
                "command": "dvc repro",
                "params": "params.yaml",
                "metrics": "eval/metrics.json",
                "model": "model.pkl",
                "own_cache": True,
                "rewrites": ["dvc.lock"],
                "inputs": ["**"],
                "exclude": [*adopt.NOT_INPUTS, ("data/prepared", "written by a stage of dvc.yaml")],
                "metric_names": ["accuracy.test", "roc_auc.test"],
            },
        ),
        (
            CML_FILES,
            {
                "command": "python train.py",
                "params": "params.yaml",
                "metrics": "metrics.txt",
                "model": "model.joblib",
                "own_cache": False,
                "rewrites": [],
                "inputs": ["**"],
                "exclude": list(adopt.NOT_INPUTS),
                "metric_names": [],
            },
        ),
        (
            {"Makefile": "train:\n\tpython fit.py\n", "fit.py": "open('out/scores.json','w')\n"},
            {"command": "make train", "params": None, "metrics": "out/scores.json", "model": None},
        ),
        (
            {"src/train_model.py": "import pickle\npickle.dump(m, open('models/m.pkl', 'wb'))\n", "x.py": ""},
            {"command": "python src/train_model.py", "model": "models/m.pkl", "metrics": "metrics.json"},
        ),
        (
            {"notebook.ipynb": "{}"},
            {"command": None, "params": None, "model": None, "inputs": ["**"]},
        ),
        (
            CONFIG_FILES,
            {
                "command": "python scripts/train.py",
                "params": "config/train.yaml",
                "metrics": "artifacts/metrics.json",
                "model": "artifacts/model.joblib",
                "inputs": ["**"],
                "checks": {"environments"},  # no metrics file yet: no gates
            },
        ),
        (
            {
                "train.py": "import os, joblib\nout = os.environ['OUT']\n"
                "open(os.path.join(out, 'metrics.json'), 'w')\njoblib.dump(m, f'{out}/model.joblib')\n"
            },
            {
                "command": "python train.py",
                "metrics": "metrics.json",
                "model": "model.joblib",
                "checks": {"train.metrics", "train.model", "environments", "requirements"},
            },
        ),
        (
            {**DVC_FILES, "dvc.yaml": shapes.DVC_PIPELINE_TOP_LEVEL, "src/requirements.txt": "dvc\n"},
            {
                "metrics": "eval/metrics.json",
                "model": "model.pkl",
                "model_name": "breast-cancer-rf",
                "requirements": ["requirements.txt", "src/requirements.txt"],
                "exclude": [
                    *adopt.NOT_INPUTS,
                    ("data/prepared", "written by a stage of dvc.yaml"),
                    ("eval", "written by a stage of dvc.yaml"),
                    ("eval/importance.png", "written by a stage of dvc.yaml"),
                    ("eval/plots/roc.json", "written by a stage of dvc.yaml"),
                ],
            },
        ),
        (
            {
                "train.py": shapes.MLFLOW_TRAIN,
                "MLproject": shapes.MLFLOW_PROJECT,
                "python_env.yaml": shapes.MLFLOW_PYTHON_ENV,
                "diabetes.csv": "a,target\n1,2\n",
            },
            {
                "command": "python train.py {alpha} {l1_ratio}",
                "parameters": [("alpha", 0.5), ("l1_ratio", 0.1)],
                "params": None,
                "model": None,
                "mlflow": True,
                "environments": ["python_env.yaml"],
                "requirements": ["python_env.yaml"],
                "checks": {"environments"},
            },
        ),
        (
            {
                "src/train.py": "import argparse\np = argparse.ArgumentParser()\n"
                "p.add_argument('--n-estimators', type=int, default=100)\n"
                "p.add_argument('--out', default='model.pkl')\np.add_argument('--verbose', action='store_true')\n"
            },
            {
                "command": "python src/train.py --n-estimators {n_estimators} --out {out}",
                "parameters": [("n_estimators", 100), ("out", "model.pkl")],
                "model": "model.pkl",
            },
        ),
        (
            {
                "src/train.py": shapes.HYDRA_TRAIN,
                "conf/config.yaml": "defaults:\n  - model: rf\nseed: 0\n",
                "conf/model/rf.yaml": "n_estimators: 20\n",
            },
            {
                "command": "python src/train.py",
                "params": "conf/config.yaml",
                "overrides": "hydra",
                "metrics": "metrics.json",
                "model": "model.joblib",
                "parameters": [],
            },
        ),
    ],
    ids=[
        "dvc-pipeline",
        "cml-script",
        "makefile",
        "src-script",
        "nothing-to-go-on",
        "config-project",
        "computed-folder",
        "dvc-top-level",
        "mlproject",
        "argparse",
        "hydra",
    ],
)
def test_inference(files: dict[str, str], expected: dict[str, Any]) -> None:
    found = adopt.infer(sorted(files), files.get)
    for key, value in expected.items():
        if key != "checks":
            assert getattr(found, key) == value, key
    text = adopt.config_text("demo", found)
    cfg.parse(text, Path("mlci.yaml"))  # what it writes always validates
    checks = {f.key for f in found.findings if f.check}
    if expected.get("command", "") is None:
        assert "train.command" in checks
    # What the code names whole is not a guess; a file name under a folder computed at run
    # time (or a default) is, and says so.
    if "checks" in expected:
        assert checks == expected["checks"], found.findings


def test_adopted_config_gates_the_key_metric() -> None:
    found = adopt.infer(sorted(DVC_FILES), DVC_FILES.get)
    config = cfg.parse(adopt.config_text("demo", found), Path("mlci.yaml"))
    assert config.key_metric == "accuracy.test"
    assert [(e.name, e.gates[0].metric) for e in config.environments] == [
        ("staging", "accuracy.test"),
        ("production", "accuracy.test"),
    ]
    assert config.train.own_cache and config.train.rewrites == ("dvc.lock",)


# --------------------------------------------------------------------------- params written in place (pure)


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        ("# c\na: 1  # one\nb: x\n", [(["a"], 2)], "# c\na: 2  # one\nb: x\n"),
        ("m:\n  C: 0.00001\n  n: 3\n", [(["m", "n"], 4)], "m:\n  C: 0.00001\n  n: 4\n"),
        ("C: 1.0\n", [(["C"], 1e-05)], "C: 1.0e-05\n"),
        ("name: 'a'\n", [(["name"], "b: c")], "name: 'b: c'\n"),
        ('{"a": 1, "b": 2}\n', [(["b"], 3)], '{"a": 1, "b": 3}\n'),
        ("a: yes\n", [(["a"], False)], "a: false\n"),
    ],
)
def test_edit_yaml_changes_only_the_value(text: str, overrides: list[Any], expected: str) -> None:
    assert params.edit_yaml(text, overrides) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1e-05", 1e-05), ("1E5", 1e5), ("-2.5e+3", -2500.0), ("1e", "1e"), ("0.5", 0.5), ("e5", "e5")],
)
def test_override_exponent_is_a_number(value: str, expected: Any) -> None:
    assert params.parse_override(f"C={value}")[1] == expected


def test_params_json_reads_back_as_floats_in_yaml_and_json() -> None:
    data = {"C": 1e-05, "big": 1e20, "x": [0.5, 2e-07], "n": 3, "s": "1e-05"}
    text = params.yaml_safe_json(data)
    assert yaml.safe_load(text) == data
    assert json.loads(text) == data


def test_an_override_the_file_cannot_hold_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mlci.yaml").write_text("model: {name: m}\ntrain: {command: x, params: p.yaml}\n")
    (tmp_path / "p.yaml").write_text("base: &b {lr: 0.1}\nmodel:\n  <<: *b\n")
    with pytest.raises(Exception, match="cannot") as info:
        project.resolve(tmp_path / "mlci.yaml", tmp_path, ["model.lr=0.5"], warn=print)
    assert "params" in str(info.value)


# --------------------------------------------------------------------------- DVC records (pure)


def test_dvc_records() -> None:
    files = {
        "data/a.csv.dvc": "outs:\n- md5: aaa\n  path: a.csv\n",
        "images.dvc": "outs:\n- md5: ddd.dir\n  path: images\n",
        "dvc.lock": "schema: '2.0'\nstages:\n  prep:\n    outs:\n    - path: data/a.csv\n      md5: zzz\n"
        "    - path: out/feat\n      md5: fff.dir\n    - path: ../outside\n      md5: q\n",
        "bad.dvc": "outs: [",
    }
    tracked = dvc.parse(sorted(files), files.get)
    assert {k: (v.hash, v.source) for k, v in tracked.items()} == {
        "data/a.csv": ("md5:aaa", "data/a.csv.dvc"),  # the .dvc file wins over dvc.lock
        "images": ("md5:ddd.dir", "images.dvc"),
        "out/feat": ("md5:fff.dir", "dvc.lock (stage prep)"),
    }
    assert dvc.covers("images", "images/cats/*.png")
    assert not dvc.covers("images", "imagesx/*.png")


# --------------------------------------------------------------------------- real projects


def _ok(cli, root: Path, *args: str) -> Any:  # type: ignore[no-untyped-def]
    result = cli(*args, "--json", cwd=root)
    assert result.code == ExitCode.OK, result.err
    return json.loads(result.out)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file git sees (tracked or not ignored), with its bytes."""
    names = shapes.git(root, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    return {n: (root / n).read_bytes() for n in names if n and (root / n).is_file()}


@pytest.mark.slow
def test_cml_project_adopted_as_it_is(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = shapes.cml_project(tmp_path / "cml")
    shapes.with_remote(root)
    code_before = _tree(root)

    adopted = _ok(cli, root, "init", "--adopt")
    assert {Path(p).name for p in adopted["written"]} == {
        "mlci.yaml",
        "mlci-pr.yml",
        "mlci-promote.yml",
        "zizmor.yml",
    }
    assert {f["key"]: f["value"] for f in adopted["findings"]}["train.model"] == "model.joblib"
    assert _ok(cli, root, "config", "validate")["valid"] is True
    # Zero edits to the project's own files.
    assert {k: v for k, v in _tree(root).items() if k in code_before} == code_before

    first = _ok(cli, root, "train")
    assert first["metrics"]["Accuracy"] > 0.8 and first["params"]["depth"] == 2
    status_before = shapes.git(root, "status", "--porcelain")
    params_before = (root / "params.yaml").read_bytes()

    # --set reaches the code: the metrics move, the run records what the code saw,
    # and the params file is byte for byte what it was.
    deeper = _ok(cli, root, "train", "--set", "depth=6")
    assert deeper["metrics"]["Accuracy"] != first["metrics"]["Accuracy"]
    assert deeper["params"]["depth"] == 6
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.mlci' / 'mlflow.db'}"
    recorded = MlflowClient(uri).get_run(deeper["run_id"]).data.params
    assert recorded["depth"] == "6" and recorded["n_estimators"] == "20"
    assert (root / "params.yaml").read_bytes() == params_before
    assert shapes.git(root, "status", "--porcelain") == status_before
    assert not (root / ".mlci" / swap.RESTORE_DIR / swap.JOURNAL).exists()
    # Back without --set: the cache knows the first run.
    assert _ok(cli, root, "train")["run_id"] == first["run_id"]
    # An edit of the params file the code reads retrains: never a stale hit.
    (root / "params.yaml").write_text(params_before.decode().replace("n_estimators: 20", "n_estimators: 30"))
    more = _ok(cli, root, "train")
    assert not more["cached"] and more["params"]["n_estimators"] == 30
    (root / "params.yaml").write_bytes(params_before)

    # Registration asks only about inputs: notes and outputs may stay uncommitted.
    shapes.commit_all(root, "Adopt mlci")
    _ok(cli, root, "train")
    (root / "notes.txt").write_text("scratch\n")
    with (root / "README.md").open("a") as f:
        f.write("more\n")
    (root / "helper.py").write_text("X = 1\n")  # an input (everything git sees), untracked
    refused = cli("register", cwd=root)
    assert refused.code == ExitCode.ERROR
    assert "untracked  helper.py" in refused.err and "untracked  notes.txt" in refused.err
    assert "README.md" not in refused.err and ".gitignore" in refused.err  # documentation: excluded
    (root / "helper.py").unlink()
    (root / "notes.txt").unlink()
    version = _ok(cli, root, "register")
    assert version["version"] == "v0.0.1" and version["model_sha256"]
    _ok(cli, root, "promote", "staging")
    _ok(cli, root, "pull", "cml@v0.0.1", "--output", str(tmp_path / "pulled"))
    assert (tmp_path / "pulled" / "model.joblib").is_file()

    # A pull request: the base column finds the base's model by its inputs.
    shapes.git(root, "checkout", "-q", "-b", "deeper")
    (root / "params.yaml").write_text(params_before.decode().replace("depth: 2", "depth: 6"))
    shapes.commit_all(root, "Deeper trees")
    out = tmp_path / "report.json"
    made = cli("report", "--base", "main", "--format", "json", "--output", str(out), cwd=root)
    assert made.code == ExitCode.OK, made.err
    data = json.loads(out.read_text())
    base = next(b for b in data["baselines"] if b["key"] == "base")
    assert base["found"] is True, base
    assert data["head"]["params_file"] == "params.yaml"
    assert data["head"]["metrics"]["Accuracy"] == deeper["metrics"]["Accuracy"]  # the --set run's inputs
    gate = cli("gate", "--env", "staging", cwd=root)
    assert gate.code in (ExitCode.OK, ExitCode.GATE_FAILED), gate.err


@pytest.mark.slow
def test_a_config_file_the_code_reads_retrains_never_a_stale_hit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """scripts/train.py reads config/train.yaml through a path it builds and writes under a
    git-ignored artifacts/: adopted, every path is found, and an edit of the config retrains."""
    root = shapes.config_project(tmp_path / "byhand")
    shapes.with_remote(root)
    code_before = _tree(root)
    adopted = _ok(cli, root, "init", "--adopt")
    config = cfg.load(root / "mlci.yaml")
    assert (config.train.params, config.train.metrics, config.train.model) == (
        "config/train.yaml",
        "artifacts/metrics.json",
        "artifacts/model.joblib",
    )
    assert config.train.inputs == ("**",) and "**/*.md" in config.train.exclude
    assert [f["key"] for f in adopted["findings"] if f["check"]] == ["environments"]  # gates: after a run
    assert {k: v for k, v in _tree(root).items() if k in code_before} == code_before

    first = _ok(cli, root, "train")
    assert first["params"] == {"max_iter": 30, "C": 1.0, "seed": 0}
    settings = root / "config" / "train.yaml"
    committed = settings.read_text()
    settings.write_text(committed.replace("max_iter: 30", "max_iter: 500"))
    edited = _ok(cli, root, "train")
    assert not edited["cached"] and edited["params"]["max_iter"] == 500
    assert edited["metrics"] != first["metrics"]
    with (root / "README.md").open("a") as f:  # documentation is no input
        f.write("More words.\n")
    assert _ok(cli, root, "train")["run_id"] == edited["run_id"]

    # --set reaches the code; the config file and the ignored outputs are put back.
    model_before = (root / "artifacts" / "model.joblib").read_bytes()
    metrics_before = (root / "artifacts" / "metrics.json").read_bytes()
    weak = _ok(cli, root, "train", "--set", "C=0.01")
    assert weak["metrics"] != edited["metrics"] and weak["params"]["C"] == 0.01
    assert settings.read_text() == committed.replace("max_iter: 30", "max_iter: 500")
    assert (root / "artifacts" / "model.joblib").read_bytes() == model_before
    assert (root / "artifacts" / "metrics.json").read_bytes() == metrics_before

    # The lifecycle, with one edit to mlci.yaml: the gate.
    text = (root / "mlci.yaml").read_text()
    (root / "mlci.yaml").write_text(
        text.replace(
            "    branch: staging\n", "    branch: staging\n    gates:\n      - {metric: accuracy, min: 0.8}\n"
        )
    )
    shapes.commit_all(root, "Adopt mlci, more iterations")
    trained = _ok(cli, root, "train")
    version = _ok(cli, root, "register")
    assert version["version"] == "v0.0.1" and version["model_sha256"] == trained["model_sha256"]
    _ok(cli, root, "promote", "staging")
    _ok(cli, root, "pull", "byhand@v0.0.1", "--output", str(tmp_path / "pulled"))
    assert (tmp_path / "pulled" / "model.joblib").read_bytes() == model_before
    shapes.git(root, "checkout", "-q", "-b", "stronger")
    settings.write_text(settings.read_text().replace("C: 1.0", "C: 10.0"))
    shapes.commit_all(root, "Less regularisation")
    out = tmp_path / "report.json"
    assert cli("report", "--base", "main", "--format", "json", "--output", str(out), cwd=root).code == 0
    report = json.loads(out.read_text())
    baselines = {b["key"]: b for b in report["baselines"]}
    assert baselines["staging"]["found"] and baselines["base"]["found"], baselines
    assert baselines["base"]["params"]["changed"] == {"C": {"base": "1.0", "head": 10.0}}


def _gated(root: Path, metric: str, rule: str) -> int:
    """The one edit a user makes to an adopted mlci.yaml: a gate for staging. Returns the
    lines changed."""
    text = (root / "mlci.yaml").read_text()
    gate = f"    gates:\n      - {{metric: {metric}, {rule}}}\n"
    (root / "mlci.yaml").write_text(text.replace("    branch: staging\n", "    branch: staging\n" + gate, 1))
    return gate.count("\n")


def _lifecycle(cli, root: Path, tmp_path: Path, name: str, edit: tuple[str, str, str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Commit, train, register, promote and pull the adopted project; then, on a branch,
    edit ``edit`` (file, old, new) and report against staging and the base branch."""
    shapes.commit_all(root, "Adopt mlci")
    trained = _ok(cli, root, "train")
    version = _ok(cli, root, "register")
    assert version["version"] == "v0.0.1" and version["model_sha256"] == trained["model_sha256"]
    _ok(cli, root, "promote", "staging")
    pulled = tmp_path / f"{name}-pulled"
    _ok(cli, root, "pull", f"{name}@v0.0.1", "--output", str(pulled))
    shapes.git(root, "checkout", "-q", "-b", "change")
    file, old, new = edit
    (root / file).write_text((root / file).read_text().replace(old, new))
    shapes.commit_all(root, "A change")
    out = tmp_path / f"{name}-report.json"
    made = cli("report", "--base", "main", "--format", "json", "--output", str(out), cwd=root)
    assert made.code == ExitCode.OK, made.err
    report = json.loads(out.read_text())
    baselines = {b["key"]: b for b in report["baselines"]}
    assert baselines["staging"]["found"] and baselines["base"]["found"], baselines
    shapes.git(root, "checkout", "-q", "main")
    return {"trained": trained, "version": version, "pulled": pulled, "report": report}


@pytest.mark.slow
def test_an_mlflow_project_that_logs_to_mlflow_itself_works_as_it_is(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """MLflow's example: MLproject's defaults, a script that opens its own run and logs its
    params (as floats), metrics and model. No metrics file, no model file, no edit."""
    root = shapes.mlflow_project(tmp_path / "wine")
    shapes.with_remote(root)
    code_before = _tree(root)
    adopted = _ok(cli, root, "init", "--adopt")
    assert [f["key"] for f in adopted["findings"] if f["check"]] == ["environments"]
    config = cfg.load(root / "mlci.yaml")
    assert config.train.command == "python train.py {alpha} {l1_ratio}"
    assert config.train.parameters_from == "MLproject"  # its defaults, read each run, not the script's
    assert project.parameters(config) == {"alpha": 0.5, "l1_ratio": 0.1}
    assert {k: v for k, v in _tree(root).items() if k in code_before} == code_before

    first = _ok(cli, root, "train")
    assert set(first["metrics"]) == {"rmse", "r2", "mae"} and first["model_id"]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / '.mlci' / 'mlflow.db'}")
    run = client.get_run(first["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["l1_ratio"] == "0.1"
    assert client.get_logged_model(first["model_id"]).source_run_id == first["run_id"]  # the code's model
    # --set reaches the code as its command line; the code's own param record stands.
    stronger = _ok(cli, root, "train", "--set", "alpha=1")
    assert stronger["metrics"]["rmse"] != first["metrics"]["rmse"]
    assert client.get_run(stronger["run_id"]).data.params["alpha"] == "1.0"
    # An edit of the data retrains.
    with (root / "diabetes.csv").open("a") as f:
        f.write(",".join(["0.01"] * 10) + ",150\n")
    assert not _ok(cli, root, "train")["cached"]
    assert _gated(root, "rmse", "max: 100") == 2
    done = _lifecycle(cli, root, tmp_path, "wine", ("MLproject", "default: 0.5", "default: 0.05"))
    assert (done["pulled"] / "MLmodel").is_file()
    assert done["report"]["head"]["params"]["alpha"] == 0.05


@pytest.mark.slow
def test_a_hydra_app_gets_set_as_hydra_overrides(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = shapes.hydra_project(tmp_path / "hydra")
    shapes.with_remote(root)
    code_before = _tree(root)
    _ok(cli, root, "init", "--adopt")
    config = cfg.load(root / "mlci.yaml")
    assert (config.train.params, config.train.overrides) == ("conf/config.yaml", "hydra")
    assert {k: v for k, v in _tree(root).items() if k in code_before} == code_before
    first = _ok(cli, root, "train")
    assert first["params"] == {"seed": 0, "model": {"n_estimators": 20, "max_depth": 3}}
    fewer = _ok(cli, root, "train", "--set", "model.n_estimators=2")
    assert fewer["metrics"] != first["metrics"] and fewer["params"]["model"]["n_estimators"] == 2
    assert {k: v for k, v in _tree(root).items() if k in code_before} == code_before
    group = root / "conf" / "model" / "rf.yaml"
    group.write_text(group.read_text().replace("max_depth: 3", "max_depth: 1"))  # a composed file
    shallow = _ok(cli, root, "train")
    assert not shallow["cached"] and shallow["params"]["model"]["max_depth"] == 1
    group.write_text(group.read_text().replace("max_depth: 1", "max_depth: 3"))
    assert _ok(cli, root, "train")["run_id"] == first["run_id"]
    assert _gated(root, "accuracy", "min: 0.8") == 2
    done = _lifecycle(cli, root, tmp_path, "hydra", ("conf/config.yaml", "seed: 0", "seed: 1"))
    assert (done["pulled"] / "model.joblib").is_file()


@pytest.fixture(scope="session")
def dvc_tool() -> Path:
    return shapes.dvc_binary()


@pytest.mark.slow
def test_dvc_pipeline_adopted_as_it_is(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dvc_tool: Path
) -> None:
    monkeypatch.setenv("PATH", shapes.path_with_dvc())
    root = shapes.dvc_project(tmp_path / "pipeline")
    shapes.with_remote(root)
    code_before = _tree(root)

    adopted = _ok(cli, root, "init", "--adopt")
    config = cfg.load(root / "mlci.yaml")
    assert config.train.command == "dvc repro" and config.train.rewrites == ("dvc.lock",)
    assert config.train.metrics == "eval/metrics.json"  # dvc.yaml's top-level metrics
    assert config.model.name == "breast-cancer-rf"  # the model artifact's name, as GTO has it
    assert {k: v for k, v in _tree(root).items() if k in code_before} == code_before
    assert adopted["working_directory"] == "."
    assert 'requirements: "src/requirements.txt"' in (root / ".github/workflows/mlci-pr.yml").read_text()
    assert [f["key"] for f in adopted["findings"] if f["check"]] == []  # gates from eval/metrics.json

    # The DVC-tracked data is an input through the hash DVC recorded.
    printed = _ok(cli, root, "fingerprint")
    dvc_hash = yaml.safe_load((root / "data" / "data.csv.dvc").read_text())["outs"][0]["md5"]
    assert printed["files"]["data/data.csv"] == f"dvc:md5:{dvc_hash}"
    assert printed["unmatched_inputs"] == []
    assert printed["dvc"]["data/data.csv"]["source"] == "data/data.csv.dvc"

    # Up to date already: `dvc repro` does nothing, and its outputs are current.
    first = _ok(cli, root, "train")
    assert first["metrics"]["accuracy.test"] > 0.8
    again = _ok(cli, root, "train", "--no-cache")
    assert again["metrics"] == first["metrics"] and not again["cached"]

    lock_before = (root / "dvc.lock").read_bytes()
    params_before = (root / "params.yaml").read_bytes()
    status_before = shapes.git(root, "status", "--porcelain")
    fewer = _ok(cli, root, "train", "--set", "train.n_est=2")
    assert fewer["metrics"] != first["metrics"]
    assert (root / "dvc.lock").read_bytes() == lock_before
    assert (root / "params.yaml").read_bytes() == params_before
    assert shapes.git(root, "status", "--porcelain") == status_before  # eval/metrics.json too

    shapes.commit_all(root, "Adopt mlci")
    _ok(cli, root, "train")
    subprocess.run(["dvc", "repro", "-q"], cwd=root, check=True)  # rewrites nothing it must not
    version = _ok(cli, root, "register")
    assert version["version"] == "v0.0.1" and version["tag"] == "breast-cancer-rf@v0.0.1"
    _ok(cli, root, "promote", "staging")
    _ok(cli, root, "pull", "breast-cancer-rf@v0.0.1", "--output", str(tmp_path / "pulled"))
    assert (tmp_path / "pulled" / "model.pkl").is_file()
    # An edit of the params file retrains (dvc repro follows it): never a stale hit.
    edited = (root / "params.yaml").read_text().replace("min_split: 0.01", "min_split: 0.2")
    (root / "params.yaml").write_text(edited)
    changed = _ok(cli, root, "train")
    assert not changed["cached"] and changed["params"]["train"]["min_split"] == 0.2
    (root / "params.yaml").write_bytes(params_before)
    subprocess.run(["dvc", "repro", "-q"], cwd=root, check=True)

    # A change, gated and reported against staging and the base branch.
    shapes.git(root, "checkout", "-q", "-b", "fewer-trees")
    (root / "params.yaml").write_text(params_before.decode().replace("n_est: 50", "n_est: 10"))
    subprocess.run(["dvc", "repro", "-q"], cwd=root, check=True)
    shapes.commit_all(root, "Fewer trees")
    gate = _ok(cli, root, "gate", "--env", "staging")
    assert gate["environment"] == "staging" and gate["rules"], gate
    out = tmp_path / "report.json"
    assert cli("report", "--base", "main", "--format", "json", "--output", str(out), cwd=root).code == 0
    report = json.loads(out.read_text())
    baselines = {b["key"]: b for b in report["baselines"]}
    assert baselines["staging"]["found"] and baselines["base"]["found"], baselines
    assert {r["name"]: r["base"] for r in baselines["base"]["metrics"]} == first["metrics"]
    assert baselines["base"]["params"]["changed"] == {"train.n_est": {"base": "50", "head": 10}}
    shapes.git(root, "checkout", "-q", "main")

    # New data: `dvc add` records a new hash, and the fingerprint follows it.
    with (root / "data" / "data.csv").open("a") as f:
        f.write(",".join(["1.0"] * 30) + ",1\n")
    subprocess.run(["dvc", "add", "-q", "data/data.csv"], cwd=root, check=True)
    assert _ok(cli, root, "fingerprint")["fingerprint"] != printed["fingerprint"]

    # The fingerprint of a commit, read from git, is the one its checkout computes.
    shapes.commit_all(root, "More data")
    resolved = project.resolve(None, root, [], warn=print)
    at = fp.compute_at(resolved.config, "HEAD", project.committed_params)
    assert at is not None and at.digest == resolved.fingerprint.digest


def test_ignored_data_that_dvc_does_not_track_is_named(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "p"
    root.mkdir()
    (root / "mlci.yaml").write_text("model: {name: m}\ntrain: {command: 'true', inputs: [big.csv, x.py]}\n")
    (root / "big.csv").write_text("1\n")
    (root / ".gitignore").write_text("big.csv\n")
    (root / "x.py").write_text("")
    shapes.git(root, "init", "-q", "-b", "main")
    result = cli("fingerprint", cwd=root)
    assert result.code == ExitCode.OK
    assert "names big.csv, which git ignores" in result.err and "dvc add" in result.err


# --------------------------------------------------------------------------- crash safety

SLOW = """\
import json, os, pathlib, time, yaml
pathlib.Path("seen.txt").write_text(open("params.yaml").read())
time.sleep(float(os.environ.get("SLEEP", "0")))
json.dump({"score": yaml.safe_load(open("params.yaml"))["C"]}, open("metrics.json", "w"))
"""


def _slow_project(root: Path) -> Path:
    root.mkdir()
    (root / "train.py").write_text(SLOW)
    (root / "params.yaml").write_text("# the code reads me\nC: 0.00001\n")
    (root / "mlci.yaml").write_text(
        f"model: {{name: m}}\ntrain: {{command: '{sys.executable} train.py', params: params.yaml}}\n"
    )
    (root / ".gitignore").write_text("seen.txt\nmetrics.json\n")
    shapes.git(root, "init", "-q", "-b", "main")
    shapes.commit_all(root, "slow")
    return root


def test_exponent_floats_reach_the_code_as_floats(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _slow_project(tmp_path / "p")
    first = _ok(cli, root, "train")
    assert first["metrics"] == {"score": 1e-05}  # a float, not the text '1e-05'
    second = _ok(cli, root, "train", "--set", "C=2e-05")
    assert second["metrics"] == {"score": 2e-05}
    assert (root / "seen.txt").read_text() == "# the code reads me\nC: 2.0e-05\n"


def test_a_killed_mlci_leaves_the_params_file_as_it_was(tmp_path: Path) -> None:
    root = _slow_project(tmp_path / "p")
    original = (root / "params.yaml").read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlci", "train", "--set", "C=0.5"],
        cwd=root,
        env={**os.environ, "SLEEP": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (root / "seen.txt").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "training never started"
        time.sleep(0.05)
    assert (root / "params.yaml").read_bytes() != original  # the code sees the override
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The guard restores it once the training process group is gone.
    deadline = time.monotonic() + 30
    while (root / "params.yaml").read_bytes() != original:
        assert time.monotonic() < deadline, "params.yaml was not restored"
        time.sleep(0.05)
    assert shapes.git(root, "status", "--porcelain") == ""


def test_the_next_command_restores_what_a_crash_left(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _slow_project(tmp_path / "p")
    original = (root / "params.yaml").read_bytes()
    # A crash in mid-run with its guard gone too (power loss): the journal remains.
    changes = swap.Swap(root / ".mlci", log=print).__enter__()
    changes.write(root / "params.yaml", b"C: 9\n")
    os.close(changes._fd)  # type: ignore[arg-type]  # the process "dies": its lock goes
    changes._fd = None
    assert (root / "params.yaml").read_bytes() == b"C: 9\n"
    result = cli("fingerprint", cwd=root)
    assert result.code == ExitCode.OK
    assert (root / "params.yaml").read_bytes() == original
    assert "restored" in result.err and "params.yaml" in result.err


def test_a_second_override_run_in_one_checkout_waits_its_turn(tmp_path: Path) -> None:
    state = tmp_path / ".mlci"
    with swap.Swap(state, log=print), pytest.raises(swap.Busy, match="another mlci process"):
        swap.Swap(state, log=print).__enter__()


# --------------------------------------------------------------------------- any model, or none

NO_MODEL = """\
import json, yaml
p = yaml.safe_load(open("params.yaml"))
json.dump({"accuracy": p["acc"]}, open("metrics.json", "w"))
"""


def test_a_project_without_a_model_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text(NO_MODEL)
    (root / "params.yaml").write_text("acc: 0.9\n")
    (root / "mlci.yaml").write_text(
        f"model: {{name: m}}\ntrain: {{command: '{sys.executable} train.py', params: params.yaml, model: null}}\n"
        "environments:\n  staging:\n    gates: [{metric: accuracy, min: 0.5}]\n"
    )
    (root / ".gitignore").write_text("metrics.json\n")
    shapes.git(root, "init", "-q", "-b", "main")
    shapes.commit_all(root, "no model")
    shapes.with_remote(root)
    assert cfg.load(root / "mlci.yaml").train.model is None  # null: documented, not replaced
    trained = _ok(cli, root, "train")
    assert trained["model_id"] is None and trained["model_sha256"] is None
    version = _ok(cli, root, "register")
    assert version["store"] == "none" and version["model_sha256"] is None
    promoted = _ok(cli, root, "promote", "staging")
    assert promoted["environment"] == "staging"
    assert _ok(cli, root, "show")["models"][0]["environments"] == {"staging": "v0.0.1"}
    pulled = cli("pull", "m@v0.0.1", cwd=root)
    assert pulled.code != ExitCode.OK and "has no model file" in pulled.err
    assert _ok(cli, root, "doctor")["problems"] == []


def test_a_run_bundle_without_a_model_travels(tmp_path: Path) -> None:
    import zipfile

    from mlci.stores import bundle

    fingerprint = "a" * 64
    folder = tmp_path / "b"
    assert (
        bundle.write(
            folder,
            model="m",
            fingerprint=fingerprint,
            run_id="r1",
            metrics={"acc": 0.9},
            params={},
            tags={},
            model_dir=None,
        )
        is None
    )
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.write(folder / bundle.RUN_FILE, bundle.RUN_FILE)
    restored = bundle.restore_zip(
        tmp_path / "b.zip", tmp_path / "r", model="m", fingerprint=fingerprint, source="x"
    )
    assert restored.metrics == {"acc": 0.9} and restored.model_dir is None and restored.digest is None


def test_report_says_params_are_not_tracked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text('import json\njson.dump({"accuracy": 0.9}, open("metrics.json", "w"))\n')
    (root / "mlci.yaml").write_text(f"model: {{name: m}}\ntrain: {{command: '{sys.executable} train.py'}}\n")
    shapes.git(root, "init", "-q", "-b", "main")
    shapes.commit_all(root, "params in code")
    result = cli("report", "--format", "markdown", "--output", str(tmp_path / "r.md"), cwd=root)
    assert result.code == ExitCode.OK, result.err
    text = (tmp_path / "r.md").read_text()
    assert "not tracked" in text and "**: no change" not in text  # no params section
    table = cli("report", "--format", "table", "--output", str(tmp_path / "r.txt"), cwd=root)
    assert "params: not tracked" in (tmp_path / "r.txt").read_text(), table.err


def test_state_folder_ignores_itself(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _slow_project(tmp_path / "p")
    (root / ".gitignore").write_text("seen.txt\nmetrics.json\n")  # no .mlci/ line
    shapes.commit_all(root, "no ignore line for .mlci")
    _ok(cli, root, "train")
    assert (root / ".mlci" / ".gitignore").read_text().endswith("*\n")
    assert shapes.git(root, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- mlci init --adopt


def test_adopt_never_overwrites_and_handles_a_subfolder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "repo"
    sub = repo / "models" / "churn"
    sub.mkdir(parents=True)
    for name, text in CML_FILES.items():
        (sub / name).parent.mkdir(parents=True, exist_ok=True)
        (sub / name).write_text(text)
    shapes.git(repo, "init", "-q", "-b", "main")
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "mlci-pr.yml").write_text("# mine\n")
    shapes.commit_all(repo, "monorepo")

    dry = _ok(cli, sub, "init", "--adopt", "--dry-run")
    assert not (sub / "mlci.yaml").exists() and dry["dry_run"] is True
    result = _ok(cli, sub, "init", "--adopt")
    assert (workflows / "mlci-pr.yml").read_text() == "# mine\n"
    # Its outputs are not ignored yet: a new .gitignore names them.
    assert (sub / ".gitignore").read_text().splitlines()[1:] == ["/metrics.txt", "/model.joblib"]
    # The repository's own mlci-pr.yml runs no mlci for this project: it gets one beside it.
    assert result["beside"] == [str(workflows / "mlci-pr.yml")]
    assert "working-directory: models/churn" in (workflows / "mlci-pr-churn.yml").read_text()
    promote = (workflows / "mlci-promote-churn.yml").read_text()
    assert "working-directory: models/churn" in promote
    assert result["working_directory"] == "models/churn"
    again = cli("init", "--adopt", cwd=sub)
    assert again.code != ExitCode.OK and "already uses mlci" in again.err


def test_an_override_run_leaves_tracked_outputs_as_they_were(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A --set run is an experiment: a metrics file in git goes back after mlci read it."""
    root = _slow_project(tmp_path / "p")
    (root / ".gitignore").write_text("seen.txt\n")  # metrics.json is committed, as DVC's are
    _ok(cli, root, "train")
    shapes.commit_all(root, "metrics in git")
    committed = (root / "metrics.json").read_bytes()
    result = _ok(cli, root, "train", "--set", "C=0.25")
    assert result["metrics"] == {"score": 0.25}  # read before it went back
    assert (root / "metrics.json").read_bytes() == committed
    assert shapes.git(root, "status", "--porcelain") == ""


def test_a_planted_journal_touches_nothing_outside_what_a_run_changes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A journal mlci did not write (committed by a pull request, say): the next command
    restores only files of this project that a training run changes, from backups in the
    journal's own folder, and refuses the rest with a warning."""
    root = _slow_project(tmp_path / "p")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    planted_backup = tmp_path / "evil-backup"
    planted_backup.write_text("C: 666\n")
    config_before = (root / "mlci.yaml").read_bytes()
    params_before = (root / "params.yaml").read_bytes()
    folder = root / ".mlci" / "restore"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0-params.yaml").symlink_to(outside)
    entries = [
        {"path": str(outside), "backup": None, "written": None},  # delete a file elsewhere
        {"path": str(root / "mlci.yaml"), "backup": None, "written": None},  # a file no run changes
        {
            "path": str(root / "params.yaml"),
            "backup": str(planted_backup),
            "written": None,
        },  # a backup elsewhere
        {
            "path": str(root / "params.yaml"),
            "backup": str(folder / "0-params.yaml"),
            "written": None,
        },  # a link
        {"path": str(root / ".." / "outside.txt"), "backup": None, "written": None},
        {"path": "relative.txt", "backup": None, "written": None},
        {"path": 7, "backup": None},
        "not an entry",
    ]
    (folder / "journal.json").write_text(json.dumps({"pid": 1, "entries": entries}))
    result = cli("fingerprint", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert outside.read_text() == "keep me" and planted_backup.read_text() == "C: 666\n"
    assert (root / "mlci.yaml").read_bytes() == config_before
    assert (root / "params.yaml").read_bytes() == params_before
    assert result.err.count("which is no file a training run of this project changes") == len(entries)
    assert not (folder / "journal.json").exists()
    # The guard's own restore (no config at hand) keeps to the project too.
    (folder / "journal.json").write_text(json.dumps({"pid": 1, "entries": entries[:1]}))
    assert swap.restore_journal(str(folder / "journal.json")) == ([], [str(outside)])
    assert outside.read_text() == "keep me"
