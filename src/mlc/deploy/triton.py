"""`mlc package --format triton`: a Triton Inference Server model repository for one version.

The layout Model Analyzer writes: `<name>/config.pbtxt` and `<name>/<version>/model.onnx`. The
config's batching (max_batch_size, preferred sizes, queue delay), instance count and ONNX Runtime
threads are the layout `mlc serve` would use (the version's profile, else the target's defaults,
said in a comment); its inputs and outputs are the ONNX file's as ONNX Runtime loads it.

Where the version's runtime plan routes batches to mlc's tree kernel, Triton's ONNX Runtime
backend cannot run it: the export is then a Python-backend model running mlc's Scorer with the
same plan, unless `--engine onnx` asks for the plain ONNX (with a note of the speed given up).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mlc.deploy._formats import PackageOptions, PackageResult, register_format
from mlc.deploy.source import PackageSource, Tensor, recorded_latency_us, sizing_readme
from mlc.errors import UsageError
from mlc.files import atomic_write

# ONNX Runtime's tensor types and Triton's data types (model_config.proto's DataType).
TRITON_TYPES = {
    "tensor(bool)": "TYPE_BOOL", "tensor(uint8)": "TYPE_UINT8", "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32", "tensor(uint64)": "TYPE_UINT64", "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16", "tensor(int32)": "TYPE_INT32", "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16", "tensor(float)": "TYPE_FP32", "tensor(double)": "TYPE_FP64",
    "tensor(string)": "TYPE_STRING", "tensor(bfloat16)": "TYPE_BF16",
}
# Engines Triton's ONNX Runtime backend runs; any other needs the Python backend.
_ORT_ENGINES = {"ort"}


def _batched(source: PackageSource) -> bool:
    """Triton batches along a first dim that every input and output leaves free."""
    return all(t.shape and t.shape[0] is None for t in (*source.inputs, *source.outputs))


def _tensor_block(t: Tensor, batched: bool) -> str:
    if t.onnx_type not in TRITON_TYPES:
        raise UsageError(f"tensor {t.name!r} has type {t.onnx_type}, which Triton's model config cannot declare")
    dims = list(t.shape[1:] if batched else t.shape)
    fields = [f'name: "{t.name}"', f"data_type: {TRITON_TYPES[t.onnx_type]}"]
    if batched and not dims:
        # A [batch] tensor: Triton needs at least one dim, so [1] reshaped to the model's [].
        fields += ["dims: [ 1 ]", "reshape: { shape: [ ] }"]
    else:
        fields.append(f"dims: [ {', '.join(str(-1 if d is None else d) for d in dims)} ]")
    return "  {\n" + "".join(f"    {f}\n" for f in fields) + "  }"


def config_pbtxt(source: PackageSource, *, python_backend: bool) -> str:
    """The model's config.pbtxt, in protobuf text format (checked against model_config_pb2 in tests)."""
    lay, batched = source.layout, _batched(source)
    measured = source.sizing.measured
    kind = "KIND_GPU" if source.target.device == "gpu" and not python_backend else "KIND_CPU"
    lines = [f"# Written by mlc package from {source.ref} (sha256 {source.mv.digest}) for target {source.target.name}.",
             f"# Batching and instances: {source.layout_from}"
             + ("." if measured else " (no profile recorded for this target: the target's defaults)."),
             f'name: "{source.mv.name}"']
    lines.append('backend: "python"' if python_backend else 'platform: "onnxruntime_onnx"')
    lines.append(f"max_batch_size: {lay.max_batch_size if batched else 0}")
    lines.append("input [\n" + ",\n".join(_tensor_block(t, batched) for t in source.inputs) + "\n]")
    lines.append("output [\n" + ",\n".join(_tensor_block(t, batched) for t in source.outputs) + "\n]")
    if batched:
        preferred = f"  preferred_batch_size: [ {', '.join(map(str, lay.preferred_batch_sizes))} ]\n" \
            if lay.preferred_batch_sizes else ""
        lines.append("dynamic_batching {\n" + preferred
                     + f"  max_queue_delay_microseconds: {lay.max_queue_delay_us}\n}}")
    # Triton's instances share the replica's cores as mlc's workers x instances do.
    lines.append(f"instance_group [\n  {{\n    count: {lay.workers * lay.instances}\n    kind: {kind}\n  }}\n]")
    params = ({"mlc_threads": lay.threads} if python_backend
              else {"intra_op_thread_count": lay.threads, "inter_op_thread_count": 1})
    for key, value in params.items():
        lines.append(f'parameters {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}')
    return "\n".join(lines) + "\n"


