"""`mlc serve`: the KServe v2 HTTP server over the scoring core.

plan (what to serve) -> workers (processes sharing the port) -> app (HTTP routing and
framing) -> dataplane (the protocol's operations) -> codec (tensors on the wire); metrics
and exposition count and show what happened; split picks versions for a rollout.
"""

from mlc.serve.plan import ServeOptions, ServePlan, build_plan
from mlc.serve.workers import serve

__all__ = ["ServeOptions", "ServePlan", "build_plan", "serve"]
