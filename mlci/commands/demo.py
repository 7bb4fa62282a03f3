"""``mlci demo``: the whole story on one machine, with no server, no GitHub and no network.

It plays the events a GitHub repository would send, through the same code
that ``mlci ci`` runs in Actions, against a scaffolded project whose remote
is a local bare repository and whose MLflow store is the embedded sqlite one.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlci import data, gitrepo, scaffold
from mlci.context import Context
from mlci.errors import ScaffoldError
from mlci.tracking import expect_client
from mlci.usecases import ci as ci_flow
from mlci.usecases import show

IDENTITY = {
    "GIT_AUTHOR_NAME": "mlci demo",
    "GIT_AUTHOR_EMAIL": "demo@mlci.invalid",
    "GIT_COMMITTER_NAME": "mlci demo",
    "GIT_COMMITTER_EMAIL": "demo@mlci.invalid",
}


def _environ() -> dict[str, str]:
    """This process's environment without anything that would point the demo
    elsewhere (a tracking server, a GitHub context), plus a git identity."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "MLFLOW_", "MLCI_", "RUNNER_")) and k != "CI"
    }
    env.update(IDENTITY)
    # The demo's `python train.py` is this interpreter, whatever `python` on PATH
    # is (a virtual environment that is not activated, a python3-only system).
    here = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([here, env.get("PATH", "")]) if here else env.get("PATH", "")
    return env


def _rescale(path: Path, column: str, factor: float) -> None:
    """Multiply one column of a CSV file: what a new export in other units does."""
    import csv

    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    at = rows[0].index(column)
    for row in rows[1:]:
        row[at] = repr(float(row[at]) * factor)
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _stop_server(root: Path, log: Callable[[str], None]) -> None:
    """The scaffold's deploy hook left production's model served on 127.0.0.1: a demo stops it."""
    import json
    import os
    import signal

    state = root / ".mlci" / "deploy" / "production.server.json"
    try:
        served = json.loads(state.read_text())
        os.kill(int(served["pid"]), signal.SIGTERM)
    except (OSError, ValueError, KeyError, TypeError):
        return
    log(
        f"production's deploy hook (deploy/serve.py) served {served.get('version')} on "
        f"http://127.0.0.1:{served.get('port')} and its smoke test got a prediction; the demo stops it"
    )


