"""The ``mlci`` command line: flags in, one use case called, errors mapped to exit codes.

No business logic lives here, and nothing heavy is imported at module level:
each command imports its use case when it runs, so ``mlci --help`` stays fast.
"""

from __future__ import annotations

import enum
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mlci import __version__
from mlci.errors import ExitCode, MlciError

app = typer.Typer(
    name="mlci",
    help="GitOps CI for machine learning: train on pull requests, gate on metrics, "
    "promote models with git tags and MLflow.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    epilog="Exit codes: 0 ok, 1 a gate failed, 2 usage error, 3 an error with a hint, "
    "4 a bug in mlci (with a traceback), 130 interrupted.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    help="Inspect and check mlci.yaml.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")
data_app = typer.Typer(
    help="Check the declared datasets (data: in mlci.yaml) and compare them with a baseline's.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(data_app, name="data")
sweep_app = typer.Typer(
    help="Train the candidates of sweep: in mlci.yaml side by side (a GitHub Actions matrix) and rank them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(sweep_app, name="sweep")

_TRUTHY = {"1", "true", "yes", "on"}


class Template(str, enum.Enum):
    # Kept in step with the folders under templates/ (a test checks).
    classifier = "classifier"
    regressor = "regressor"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Path to mlci.yaml. Default: the nearest mlci.yaml in this folder or above.",
        envvar="MLCI_CONFIG",
        dir_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlci {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print mlci's version and exit."),
    ] = False,
    show_traceback: Annotated[
        bool,
        typer.Option(
            "--traceback",
            help="Show the full traceback for any error (same as MLCI_DEBUG=1).",
        ),
    ] = False,
) -> None:
    """GitOps CI for machine learning.

    Exit codes: 0 ok, 1 a gate failed, 2 usage error, 3 an error with a hint
    (bad config, failed git call, ...), 4 an internal bug (with a traceback).
    """


@app.command()
def init(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="Folder to create the project in (created if missing); with --adopt, the existing "
            "project's folder (default: the current folder).",
            show_default=False,
        ),
    ] = None,
    template: Annotated[
        Template,
        typer.Option(
            "--template",
            "-t",
            help="Project template: classifier (breast cancer data) or regressor (diabetes data).",
        ),
    ] = Template.classifier,
    name: Annotated[
        str | None,
        typer.Option(help="Model name used in tags and MLflow. Default: the folder's name."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write into a non-empty folder; files that differ are overwritten, and each one is listed.",
        ),
    ] = False,
    git: Annotated[
        bool,
        typer.Option(
            "--git",
            help="Run git init, make the first commit, and create the environment branches.",
        ),
    ] = False,
    actions_ref: Annotated[
        str | None,
        typer.Option(
            "--actions-ref",
            help="OWNER/REPO@REF where the generated workflows get mlci from. Default: mlci-dev/mlci@v0.1.0.",
            show_default=False,
        ),
    ] = None,
    fork_safe: Annotated[
        bool,
        typer.Option(
            "--fork-safe",
            help="Pull requests train with a read-only token; a trusted workflow_run job posts the report.",
        ),
    ] = False,
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help="Adopt an existing project: infer mlci.yaml from its files (dvc.yaml, Makefile, train*.py), "
            "write it and the workflows, and never overwrite or edit an existing file.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --adopt: print what would be written, write nothing."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Scaffold a new ML project (training code, params, mlci.yaml and GitHub workflows),
    or with --adopt, add mlci to an existing one."""
    from mlci.commands import init as command

    if adopt:
        if force or git:
            raise MlciError(
                "--adopt never overwrites files and never runs git init", hint="drop --force/--git"
            )
        result = command.adopt(
            directory or Path.cwd(),
            name=name,
            actions_ref=actions_ref,
            dry_run=dry_run,
            fork_safe=fork_safe,
            echo=(lambda line: print(line, file=sys.stderr)) if as_json else typer.echo,
        )
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        return
    if directory is None:
        raise typer.BadParameter(
            "name the folder to create the project in (or pass --adopt)", param_hint="DIR"
        )
    if dry_run or as_json:
        raise typer.BadParameter("--dry-run and --json go with --adopt", param_hint="--dry-run/--json")
    command.run(
        directory,
        template=template.value,
        name=name,
        force=force,
        git=git,
        actions_ref=actions_ref,
        echo=typer.echo,
        fork_safe=fork_safe,
    )


@config_app.command("show")
def config_show(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the resolved config, with every default filled in."""
    from mlci.commands import config as command

    typer.echo(command.show(config, cwd=Path.cwd(), environ=os.environ, as_json=as_json), nl=False)


@config_app.command("validate")
def config_validate(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check mlci.yaml and report every problem with its line and key path."""
    from mlci.commands import config as command

    typer.echo(command.validate(config, cwd=Path.cwd(), as_json=as_json))


@config_app.command("schema")
def config_schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the key reference (docs/configuration.md) instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of mlci.yaml, for editors and validators.

    Editors that speak the YAML language server complete and check mlci.yaml from it;
    `mlci init` writes the line that names it. The same schema gives the checker of
    `mlci config validate` its keys.
    """
    from mlci.commands import config as command

    typer.echo(command.schema_markdown() if markdown else command.schema_json(), nl=False)


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a param from the params file (repeatable); dotted keys reach nested "
        "params, values are YAML scalars: --set C=0.5 --set model.depth=3.",
    ),
]


