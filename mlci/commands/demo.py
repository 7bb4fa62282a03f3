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


class _Story:
    """The demo's project, its remote, and the events played on it, told step by step."""

    def __init__(self, directory: Path, echo: Callable[[str], None]) -> None:
        self.directory, self.echo = directory, echo
        self.env = _environ()
        self.root = directory / "churn"
        self.origin = directory / "origin.git"
        self.events = directory / "events"
        self.events.mkdir()
        self.steps: list[tuple[str, float]] = []  # (title, seconds): each step's wall time
        self.opened = time.perf_counter()

    def close_step(self) -> None:
        if self.steps and self.steps[-1][1] < 0:
            took = time.perf_counter() - self.opened
            self.steps[-1] = (self.steps[-1][0], took)
            self.echo(f"   ({took:.1f}s)")

    def heading(self, text: str) -> None:
        self.close_step()
        self.steps.append((text, -1.0))
        self.opened = time.perf_counter()
        self.echo("")
        self.echo(f"== {len(self.steps)}. {text}")

    def log(self, message: str) -> None:
        self.echo(f"   {message}")

    def git(self, *args: str) -> str:
        return gitrepo.run_git(list(args), self.root, env=self.env).stdout.strip()

    def event(self, name: str, body: dict[str, Any]) -> Path:
        path = self.events / f"{name}.json"
        path.write_text(json.dumps(body, indent=2))
        return path

    def pull_request(self, number: int, head_branch: str, base: str, title: str) -> ci_flow.CiResult:
        """The pull request event, as `mlci ci` handles it in Actions (nothing posted: the
        comment is shown)."""
        self.git("checkout", "--quiet", head_branch)
        request = {
            "number": number,
            "title": title,
            "head": {"ref": head_branch, "sha": self.git("rev-parse", "HEAD")},
            "base": {"ref": base, "sha": self.git("rev-parse", base)},
        }
        payload = self.event(
            f"pull_request-{number}", {"action": "opened", "number": number, "pull_request": request}
        )
        buffer = io.StringIO()
        result = ci_flow.run(
            Context(self.root, self.env, self.log),  # one per event: each is an invocation of its own
            event="pull_request",
            payload_path=payload,
            base=None,
            branch=None,
            pr=None,
            token=None,
            dry_run=True,
            out=buffer,
        )
        self.echo("   --- the comment mlci would post ---")
        for line in buffer.getvalue().splitlines():
            self.echo(f"   | {line}")
        self.echo("   ---")
        return result

    def merge_and_push(self, head_branch: str, base: str) -> ci_flow.CiResult:
        """The merge pushed to the environment branch, and the push event handled."""
        self.git("checkout", "--quiet", base)
        before = self.git("rev-parse", "HEAD")
        self.git("merge", "--quiet", "--ff-only", head_branch)
        self.git("push", "--quiet", "origin", base)
        after = self.git("rev-parse", "HEAD")
        payload = self.event(f"push-{base}", {"ref": f"refs/heads/{base}", "before": before, "after": after})
        return ci_flow.run(
            Context(self.root, self.env, self.log),
            event="push",
            payload_path=payload,
            base=None,
            branch=None,
            pr=None,
            token=None,
            dry_run=False,
            out=io.StringIO(),
        )

    def scaffold(self) -> None:
        self.heading(f"Scaffold a classifier project in {self.root}, with a local bare remote")
        files = scaffold.render_project("classifier", "churn", scaffold.DEFAULT_ACTIONS_REF)
        scaffold.write_project(self.root, files, force=False)
        init_bare = ["init", "--quiet", "--bare", "--initial-branch", "main", str(self.origin)]
        gitrepo.run_git(init_bare, self.directory, env=self.env)
        gitrepo.run_git(["init", "--quiet", "--initial-branch", "main"], self.root, env=self.env)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", "Scaffold churn with mlci init")
        self.git("branch", "staging")
        self.git("branch", "production")
        self.git("remote", "add", "origin", str(self.origin))
        self.git("push", "--quiet", "origin", "main", "staging", "production")
        self.log(f"{len(files)} files; branches main, staging and production pushed to {self.origin}")

    def change(self, branch: str, message: str, edit: Callable[[Path], None]) -> None:
        """A branch off staging with one commit that ``edit`` makes in the project."""
        self.git("checkout", "--quiet", "-b", branch, "staging")
        edit(self.root)
        self.git("commit", "--quiet", "--all", "--message", message)

    def registry(self) -> tuple[list[str], list[str]]:
        """`mlci show` and `mlci history` as the demo ends; its local and remote tags."""
        self.heading("The registry: mlci show and mlci history")
        shown = show.show(self.root, None, warn=self.log, environ=os.environ)
        for line in show.format_show(shown).splitlines():
            self.echo(f"   {line}")
        self.echo("")
        events = show.history(self.root, None, warn=self.log, environ=os.environ)
        for line in show.format_history(events).splitlines():
            self.echo(f"   {line}")
        return self.git("tag", "--list").split(), sorted(gitrepo.remote_tags(self.root, "origin"))


