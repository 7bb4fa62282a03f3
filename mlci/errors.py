"""The errors mlci raises, and the exit codes they map to.

Every error a user can act on is an ``MlciError``: it carries a message (what
went wrong, and where) and a hint (how to fix it). The CLI prints both without
a traceback and exits with ``ExitCode.ERROR``. Anything else that escapes is a
bug: the CLI shows its traceback and exits with ``ExitCode.INTERNAL``.

    MlciError
    ├── ConfigError       mlci.yaml is missing or invalid
    ├── ScaffoldError     mlci init cannot write the project
    ├── GitError          a git command failed or the repository is not usable
    ├── ParamsError       a --set override does not fit the params file
    ├── MetricsError      a metrics file is missing, malformed or holds a non-number
    ├── TrackingError     the MLflow tracking store cannot be reached or refused a call
    └── TrainingError     the training command failed or did not write its outputs
        └── TrainingInterrupted   Ctrl-C or SIGTERM ended the training (exit 130)
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    GATE_FAILED = 1
    USAGE = 2
    ERROR = 3
    INTERNAL = 4
    INTERRUPTED = 130


class MlciError(Exception):
    """An error the user can fix: ``message`` says what and where, ``hint`` how."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class ConfigError(MlciError):
    pass


class ScaffoldError(MlciError):
    pass


class GitError(MlciError):
    pass


class ParamsError(MlciError):
    pass


class MetricsError(MlciError):
    pass


class TrackingError(MlciError):
    pass


class TrainingError(MlciError):
    pass


class TrainingInterrupted(TrainingError):
    exit_code = ExitCode.INTERRUPTED
