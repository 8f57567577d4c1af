"""The gRPC server of one worker: grpc.aio on the worker's event loop, beside the HTTP server.

Running on the same asyncio loop as uvicorn is what lets a gRPC request share the worker's
batchers with HTTP requests (their futures belong to that loop). The port is bound by the
process that resolved it (workers.py holds it, so `--grpc-port 0` names one port for every
worker), and each worker's server binds it again with SO_REUSEPORT, as the HTTP server does.
Messages are bounded like HTTP bodies: grpc refuses a request larger than MLC_MAX_REQUEST_BYTES
with RESOURCE_EXHAUSTED before any of it reaches mlc.
"""

from __future__ import annotations

from mlc.errors import UsageError
from mlc.serve.dataplane import DataPlane
from mlc.serve.grpc_proto import SERVICE_NAME, grpc, health, health_pb2, health_pb2_grpc, pb_grpc
from mlc.serve.grpc_service import ApiKeyInterceptor, InferenceServicer
from mlc.serve.security import Security


def address(host: str, port: int) -> str:
    """host:port as gRPC spells it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """A started grpc.aio server with the inference and health services; stop() drains it."""

    def __init__(self, server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, port: int) -> None:
        self.server = server
        self.health = health_servicer
        self.port = port

    @classmethod
    async def start(cls, dataplane: DataPlane, host: str, port: int, security: Security,
                    max_message_bytes: int) -> GrpcServer:
        """Bind host:port and start serving; a port that cannot be bound is a UsageError."""
        interceptors = [ApiKeyInterceptor(security.api_key, dataplane.board)] if security.api_key else []
        server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1),
        ])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        where = address(host, port)
        try:
            if security.tls:
                bound = server.add_secure_port(where, grpc.ssl_server_credentials([security.tls_pair()]))
            else:
                bound = server.add_insecure_port(where)
        except RuntimeError as exc:
            bound, reason = 0, str(exc)
        else:
            reason = "grpc could not bind it"
        if not bound:
            raise UsageError(f"cannot serve gRPC on {where}: {reason}",
                             "pick another --grpc-port, or stop what is using this one")
        await server.start()
        for service in ("", SERVICE_NAME):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        return cls(server, health_servicer, bound)

    async def stop(self, grace_seconds: float) -> None:
        """Say NOT_SERVING, refuse new calls, and give calls in flight `grace_seconds` to finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_seconds)
