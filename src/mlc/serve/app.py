"""The HTTP layer: a bare ASGI app that routes v2 paths to the data plane and frames the replies.

No web framework: the protocol has a dozen fixed routes, and a framework's routing, request
objects and middleware cost more per request than the model does for a small tree ensemble
(see benchmarks/results/serve_stack.md for the measurement that chose this stack). The body
is read here under the size limit, refused by Content-Length before any of it is read and
again while it streams, so an oversized request never sits in memory. With an API key every
route but the health checks needs `Authorization: Bearer KEY`, checked before the body is read.
The worker, not the app, closes the data plane at shutdown: it serves gRPC too (workers.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from mlc.errors import InvalidInputError, NotFoundError
from mlc.serve.codec import dumps
from mlc.serve.dataplane import DataPlane
from mlc.serve.errors import MethodNotAllowedError, PayloadTooLargeError, UnauthenticatedError, error_status
from mlc.serve.security import OPEN_HTTP_PATHS, ApiKey

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_JSON = b"application/json"
_BINARY = b"application/octet-stream"
_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


class _ClientGone(Exception):
    """The client disconnected before its body arrived; there is no one to answer."""


class Reply:
    __slots__ = ("body", "content_type", "extra", "status")

    def __init__(self, body: bytes, status: int = 200, content_type: bytes = _JSON, extra: Headers | None = None):
        self.body, self.status, self.content_type, self.extra = body, status, content_type, extra or []


def _json(document: Any, status: int = 200) -> Reply:
    return Reply(dumps(document), status)


class V2App:
    """ASGI application for the KServe v2 protocol, Triton's extensions and /metrics."""

    def __init__(self, dataplane: DataPlane, max_request_bytes: int, api_key: ApiKey | None = None) -> None:
        self.dataplane = dataplane
        self.max_request_bytes = max_request_bytes
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrived = time.perf_counter_ns()
        plane = self.dataplane
        plane.active_requests += 1
        try:
            try:
                reply = await self._route(scope, receive, arrived)
            except _ClientGone:
                return
            except Exception as exc:
                status, message = error_status(exc)
                reply = _json({"error": message}, status)
                if isinstance(exc, MethodNotAllowedError):
                    reply.extra.append((b"allow", exc.allow.encode()))
                elif isinstance(exc, UnauthenticatedError):
                    reply.extra.append((b"www-authenticate", b"Bearer"))
            plane.board.response(reply.status)
            headers = [(b"content-type", reply.content_type), (b"content-length", str(len(reply.body)).encode()),
                       *reply.extra]
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            # A HEAD reply has the GET reply's headers, Content-Length included, and no body.
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else reply.body})
        finally:
            plane.active_requests -= 1

    async def _route(self, scope: Scope, receive: Receive, arrived: int) -> Reply:
        method: str = scope["method"]
        path = scope["path"].strip("/")
        if self.api_key is not None and path not in OPEN_HTTP_PATHS:
            self.api_key.check(_header(scope, b"authorization"))
        parts = path.split("/")
        if parts[0] == "metrics" and len(parts) == 1:
            _allow(method, "GET")
            return Reply(self.dataplane.metrics_text().encode(), content_type=_PROMETHEUS)
        if parts[0] != "v2":
            raise NotFoundError(f"no route {scope['path']}", "the API lives under /v2 (KServe v2) and /metrics")
        rest = parts[1:]
        if not rest or rest == [""]:
            _allow(method, "GET")
            return _json(self.dataplane.server_metadata())
        if rest[0] == "health" and len(rest) == 2 and rest[1] in ("live", "ready"):
            _allow(method, "GET")
            ok = rest[1] == "live" or self.dataplane.ready
            return _json({rest[1]: ok}, 200 if ok else 400)
        if rest == ["repository", "index"]:
            _allow(method, "POST")
            return _json(self.dataplane.repository_index())
        if rest == ["models", "stats"]:
            _allow(method, "GET")
            return _json(self.dataplane.model_stats(None, None))
        if rest[0] == "models" and len(rest) >= 2:
            return await self._model_route(method, rest[1], rest[2:], scope, receive, arrived)
        raise NotFoundError(f"no route {scope['path']}")

    async def _model_route(self, method: str, name: str, rest: list[str], scope: Scope, receive: Receive,
                           arrived: int) -> Reply:
        version = None
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or not rest[1]:
                raise NotFoundError(f"no route {scope['path']}", "write /v2/models/NAME/versions/VERSION")
            version, rest = rest[1], rest[2:]
        action = rest[0] if len(rest) == 1 else "" if not rest else None
        plane = self.dataplane
        if action == "infer":
            _allow(method, "POST")
            body = await self._read_body(scope, receive)
            payload, json_length = await plane.infer(name, version, body, _json_length(scope), arrived)
            if json_length is None:
                return Reply(payload)
            return Reply(payload, content_type=_BINARY,
                         extra=[(b"inference-header-content-length", str(json_length).encode())])
        _allow(method, "GET")
        if action == "":
            return _json(plane.model_metadata(name, version))
        if action == "ready":
            ready = plane.model_ready(name, version)
            return _json({"name": name, "ready": ready}, 200 if ready else 400)
        if action == "config":
            return _json(plane.model_config(name, version))
        if action == "stats":
            return _json(plane.model_stats(name, version))
        raise NotFoundError(f"no route {scope['path']}")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_request_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise InvalidInputError(f"Content-Length {declared!r} is not a number")
            if int(declared) > limit:
                raise PayloadTooLargeError(f"the request body is {int(declared)} bytes; this server takes at most "
                                           f"{limit}", "send fewer rows per request, or raise MLC_MAX_REQUEST_BYTES")
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"the request body is over this server's limit of {limit} bytes",
                                           "send fewer rows per request, or raise MLC_MAX_REQUEST_BYTES")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _allow(method: str, allowed: str) -> None:
    """Refuse another method; HEAD goes wherever GET does (a probe may use it)."""
    if method != allowed and not (method == "HEAD" and allowed == "GET"):
        raise MethodNotAllowedError(f"this route takes {allowed}, not {method}",
                                    allow="GET, HEAD" if allowed == "GET" else allowed)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _json_length(scope: Scope) -> int | None:
    """Inference-Header-Content-Length: the JSON part's length when binary tensors follow it."""
    value = _header(scope, b"inference-header-content-length")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise InvalidInputError(f"Inference-Header-Content-Length {value!r} is not a non-negative integer")
    return int(value)
