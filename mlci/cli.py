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
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    help="Inspect and check mlci.yaml.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")

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
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print mlci's version and exit."
        ),
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
        Path, typer.Argument(help="Folder to create the project in (created if missing).")
    ],
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
            help="Write into a non-empty folder; files that differ are overwritten, "
            "and each one is listed.",
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
            help="OWNER/REPO@REF where the generated workflows get mlci from.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Scaffold a new ML project: training code, params, mlci.yaml and GitHub workflows."""
    from mlci.commands import init as command

    command.run(
        directory,
        template=template.value,
        name=name,
        force=force,
        git=git,
        actions_ref=actions_ref,
        echo=typer.echo,
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
        typer.Option(
            "--no-cache", help="Train even if a finished run with the same fingerprint exists."
        ),
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
    from mlci.commands import train as command

    resolved = command.resolve(config, Path.cwd(), overrides or [], warn=command.stderr_log)
    result = command.train(
        resolved,
        environ=os.environ,
        use_cache=not no_cache,
        pr_number=pr,
        log=command.stderr_log,
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
) -> None:
    """Print the inputs fingerprint: the run cache key (CI uses it as a cache key too)."""
    from mlci.commands import train as command

    resolved = command.resolve(config, Path.cwd(), overrides or [], warn=command.stderr_log)
    typer.echo(command.fingerprint_report(resolved, as_json))


def _wants_traceback(args: list[str], environ: Any) -> bool:
    return "--traceback" in args or str(environ.get("MLCI_DEBUG", "")).lower() in _TRUTHY


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: the one place errors become exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _wants_traceback(args, os.environ)
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
        print(f"mlci: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlci: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            "mlci: internal error: this is a bug in mlci; "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
    return ExitCode.OK
