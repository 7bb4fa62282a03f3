"""Existing ML repositories as users bring them: made without mlci, never edited for it.

``cml_project`` is shaped like CML's getting-started project: a script that
reads ``params.yaml`` itself, writes ``Accuracy: …`` to ``metrics.txt`` and
saves the model with joblib. ``dvc_project`` is shaped like DVC's
getting-started pipeline: nested params, ``dvc.yaml`` stages (prepare, train,
evaluate) with the project's metrics, plots and model declared at the top level,
``src/requirements.txt``, a DVC-tracked data file and the ``dvc.lock`` that
``dvc repro`` writes. ``config_project``, ``mlflow_project`` and ``hydra_project``
are a hand-made scikit-learn project, MLflow's example project and a Hydra app. Neither reads an ``MLCI_*`` variable. Both train a random forest on
scikit-learn's breast cancer data, in about a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import tools

CML_TRAIN = """\
import joblib
import numpy as np
import yaml
from sklearn.ensemble import RandomForestClassifier

params = yaml.safe_load(open("params.yaml"))
X_train = np.genfromtxt("data/train_features.csv", delimiter=",")
y_train = np.genfromtxt("data/train_labels.csv", delimiter=",")
X_test = np.genfromtxt("data/test_features.csv", delimiter=",")
y_test = np.genfromtxt("data/test_labels.csv", delimiter=",")

clf = RandomForestClassifier(
    max_depth=params["depth"], n_estimators=params["n_estimators"], random_state=params["seed"]
)
clf.fit(X_train, y_train)
acc = clf.score(X_test, y_test)
print(acc)
with open("metrics.txt", "w") as outfile:
    outfile.write("Accuracy: " + str(acc) + "\\n")
joblib.dump(clf, "model.joblib")
"""

# A small scikit-learn project laid out by hand: scripts/, config/*.yaml read through a
# path the code builds, and outputs under a git-ignored artifacts/ folder.
CONFIG_TRAIN = """\
import json
import os
from pathlib import Path

import joblib
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "config" / "train.yaml"
ARTIFACTS = "artifacts"

settings = yaml.safe_load(CONFIG.read_text())
X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=settings["seed"])
clf = LogisticRegression(max_iter=settings["max_iter"], C=settings["C"])
clf.fit(X_train, y_train)
os.makedirs(ARTIFACTS, exist_ok=True)
with open(os.path.join(ARTIFACTS, "metrics.json"), "w") as f:
    json.dump({"accuracy": clf.score(X_test, y_test)}, f)
joblib.dump(clf, os.path.join(ARTIFACTS, "model.joblib"))
"""

CONFIG_SETTINGS = "# Training settings, read by scripts/train.py\nmax_iter: 30\nC: 1.0\nseed: 0\n"

CML_PARAMS = "# Hyper-parameters, read by train.py\ndepth: 2\nn_estimators: 20  # trees\nseed: 0\n"

DVC_PARAMS = """\
prepare:
  split: 0.25
  seed: 20170428
train:
  seed: 20170428
  n_est: 50
  min_split: 0.01
"""

DVC_PREPARE = """\
import os, sys
import numpy as np
import yaml

params = yaml.safe_load(open("params.yaml"))["prepare"]
data = np.genfromtxt(sys.argv[1], delimiter=",")
rng = np.random.default_rng(params["seed"])
idx = rng.permutation(len(data))
cut = int(len(data) * (1 - params["split"]))
os.makedirs("data/prepared", exist_ok=True)
np.save("data/prepared/train.npy", data[idx[:cut]])
np.save("data/prepared/test.npy", data[idx[cut:]])
"""

DVC_TRAIN = """\
import pickle, sys
import numpy as np
import yaml
from sklearn.ensemble import RandomForestClassifier

