"""Small projects of a fake training script, as most tests use them.

``make_project`` writes a script that reads its params (``mode`` decides how it
behaves: ok, fail, sleep, nan, no_model, …) and writes metrics and a model in a second;
``project`` adds two environments and a bare remote, for the registry's tests;
``script_project`` is the hardening tests' variant (modes env, leak, sleep, raw_metrics).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mlci import gitrepo
from mlci.errors import ExitCode
from tests.helpers import run

FAKE_TRAIN = r"""
import json, os, pathlib, sys, time

params = json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
mode = params["mode"]
if params.get("env_dump"):
    keys = ["MLCI_PARAMS_FILE", "MLCI_OUTPUT_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"]
    pathlib.Path(params["env_dump"]).write_text(json.dumps({k: os.environ.get(k) for k in keys}))
print("training with", json.dumps(params, sort_keys=True))
for name in params.get("reads", []):  # files the training reads besides its params
    pathlib.Path(name).read_text()
if mode == "fail":
    for i in range(30):
        print(f"noise {i}", file=sys.stderr)
    print("ValueError: the data is broken", file=sys.stderr)
    sys.exit(2)
if mode == "sleep":
    pathlib.Path(params["marker"]).write_text(str(os.getpid()))
    time.sleep(120)
if mode == "mlflow":
    import mlflow
    with mlflow.start_run():
        mlflow.log_metric("from_script", 7.0)
metrics = {"accuracy": params["accuracy"], "loss": {"val": 0.25}}
if mode == "nan":
    metrics["accuracy"] = float("nan")
target = pathlib.Path(".") if mode == "legacy" else out
if mode != "no_model":
    (target / "model").mkdir(parents=True, exist_ok=True)
    (target / "model" / "MLmodel").write_text("flavors: {}\n")
    (target / "model" / "weights.bin").write_bytes(b"\0" * 64)
if mode != "no_metrics":
    (target / "metrics.json").write_text(json.dumps(metrics, allow_nan=True))
"""

TRAIN_CONFIG = """\
model:
  name: demo
train:
  command: {python} train.py
  inputs: [train.py, params.yaml]
  params: params.yaml
  model: model
environments:
  staging:
    gates:
      - metric: accuracy
        min: 0.5
"""


def make_project(tmp_path: Path, mode: str = "ok", accuracy: float = 0.9, **extra: Any) -> Path:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "mlci.yaml").write_text(TRAIN_CONFIG.format(python=sys.executable))
    params = {"mode": mode, "accuracy": accuracy, **extra}
    (root / "params.yaml").write_text(json.dumps(params))
    (root / ".gitignore").write_text(".mlci/\nmodel/\nmetrics.json\n")
    if not (root / ".git").exists():
        run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", f"mode {mode}", "--allow-empty"], root)
    return root


def set_params(root: Path, **values: Any) -> None:
    params = json.loads((root / "params.yaml").read_text())
    params.update(values)
    (root / "params.yaml").write_text(json.dumps(params))


def client(root: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / '.mlci' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def train_json(cli, root: Path, *args: str):  # type: ignore[no-untyped-def]
    result = cli("train", "--json", *args, cwd=root)
    assert result.code == ExitCode.OK, result.err
    return json.loads(result.out), result


CACHE_HIT_PROBE = """
import json, sys
from mlci.cli import main
code = main(["train", "--json"])
print(json.dumps({"code": code, "mlflow": "mlflow" in sys.modules}), file=sys.stderr)
"""

# The same project with a relative rule in staging and a production after it.
REGISTRY_CONFIG = (
    TRAIN_CONFIG
    + """\
        max_regression: "5%"
  production:
    requires: staging
    gates:
      - metric: accuracy
        min: 0.8
"""
)


def project(tmp_path: Path, remote: bool = True) -> Path:
    root = make_project(tmp_path)
    (root / "mlci.yaml").write_text(REGISTRY_CONFIG.format(python=sys.executable))
    commit(root, "registry config")
    if remote:
        add_remote(root, tmp_path / "remote.git")
    return root


def add_remote(root: Path, bare: Path) -> None:
    """A bare repository at ``bare`` as ``root``'s origin, with main pushed to it."""
    run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], bare.parent)
    run(["git", "remote", "add", "origin", str(bare)], root)
    run(["git", "push", "-q", "origin", "main"], root)


def commit(root: Path, message: str) -> str:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", message, "--allow-empty"], root)
    return run(["git", "rev-parse", "HEAD"], root).strip()


