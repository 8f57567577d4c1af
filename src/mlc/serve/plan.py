"""What a server will serve, decided once in the parent process from flags, registry and profile.

The plan is plain frozen data so it crosses into spawned worker processes unchanged: every
worker serves the same versions with the same layouts (serve/layout.py: batcher, instances,
threads) and the same traffic split.
Resolving here, before any worker starts, turns every mistake (unknown model, a pickle that
was never compiled, shares that do not add up) into one CLI error instead of N crashing workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlc.config import Settings
from mlc.errors import UsageError
from mlc.monitor.collect import CollectSettings
from mlc.registry import ModelVersion, Registry, parse_ref
from mlc.registry.records import RecommendationRecord, RuntimeRecord
from mlc.runtime.scorer import RuntimePlan
from mlc.serve.layout import DEFAULT_DELAY_US, DEFAULT_MAX_BATCH, ServingLayout, share_of_cores
from mlc.serve.security import Security
from mlc.serve.shadow import ShadowSettings
from mlc.serve.split import SplitSpec
from mlc.targets import HardwareTarget


@dataclass(frozen=True)
class ServedVersion:
    name: str
    version: int
    layout: ServingLayout  # its batcher, instances and threads, and the server's workers
    layout_from: str  # where the layout's numbers came from: "flags, else profile of NAME:V", "target cpu-2"
    runtime: RuntimeRecord | None  # the runtime plan `mlc optimize` recorded, if any
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
    collect: CollectSettings | None = None  # --collect DIR and its settings
    grpc_port: int | None = None  # None: no gRPC server; 0: a free port
    security: Security = field(default_factory=Security)
    poll_interval: float = 5.0  # seconds between polls of the registry (aliases, deployments); 0: on SIGHUP only
    shadow: str | None = None  # --shadow REF: a candidate that sampled requests are mirrored to
    shadow_sample: float = 1.0
    shadow_atol: float = 1e-5


@dataclass(frozen=True)
class ShadowPlan:
    """The candidate of --shadow, resolved: what it mirrors and how it is served beside the routes."""

    settings: ShadowSettings
    version: ServedVersion


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
    collect: CollectSettings | None = None  # None: nothing collected
    grpc_port: int | None = None  # None: REST only
    security: Security = field(default_factory=Security)
    # What a running server keeps following (serve/follow.py): name -> the alias its routes follow,
    # or None for its recorded deployment (mlc rollout); versions named NAME:V stay loaded whatever moves.
    follow: dict[str, str | None] = field(default_factory=dict)
    pinned: frozenset[tuple[str, int]] = frozenset()
    poll_interval: float = 5.0
    options: ServeOptions | None = None  # the flags, for the layout of a version loaded while serving
    shadow: ShadowPlan | None = None  # --shadow: never answers a request, only mirrors them


def _recommendation(mv: ModelVersion, target: HardwareTarget) -> tuple[RecommendationRecord | None, str]:
    """What `mlc profile` recommended for this version on this target; a profile of another target
    is not used (its layout would not fit these cores), and the note says so."""
    profile = mv.metrics.profile
    recommendation = profile.recommendation if profile else None
    measured_on = profile.target if profile else None
    if recommendation and measured_on and measured_on != target.name:
        return None, (f"its profile is for target {measured_on}, not {target.name}, and is not used "
                      f"(serve with --target {measured_on}, or run mlc profile {mv.ref} --target {target.name})")
    return recommendation, ""


@dataclass
class _Version:
    """A version on its way into the plan: settings resolve once every version (and so workers) is known."""

    mv: ModelVersion
    recommendation: RecommendationRecord | None
    notes: list[str]


def _layout(version: _Version, options: ServeOptions, target: HardwareTarget, settings: Settings,
            workers: int) -> tuple[ServingLayout, str]:
    """Each setting from its flag, else the version's profile, else the target's default; the layout's
    own rules (queue, preferred sizes, range) are ServingLayout's. Returns it and where it came from."""
    mv, profile = version.mv, version.recommendation or RecommendationRecord()
    max_batch = int(options.max_batch_size or profile.max_batch_size or DEFAULT_MAX_BATCH[target.device])
    delay = options.max_queue_delay_us
    if delay is None:
        delay = DEFAULT_DELAY_US if profile.max_queue_delay_us is None else profile.max_queue_delay_us
    instances = int(options.instances or profile.instances or 1)
    # The profile's threads belong to its layout: only where workers and instances are also the
    # profile's. Otherwise the worker's share of the cores, within what `mlc optimize` chose.
    measured_layout = (options.instances is None and options.workers is None
                       and (profile.workers or 1) == workers)
    recorded = RuntimePlan.from_record(mv.source.runtime, target).session.intra_op_threads
    threads = int(options.threads or (measured_layout and profile.intra_op_threads)
                  or share_of_cores(target.cores, workers, instances, at_most=recorded))
    flags = (options.max_batch_size, options.max_queue_delay_us, options.max_queue_rows, options.instances,
             options.threads, options.workers)
    fallback = f"profile of {mv.ref}" if version.recommendation else f"target {target.name}"
    source = f"flags, else {fallback}" if any(flag is not None for flag in flags) else fallback
    try:
        layout = ServingLayout.of(
            max_batch_size=max_batch, max_queue_delay_us=delay, instances=instances, threads=threads, workers=workers,
            preferred_batch_sizes=profile.preferred_batch_sizes, max_queue_rows=options.max_queue_rows,
            max_request_rows=settings.max_request_rows)
    except UsageError as exc:
        raise UsageError(f"{mv.ref}: {exc.message}", exc.hint) from None
    if note := layout.contention(target.name, target.cores):
        version.notes.append(note)
    return layout, source