@app.command()
def train(
    overrides: SetOption = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Train even if a finished run with the same fingerprint exists."),
    ] = False,
    pr: Annotated[
        int | None,
        typer.Option("--pr", help="Pull request number to record on the run.", min=1),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the model (or reuse the run with the same inputs) and record it in MLflow.

    The training command's output streams live. With --json it goes to stderr,
    and stdout carries one JSON object.
    """
    from mlci import project
    from mlci.commands import train as command
    from mlci.usecases import training

    resolved = project.resolve(config, Path.cwd(), overrides or [], warn=command.stderr_log)
    result = training.train(
        resolved,
        _context(config, command.stderr_log),
        use_cache=not no_cache,
        pr_number=pr,
        command_stdout=sys.stderr if as_json else None,
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo(command.format_result(result))


@app.command()
def fingerprint(
    overrides: SetOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="List every file: whether it is an input, and why (the train.inputs pattern, "
            "train.exclude, an output).",
        ),
    ] = False,
) -> None:
    """Print the inputs fingerprint: the run cache key (CI uses it as a cache key too)."""
    from mlci import project
    from mlci.commands import train as command

    resolved = project.resolve(config, Path.cwd(), overrides or [], warn=command.stderr_log)
    typer.echo(command.fingerprint_report(resolved, as_json, explain=explain))


PushOption = Annotated[
    bool | None,
    typer.Option(
        "--push/--no-push",
        help="Push the new tags to origin. Default: push when the repository has an origin.",
        show_default=False,
    ),
]


class Stage(str, enum.Enum):
    all = "all"
    train = "train"
    publish = "publish"
    deploy = "deploy"
    assign = "assign"
    restore = "restore"


class Bump(str, enum.Enum):
    patch = "patch"
    minor = "minor"
    major = "major"


def _log(message: str) -> None:
    from mlci import redact

    print(f"mlci: {redact.text(message)}", file=sys.stderr, flush=True)


def _emit(data: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    """``data`` as JSON, or ``text`` (a callable where making it costs: a long history)."""
    from mlci import redact

    if as_json:
        typer.echo(redact.json_text(data))
    else:
        typer.echo(redact.text(text if isinstance(text, str) else text()))


@app.command()
def register(
    bump: Annotated[Bump, typer.Option("--bump", help="Which part of the version to increase.")] = Bump.patch,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Register exactly this version (vX.Y.Z) instead of bumping."),
    ] = None,
    push: PushOption = None,
    pr: Annotated[
        int | None, typer.Option("--pr", help="Pull request number to record in the tag.", min=1)
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register the run of the current commit's inputs as a model version.

    Creates the annotated git tag MODEL@vX.Y.Z (GTO's format) and an MLflow
    model version pointing back at it. Registering inputs that already have a
    version returns that version.
    """
    from mlci.usecases import registration as command

    result = command.register(_context(config), bump=bump.value, version=version, push=push, pr_number=pr)
    text = f"{result.model} {result.version} ({result.tag})"
    _emit(result.to_json(), as_json, text)


EnvArgument = Annotated[str, typer.Argument(help="Environment name from mlci.yaml.")]


@app.command()
def promote(
    environment: EnvArgument,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Version to promote. Default: the current inputs' version."),
    ] = None,
    push: PushOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Assign a version to an environment, if it passes the environment's gates.

    Checks the gates against the environment's current version and the
    environment's `requires`, then creates MODEL#ENV#N and sets the MLflow
    alias ENV. Exit 1 when a gate blocks it; promoting the current version
    changes nothing.
    """
    from mlci.usecases import promotion as command

    result = command.assign(_context(config), environment=environment, version=version, push=push)
    _finish_assignment(result, as_json)


@app.command()
def deploy(
    environment: EnvArgument,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="The version to deploy: it must be the one the environment's tag names (the default).",
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the environment's deploy hook (and smoke test) for the version it holds.

    The same hook `mlci promote` runs before it tags a version
    (environments.ENV.deploy in mlci.yaml): the version's bytes are fetched
    and checked against its tag's sha256 into MLCI_MODEL_DIR. Exit 1 when the
    command or its smoke test fails.
    """
    from mlci.errors import ExitCode
    from mlci.usecases import deployment as command

    done = command.run(_context(config), environment=environment, version=version)
    _emit(done.to_json(), as_json, done.message())
    if not done.ok:
        raise typer.Exit(ExitCode.GATE_FAILED)


@app.command()
def pull(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="MODEL[@vX.Y.Z|#ENV]",
            help="The model: its latest version, a version (churn@v1.2.0), or what an environment "
            "holds (churn#production).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder to write the model to (new). Default: ./MODEL-VERSION."),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a registered model from where it is stored and verify its sha256.

    Looks where the version's tag says its bytes are (the embedded store, the
    tracking server, or a GitHub release: set GITHUB_TOKEN for those), checks
    the digest the tag records, and prints where the model now is. This is
    what a deploy job or a notebook runs.
    """
    from mlci.commands import pull as command

    result = command.pull(ref, Path.cwd(), environ=os.environ, output=output, config_path=config, log=_log)
    text = (
        f"{result.model} {result.version} -> {result.path}\n"
        f"sha256 {result.sha256} ({result.size:,} bytes, "
        f"{'verified against ' + result.tag if result.verified else 'NOT verified: no digest recorded'})\n"
        f"from {result.store}"
    )
    _emit(result.to_json(), as_json, text)


@app.command()
def rollback(
    environment: EnvArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded in the tag message (required).")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Version to go back to. Default: the previous distinct one."),
    ] = None,
    push: PushOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-assign an earlier version to an environment, with an audit trail.

    Relative gates are bypassed (absolute ones still apply); the reason and the
    replaced version are recorded in the tag.
    """
    from mlci.usecases import promotion as command

    if not reason.strip():
        raise typer.BadParameter("give a reason", param_hint="--reason")
    result = command.assign(
        _context(config), environment=environment, version=to, push=push, rollback_reason=reason
    )
    _finish_assignment(result, as_json)


