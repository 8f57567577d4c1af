"""The exception hierarchy every user-facing failure goes through.

Each error carries the text a user reads (what went wrong, then what to do) and
the two numbers the outer layers need: the CLI's exit code and the server's HTTP
status. Mapping lives here, once, so the CLI and the server never disagree.
"""

from __future__ import annotations

# Exit codes, documented in `mlc --help`.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNSAFE = 3
EXIT_DRIFT = 4  # mlc monitor: drift found
EXIT_REFUSED = 5  # mlc promote, mlc run: a --require criterion failed
EXIT_ABORTED = 6  # mlc rollout: an --abort-if guard held and traffic went back


class MlcError(Exception):
    """Base of every error mlc raises on purpose."""

    exit_code = EXIT_ERROR
    http_status = 500

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(MlcError):
    """The user asked for something malformed (bad flag value, bad reference)."""

    exit_code = EXIT_USAGE
    http_status = 400


class UnsafeModelError(MlcError):
    """A pickle imports globals outside the allowlist; nothing of it was run."""

    exit_code = EXIT_UNSAFE
    http_status = 400

    def __init__(self, offenders: list[str], path: str, what: str = "the pickle imports globals") -> None:
        self.offenders = sorted(set(offenders))
        listed = ", ".join(self.offenders)
        super().__init__(
            f"refused to load {path}: {what} outside the allowlist: {listed}",
            "a pickle is a program; load it only if you trust its author, then pass --trust",
        )


class ModelFormatError(MlcError):
    """The file is empty, truncated, of an unknown format, or not a model."""

    http_status = 400


class MissingDependencyError(MlcError):
    """An optional dependency (an extra) is needed for this model or feature."""

    def __init__(self, package: str, extra: str, why: str) -> None:
        super().__init__(
            f"{why} needs the '{package}' package, which is not installed",
            f'install it with: pip install "mlc[{extra}]"',
        )


class NotFoundError(MlcError):
    """A model, version, alias, target or file does not exist."""

    http_status = 404


class ConflictError(MlcError):
    """The operation contradicts recorded state (e.g. deleting a deployed version)."""

    http_status = 409


class IntegrityError(MlcError):
    """A stored artifact no longer matches its recorded digest."""


class RecordError(MlcError):
    """A registry row does not read as the records this mlc knows (mlc.registry.records)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint or "the row was changed outside mlc; register the model again, "
                         "or restore the registry from a backup")


class UnsupportedModelError(MlcError):
    """No converter or pass handles this model or one of its steps."""

    http_status = 400


class ParityError(MlcError):
    """No candidate reproduced the original model's outputs within tolerance."""


class InvalidInputError(MlcError):
    """An inference request's tensors do not fit the model."""

    http_status = 400


class QueueFullError(MlcError):
    """The batcher's queue is full; the caller should retry later (HTTP 503)."""

    http_status = 503


class DeviceUnavailableError(MlcError):
    """The target asks for an execution provider this machine does not have."""
