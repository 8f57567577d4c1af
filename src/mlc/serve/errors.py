"""HTTP status and body for every failure, decided in this one place.

mlc's errors carry their status (InvalidInputError 400, NotFoundError 404, QueueFullError
503, ...); the two the HTTP layer adds itself are defined here. Anything else is a bug or a
model that raised: 500 for that request only, with the exception named so it can be found.
"""

from __future__ import annotations

from mlc.errors import MlcError


class PayloadTooLargeError(MlcError):
    """The body is over the server's size limit; refused before (or while) it is read."""

    http_status = 413


class MethodNotAllowedError(MlcError):
    """A route asked with a method it does not take; the reply's Allow header names the one it does."""

    http_status = 405

    def __init__(self, message: str, hint: str | None = None, *, allow: str) -> None:
        super().__init__(message, hint)
        self.allow = allow


def error_status(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, the message for {"error": ...}) of any exception."""
    if isinstance(exc, MlcError):
        return exc.http_status, f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
    return 500, f"internal error: {type(exc).__name__}: {exc}"
