"""The gRPC layer: KServe v2's GRPCInferenceService over the same data plane as the HTTP app.

Each RPC is one data-plane call, its document turned into the reply message; ModelInfer goes
through DataPlane.infer_with with grpc_codec, so batching, the traffic split, the row limit and
the per-version metrics are the ones REST requests get. Failures become a gRPC status through
serve/errors.py's one mapping, with the message REST would send. Methods mlc does not implement
(shared memory, repository load/unload, tracing, streaming) answer UNIMPLEMENTED, as the
generated base class does.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf import json_format

from mlc.serve.dataplane import DataPlane
from mlc.serve.errors import grpc_status
from mlc.serve.grpc_codec import decode_infer, encode_infer
from mlc.serve.grpc_proto import grpc, pb, pb_grpc
from mlc.serve.metrics import MetricsBoard
from mlc.serve.security import OPEN_GRPC_METHODS, ApiKey

Reply = TypeVar("Reply")
Method = Callable[[Any, Any, Any], Awaitable[Reply]]


def _rpc(method: Method[Reply]) -> Method[Reply]:
    """Answer the method's reply, or the mapped status and message of what it raised; count either."""

    @functools.wraps(method)
    async def answer(self: InferenceServicer, request: Any, context: Any) -> Reply:
        try:
            reply = await method(self, request, context)
        except Exception as exc:
            code, message = grpc_status(exc)
            self.board.grpc_response(code)
            await context.abort(grpc.StatusCode[code], message)
            raise  # abort raises; this line only tells the type checker so
        self.board.grpc_response("OK")
        return reply

    return answer


def _version(value: str) -> str | None:
    """The protocol's "no version" is the empty string."""
    return value or None


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """inference.GRPCInferenceService over one worker's data plane."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.plane = dataplane
        self.board = dataplane.board

    @_rpc
    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    @_rpc
    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.plane.ready)

    @_rpc
    async def ModelReady(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=self.plane.model_ready(request.name, _version(request.version)))

    @_rpc
    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(**self.plane.server_metadata())

    @_rpc
    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        document = self.plane.model_metadata(request.name, _version(request.version))
        return json_format.ParseDict(document, pb.ModelMetadataResponse())

    @_rpc
    async def ModelConfig(self, request: Any, context: Any) -> Any:
        document = self.plane.model_config(request.name, _version(request.version))
        return json_format.ParseDict({"config": document}, pb.ModelConfigResponse())

    @_rpc
    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        document = self.plane.model_stats(request.name or None, _version(request.version))
        return json_format.ParseDict(document, pb.ModelStatisticsResponse())

    @_rpc
    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        return json_format.ParseDict({"models": self.plane.repository_index()}, pb.RepositoryIndexResponse())

    @_rpc
    async def ModelInfer(self, request: Any, context: Any) -> Any:
        arrived = time.perf_counter_ns()
        plane = self.plane
        plane.active_requests += 1
        try:
            return await plane.infer_with(
                request.model_name, _version(request.model_version), lambda: decode_infer(request),
                lambda model, decoded, outputs: encode_infer(request.model_name, str(model.version), outputs, decoded),
                arrived)
        finally:
            plane.active_requests -= 1


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Every method but the health checks needs `authorization: Bearer KEY` metadata."""

    def __init__(self, key: ApiKey, board: MetricsBoard) -> None:
        self.key = key
        self.board = board

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if details.method in OPEN_GRPC_METHODS or handler is None:
            return handler
        authorization = next((value for key, value in details.invocation_metadata or ()
                              if key == "authorization"), None)
        try:
            self.key.check(authorization if isinstance(authorization, str) else None)
        except Exception as exc:
            code, message = grpc_status(exc)
            self.board.grpc_response(code)
            return _refusal(handler, grpc.StatusCode[code], message)
        return handler


def _refusal(handler: Any, code: Any, message: str) -> Any:
    """A handler of the same kind (unary or streaming each way) as `handler` that only aborts."""

    async def refuse(_request: Any, context: Any) -> None:
        await context.abort(code, message)

    async def refuse_stream(_request: Any, context: Any) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises; this makes the function an async generator

    streaming_reply = handler.response_streaming
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, streaming_reply)]
    return factory(refuse_stream if streaming_reply else refuse,
                   request_deserializer=handler.request_deserializer,
                   response_serializer=handler.response_serializer)