class _Planner:
    def __init__(self, registry: Registry, target: HardwareTarget) -> None:
        self.registry, self.target = registry, target
        self.versions: dict[tuple[str, int], _Version] = {}
        self.routes: dict[str, dict[int, float]] = {}
        self.splits: dict[str, dict[int, float]] = {}
        self.follow: dict[str, str | None] = {}
        self.pinned: set[tuple[str, int]] = set()

    def add(self, mv: ModelVersion) -> ModelVersion:
        resolved = self.registry.served(mv)
        served = resolved.version
        key = (served.name, served.version)
        if key not in self.versions:
            recommendation, profile_note = _recommendation(served, self.target)
            self.versions[key] = _Version(served, recommendation, [n for n in (resolved.note, profile_note) if n])
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
        self.follow[spec.name] = None

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
                self.follow[parsed.name] = None
                return
        served = self.add(self.registry.get(ref))
        if parsed.version is not None:
            self.pinned.add((served.name, served.version))
        # The first version named for a model answers requests that name no version.
        if served.name not in self.routes:
            self.routes[served.name] = {served.version: 100.0}
            if parsed.version is None:  # NAME@ALIAS follows its alias; a bare NAME, a deployment recorded later
                self.follow[served.name] = parsed.alias


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
    workers = options.workers or max((v.recommendation and v.recommendation.workers) or 1 for v in pending)
    versions = []
    for v in pending:
        layout, layout_from = _layout(v, options, target, settings, workers)
        versions.append(ServedVersion(name=v.mv.name, version=v.mv.version, layout=layout, layout_from=layout_from,
                                      runtime=v.mv.source.runtime, note="; ".join(v.notes),
                                      classes=v.mv.signature.classes))
    shadow = None if options.shadow is None else _shadow(options, planner, target, settings, workers)
    return ServePlan(
        versions=tuple(versions), routes=planner.routes, splits=planner.splits, target=target, workers=workers,
        max_request_bytes=settings.max_request_bytes, max_request_rows=settings.max_request_rows,
        collect=options.collect,
        host=options.host, port=options.port, grpc_port=options.grpc_port, security=options.security,
        follow=planner.follow, pinned=frozenset(planner.pinned), poll_interval=options.poll_interval, options=options,
        shadow=shadow)


def _shadow(options: ServeOptions, planner: _Planner, target: HardwareTarget, settings: Settings,
            workers: int) -> ShadowPlan:
    """The --shadow candidate: the version its ref serves, a version of a served model that answers
    nothing here and reads the same rows, laid out as it would be served."""
    flag = f"--shadow {options.shadow}"
    resolved = planner.registry.served(str(options.shadow))
    mv = resolved.version
    if mv.name not in planner.routes:
        raise UsageError(f"{flag}: no model named {mv.name} is served here, so none of its requests can be mirrored",
                         f"serve it and shadow a candidate version of it: mlc serve {mv.name} --shadow {mv.ref}")
    if (mv.name, mv.version) in planner.versions:
        raise UsageError(f"{flag}: {mv.ref} already answers requests here",
                         "shadow a version that is not served: the candidate you are weighing")
    served = [v.mv for key, v in planner.versions.items() if key[0] == mv.name]
    widths = {v.signature.n_features for v in served}
    if mv.signature.n_features not in widths:
        raise UsageError(f"{flag}: {mv.ref} takes {mv.signature.n_features} features a row, "
                         f"{mv.name} as served takes {', '.join(map(str, sorted(widths, key=str)))}",
                         "a candidate must read the same rows as the version it shadows")
    recommendation, profile_note = _recommendation(mv, target)
    candidate = _Version(mv, recommendation, [n for n in (resolved.note, profile_note) if n])
    layout, layout_from = _layout(candidate, options, target, settings, workers)
    version = ServedVersion(name=mv.name, version=mv.version, layout=layout, layout_from=layout_from,
                            runtime=mv.source.runtime, note="; ".join(candidate.notes), classes=mv.signature.classes)
    return ShadowPlan(ShadowSettings(options.shadow_sample, options.shadow_atol), version)


def spec_while_serving(plan: ServePlan, mv: ModelVersion, running: ServedVersion, settings: Settings,
                       note: str = "") -> ServedVersion:
    """How a version loaded while serving (an alias moved, a rollout) is served: with its own profile's
    layout for this target when it has one, else the layout the name runs with now (the worker count
    is the running server's either way). `layout_from` says which, for the log."""
    recommendation, profile_note = _recommendation(mv, plan.target)
    notes = [n for n in (note, profile_note) if n]
    if recommendation is not None:
        layout, layout_from = _layout(_Version(mv, recommendation, notes), plan.options or ServeOptions(refs=()),
                                      plan.target, settings, plan.workers)
    else:
        layout, layout_from = running.layout, f"the running layout of {running.ref} ({mv.ref} has no profile " \
                                              f"for target {plan.target.name})"
    return ServedVersion(name=mv.name, version=mv.version, layout=layout, layout_from=layout_from,
                         runtime=mv.source.runtime, note="; ".join(notes), classes=mv.signature.classes)
