"""HTTP status, gRPC status code and message for every failure, decided in this one place.

mlc's errors carry their HTTP status (InvalidInputError 400, NotFoundError 404, QueueFullError
503, ...); the ones the transports add themselves are defined here. Anything else is a bug or a
model that raised: 500 (INTERNAL) for that request only, with the exception named so it can be
found. gRPC answers with the same message as REST; its code is read off the HTTP status, so the
two transports cannot disagree about what kind of failure a request met.
"""

from __future__ import annotations

from mlc.errors import MlcError


class PayloadTooLargeError(MlcError):
    """The body is over the server's size limit; refused before (or while) it is read."""

    http_status = 413


class UnauthenticatedError(MlcError):
    """The server requires an API key and the request has none, or the wrong one."""

    http_status = 401


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


# The gRPC status code (a grpc.StatusCode member's name, so this module needs no grpc import) of
# each HTTP status mlc answers with; any other status is INTERNAL.
_GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "FAILED_PRECONDITION",
    413: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


def grpc_status(exc: BaseException) -> tuple[str, str]:
    """(gRPC status code name, message) of any exception: the message is the one REST sends."""
    status, message = error_status(exc)
    return _GRPC_CODES.get(status, "INTERNAL"), message