@app.command()
def unpin(
    environment: EnvArgument,
    push: PushOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """End the pin a rollback put on an environment: automatic promotion resumes.

    The version stays; it is assigned again (MODEL#ENV#N, an ordinary
    assignment to GTO) without the pin, so the next push to the environment's
    branch promotes as usual.
    """
    from mlci.usecases import promotion as command

    result = command.unpin(_context(config), environment=environment, push=push)
    _finish_assignment(result, as_json)


def _finish_assignment(result: Any, as_json: bool) -> None:
    from mlci import gates
    from mlci.errors import ExitCode

    if result.verdict is not None:
        for rule in result.verdict.results:
            _log(f"  [{gates.mark(rule)}] {rule.message}")
    if result.blocked:
        _log(f"{result.environment}: {result.version} blocked: {result.blocked}")
        _emit(result.to_json(), as_json, f"blocked: {result.blocked}")
        raise typer.Exit(ExitCode.GATE_FAILED)
    text = f"{result.model} {result.version} in {result.environment}"
    if not result.changed:
        text += " (unchanged)"
    _emit(result.to_json(), as_json, text)


ModelArgument = Annotated[
    str | None, typer.Argument(help="Model name. Default: every model in the registry.")
]


@app.command()
def show(model: ModelArgument = None, as_json: JsonOption = False) -> None:
    """Each model's latest version and the version in each environment.

    Reads GTO-format git tags: works in any repository, with or without mlci.yaml.
    """
    from mlci.usecases import show as command

    data = command.show(Path.cwd(), model, warn=_log, detail=as_json, environ=os.environ)
    _emit(data, as_json, lambda: command.format_show(data))


@app.command()
def history(model: ModelArgument = None, as_json: JsonOption = False) -> None:
    """Every registration, assignment and rollback, newest first, with who and when."""
    from mlci.usecases import show as command

    events = command.history(Path.cwd(), model, warn=_log, environ=os.environ)
    _emit(events, as_json, lambda: command.format_history(events))


@app.command()
def deprecate(
    model: Annotated[
        str | None, typer.Option("--model", help="Model name. Default: the one in mlci.yaml.")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Deregister this version (MODEL@vX.Y.Z!#N).")
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--env", help="Unassign this environment (MODEL#ENV!#N).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded in the tag message.")] = "",
    push: PushOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write GTO's deprecate, deregister or unassign tag.

    --env unassigns an environment, --version deregisters a version; with
    neither, the whole model is deprecated (MODEL@deprecated#N).
    """
    from mlci.commands import deprecate as command

    result = command.deprecate(
        config,
        Path.cwd(),
        environ=os.environ,
        model=model,
        version=version,
        environment=environment,
        reason=reason,
        push=push,
        log=_log,
    )
    _emit(result, as_json, result["tag"] or "unchanged")


@app.command()
def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Re-sync MLflow from git, the source of truth.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report drift between the git tags and MLflow's registry (exit 1 if any is left)."""
    from mlci.commands import doctor as command
    from mlci.errors import ExitCode

    report = command.doctor(config, Path.cwd(), environ=os.environ, fix=fix, log=_log)
    _emit(report.to_json(), as_json, command.format_report(report))
    if not report.healthy:
        raise typer.Exit(ExitCode.GATE_FAILED)


class Format(str, enum.Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    html = "html"


BaseOption = Annotated[
    str | None,
    typer.Option(
        "--base",
        help="Branch or commit to compare with: the run at its merge base with HEAD. "
        "Default: the first environment's branch.",
    ),
]
EnvsOption = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="Compare with this environment only (repeatable). Default: all."),
]


@data_app.command("check")
def data_check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check every declared dataset: types, nulls, ranges, allowed values, a unique key,
    row counts. Exit 1 if one fails (mlci train runs the same checks first)."""
    from mlci.usecases import datasets as command

    result, passed = command.check(_context(config))
    lines = [
        f"data.{d['dataset']}: "
        + (d.get("note") or f"{d['rows']} rows, {d['columns']} columns: {'ok' if d['passed'] else 'FAILED'}")
        for d in result["datasets"]
    ]
    _emit(result, as_json, "\n".join(lines) or "no datasets declared")
    if not passed:
        raise typer.Exit(ExitCode.GATE_FAILED)


@data_app.command("diff")
def data_diff(
    base: Annotated[
        str | None,
        typer.Option(
            "--base", help="Compare with the run of this branch's (or commit's) merge base with HEAD."
        ),
    ] = None,
    environments: EnvsOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare this checkout's datasets with a baseline's profiles: rows, columns added,
    removed and retyped, and each column's drift (PSI). Default: every environment's model.
    Exit 1 if a check or a drift limit fails."""
    from mlci.commands import data as command
    from mlci.usecases import datasets

    result = datasets.diff(_context(config), environments=environments or [], base=base)
    _emit(result, as_json, command.render(result))
    if not result["passed"]:
        raise typer.Exit(ExitCode.GATE_FAILED)


CandidateArgument = Annotated[
    int, typer.Argument(help="The candidate's number, from 1 (as `mlci sweep plan` lists them).", min=1)
]


@sweep_app.command("plan")
def sweep_plan(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the candidates; with --json, as a matrix for a workflow's strategy.matrix
    ({"include": [...]}, one entry per candidate, with its --set arguments and fingerprint)."""
    from mlci.usecases import sweep

    matrix = sweep.plan(_context(config))
    lines = [
        f"#{c['candidate']}  {c['name']}  (fingerprint {c['fingerprint'][:12]})" for c in matrix["include"]
    ]
    if as_json:
        typer.echo(json.dumps(matrix, separators=(",", ":")))  # one line: for $GITHUB_OUTPUT
    else:
        typer.echo("\n".join(lines))


@sweep_app.command("train")
def sweep_train(number: CandidateArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Train one candidate: `mlci train --set ...` with its params (the run cache reuses a
    finished run of the same inputs). Writes .mlci/sweep/candidate-N.json, which
    `mlci sweep report --from` reads; in GitHub Actions, sets the outputs to upload it."""
    from mlci.usecases import sweep as command

    result = command.train(_context(config), number)
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    reused = " (reused)" if result["cached"] else ""
    _emit(
        result, as_json, f"candidate #{number} ({result['name']}): {metrics}; run {result['run_id']}{reused}"
    )


@sweep_app.command("report")
def sweep_report(
    folder: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A folder of the matrix jobs' result files (candidate-N.json, at any depth). "
            "Default: each candidate's run in the tracking store.",
        ),
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", help="Judge the candidates by this environment's gate. Default: the first."
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """The leaderboard: the candidates ranked by the key metric, each with its gate verdict,
    the best one named with the command that makes it the params (markdown, as the pull
    request's comment shows it)."""
    from mlci import render
    from mlci.usecases import sweep as command

    board = command.report(_context(config), folder=folder, environment=environment)
    if as_json:
        _emit(board.to_json(), True, "")
    else:
        typer.echo(render.render_sweep(board).strip())


@sweep_app.command("apply")
def sweep_apply(number: CandidateArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Write candidate N's params into the params file (train.params), in place: commit it,
    and the pull request trains exactly that candidate, or reuses the sweep's run."""
    from mlci.usecases import sweep

    result = sweep.apply(_context(config), number)
    verb = "wrote" if result["changed"] else "already has"
    _emit(result, as_json, f"{result['params_file']}: {verb} candidate #{number} ({result['name']})")


@app.command()
def diff(
    base: BaseOption = None,
    environments: EnvsOption = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    config: ConfigOption = None,
) -> None:
    """Diff the current inputs' run against each environment's model and the base branch.

    Trains first if these inputs have no run yet (the run cache makes that free
    otherwise). Every metric is shown with its change and whether it is better
    or worse by its goal; params changes too.
    """
    from mlci.commands import report as command
    from mlci.usecases import review

    ctx = _context(config)
    reviewed = review.gather(ctx, base=base, environments=environments or [])
    template = review.template_for(ctx.config) if fmt is Format.markdown else None
    typer.echo(
        command.format_report(reviewed.report, fmt.value, template=template, color=sys.stdout.isatty()),
        nl=False,
    )


@app.command()
def gate(
    environment: Annotated[str, typer.Option("--env", "-e", help="Environment whose gates to check.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the current inputs' run against an environment's gates (exit 1 if one fails).

    Relative rules compare with the model now in that environment; with none
    there yet they pass with the note "no baseline".
    """
    from mlci import gates
    from mlci.errors import ExitCode
    from mlci.usecases import review

    reviewed = review.gather(_context(config), base=None, environments=[environment])
    (verdict,) = reviewed.report.verdicts
    for rule in verdict.results:
        _log(f"  [{gates.mark(rule)}] {rule.message}")
    for note in reviewed.report.notes:
        _log(f"  note: {note}")
    result = reviewed.result
    data = {
        "run_id": result.run_id,
        "fingerprint": result.fingerprint,
        "policy_from": reviewed.report.policy_from,
        **verdict.to_json(),
        "notes": list(reviewed.report.notes),
    }
    text = f"{environment}: {'pass' if verdict.passed else 'FAIL'}: {verdict.summary()}"
    _emit(data, as_json, text)
    if not verdict.passed:
        raise typer.Exit(ExitCode.GATE_FAILED)


@app.command()
def report(
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="Report format: markdown (the pull request comment), table, json, or html "
            "(one self-contained page, charts included, for a browser).",
        ),
    ] = Format.markdown,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write. Default: .mlci/report.md (.txt, .json, .html).",
            dir_okay=False,
        ),
    ] = None,
    base: BaseOption = None,
    environments: EnvsOption = None,
    open_it: Annotated[
        bool,
        typer.Option(
            "--open",
            help="Write the HTML report (implies --format html unless another is given) and open it "
            "in the browser ($BROWSER, else the system's).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write the report (a PR comment in markdown, a table, JSON, or an HTML page) to a file.

    Later steps and people read it from disk, with no network.
    """
    from mlci.commands import report as command
    from mlci.usecases import review

    if open_it and fmt is Format.markdown:
        fmt = Format.html
    ctx = _context(config)
    reviewed = review.gather(ctx, base=base, environments=environments or [])
    template = review.template_for(ctx.config) if fmt is Format.markdown else None
    text = command.format_report(reviewed.report, fmt.value, template=template, color=False)
    target = output or reviewed.config.root / ".mlci" / command.DEFAULT_OUTPUT[fmt.value]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    _log(f"wrote {target} ({len(text)} characters)")
    typer.echo(str(target))
    if open_it:
        if command.open_in_browser(target):
            _log(f"opened {target} in the browser")
        else:
            _log(f"no browser to open it with here: open {target} yourself (or set $BROWSER)")


def _context(path: Path | None, log: Callable[[str], None] | None = None) -> Any:
    """The invocation's context (mlci.context): this folder, this environment, --config."""
    from mlci.context import Context

    return Context(Path.cwd(), os.environ, log or _log, path)


class Event(str, enum.Enum):
    pull_request = "pull_request"
    push = "push"


@app.command()
def ci(
    event: Annotated[
        Event | None,
        typer.Option("--event", help="The event to handle. Default: GITHUB_EVENT_NAME (in Actions)."),
    ] = None,
    payload: Annotated[
        Path | None,
        typer.Option(
            "--payload",
            help="The event's webhook payload (JSON). Default: GITHUB_EVENT_PATH.",
            dir_okay=False,
        ),
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="Replaying a pull request: its base branch.")
    ] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", help="Replaying a push: the branch pushed to.")
    ] = None,
    pr: Annotated[
        int | None, typer.Option("--pr", help="Replaying a pull request: its number.", min=1)
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="GITHUB_TOKEN", help="GitHub token (masked, never printed).", show_default=False
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Write nothing to GitHub (and no tags): print what would be done."),
    ] = False,
    stage: Annotated[
        Stage,
        typer.Option(
            "--stage",
            help="all: the whole flow. train: run the training command and write the report; "
            "post, tag and push nothing (the job without a write token). publish: never run the "
            "training command; the run must be recorded already (the job with a write token). "
            "deploy, assign, restore: a promotion with a deploy hook, in the reusable workflow's "
            "jobs (the hook runs in the deploy job, which holds no write token).",
        ),
    ] = Stage.all,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Handle a repository event: what the GitHub actions run.

    pull_request: train, diff, gate for the base branch's environment, write
    the report, upsert the sticky comment and set the mlci/ENV status.
    push to an environment branch: train, gate, register and promote.
    Outside Actions, --event with --base/--branch replays the same flow.
    In Actions the flow is split (--stage) so that no job holding a write
    token ever runs the repository's training code.
    """
    from mlci.usecases import ci as command

    try:
        result = command.run(
            _context(config),
            event=event.value if event else None,
            payload_path=payload,
            base=base,
            branch=branch,
            pr=pr,
            token=token,
            dry_run=dry_run,
            out=sys.stderr if as_json else sys.stdout,
            stage=stage.value,
        )
    except MlciError as exc:
        command.error_summary(os.environ, exc)
        raise
    if as_json:
        _emit(result.to_json(), True, "")
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", "-p", help="The port to serve on.", min=1, max=65535)] = 5000,
    host: Annotated[
        str, typer.Option("--host", help="The address to listen on; 0.0.0.0 shows the runs to your network.")
    ] = "127.0.0.1",
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the `mlflow ui` command instead of running it.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Open MLflow's UI on this project's runs and model versions (the embedded store under .mlci/).

    Runs `mlflow ui` with the store's URI until you stop it (Ctrl-C). It needs full
    MLflow: pip install 'mlci[full]'.
    """
    import shlex
    import subprocess

    from mlci.commands import ui as command

    line = command.command(config, cwd=Path.cwd(), environ=os.environ, host=host, port=port)
    if print_only:
        typer.echo(shlex.join(["mlflow", *line[3:]]))
        return
    if not command.available():
        raise command.missing_ui()
    _log(f"MLflow's UI on http://{host}:{port} (Ctrl-C stops it)")
    raise typer.Exit(subprocess.call(line))


@app.command()
def requirements(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Requirements files, relative to the current folder: requirements*.txt, pyproject.toml "
            "([project] dependencies), python_env.yaml (MLflow), environment.yml or conda.yaml (conda)."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Print the training code's requirements as one pip requirements file.

    CI installs them into the project's own Python and mlci into an environment of its own,
    so mlci's pins never decide what the project may use (`pip install -r <(mlci requirements
    src/requirements.txt python_env.yaml)`).
    """
    from mlci import requirements as reqs

    found = reqs.read(Path.cwd(), files)
    for note in found.notes:
        _log(f"note: {note}")
    _emit({"requirements": found.lines, "notes": found.notes}, as_json, found.text().rstrip("\n"))


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="Folder to play the demo in (created; must be empty). Default: a new temporary folder."
        ),
    ] = None,
) -> None:
    """Play the whole story on this machine: no server, no GitHub, no network.

    Scaffolds a project with a local bare remote, then: a pull request to
    staging trains and shows its comment; merging registers and promotes it;
    a worse pull request is blocked by the gate; a pull request to production
    promotes the same version without retraining.
    """
    from mlci.commands import demo as command

    command.run(directory, echo=typer.echo)


@app.command("publish-plots")
def publish_plots(
    folder: Annotated[
        Path,
        typer.Argument(help="Folder with the report a pull request job made (its plot-* files are read)."),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="GITHUB_TOKEN", help="GitHub token (masked, never printed).", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a pull request's plots (report.plots) to the rolling pre-release mlci-plots.

    Each file is checked and rebuilt as an image (PNG, or SVG from an allowlist) before
    it is sent, and named by its digest, so it is uploaded once. Run it in a job that may
    write contents and runs nothing else; `mlci publish` then links the images.
    """
    from mlci.usecases import ci as ci_command
    from mlci.usecases import publish as command

    try:
        result = command.upload_plots(_context(config), folder, token=token)
    except MlciError as exc:
        ci_command.error_summary(os.environ, exc)
        raise
    text = (
        f"{result['release']}: {len(result['uploaded'])} uploaded, {len(result['present'])} already there"
        + (f", {len(result['pruned'])} old ones deleted" if result["pruned"] else "")
    )
    _emit(result, as_json, text)


@app.command()
def publish(
    folder: Annotated[
        Path,
        typer.Argument(help="Folder with the report.json and pull_request.json a pull request job made."),
    ],
    head_sha: Annotated[
        str, typer.Option("--head-sha", help="The pull request's head commit, from the trusted event.")
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="GITHUB_TOKEN", help="GitHub token (masked, never printed).", show_default=False
        ),
    ] = None,
    sweep: Annotated[
        Path | None,
        typer.Option(
            "--sweep",
            help="A folder of a sweep's result files (candidate-N.json, from the matrix jobs' "
            "artifacts): the comment also ranks the candidates.",
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Judge and post the report of an untrusted pull request job (the fork-safe flow).

    Takes only the head's metrics and params from the artifact. The pull
    request must have HEAD_SHA as its head (GitHub's word); the policy comes
    from mlci.yaml on its base branch and the baselines from the registry, in
    this checkout; mlci recomputes the verdict and renders the comment itself.
    Runs no code from the artifact.
    """
    from mlci.usecases import ci as ci_command
    from mlci.usecases import publish as command

    try:
        result = command.publish(_context(config), folder, head_sha=head_sha, token=token, sweep_folder=sweep)
    except MlciError as exc:
        ci_command.error_summary(os.environ, exc)  # the annotation and the job summary, as `mlci ci`
        raise
    _emit(result, as_json, f"posted to #{result['pr']}")


def _wants_traceback(args: list[str], environ: Any) -> bool:
    return "--traceback" in args or str(environ.get("MLCI_DEBUG", "")).lower() in _TRUTHY


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: the one place errors become exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _wants_traceback(args, os.environ)
    github = sys.modules.get("mlci.github_api")
    if github is not None:  # each command reads GitHub afresh (one process can run many)
        github.forget()
    try:
        app(args=args, prog_name="mlci")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return ExitCode.OK
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return ExitCode.ERROR
    except MlciError as exc:
        if debug:
            traceback.print_exc()
        sys.stdout.flush()
        from mlci import redact

        print(f"mlci: error: {redact.text(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {redact.text(exc.hint)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlci: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            "mlci: internal error: this is a bug in mlci; please report it with the traceback above",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
    return ExitCode.OK


def run() -> None:
    """The `mlci` program: ``main``, then exit as any Python program does: exit handlers
    run (MLflow's flush its asynchronous logging and remove their temporary folders).

    Once MLflow is loaded the interpreter's shutdown spent 0.5-0.9 s collecting garbage
    over the objects of the thousands of modules MLflow imports, again and again as the
    modules are torn down. Those objects live until the process ends: they are moved out
    of the collector's reach first (``gc.freeze``), and the shutdown takes 0.08 s."""
    import gc

    code = main()
    gc.freeze()
    raise SystemExit(code)
