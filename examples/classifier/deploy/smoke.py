"""Smoke test (environments.<env>.deploy.smoke in mlci.yaml): one prediction request.

Sends the first row of the training data (without its id and target) to the
server deploy/serve.py started, at MLCI_ENVIRONMENT_URL, and fails unless one
finite prediction comes back from the version just deployed.
"""

import csv
import json
import math
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path


def main() -> int:
    url = os.environ["MLCI_ENVIRONMENT_URL"]
    (data,) = sorted(Path("data").glob("*.csv"))
    with data.open() as rows:
        first = next(csv.DictReader(rows))
    row = [float(v) for k, v in first.items() if k not in ("id", "target")]
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps({"rows": [row]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"smoke test: {url}/predict answered {exc.code}: {exc.read().decode()[:500]}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"smoke test: no answer from {url}/predict: {exc}", file=sys.stderr)
        return 1
    predictions = answer.get("predictions") or []
    if len(predictions) != 1 or not math.isfinite(predictions[0]):
        print(f"smoke test: expected one finite prediction, got {answer}", file=sys.stderr)
        return 1
    if answer.get("model") != os.environ["MLCI_MODEL_VERSION"]:
        print(f"smoke test: {url} serves {answer.get('model')}, not {os.environ['MLCI_MODEL_VERSION']}", file=sys.stderr)
        return 1
    print(f"smoke test: {url}/predict answered {predictions[0]:g} ({answer['model']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
