"""``mlci init``: scaffold a new ML project."""

from __future__ import annotations

import re
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
    echo("  mlci train               # trains, records the run in .mlci/ (MLflow)")
    echo("  mlci report              # the comment a pull request gets")
    echo("  mlci ui                  # the runs in MLflow's UI (needs mlci[full])")
    return written


def adopt(
    directory: Path,
    *,
    name: str | None,
    actions_ref: str | None,
    dry_run: bool,
    fork_safe: bool,
    echo: Callable[[str], None],
) -> dict[str, object]:
    """Write mlci.yaml and the caller workflows for an existing project; never
    overwrite or edit a file it has. Returns what was inferred and written."""
    from mlci import adopt as inference
    from mlci import config as cfg
    from mlci import fingerprint as fp
    from mlci import render

    directory = directory.resolve()
    if not directory.is_dir():
        raise ScaffoldError(f"{directory} is not a folder", hint="pass the folder of the project to adopt")
    if (directory / cfg.CONFIG_FILE).exists():
        raise ScaffoldError(
            f"{directory / cfg.CONFIG_FILE} exists: this project already uses mlci",
            hint="`mlci config validate` checks it; move it away to adopt the project again",
        )
    files = fp.candidate_files(directory)

    def text_of(relative: str) -> str | None:
        try:
            return (directory / relative).read_text(encoding="utf-8", errors="replace")[: 1024 * 1024]
        except OSError:
            return None

    found = inference.infer(files, text_of)
    name = name or found.model_name or scaffold.model_name_from(directory)
    if not name or not cfg.MODEL_NAME_RE.match(name):
        raise ScaffoldError(f"cannot make a model name from {directory.name!r}", hint="pass --name NAME")
    schema_line = scaffold.schema_line(actions_ref or scaffold.DEFAULT_ACTIONS_REF)
    config_text = inference.config_text(name, found, schema_line)
    config = cfg.parse(config_text, directory / cfg.CONFIG_FILE)  # what validate will say, before writing

    top = gitrepo.toplevel(directory) or directory
    prefix = directory.relative_to(top).as_posix() if directory != top else "."
    repo, ref = scaffold.parse_actions_ref(actions_ref or scaffold.DEFAULT_ACTIONS_REF)
    requirements = " ".join(found.requirements)
    context = {
        "name": name,
        "template": "adopted",
        "actions_repo": repo,
        "actions_version": ref,
        "fork_safe": fork_safe,
        "description": "",
        "environments": config.environments,
        "branches": [env.branch for env in config.environments],
        "working_directory": prefix,
        "requirements": requirements,
    }
    rendered = render.render_tree([render.templates_root() / scaffold.COMMON / "dot-github"], context)
    others = [
        top / ".github" / rel
        for rel in rendered
        if rel.parent.name == "workflows" and _serves_another((top / ".github" / rel), prefix)
    ]
    if others:
        # The repository's mlci workflows run another project: this one gets its own, beside them.
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
        context = {**context, "workflow_suffix": f" ({name})"}
        rendered = render.render_tree([render.templates_root() / scaffold.COMMON / "dot-github"], context)
        rendered = {
            (rel.with_name(f"{rel.stem}-{slug}{rel.suffix}") if rel.parent.name == "workflows" else rel): text
            for rel, text in rendered.items()
        }
    planned: dict[Path, str] = {directory / cfg.CONFIG_FILE: config_text}
    planned.update({top / ".github" / rel: text for rel, text in rendered.items()})
    # Outputs git would show as untracked: ignored in a new .gitignore, or named for the
    # user to add to theirs (mlci never edits it; .mlci/ ignores itself).
    ignore = [
        name
        for name in (found.metrics, found.model)
        if name
        and not gitrepo.is_ignored(directory, name)
        and not gitrepo.run_git(["ls-files", "--error-unmatch", "--", name], directory, check=False).stdout
    ]
    gitignore = directory / ".gitignore"
    if ignore and not gitignore.exists():
        planned[gitignore] = "# Training outputs (mlci init --adopt)\n" + "".join(f"/{n}\n" for n in ignore)

    echo(f"Adopting {directory} as model {name!r}; inferred:")
    for path in others:
        echo(
            f"  {path.relative_to(top).as_posix()} runs another project (not {prefix}): "
            f"this one gets workflows of its own beside it"
        )
    for f in found.findings:
        value = "(none)" if f.value is None else f.value
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        echo(f"  {'CHECK ' if f.check else ''}{f.key}: {shown}  ({f.why})")
    written, skipped = [], []
    for path, text in planned.items():
        if path.exists():
            skipped.append(path)
            continue
        written.append(path)
        if not dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "would write" if dry_run else "wrote"
    for path in written:
        echo(f"  {verb:<11} {path.relative_to(top).as_posix()}")
    for path in skipped:
        echo(f"  {'exists':<11} {path.relative_to(top).as_posix()} (left as it is)")
    if ignore and gitignore not in written:
        lines = " ".join("/" + n for n in ignore)
        echo(f"  add to {gitignore.relative_to(top).as_posix()}: {lines}  (training outputs)")
    if dry_run:
        echo("")
        echo(f"Dry run: nothing written. The {cfg.CONFIG_FILE} it would write:")
        echo(config_text)
    echo("")
    echo("Next:")
    if prefix != ".":
        echo(f"  cd {prefix}")
    echo(f"  review {cfg.CONFIG_FILE} (lines marked CHECK), then `mlci config validate`")
    echo("  mlci fingerprint --explain  # every input, and why")
    echo("  mlci train                # runs the project's own command, unchanged")
    return {
        "model": name,
        "directory": str(directory),
        "working_directory": prefix,
        "findings": [
            {"key": f.key, "value": f.value, "why": f.why, "check": f.check} for f in found.findings
        ],
        "written": [str(p) for p in written],
        "skipped": [str(p) for p in skipped],
        "dry_run": dry_run,
        "config": config_text,
        "gitignore": ["/" + n for n in ignore],
        "beside": [str(p) for p in others],
    }


def _serves_another(path: Path, prefix: str) -> bool:
    """Whether the workflow at ``path`` exists and does not run mlci for the project in
    folder ``prefix`` (it runs another project's, or is not mlci's): then the project
    adopted now gets workflows of its own rather than none."""
    from mlci import safeinput

    if not path.is_file():
        return False
    try:
        data = safeinput.load_yaml(safeinput.read_text(path, limit=1024 * 1024, what=path.name))[0]
    except (OSError, safeinput.BadInput):
        return True
    jobs = data.get("jobs") if isinstance(data, dict) else None
    for job in jobs.values() if isinstance(jobs, dict) else []:
        uses = job.get("uses") if isinstance(job, dict) else None
        if isinstance(uses, str) and "/.github/workflows/mlci.yml@" in uses:
            given = job.get("with") if isinstance(job.get("with"), dict) else {}
            folder = str(given.get("working-directory", ".")).strip("/") or "."
            if folder == prefix:
                return False
    return True