def run(directory: Path | None, *, echo: Callable[[str], None]) -> dict[str, Any]:
    start = time.perf_counter()
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="mlci-demo-"))
    if directory.exists() and any(directory.iterdir()):
        raise ScaffoldError(
            f"{directory} is not empty", hint="give a new or empty folder, or none for a temporary one"
        )
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    expect_client()  # the story registers and promotes: MLflow loads while the first model trains
    data.preload()  # the first pull request checks the data after the scaffold and the push
    env = _environ()
    root = directory / "churn"
    origin = directory / "origin.git"
    events = directory / "events"
    events.mkdir()
    steps: list[tuple[str, float]] = []  # (title, seconds): each step's wall time
    opened = [time.perf_counter()]

    def close_step() -> None:
        if steps and steps[-1][1] < 0:
            took = time.perf_counter() - opened[0]
            steps[-1] = (steps[-1][0], took)
            echo(f"   ({took:.1f}s)")

    def heading(text: str) -> None:
        close_step()
        steps.append((text, -1.0))
        opened[0] = time.perf_counter()
        echo("")
        echo(f"== {len(steps)}. {text}")

    def log(message: str) -> None:
        echo(f"   {message}")

    def git(*args: str) -> str:
        return gitrepo.run_git(list(args), root, env=env).stdout.strip()

    def event(name: str, body: dict[str, Any]) -> Path:
        path = events / f"{name}.json"
        path.write_text(json.dumps(body, indent=2))
        return path

    def pull_request(number: int, head_branch: str, base: str, title: str) -> ci_flow.CiResult:
        git("checkout", "--quiet", head_branch)
        sha = git("rev-parse", "HEAD")
        payload = event(
            f"pull_request-{number}",
            {
                "action": "opened",
                "number": number,
                "pull_request": {
                    "number": number,
                    "title": title,
                    "head": {"ref": head_branch, "sha": sha},
                    "base": {"ref": base, "sha": git("rev-parse", base)},
                },
            },
        )
        buffer = io.StringIO()
        result = ci_flow.run(
            Context(root, env, log),  # one per event: each is an invocation of its own
            event="pull_request",
            payload_path=payload,
            base=None,
            branch=None,
            pr=None,
            token=None,
            dry_run=True,
            out=buffer,
        )
        echo("   --- the comment mlci would post ---")
        for line in buffer.getvalue().splitlines():
            echo(f"   | {line}")
        echo("   ---")
        return result

    def merge_and_push(head_branch: str, base: str) -> ci_flow.CiResult:
        git("checkout", "--quiet", base)
        before = git("rev-parse", "HEAD")
        git("merge", "--quiet", "--ff-only", head_branch)
        git("push", "--quiet", "origin", base)
        payload = event(
            f"push-{base}", {"ref": f"refs/heads/{base}", "before": before, "after": git("rev-parse", "HEAD")}
        )
        return ci_flow.run(
            Context(root, env, log),
            event="push",
            payload_path=payload,
            base=None,
            branch=None,
            pr=None,
            token=None,
            dry_run=False,
            out=io.StringIO(),
        )

    heading(f"Scaffold a classifier project in {root}, with a local bare remote")
    files = scaffold.render_project("classifier", "churn", scaffold.DEFAULT_ACTIONS_REF)
    scaffold.write_project(root, files, force=False)
    gitrepo.run_git(
        ["init", "--quiet", "--bare", "--initial-branch", "main", str(origin)], directory, env=env
    )
    gitrepo.run_git(["init", "--quiet", "--initial-branch", "main"], root, env=env)
    git("add", "--all")
    git("commit", "--quiet", "--message", "Scaffold churn with mlci init")
    git("branch", "staging")
    git("branch", "production")
    git("remote", "add", "origin", str(origin))
    git("push", "--quiet", "origin", "main", "staging", "production")
    log(f"{len(files)} files; branches main, staging and production pushed to {origin}")

    heading("Pull request #1 to staging: the first model is trained and reported")
    git("checkout", "--quiet", "-b", "first-model", "staging")
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\nThe first model: logistic regression, C=1.0.\n")
    git("commit", "--quiet", "--all", "--message", "Describe the first model")
    first = pull_request(1, "first-model", "staging", "First model")
    log(f"verdict for staging: {first.verdict}")

    heading("Merge #1 into staging: the model is registered and promoted (no retraining)")
    merged = merge_and_push("first-model", "staging")

    heading("Pull request #2 to staging: a much smaller C makes the model worse")
    git("checkout", "--quiet", "-b", "smaller-c", "staging")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.01"))
    git("commit", "--quiet", "--all", "--message", "Regularise much harder: C=0.01")
    blocked = pull_request(2, "smaller-c", "staging", "Regularise harder")
    log(f"verdict for staging: {blocked.verdict} (the gate blocks the merge)")

    heading("Pull request #3 to staging: a new data export rescales a column")
    git("checkout", "--quiet", "-b", "new-export", "staging")
    _rescale(root / "data" / "cancer.csv", "mean_radius", 1.3)
    git("commit", "--quiet", "--all", "--message", "New export of the data (mean_radius in other units)")
    drifted = pull_request(3, "new-export", "staging", "New data export")
    log(f"verdict for staging: {drifted.verdict} (the data drifted from staging's: the gate blocks it)")

    heading("Pull request #4 from staging to production: the same model, no retraining, deployed")
    to_production = pull_request(4, "staging", "production", "Release to production")
    log(f"verdict for production: {to_production.verdict}")
    released = merge_and_push("staging", "production")
    _stop_server(root, log)

    heading("The registry: mlci show and mlci history")
    shown = show.show(root, None, warn=log, environ=os.environ)
    for line in show.format_show(shown).splitlines():
        echo(f"   {line}")
    echo("")
    for line in show.format_history(show.history(root, None, warn=log, environ=os.environ)).splitlines():
        echo(f"   {line}")
    tags = git("tag", "--list")
    remote_tags = gitrepo.remote_tags(root, "origin")
    close_step()
    seconds = time.perf_counter() - start
    echo("")
    echo(
        "Where the time went (only the two trainings, in steps 2 and 4, and production's deploy, "
        "in step 6, should take long):"
    )
    for number, (title, took) in enumerate(steps, start=1):
        echo(f"   {number}. {took:5.1f}s  {title}")
    echo(f"Done in {seconds:.0f}s. The project is in {root}; its remote in {origin}.")
    echo(f"Try: cd {root} && mlci show && mlci history && mlci diff")
    return {
        "directory": str(directory),
        "results": [first, merged, blocked, drifted, to_production, released],
        "tags": tags.split(),
        "remote_tags": sorted(remote_tags),
        "seconds": seconds,
        "steps": [{"step": title, "seconds": round(took, 3)} for title, took in steps],
    }
