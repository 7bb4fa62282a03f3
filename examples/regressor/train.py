"""Train regressor: ridge regression on scikit-learn's diabetes data (data/diabetes.csv).

Reads its hyper-parameters from params.yaml (or from MLCI_PARAMS_FILE, which
mlci sets to the resolved params), then writes metrics.json, the model, saved
with MLflow's sklearn flavour, to model/, and the test rows' predictions to
predictions.csv (all under MLCI_OUTPUT_DIR when it is set); mlci computes the
metrics' confidence intervals from the predictions. The same params always
give the same model and metrics.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import mlflow.sklearn
import pandas as pd
import yaml
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> None:
    params = yaml.safe_load(Path(os.environ.get("MLCI_PARAMS_FILE", "params.yaml")).read_text())
    out = Path(os.environ.get("MLCI_OUTPUT_DIR", "."))
    # Under train.repeats, mlci runs this once per MLCI_SEED (0, 1, ...): another split each time.
    seed = params["seed"] + int(os.environ.get("MLCI_SEED", "0"))

    # data/diabetes.csv (scikit-learn's diabetes data, as mlci init wrote it): mlci
    # checks it before training (data: in mlci.yaml) and records its digest and profile.
    frame = pd.read_csv("data/diabetes.csv")
    features, target = frame.drop(columns=["id", "target"]).to_numpy(), frame["target"].to_numpy()
    rows = frame["id"].tolist()  # each row's id, so two runs' test rows pair up
    x_train, x_test, y_train, y_test, _, test_rows = train_test_split(
        features, target, rows, test_size=params["test_size"], random_state=seed
    )
    model = make_pipeline(StandardScaler(), Ridge(alpha=params["alpha"]))
    model.fit(x_train, y_train)

    predicted = model.predict(x_test)
    metrics = {
        "rmse": round(float(root_mean_squared_error(y_test, predicted)), 6),
        "mae": round(float(mean_absolute_error(y_test, predicted)), 6),
        "r2": round(float(r2_score(y_test, predicted)), 6),
    }

    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    # Naming the requirements skips MLflow's slow requirement inference.
    mlflow.sklearn.save_model(
        model,
        model_dir,
        pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
        input_example=x_test[:2],
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "y_true", "y_pred"])
        writer.writerows(zip(test_rows, y_test, predicted))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
