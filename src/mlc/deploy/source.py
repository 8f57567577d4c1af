"""What a package is built from: one version as `mlc serve` would serve it, and what its sizing rests on.

Every format packages the same facts, read once here: the verified artifact, its inputs and
outputs as ONNX Runtime loads the file (not as the registry's signature claims: Triton checks
the file), the serving layout the serve plan resolves (flags, else the version's profile, else
the target's defaults: one place decides, serve/plan.py), the runtime plan's engines, and the
profile's sizing with what it was measured on. A figure that was only a lower bound (the load
generator, not the server, was the limit) is marked so, and no format derives an autoscaling
target from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.errors import UsageError
from mlc.registry import ModelVersion, Registry
from mlc.serve.layout import ServingLayout
from mlc.targets import HardwareTarget


@dataclass(frozen=True)
class Tensor:
    """One input or output of the ONNX file as ONNX Runtime reports it."""

    name: str
    onnx_type: str  # "tensor(float)", ...
    shape: tuple[int | None, ...]  # None where free (the batch, or a symbolic dim)


@dataclass(frozen=True)
class Sizing:
    """What `mlc profile` measured for one replica of the layout, and on what."""

    measured: bool  # False: no usable profile; every figure below is the target's default
    cores: float  # CPU per replica (measured at the planned load, with headroom)
    memory_gib: float  # peak RSS per replica, with headroom
    capacity_rps: float | None = None  # per replica at p99 <= SLO
    usable_rps: float | None = None  # capacity after headroom: what an autoscaler should aim at
    replicas: int = 1
    rate_rps: float | None = None  # the rate the replicas were sized for
    slo_p99_ms: float | None = None
    mode: str | None = None  # "inprocess" (model + batcher, no HTTP) or "http" (mlc serve under locust)
    lower_bound: bool = False  # the load generator was the limit: capacity is at least this
    extrapolated: bool = False  # sized for more cores than were measured
    measured_on: dict[str, Any] = field(default_factory=dict)  # the report's hardware summary
    report: str | None = None  # the profile report's file name among the version's reports
    created_at: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def autoscaling_rps(self) -> float | None:
        """The per-replica rate an autoscaler may aim at; None when the figure cannot carry one."""
        if not self.measured or self.lower_bound or not self.usable_rps:
            return None
        return self.usable_rps


@dataclass(frozen=True)
class PackageSource:
    mv: ModelVersion  # the version served (an ONNX version; a framework version's optimized child)
    artifact: Path  # verified against its digest
    reports_dir: Path  # the version's report files (its optimize and profile reports)
    target: HardwareTarget
    layout: ServingLayout
    layout_from: str  # "profile of NAME:V", "target cpu-2", ...
    engines: tuple[str, ...]  # the runtime plan's engines, in routing order ("ort", "mlc-trees")
    runtime: dict[str, Any] | None  # the recorded runtime plan, as JSON
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    sizing: Sizing
    notes: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return self.mv.ref


def read_source(registry: Registry, ref: str, target: HardwareTarget) -> PackageSource:
    """The version `mlc serve REF --target T` would serve, with everything a package needs."""
    from mlc.config import load_settings
    from mlc.serve.plan import ServeOptions, build_plan

    plan = build_plan(ServeOptions(refs=(ref,), target=target.name), registry, target, load_settings())
    served = plan.versions[0]
    mv = registry.get(served.ref)
    artifact = registry.artifact_path(mv)
    inputs, outputs = _ort_io(artifact)
    runtime = served.runtime.to_dict() if served.runtime else None
    engines = tuple(e.engine for e in served.runtime.engines) if served.runtime else ("ort",)
    notes = tuple(n for n in served.note.split("; ") if n)
    return PackageSource(mv=mv, artifact=artifact, reports_dir=registry.version_dir(mv), target=target,
                         layout=served.layout, layout_from=served.layout_from, engines=engines, runtime=runtime,
                         inputs=inputs, outputs=outputs, sizing=_sizing(registry, mv, target), notes=notes)


def recorded_latency_us(mv: ModelVersion) -> dict[int, float]:
    """The version's median latency by batch size, as `mlc optimize` measured its plan."""
    return {b: lat.median_us for b, lat in mv.metrics.latency_us.items()}


def _ort_io(artifact: Path) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only the I/O is read
    session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])

    def tensors(args: Any) -> tuple[Tensor, ...]:
        return tuple(Tensor(a.name, a.type, tuple(d if isinstance(d, int) else None for d in a.shape)) for a in args)

    return tensors(session.get_inputs()), tensors(session.get_outputs())


