"""What a server will serve, decided once in the parent process from flags, registry and profile.

The plan is plain frozen data so it crosses into spawned worker processes unchanged: every
worker serves the same versions with the same batcher settings and the same traffic split.
Resolving here, before any worker starts, turns every mistake (unknown model, a pickle that
was never compiled, shares that do not add up) into one CLI error instead of N crashing workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlc.config import Settings
from mlc.errors import UsageError
from mlc.registry import ModelVersion, Registry, parse_ref
from mlc.runtime.scorer import RuntimePlan
from mlc.serve.split import SplitSpec
from mlc.targets import HardwareTarget

# The batcher's defaults by device when neither a flag nor a recorded profile says otherwise:
# on a CPU small batches keep latency low; a GPU needs large ones to be worth a launch.
_DEFAULT_MAX_BATCH = {"cpu": 64, "gpu": 1024}
# No added wait by default, as in Triton: a batch runs as soon as an instance is free, and the
# requests that arrive while it runs form the next one, so batches grow with load on their own
# while a lone request pays nothing (a fixed delay cost ~0.5 ms per request at low load here).
_DEFAULT_DELAY_US = 0
_MIN_QUEUE_ROWS = 4096


@dataclass(frozen=True)
class BatchSettings:
    """How one version is served: its batcher, and the model instances and threads behind it."""

    max_batch_size: int
    max_queue_delay_us: int
    preferred_batch_sizes: tuple[int, ...]
    instances: int  # batcher workers, each running whole batches on the shared session
    threads: int  # ONNX Runtime intra-op (and tree kernel) threads per session
    max_queue_rows: int
    source: str  # where the numbers came from: "flags", "profile of NAME:V", "target cpu-2"


@dataclass(frozen=True)
class ServedVersion:
    name: str
    version: int
    batch: BatchSettings
    runtime: dict[str, Any] | None  # the runtime plan `mlc optimize` recorded, if any
    note: str = ""
    classes: tuple[Any, ...] | None = None  # the registered signature's class labels, for classification

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ServeOptions:
    """The flags of `mlc serve`; None means "from the model's profile, else the target"."""

    refs: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None
    target: str | None = None
    max_batch_size: int | None = None
    max_queue_delay_us: int | None = None
    max_queue_rows: int | None = None
    instances: int | None = None
    threads: int | None = None
    splits: tuple[SplitSpec, ...] = ()


@dataclass(frozen=True)
class ServePlan:
    versions: tuple[ServedVersion, ...]
    routes: dict[str, dict[int, float]]  # name -> {version: percent} for requests without a version
    splits: dict[str, dict[int, float]]  # the routes --split asked for: recorded once the server listens
    target: HardwareTarget
    workers: int
    max_request_bytes: int
    max_request_rows: int
    host: str
    port: int


def servable(registry: Registry, mv: ModelVersion) -> tuple[ModelVersion, str]:
    """mv itself when it is ONNX, else its latest optimized descendant; refuses a framework model."""
    if str(mv.format).lower() == "onnx":
        return mv, ""
    compiled = [v for v in registry.list(mv.name)
                if v.version > mv.version and str(v.format).lower() == "onnx"
                and (v.source or {}).get("parent") == mv.ref]
    if compiled:
        best = compiled[-1]
        return best, f"{mv.ref} is a {mv.framework} {mv.format} model: serving its optimized version {best.ref}"
    raise UsageError(
        f"{mv.ref} is a {mv.framework} {mv.format} model, and mlc serves ONNX versions only",
        f"compile it first with: mlc optimize {mv.ref}  (then serve the version it registers)")


def _recommendation(mv: ModelVersion, target: HardwareTarget) -> tuple[dict[str, Any], str]:
    """What `mlc profile` recommended for this version on this target; a profile of another target
    is not used (its layout would not fit these cores), and the note says so."""
    profile = (mv.metrics or {}).get("profile") or {}
    recommendation = profile.get("recommendation") or {}
    measured_on = profile.get("target")
    if recommendation and measured_on and measured_on != target.name:
        return {}, (f"its profile is for target {measured_on}, not {target.name}, and is not used "
                    f"(serve with --target {measured_on}, or run mlc profile {mv.ref} --target {target.name})")
    return recommendation, ""


@dataclass
class _Version:
    """A version on its way into the plan: settings resolve once every version (and so workers) is known."""

    mv: ModelVersion
    recommendation: dict[str, Any]
    notes: list[str]


def _batch_settings(version: _Version, options: ServeOptions, target: HardwareTarget, settings: Settings,
                    workers: int) -> BatchSettings:
    mv, profile = version.mv, version.recommendation
    max_batch = options.max_batch_size or profile.get("max_batch_size") or _DEFAULT_MAX_BATCH[target.device]
    delay = options.max_queue_delay_us
    if delay is None:
        delay = profile.get("max_queue_delay_us", _DEFAULT_DELAY_US)
    preferred = tuple(int(b) for b in profile.get("preferred_batch_sizes") or () if int(b) <= int(max_batch))
    # A request may carry up to max_request_rows rows; a smaller queue would refuse it forever.
    queue_rows = options.max_queue_rows or max(_MIN_QUEUE_ROWS, settings.max_request_rows, 4 * int(max_batch))
    instances = int(options.instances or profile.get("instances") or 1)
    # The profile's threads belong to its layout: only where workers and instances are also the
    # profile's. Otherwise the worker's share of the cores, within what `mlc optimize` chose.
    measured_layout = (options.instances is None and options.workers is None
                       and int(profile.get("workers") or 1) == workers)
    recorded = RuntimePlan.from_dict((mv.source or {}).get("runtime") or {}, target).session.intra_op_threads
    threads = int(options.threads or (measured_layout and profile.get("intra_op_threads"))
                  or min(recorded, max(1, target.cores // (workers * instances))))
    flags = (options.max_batch_size, options.max_queue_delay_us, options.instances, options.threads,
             options.workers)
    fallback = f"profile of {mv.ref}" if profile else f"target {target.name}"
    source = f"flags, else {fallback}" if any(flag is not None for flag in flags) else fallback
    if int(max_batch) < 1 or int(delay) < 0 or queue_rows < int(max_batch):
        raise UsageError(f"batcher settings for {mv.ref} are out of range: max_batch_size={max_batch}, "
                         f"max_queue_delay_us={delay}, max_queue_rows={queue_rows}",
                         "the queue must hold at least one full batch (max_queue_rows >= max_batch_size)")
    if workers * instances * threads > target.cores:
        version.notes.append(f"{workers} worker(s) x {instances} instance(s) x {threads} thread(s) is more "
                             f"threads than target {target.name}'s {target.cores} cores: they will contend")
    return BatchSettings(
        max_batch_size=int(max_batch), max_queue_delay_us=int(delay), preferred_batch_sizes=preferred,
        instances=instances, threads=threads, max_queue_rows=int(queue_rows), source=source)


class _Planner:
    def __init__(self, registry: Registry, target: HardwareTarget) -> None:
        self.registry, self.target = registry, target
        self.versions: dict[tuple[str, int], _Version] = {}
        self.routes: dict[str, dict[int, float]] = {}
        self.splits: dict[str, dict[int, float]] = {}

    def add(self, mv: ModelVersion) -> ModelVersion:
        served, note = servable(self.registry, mv)
        key = (served.name, served.version)
        if key not in self.versions:
            recommendation, profile_note = _recommendation(served, self.target)
            self.versions[key] = _Version(served, recommendation, [n for n in (note, profile_note) if n])
        return served

    def add_split(self, spec: SplitSpec) -> None:
        shares: dict[int, float] = {}
        for ref, percent in spec.shares:
            mv = self.registry.get(ref)
            if mv.name != spec.name:
                raise UsageError(f"--split {spec.name}=...: {ref} is a version of {mv.name}, not of {spec.name}")
            version = self.add(mv).version
            shares[version] = shares.get(version, 0.0) + percent
        self.routes[spec.name] = shares
        self.splits[spec.name] = shares

    def add_ref(self, ref: str) -> None:
        parsed = parse_ref(ref)
        if parsed.version is None and parsed.alias is None:
            if parsed.name in self.routes:
                return  # a --split for this name already decides its routing
            deployment = self.registry.active_deployment(parsed.name)
            if deployment:
                shares: dict[int, float] = {}
                for version, percent in deployment.items():
                    served = self.add(self.registry.get(f"{parsed.name}:{version}"))
                    shares[served.version] = shares.get(served.version, 0.0) + percent
                self.routes[parsed.name] = shares
                return
        served = self.add(self.registry.get(ref))
        # The first version named for a model answers requests that name no version.
        self.routes.setdefault(served.name, {served.version: 100.0})


def record_splits(plan: ServePlan, registry: Registry) -> None:
    """Record the --split routes as each model's deployment: called once the server listens, so a
    server that never started leaves no deployment behind (one would hold its versions from deletion)."""
    for name, shares in plan.splits.items():
        registry.record_deployment(name, shares)


def build_plan(options: ServeOptions, registry: Registry, target: HardwareTarget, settings: Settings) -> ServePlan:
    """Resolve references, splits and batcher settings (nothing is recorded: see record_splits)."""
    if not options.refs and not options.splits:
        raise UsageError("nothing to serve", "name at least one model: mlc serve NAME[:VERSION|@ALIAS]")
    for flag, value in (("workers", options.workers), ("instances", options.instances), ("threads", options.threads)):
        if value is not None and value < 1:
            raise UsageError(f"--{flag} must be at least 1, not {value}")
    planner = _Planner(registry, target)
    for spec in options.splits:
        planner.add_split(spec)
    for ref in options.refs:
        planner.add_ref(ref)
    pending = list(planner.versions.values())
    # Workers are processes that each serve every version: one number for the server, the
    # largest any served version's profile recommends unless --workers says otherwise.
    workers = options.workers or max(int(v.recommendation.get("workers") or 1) for v in pending)
    versions = []
    for v in pending:
        batch = _batch_settings(v, options, target, settings, workers)
        versions.append(ServedVersion(name=v.mv.name, version=v.mv.version, batch=batch,
                                      runtime=(v.mv.source or {}).get("runtime"), note="; ".join(v.notes),
                                      classes=v.mv.signature.classes))
    return ServePlan(
        versions=tuple(versions), routes=planner.routes, splits=planner.splits, target=target, workers=workers,
        max_request_bytes=settings.max_request_bytes, max_request_rows=settings.max_request_rows,
        host=options.host, port=options.port)