params = yaml.safe_load(open("params.yaml"))["train"]
train = np.load(sys.argv[1] + "/train.npy")
clf = RandomForestClassifier(
    n_estimators=params["n_est"], min_samples_split=params["min_split"], random_state=params["seed"]
)
clf.fit(train[:, :-1], train[:, -1])
with open(sys.argv[2], "wb") as f:
    pickle.dump(clf, f)
"""

DVC_EVALUATE = """\
import json, os, pickle, sys
import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

clf = pickle.load(open(sys.argv[1], "rb"))
test = np.load(sys.argv[2] + "/test.npy")
proba = clf.predict_proba(test[:, :-1])[:, 1]
os.makedirs("eval", exist_ok=True)
metrics = {
    "accuracy": {"test": float(accuracy_score(test[:, -1], proba > 0.5))},
    "roc_auc": {"test": float(roc_auc_score(test[:, -1], proba))},
}
json.dump(metrics, open("eval/metrics.json", "w"), indent=2)
"""

DVC_PIPELINE = """\
stages:
  prepare:
    cmd: python src/prepare.py data/data.csv
    deps:
    - data/data.csv
    - src/prepare.py
    params:
    - prepare.seed
    - prepare.split
    outs:
    - data/prepared
  train:
    cmd: python src/train.py data/prepared model.pkl
    deps:
    - data/prepared
    - src/train.py
    params:
    - train.seed
    - train.n_est
    - train.min_split
    outs:
    - model.pkl
  evaluate:
    cmd: python src/evaluate.py model.pkl data/prepared
    deps:
    - data/prepared
    - model.pkl
    - src/evaluate.py
    metrics:
    - eval/metrics.json:
        cache: false
"""


# DVC's getting-started pipeline as DVC 3 writes it: the evaluation's outputs in a folder,
# the project's metrics, plots and model declared at the top level (GTO reads artifacts:).
DVC_PIPELINE_TOP_LEVEL = (
    DVC_PIPELINE.replace(
        "    metrics:\n    - eval/metrics.json:\n        cache: false\n", "    outs:\n    - eval\n"
    )
    + """\
metrics:
- eval/metrics.json
plots:
- ROC:
    x: fpr
    y:
      eval/plots/roc.json: tpr
- eval/importance.png
artifacts:
  breast-cancer-rf:
    path: model.pkl
    type: model
    desc: A random forest on the breast cancer data
"""
)


# MLflow's example project (examples/sklearn_elasticnet_wine), on scikit-learn's diabetes
# data: an MLproject whose defaults differ from the script's, a script that opens its own
# MLflow run, logs its params as floats, its metrics, and the model.
MLFLOW_TRAIN = """\
import sys

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split


def eval_metrics(actual, pred):
    rmse = np.sqrt(mean_squared_error(actual, pred))
    return rmse, mean_absolute_error(actual, pred), r2_score(actual, pred)


if __name__ == "__main__":
    np.random.seed(40)
    data = pd.read_csv("diabetes.csv")
    train, test = train_test_split(data)
    train_x, test_x = train.drop(["target"], axis=1), test.drop(["target"], axis=1)
    train_y, test_y = train[["target"]], test[["target"]]
    alpha = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    l1_ratio = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    with mlflow.start_run():
        lr = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42)
        lr.fit(train_x, train_y)
        rmse, mae, r2 = eval_metrics(test_y, lr.predict(test_x))
        print(f"Elasticnet model (alpha={alpha:f}, l1_ratio={l1_ratio:f}): RMSE {rmse} MAE {mae} R2 {r2}")
        mlflow.log_param("alpha", alpha)
        mlflow.log_param("l1_ratio", l1_ratio)
        mlflow.log_metric("rmse", rmse)
        mlflow.log_metric("r2", r2)
        mlflow.log_metric("mae", mae)
        mlflow.sklearn.log_model(lr, name="model")
"""

MLFLOW_PROJECT = """\
name: tutorial

python_env: python_env.yaml

entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: float, default: 0.1}
    command: "python train.py {alpha} {l1_ratio}"
