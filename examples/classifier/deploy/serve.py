"""Deploy hook (environments.<env>.deploy in mlci.yaml): serve the model on 127.0.0.1.

mlci runs this on promotion with the version's bytes in MLCI_MODEL_DIR. It stops
the server it started for this environment before, starts one for the new
version in the background, waits until it answers, and prints the line
`environment_url: URL` that mlci hands to the smoke test (deploy/smoke.py).

POST /predict {"rows": [[...], ...]} -> {"predictions": [...]}; GET /health.
A stand-in: replace it with your deployment (a container build, an endpoint
update). The server stops by itself after MLCI_SERVE_SECONDS (default 3600).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve(port: int, model_dir: str, seconds: float) -> None:
    import mlflow.pyfunc
    import numpy as np

    model = mlflow.pyfunc.load_model(model_dir)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"model": os.environ.get("MLCI_MODEL_VERSION")}) if self.path == "/health" else self._send(404, {})

        def do_POST(self) -> None:
            if self.path != "/predict":
                return self._send(404, {})
            try:
                rows = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))["rows"]
                predictions = [float(p) for p in model.predict(np.asarray(rows, dtype="float64"))]
            except Exception as exc:  # a bad request is the client's error, not the server's end
                return self._send(400, {"error": str(exc)})
            self._send(200, {"predictions": predictions, "model": os.environ.get("MLCI_MODEL_VERSION")})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
    signal.alarm(max(1, int(seconds)))
    server.serve_forever()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
        return 0
    env = os.environ["MLCI_ENVIRONMENT"]
    state = Path(".mlci") / "deploy" / f"{env}.server.json"
    if state.exists():  # the version this environment served before
        try:
            os.kill(json.loads(state.read_text())["pid"], signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seconds = os.environ.get("MLCI_SERVE_SECONDS", "3600")
    log = open(state.with_suffix(".log"), "w")
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), os.environ["MLCI_MODEL_DIR"], seconds],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # outlives this hook
    )
    state.write_text(json.dumps({"pid": child.pid, "port": port, "version": os.environ["MLCI_MODEL_VERSION"]}))
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        if child.poll() is not None:
            print(f"the server exited with {child.returncode}: see {state.with_suffix('.log')}", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    else:
        print(f"the server did not answer on {url} within 60 s", file=sys.stderr)
        return 1
    print(f"serving {os.environ['MLCI_MODEL_NAME']} {os.environ['MLCI_MODEL_VERSION']} (pid {child.pid})")
    print(f"environment_url: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