def _sizing(registry: Registry, mv: ModelVersion, target: HardwareTarget) -> Sizing:
    """The recorded profile's sizing when it was measured for this target, else the target's own
    cores and memory, marked as not measured."""
    defaults = Sizing(measured=False, cores=float(target.cores), memory_gib=float(target.memory_gib))
    profile = mv.metrics.profile
    if profile is None or not profile.recommendation or profile.target != target.name or not profile.report:
        return defaults
    path = registry.version_dir(mv) / profile.report
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"the profile report {path} of {mv.ref} cannot be read ({exc})",
                         f"profile it again: mlc profile {mv.ref} --target {target.name}") from exc
    body = report.get("body") or {}
    rec = body.get("recommendation") or {}
    measured = json.dumps(rec.get("measured_config"), sort_keys=True)
    chosen = [c for c in body.get("configs") or [] if json.dumps(c.get("config"), sort_keys=True) == measured]
    points = [p for c in chosen for p in c.get("points") or []]
    # A limited point says nothing about the server; with no clean miss above, the capacity is
    # what the generator could send, so the server's may be higher.
    limited = any(p.get("loadgen_limited") for p in points)
    missed = any(not p.get("loadgen_limited") and not p.get("meets_slo", True) for p in points)
    return Sizing(
        measured=True, cores=float(rec.get("cores_per_replica") or target.cores),
        memory_gib=float(rec.get("memory_gib_per_replica") or target.memory_gib),
        capacity_rps=rec.get("capacity_rps"), usable_rps=rec.get("usable_rps"),
        replicas=int(rec.get("replicas") or 1), rate_rps=rec.get("rate_rps"), slo_p99_ms=profile.slo_p99_ms,
        mode=profile.mode, lower_bound=limited and not missed, extrapolated=bool(rec.get("extrapolated")),
        measured_on=dict(report.get("hardware") or {}), report=profile.report, created_at=profile.created_at,
        notes=tuple(rec.get("notes") or ()),
    )


def sizing_readme(source: PackageSource, title: str, body: str) -> str:
    """The README every package carries: what it holds, and what its sizing was measured on."""
    s, lay = source.sizing, source.layout
    lines = [f"# {title}", "", body.strip(), "",
             f"Model: `{source.ref}` (sha256 `{source.mv.digest}`), {source.mv.framework} {source.mv.format}, "
             f"target `{source.target.name}` ({source.target.device}, {source.target.cores} cores).", "",
             "## Sizing and what it was measured on", "",
             f"- Layout: max batch {lay.max_batch_size}, queue delay {lay.max_queue_delay_us} us, "
             f"preferred batches {list(lay.preferred_batch_sizes) or 'none'}, {lay.workers} worker(s) x "
             f"{lay.instances} instance(s) x {lay.threads} thread(s); from {source.layout_from}."]
    if not s.measured:
        lines += [f"- Not measured: no profile of {source.ref} for target {source.target.name} is recorded, so "
                  f"the figures are the target's defaults ({s.cores:g} cores, {s.memory_gib:g} GiB) and no "
                  "autoscaling target is set. Measure with: "
                  f"`mlc profile {source.ref} --target {source.target.name}`, then package again."]
    else:
        hw = s.measured_on
        where = (f"{hw.get('cpu_model', 'unknown CPU')}, {hw.get('usable_cores', '?')} usable cores, "
                 f"{hw.get('memory_gib', '?')} GiB, {hw.get('platform', '')}").rstrip(", ")
        how = ("in-process (the model and its batcher, without HTTP: the server adds its own cost)"
               if s.mode == "inprocess" else "over HTTP against `mlc serve` with locust")
        capacity = f"{s.capacity_rps:.0f} req/s per replica" if s.capacity_rps else "no capacity"
        lines += [f"- Measured by `mlc profile` on {s.created_at or 'an unrecorded date'}, {how}, on: {where}.",
                  f"- Capacity: {'at least ' if s.lower_bound else ''}{capacity} at p99 <= {s.slo_p99_ms} ms"
                  + ("; only a lower bound: the load generator, not the server, was the limit" if s.lower_bound
                     else "") + (f"; {s.usable_rps:.0f} req/s planned per replica after headroom"
                                 if s.usable_rps else "") + ".",
                  f"- Per replica: {s.cores:g} cores, {s.memory_gib:g} GiB (measured, with headroom); "
                  f"{s.replicas} replica(s) for {s.rate_rps or 'one replica of'} req/s.",
                  f"- Report: `{s.report}` among the version's reports (`mlc models show {source.ref}`)."]
        if s.extrapolated:
            lines.append(f"- Extrapolated: the target has more cores than the machine measured; the "
                         f"capacity for {source.target.cores} cores is derived, not measured.")
        lines.append("- Autoscaling target: " + (f"{s.autoscaling_rps:.0f} req/s per replica." if s.autoscaling_rps
                                                 else "none (it would rest on a lower bound)."))
    lines += [f"- Note: {n}" for n in (*source.notes, *s.notes)]
    return "\n".join(lines) + "\n"
