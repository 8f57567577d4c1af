"""`mlc package --format kserve`: a KServe InferenceService (serving.kserve.io/v1beta1) for one version.

The predictor is the mlc container (`--format container` builds it) or, with `--runtime triton`,
Triton serving the exported model repository from a storage URI. Requests and limits come from
the profile's per-replica cores and memory (limits equal to requests: a replica gets what it was
measured with); min/max replicas and an autoscaling target (requests per second per replica,
`scaleMetric: rps`) from the measured capacity after headroom. No autoscaling target is derived
from a capacity that was only a lower bound, or from no profile at all: the replicas are then fixed,
and the manifest's annotations and README say why. Probes use the v2 health endpoints.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from mlc.deploy._formats import PackageOptions, PackageResult, register_format
from mlc.deploy.container import GRPC_PORT
from mlc.deploy.source import PackageSource, sizing_readme
from mlc.errors import UsageError
from mlc.files import atomic_write

API_VERSION = "serving.kserve.io/v1beta1"
# The port KServe routes to in a custom predictor container, and the one its Triton runtime listens on.
HTTP_PORT = 8080
_ANNOTATION = "mlc.dev"


def resource_name(name: str) -> str:
    """A Kubernetes object name (RFC 1123 label: lower case, digits, '-') for a model name."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].rstrip("-")
    if not label:
        raise UsageError(f"model name {name!r} leaves no valid Kubernetes name", "rename the model")
    return label if label[0].isalpha() else f"m-{label}"[:63]


def _resources(source: PackageSource) -> dict[str, Any]:
    cpu = f"{max(1, math.ceil(source.sizing.cores * 1000))}m"
    memory = f"{max(64, math.ceil(source.sizing.memory_gib * 1024))}Mi"
    amounts = {"cpu": cpu, "memory": memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _probes() -> dict[str, Any]:
    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": HTTP_PORT}, "periodSeconds": period, "failureThreshold": failures}

    return {"readinessProbe": {**probe("/v2/health/ready", 5, 3), "initialDelaySeconds": 2},
            "livenessProbe": {**probe("/v2/health/live", 10, 3), "initialDelaySeconds": 10}}


def manifest(source: PackageSource, options: PackageOptions) -> dict[str, Any]:
    sizing = source.sizing
    scaling: dict[str, Any]
    target = sizing.autoscaling_rps
    if target is not None:
        scaling = {"minReplicas": 1, "maxReplicas": max(1, sizing.replicas),
                   "scaleMetric": "rps", "scaleTarget": max(1, math.floor(target))}
        why = f"autoscaling on requests per second: {math.floor(target)} per replica (measured capacity after headroom)"
    else:
        scaling = {"minReplicas": sizing.replicas, "maxReplicas": sizing.replicas}
        why = ("fixed replicas, no autoscaling target: " + (
            "the measured capacity was only a lower bound" if sizing.measured else "no profile is recorded"))
    annotations = {f"{_ANNOTATION}/ref": source.ref, f"{_ANNOTATION}/sha256": source.mv.digest,
                   f"{_ANNOTATION}/target": source.target.name, f"{_ANNOTATION}/scaling": why,
                   f"{_ANNOTATION}/sizing": "measured by mlc profile" if sizing.measured else "target defaults"}
    predictor: dict[str, Any] = dict(scaling)
    if options.runtime == "triton":
        if not options.storage_uri:
            raise UsageError("--runtime triton needs --storage-uri: where the Triton repository is stored",
                             "export it with mlc package REF --format triton DIR, upload DIR, pass its URI")
        predictor["model"] = {"modelFormat": {"name": "triton"}, "protocolVersion": "v2",
                              "storageUri": options.storage_uri, "resources": _resources(source), **_probes()}
    elif options.runtime == "mlc":
        image = options.image or f"{resource_name(source.mv.name)}-mlc:{source.mv.version}"
        predictor["containers"] = [{
            "name": "kserve-container", "image": image,
            "ports": [{"containerPort": HTTP_PORT, "name": "http1", "protocol": "TCP"}],
            "resources": _resources(source), **_probes()}]
    else:
        raise UsageError(f"--runtime {options.runtime!r} is not a KServe runtime mlc packages for",
                         "use --runtime mlc (the mlc container) or --runtime triton")
    return {"apiVersion": API_VERSION, "kind": "InferenceService",
            "metadata": {"name": resource_name(source.mv.name), "annotations": annotations},
            "spec": {"predictor": predictor}}


def build(source: PackageSource, dest: Path, options: PackageOptions) -> PackageResult:
    import yaml

    doc = manifest(source, options)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write(dest / "inferenceservice.yaml", yaml.safe_dump(doc, sort_keys=False).encode())
    served = ("the mlc container (build it with `mlc package " + source.ref + " --format container DIR`, push "
              f"it as `{doc['spec']['predictor'].get('containers', [{}])[0].get('image', '')}`)"
              if options.runtime == "mlc" else f"Triton, from the model repository at `{options.storage_uri}`")
    body = (f"A KServe InferenceService ({API_VERSION}) for `{source.ref}`, served by {served}. Apply it with "
            "`kubectl apply -f inferenceservice.yaml`. Requests equal limits (each replica gets what it was "
            f"sized with); scaling: {doc['metadata']['annotations'][f'{_ANNOTATION}/scaling']}. "
            "KServe's serverless mode (Knative) routes exactly one port per predictor container, here the "
            "HTTP one; " + (
                f"the mlc container also serves KServe v2 gRPC on {GRPC_PORT} (`mlc serve --grpc-port`), reachable "
                "inside the cluster, or route it instead by declaring that port as the one port, named `h2c`."
                if options.runtime == "mlc" else
                "Triton also serves gRPC on 8001; to route it instead, declare that port as the one port, "
                "named `h2c`."))
    atomic_write(dest / "README.md", sizing_readme(source, f"KServe InferenceService: {source.ref}", body).encode())
    return PackageResult("kserve", source.ref, dest, (Path("inferenceservice.yaml"), Path("README.md")))


register_format("kserve", build)
