"""``mlci init``: scaffold a new ML project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlci import gitrepo, scaffold
from mlci.errors import ScaffoldError


def run(
    directory: Path,
    *,
    template: str,
    name: str | None,
    force: bool,
    git: bool,
    actions_ref: str | None,
    echo: Callable[[str], None],
    fork_safe: bool = False,
) -> list[scaffold.Written]:
    if name is None:
        name = scaffold.model_name_from(directory)
        if not name:
            raise ScaffoldError(
                f"cannot make a model name from the folder name {directory.resolve().name!r}",
                hint="pass --name NAME",
            )
    if git and gitrepo.is_repository(directory):
        raise ScaffoldError(
            f"{directory} is already a git repository",
            hint="drop --git and commit the new files yourself",
        )
    files = scaffold.render_project(template, name, actions_ref or scaffold.DEFAULT_ACTIONS_REF, fork_safe)
    written = scaffold.write_project(
        directory,
        files,
        force=force,
        on_write=lambda w: echo(f"  {w.action:<9} {w.path.as_posix()}"),
    )
    echo(f"Created {template} project {name!r} in {directory} ({len(written)} files)")
    if git:
        from mlci import config as cfg

        config = cfg.load(directory / cfg.CONFIG_FILE)
        branches = [env.branch for env in config.environments]
        sha = gitrepo.init_repository(
            directory,
            initial_branch="main",
            message=f"Scaffold {name} with mlci init --template {template}",
            branches=branches,
        )
        echo(f"Initialised git: first commit {sha[:8]} on main; branches: {', '.join(['main', *branches])}")
    echo("")
    echo("Next:")
    echo(f"  cd {directory}")
    echo("  python -m pip install -r requirements.txt")
    echo("  python train.py          # writes metrics.json and model/")
    echo("  mlci config validate     # checks mlci.yaml")
    return written