def _speed_given_up(source: PackageSource) -> str:
    """What plain ONNX Runtime costs against the version's plan, from its own optimize report."""
    plan = recorded_latency_us(source.mv)
    ort_best: dict[int, float] = {}
    try:
        body = json.loads((source.reports_dir / "report.json").read_text()).get("body") or {}
    except (OSError, ValueError):
        body = {}
    if body:
        for cand in body.get("candidates") or []:
            if cand.get("engine") != "ort" or not (cand.get("parity") or {}).get("passed"):
                continue
            for batch, lat in (cand.get("latency") or {}).items():
                ort_best[int(batch)] = min(ort_best.get(int(batch), float("inf")), float(lat["median_us"]))
    parts = [f"batch {b}: {lat:.0f} us with mlc's plan, {ort_best[b]:.0f} us on plain ONNX Runtime "
             f"({ort_best[b] / lat:.1f}x slower)" for b, lat in sorted(plan.items()) if b in ort_best]
    if parts:
        return "speed given up by --engine onnx, from the version's optimize report: " + "; ".join(parts)
    return ("--engine onnx gives up the speed of mlc's engines; the version records no plain ONNX Runtime "
            "latency to say how much (see its optimize report)")


def build(source: PackageSource, dest: Path, options: PackageOptions) -> PackageResult:
    if options.engine not in (None, "onnx"):
        raise UsageError(f"--engine {options.engine!r} is not an engine Triton can be given", "use --engine onnx")
    native = [e for e in source.engines if e not in _ORT_ENGINES]
    python_backend = bool(native) and options.engine != "onnx"
    notes: list[str] = []
    if native and not python_backend:
        notes.append(_speed_given_up(source))
    elif python_backend:
        notes.append(f"the runtime plan uses {', '.join(native)}, which Triton's ONNX Runtime backend lacks: "
                     "exported as a Python-backend model running mlc's Scorer (needs mlc installed in Triton's "
                     "Python environment); --engine onnx exports the plain ONNX instead")
    model_dir = dest / source.mv.name
    version_dir = model_dir / str(source.mv.version)
    version_dir.mkdir(parents=True)
    files: list[Path] = []

    def write(path: Path, data: bytes) -> None:
        atomic_write(path, data)
        files.append(path.relative_to(dest))

    shutil.copyfile(source.artifact, version_dir / "model.onnx")
    files.append((version_dir / "model.onnx").relative_to(dest))
    write(model_dir / "config.pbtxt", config_pbtxt(source, python_backend=python_backend).encode())
    if python_backend:
        template = Path(__file__).parent / "templates" / "triton_model.py"
        write(version_dir / "model.py", template.read_bytes())
        plan: dict[str, Any] = {"ref": source.ref, "digest": source.mv.digest, "target": source.target.name,
                                "runtime": source.runtime, "threads": source.layout.threads,
                                "input": source.inputs[0].name, "outputs": [t.name for t in source.outputs]}
        write(version_dir / "mlc_plan.json", json.dumps(plan, indent=2).encode())
    body = (f"A Triton model repository for `{source.ref}`: point `tritonserver --model-repository` at this "
            f"folder. The model is `{source.mv.name}`, version {source.mv.version}, "
            + ("served by Triton's Python backend running mlc's Scorer (`model.py`; mlc and its dependencies "
               "must be installed in Triton's Python environment; tested with the tritonserver 2.51 that "
               "nvidia-pytriton 0.7 bundles, whose Python-backend stub needs numpy<2 there)." if python_backend
               else "served by Triton's ONNX Runtime backend (`platform: onnxruntime_onnx`).")
            + " Triton serves the same KServe v2 protocol over HTTP and gRPC on its own ports (8000 and 8001 by "
              "default, `--http-port`/`--grpc-port`): `config.pbtxt` has no place for a port."
            + "\n\n" + "\n".join(f"Note: {n}" for n in notes))
    write(dest / "README.md", sizing_readme(source, f"Triton repository: {source.ref}", body).encode())
    return PackageResult("triton", source.ref, dest, tuple(files), tuple(notes))


register_format("triton", build)
