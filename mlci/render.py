"""jinja2, the one module that imports it: scaffolds and report templates."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlci.errors import MlciError

TEMPLATE_SUFFIX = ".j2"
# Files whose names start with a dot are stored as "dot-NAME" so that the
# template tree is not mistaken for a live repository (a .github folder there
# would be this repo's own workflows) and nothing drops them as hidden files.
DOT_PREFIX = "dot-"


def templates_root() -> Path:
    """Where the templates are: inside the wheel, or at the root of a source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise MlciError(
        f"mlci's templates are missing (looked in {package / '_templates'} and "
        f"{package.parent / 'templates'})",
        hint="reinstall mlci: pip install --force-reinstall mlci",
    )


def output_name(relative: Path) -> Path:
    parts = ["." + p[len(DOT_PREFIX) :] if p.startswith(DOT_PREFIX) else p for p in relative.parts]
    out = Path(*parts)
    if out.name.endswith(TEMPLATE_SUFFIX):
        out = out.with_name(out.name[: -len(TEMPLATE_SUFFIX)])
    return out


def render_tree(folders: list[Path], context: Mapping[str, Any]) -> dict[Path, str]:
    """Render every file under ``folders`` (later folders win) to {output path: text}.

    ``*.j2`` files go through jinja2 with StrictUndefined, so a missing variable
    is an error rather than an empty string; other files are copied as they are.
    """
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    out: dict[Path, str] = {}
    for folder in folders:
        for source in sorted(p for p in folder.rglob("*") if p.is_file()):
            if "__pycache__" in source.parts:
                continue
            relative = source.relative_to(folder)
            text = source.read_text(encoding="utf-8")
            if source.name.endswith(TEMPLATE_SUFFIX):
                try:
                    text = env.from_string(text).render(**context)
                except jinja2.TemplateError as exc:
                    raise MlciError(
                        f"template {source}: {exc}",
                        hint="this is a broken template shipped with mlci; please report it",
                    ) from exc
            out[output_name(relative)] = text
    return out
