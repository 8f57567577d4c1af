"""The gRPC service definition: Triton's own generated modules, as tritonclient ships them.

KServe v2's gRPC protocol is `inference.GRPCInferenceService` in Triton's `grpc_service.proto`
and `model_config.proto` (github.com/triton-inference-server/common, protobuf/); tritonclient
ships the modules generated from them as `tritonclient.grpc.service_pb2`, `service_pb2_grpc` and
`model_config_pb2`. mlc imports those rather than vendoring its own copy: both would register the
same `inference.*` messages in protobuf's default descriptor pool, and any process that also
imports tritonclient.grpc (a client, a test, perf tooling) would fail with a duplicate-symbol
error as soon as the two copies differed by one field. Importing them needs tritonclient's grpc
extra (its `tritonclient.grpc` package imports grpcio first), so all of it is mlc's `grpc`
extra, imported only when `mlc serve --grpc-port` is asked for. The standard health service
comes from grpcio-health-checking.
"""

from __future__ import annotations

from typing import Any

from mlc.errors import MissingDependencyError

_PACKAGES = {"grpc": "grpcio", "grpc_health": "grpcio-health-checking"}

try:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc
except (ImportError, RuntimeError) as exc:  # tritonclient.grpc raises RuntimeError without grpcio
    top = (getattr(exc, "name", None) or "tritonclient").split(".")[0]
    raise MissingDependencyError(_PACKAGES.get(top, "tritonclient[grpc]"), "grpc",
                                 "serving over gRPC (--grpc-port)") from exc

SERVICE_NAME = "inference.GRPCInferenceService"

# The generated modules have no type stubs: their messages are Any to a type checker.
pb: Any = service_pb2
pb_grpc: Any = service_pb2_grpc

__all__ = ["SERVICE_NAME", "grpc", "health", "health_pb2", "health_pb2_grpc", "pb", "pb_grpc"]