def _describe(root: Path) -> None:
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\nThe first model: logistic regression, C=1.0.\n")


def _smaller_c(root: Path) -> None:
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.01"))


def _new_export(root: Path) -> None:
    _rescale(root / "data" / "cancer.csv", "mean_radius", 1.3)


def _folder(directory: Path | None) -> Path:
    """The demo's folder: new or empty (a new temporary one by default)."""
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="mlci-demo-"))
    if directory.exists() and any(directory.iterdir()):
        raise ScaffoldError(
            f"{directory} is not empty", hint="give a new or empty folder, or none for a temporary one"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


def run(directory: Path | None, *, echo: Callable[[str], None]) -> dict[str, Any]:
    """The story: scaffold, a first model through a pull request and a merge, a worse
    model and drifted data blocked, a release to production, the registry at the end."""
    start = time.perf_counter()
    story = _Story(_folder(directory), echo)
    expect_client()  # the story registers and promotes: MLflow loads while the first model trains
    data.preload()  # the first pull request checks the data after the scaffold and the push
    story.scaffold()

    story.heading("Pull request #1 to staging: the first model is trained and reported")
    story.change("first-model", "Describe the first model", _describe)
    first = story.pull_request(1, "first-model", "staging", "First model")
    story.log(f"verdict for staging: {first.verdict}")

    story.heading("Merge #1 into staging: the model is registered and promoted (no retraining)")
    merged = story.merge_and_push("first-model", "staging")

    story.heading("Pull request #2 to staging: a much smaller C makes the model worse")
    story.change("smaller-c", "Regularise much harder: C=0.01", _smaller_c)
    blocked = story.pull_request(2, "smaller-c", "staging", "Regularise harder")
    story.log(f"verdict for staging: {blocked.verdict} (the gate blocks the merge)")

    story.heading("Pull request #3 to staging: a new data export rescales a column")
    story.change("new-export", "New export of the data (mean_radius in other units)", _new_export)
    drifted = story.pull_request(3, "new-export", "staging", "New data export")
    story.log(f"verdict for staging: {drifted.verdict} (the data drifted from staging's: the gate blocks it)")

    story.heading("Pull request #4 from staging to production: the same model, no retraining, deployed")
    to_production = story.pull_request(4, "staging", "production", "Release to production")
    story.log(f"verdict for production: {to_production.verdict}")
    released = story.merge_and_push("staging", "production")
    _stop_server(story.root, story.log)

    tags, remote_tags = story.registry()
    story.close_step()
    seconds = time.perf_counter() - start
    _summary(story, seconds)
    return {
        "directory": str(story.directory),
        "results": [first, merged, blocked, drifted, to_production, released],
        "tags": tags,
        "remote_tags": remote_tags,
        "seconds": seconds,
        "steps": [{"step": title, "seconds": round(took, 3)} for title, took in story.steps],
    }


def _summary(story: _Story, seconds: float) -> None:
    echo = story.echo
    echo("")
    echo(
        "Where the time went (only the two trainings, in steps 2 and 4, and production's deploy, "
        "in step 6, should take long):"
    )
    for number, (title, took) in enumerate(story.steps, start=1):
        echo(f"   {number}. {took:5.1f}s  {title}")
    echo(f"Done in {seconds:.0f}s. The project is in {story.root}; its remote in {story.origin}.")
    echo(f"Try: cd {story.root} && mlci show && mlci history && mlci diff")