"""

MLFLOW_PYTHON_ENV = """\
python: "3.11"
build_dependencies:
  - pip
dependencies:
  - mlflow
  - scikit-learn
  - pandas
"""

# A Hydra app: conf/config.yaml composes conf/model/rf.yaml; outputs/ is Hydra's run folder.
HYDRA_TRAIN = """\
import json

import hydra
import joblib
from omegaconf import DictConfig
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


@hydra.main(config_path="../conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=cfg.seed)
    clf = RandomForestClassifier(
        n_estimators=cfg.model.n_estimators, max_depth=cfg.model.max_depth, random_state=cfg.seed
    )
    clf.fit(X_train, y_train)
    with open("metrics.json", "w") as f:
        json.dump({"accuracy": clf.score(X_test, y_test)}, f)
    joblib.dump(clf, "model.joblib")


if __name__ == "__main__":
    main()
"""


def mlflow_project(root: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import load_diabetes

    root.mkdir(parents=True)
    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(root / "diabetes.csv", index=False)
    (root / "train.py").write_text(MLFLOW_TRAIN)
    (root / "MLproject").write_text(MLFLOW_PROJECT)
    (root / "python_env.yaml").write_text(MLFLOW_PYTHON_ENV)
    (root / "README.md").write_text("# MLflow's elastic net example\n")
    (root / ".gitignore").write_text("mlruns/\n")
    assert isinstance(frame, pd.DataFrame)
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "MLflow's example")
    return root


def hydra_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "conf" / "model").mkdir(parents=True)
    (root / "src" / "train.py").write_text(HYDRA_TRAIN)
    (root / "conf" / "config.yaml").write_text("defaults:\n  - model: rf\n  - _self_\n\nseed: 0\n")
    (root / "conf" / "model" / "rf.yaml").write_text("n_estimators: 20\nmax_depth: 3\n")
    (root / "requirements.txt").write_text("hydra-core\nscikit-learn\njoblib\n")
    (root / ".gitignore").write_text("outputs/\nmultirun/\nmetrics.json\nmodel.joblib\n")
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "A Hydra app")
    return root


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, f"git {args}: {proc.stderr}"
    return proc.stdout


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message, "--allow-empty")
    return git(root, "rev-parse", "HEAD").strip()


def with_remote(root: Path) -> Path:
    """A bare repository as origin, with main pushed."""
    bare = root.parent / f"{root.name}-remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(root, "remote", "add", "origin", str(bare))
    git(root, "push", "-q", "origin", "main")
    return bare


def _dataset() -> tuple[object, object]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def cml_project(root: Path) -> Path:
    import numpy as np

    (root / "data").mkdir(parents=True)
    x, y = _dataset()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))  # type: ignore[arg-type]
    cut = int(len(idx) * 0.75)
    for name, rows in (("train", idx[:cut]), ("test", idx[cut:])):
        np.savetxt(root / "data" / f"{name}_features.csv", x[rows], delimiter=",")  # type: ignore[index]
        np.savetxt(root / "data" / f"{name}_labels.csv", y[rows], delimiter=",", fmt="%d")  # type: ignore[index]
    (root / "train.py").write_text(CML_TRAIN)
    (root / "params.yaml").write_text(CML_PARAMS)
    (root / "requirements.txt").write_text("scikit-learn\njoblib\npyyaml\n")
    (root / ".gitignore").write_text("metrics.txt\nmodel.joblib\n")
    (root / "README.md").write_text("# A CML-style project\n")
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "A classifier, CML style")
    return root


def config_project(root: Path) -> Path:
    """``scripts/train.py`` reading ``config/train.yaml`` through ``Path(__file__)``, writing
    ``artifacts/metrics.json`` and ``artifacts/model.joblib`` (git ignores artifacts/)."""
    (root / "scripts").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "scripts" / "train.py").write_text(CONFIG_TRAIN)
    (root / "config" / "train.yaml").write_text(CONFIG_SETTINGS)
    (root / "requirements.txt").write_text("scikit-learn\njoblib\npyyaml\n")
    (root / ".gitignore").write_text("artifacts/\n__pycache__/\n")
    (root / "README.md").write_text("# A hand-made classifier\n")
    (root / "LICENSE").write_text("MIT\n")
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "A classifier, by hand")
    return root


def dvc_binary() -> Path:
    """DVC in its own virtual environment, installed before the tests by ``python -m tests.tools``."""
    try:
        tools.require("dvc")
    except tools.MissingTool as exc:
        pytest.fail(str(exc))
    return tools.dvc()


def path_with_dvc() -> str:
    """PATH with this interpreter first (the stages' `python`) and DVC's folder after it."""
    return os.pathsep.join(
        [str(Path(sys.executable).parent), str(tools.dvc().parent), os.environ.get("PATH", "")]
    )


def dvc_project(root: Path) -> Path:
    import numpy as np

    env = {**os.environ, "PATH": path_with_dvc()}

    def dvc(*args: str) -> None:
        proc = subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"dvc {args}: {proc.stdout}\n{proc.stderr}"

    (root / "src").mkdir(parents=True)
    (root / "data").mkdir()
    git(root, "init", "-q", "-b", "main")
    dvc("init", "-q")
    x, y = _dataset()
    np.savetxt(root / "data" / "data.csv", np.column_stack([x, y]), delimiter=",")  # type: ignore[list-item]
    (root / "params.yaml").write_text(DVC_PARAMS)
    (root / "src" / "prepare.py").write_text(DVC_PREPARE)
    (root / "src" / "train.py").write_text(DVC_TRAIN)
    (root / "src" / "evaluate.py").write_text(DVC_EVALUATE)
    (root / "dvc.yaml").write_text(DVC_PIPELINE_TOP_LEVEL)
    (root / "src" / "requirements.txt").write_text("scikit-learn\nnumpy\npyyaml\ndvc\n")
    dvc("add", "-q", "data/data.csv")
    dvc("repro", "-q")
    commit_all(root, "A DVC pipeline")
    return root


def registry_repo(root: Path, count: int) -> Path:
    """A registry as a busy project's grows: count/2 versions, each on its own commit, and
    count/2 assignments, annotated with mlci's metadata, made by ``git fast-import``."""
    import json

    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    versions = count // 2
    lines: list[str] = []
    when = 1_700_000_000
    for i in range(1, versions + 1):
        msg = f"model {i}\n"
        lines += [
            "commit refs/heads/main",
            f"mark :{i}",
            f"committer Bench <bench@example.com> {when + i} +0000",
            f"data {len(msg.encode())}",
            msg.rstrip("\n"),
        ]
        if i > 1:
            lines.append(f"from :{i - 1}")
        lines.append("")
    counter = 0
    for i in range(1, versions + 1):
        version = f"v{i // 10000}.{(i // 100) % 100}.{i % 100}"
        meta = json.dumps(
            {"fingerprint": f"{i:064x}", "metrics": {"accuracy": 0.9 + i / 1e7}, "version": version}
        )
        for name, summary in (
            (f"churn@{version}", f"Registering artifact churn version {version}"),
            (
                f"churn#{'staging' if i % 2 else 'production'}#{counter + 1}",
                f"Assigning stage to artifact churn version {version}",
            ),
        ):
            if "#" in name:
                counter += 1
            body = f"{summary}\n\nmlci-metadata: {meta}\n"
            lines += [
                f"tag {name}",
                f"from :{i}",
                f"tagger Bench <bench@example.com> {when + versions + i} +0000",
                f"data {len(body.encode())}",
                body,
            ]
    stream = "\n".join(lines) + "\n"
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=stream.encode(), check=True)
    subprocess.run(["git", "pack-refs", "--all"], cwd=root, check=True)
    return root
