"""One invocation's world, resolved once and passed down.

A command makes one ``Context``: where it runs, its environment, where it logs,
the config it was pointed at. The use cases take it instead of a config path,
a working folder, an environment and a log each, and ask it for the project's
config and tracking store, which it resolves the first time and keeps: a
promotion opens the tracking store once, not once per layer it crosses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlci.config import Config
    from mlci.project import Resolved
    from mlci.tracking import Tracking


def _quiet(message: str) -> None:
    """A log that says nothing (a context made for a library call)."""


@dataclass
class Context:
    cwd: Path
    environ: Mapping[str, str]
    log: Callable[[str], None] = _quiet
    config_path: Path | None = None  # --config; None: mlci.yaml found from ``cwd``
    _config: Config | None = field(default=None, repr=False)
    _trackings: dict[tuple[Any, ...], Tracking] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> Config:
        """The project's mlci.yaml, loaded (and validated) once."""
        if self._config is None:
            from mlci import config as cfg

            self._config = cfg.load_for(self.config_path, self.cwd)
        return self._config

    def resolve(self, overrides: Sequence[str] = ()) -> Resolved:
        """The project's inputs (its params, with ``overrides``, and their fingerprint),
        from the config loaded once."""
        from mlci import project

        return project.resolve_config(self.config, overrides, warn=self.log)

    def tracking(self, config: Config | None = None) -> Tracking:
        """The project's MLflow store, opened once per store: ``config`` where a use case
        judges by another file's policy (the same project, so the same store)."""
        from mlci import config as cfg
        from mlci import project

        config = config or self.config
        key = (
            cfg.effective_tracking_uri(config, self.environ),
            config.experiment,
            str(config.root),
            config.tracking.timeout,
        )
        if key not in self._trackings:
            self._trackings[key] = project.make_tracking(config, self.environ)
        return self._trackings[key]

    def with_environ(self, environ: Mapping[str, str]) -> Context:
        """The same invocation with another environment (a token added for one call): its
        stores are opened anew, with those credentials."""
        return replace(self, environ=environ, _trackings={})

    def at(self, config_path: Path | None, cwd: Path) -> Context:
        """The same invocation for another project folder (a demo's, a test's)."""
        return replace(self, config_path=config_path, cwd=cwd, _config=None, _trackings={})