def ok(cli, root: Path, *args: str) -> Any:  # type: ignore[no-untyped-def]
    result = cli(*args, "--json", cwd=root)
    assert result.code == ExitCode.OK, result.err
    return json.loads(result.out)


def new_model(cli, root: Path, accuracy: float) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    set_params(root, accuracy=accuracy)
    commit(root, f"accuracy {accuracy}")
    ok(cli, root, "train")
    return ok(cli, root, "register")


def aliases(root: Path) -> dict[str, str]:
    return {k: str(v) for k, v in client(root).get_registered_model("demo").aliases.items()}


def remote_tags(root: Path) -> set[str]:
    return set(gitrepo.remote_tags(root, "origin"))


def mlflow_versions(root: Path) -> dict[str, dict[str, str]]:
    found = client(root).search_model_versions("name = 'demo'")
    return {str(v.version): dict(v.tags) for v in found}


HARDENING_SCRIPT = r"""
import json, os, pathlib, subprocess, sys, time

params = json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
mode = params["mode"]
if mode == "env":
    pathlib.Path(params["dump"]).write_text(json.dumps(sorted(os.environ)))
if mode == "leak":
    print("connecting with", os.environ.get("MLFLOW_TRACKING_PASSWORD"), file=sys.stderr)
    sys.exit(1)
if mode == "sleep":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    pathlib.Path(params["marker"]).write_text(json.dumps([os.getpid(), child.pid]))
    time.sleep(300)
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "MLmodel").write_text("flavors: {}\n")
if mode == "raw_metrics":
    (out / "metrics.json").write_bytes(bytes.fromhex(params["raw"]))
else:
    (out / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
"""


def script_project(tmp_path: Path, mode: str = "ok", extra_yaml: str = "", **params: Any) -> Path:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    (root / "train.py").write_text(HARDENING_SCRIPT)
    (root / "mlci.yaml").write_text(
        "model:\n  name: demo\ntrain:\n"
        f"  command: {sys.executable} train.py\n"
        "  inputs: [train.py, params.yaml]\n  params: params.yaml\n  model: model\n" + extra_yaml
    )
    (root / "params.yaml").write_text(json.dumps({"mode": mode, **params}))
    (root / ".gitignore").write_text(".mlci/\n")
    if not (root / ".git").exists():
        run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", mode, "--allow-empty"], root)
    return root


def repeating_project(tmp_path: Path, *, remote: bool = False) -> tuple[Path, Path]:
    log = tmp_path / "runs.log"
    params = {"accuracy": 0.9, "shift": 0, "log": str(log)}
    return fake_project(tmp_path, REPEATING_TRAIN, REPEATING_CONFIG, params, remote=remote), log


REPEATING_TRAIN = """\
import json, os, pathlib

params = json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
seed = int(os.environ.get("MLCI_SEED", "-1"))
with open(params["log"], "a") as log:
    log.write(f"{seed} {os.environ['MLFLOW_RUN_ID']}\\n")
if seed == params.get("fail_seed"):
    raise SystemExit(f"seed {seed} diverged")
offsets = [0.004, -0.006, 0.002, -0.001, 0.001]  # the training noise of each seed
noise = offsets[(seed + params["shift"]) % 5] if seed >= 0 else 0.0
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "weights.txt").write_text(f"{params} {seed}")
(out / "metrics.json").write_text(json.dumps({"accuracy": params["accuracy"] + noise}))
"""


PREDICTING_CONFIG = """\
model:
  name: demo
train:
  command: {python} train.py
  inputs: [train.py, params.yaml]
  params: params.yaml
  model: model
  predictions: predictions.csv
environments:
  staging:
    confidence: 0.95
    gates:
      - metric: accuracy
        min: 0.5
        max_regression: "1%"
  production:
    confidence: 0.95
    requires: staging
    gates:
      - metric: accuracy
        max_regression: "1%"
"""


REPEATING_CONFIG = PREDICTING_CONFIG.replace("  predictions: predictions.csv\n", "  repeats: 5\n").replace(
    "min: 0.5", "min: 0.85"
)


def fake_project(tmp_path: Path, train: str, config: str, params: dict, *, remote: bool) -> Path:  # type: ignore[type-arg]
    """A project whose train.py needs nothing but the standard library, in git (with a
    bare remote, ``remote``)."""
    import sys

    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text(train)
    (root / "mlci.yaml").write_text(config.format(python=sys.executable))
    (root / "params.yaml").write_text(json.dumps(params))
    (root / ".gitignore").write_text(".mlci/\nmodel/\nmetrics.json\npredictions.csv\n")
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "a fake model"], root)
    if remote:
        add_remote(root, tmp_path / "remote.git")
    return root
