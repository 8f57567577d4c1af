"""The values a profile produces, as plain dataclasses that round-trip through JSON.

Every stage (load generation, sweep, sizing, report) speaks these types, and a recorded
run replays through `ProfileResult.from_dict`, so reports can be rendered and tested
without running load. A configuration the sweep measures is a `ServingLayout`, the type
`mlc serve` serves, so what is measured and what is served cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mlc.serve.layout import ServingLayout


@dataclass(frozen=True)
class LoadPoint:
    """One measurement: a fixed open-loop arrival rate held against one configuration.

    Latencies are in milliseconds from each request's SCHEDULED send time, so time a request
    spent waiting because the system (or the load generator) was busy is counted, not hidden.
    """

    offered_rps: float  # the arrival rate asked for
    throughput_rps: float  # requests completed without error per second of the measured window
    duration_s: float  # the measured window (warm-up excluded)
    sent: int  # requests scheduled in the window
    ok: int
    errors: int  # failed, rejected (queue full / 503) or unanswered before the drain deadline
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    # From the actual send, as a closed-loop client (wrk, perf_analyzer) measures: the server's share.
    service_p50_ms: float
    service_p99_ms: float
    send_lag_p50_ms: float  # how late the generator sent: large = the generator fell behind
    send_lag_p99_ms: float
    meets_slo: bool
    cpu_mean_pct: float | None = None  # serving processes, % of one core
    cpu_peak_pct: float | None = None
    rss_peak_mb: float | None = None
    gpu_util_peak_pct: float | None = None
    gpu_mem_peak_mb: float | None = None
    loadgen_cpu_peak_pct: float | None = None  # busiest load-generator process, % of one core
    loadgen_processes: int = 0  # 0: in-process generator
    loadgen_limited: bool = False  # the generator, not the server, may have been the limit
    cores_pinned: int | None = None  # measured on this many cores (affinity); None: all usable
    histogram: dict[str, list[float]] | None = None  # {"edges_ms": [...], "counts": [...]}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadPoint:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class ConfigResult:
    """A configuration and every load point measured against it."""

    config: ServingLayout
    points: list[LoadPoint] = field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> LoadPoint | None:
        """The highest-throughput point that met the SLO below the lowest rate that missed it.

        A pass above a miss is noise that flatters (the same load failed once), so capacity is
        read only up to the first rate that failed; points whose generator was the limit say
        nothing about the server either way.
        """
        valid = [p for p in self.points if not p.loadgen_limited]
        first_miss = min((p.offered_rps for p in valid if not p.meets_slo), default=float("inf"))
        good = [p for p in valid if p.meets_slo and p.offered_rps < first_miss]
        return max(good, key=lambda p: p.throughput_rps, default=None)

    @property
    def capacity_rps(self) -> float:
        best = self.best
        return best.throughput_rps if best else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "points": [p.to_dict() for p in self.points],
                "capacity_rps": self.capacity_rps, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigResult:
        return cls(config=ServingLayout.from_dict(data["config"]),
                   points=[LoadPoint.from_dict(p) for p in data.get("points", [])], note=data.get("note", ""))


_TIE = 0.03  # capacities within 3% are equal; the simpler configuration wins


def better(a: ConfigResult, b: ConfigResult | None) -> bool:
    """Is a better than b: more capacity beyond the tie margin, else fewer cores, then lower p99."""
    if b is None:
        return a.capacity_rps > 0
    if a.capacity_rps > b.capacity_rps * (1 + _TIE):
        return True
    if a.capacity_rps < b.capacity_rps * (1 - _TIE) or a.best is None or b.best is None:
        return False
    return (a.config.cores, a.best.p99_ms) < (b.config.cores, b.best.p99_ms)


def choose(results: list[ConfigResult]) -> ConfigResult | None:
    """The configuration with the most capacity under the SLO; None when none met it."""
    found: ConfigResult | None = None
    for result in results:
        if better(result, found):
            found = result
    return found


@dataclass(frozen=True)
class Extrapolation:
    """How a figure for a target with more cores than this machine was derived."""

    measured_cores: int
    target_cores: int
    one_core_rps: float  # the recommended configuration pinned to one core
    all_cores_rps: float  # the same on `measured_cores` cores
    efficiency: float  # all_cores_rps / (measured_cores * one_core_rps), as measured
    target_rps: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Extrapolation:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Recommendation:
    """The cheapest configuration that meets the SLO, and what it takes to serve the asked rate."""

    config: ServingLayout  # for one replica of the target
    measured_config: ServingLayout  # the configuration measured here (smaller when extrapolated)
    capacity_rps: float  # per replica, measured (or extrapolated) at p99 <= SLO
    usable_rps: float  # capacity after headroom: what each replica is planned to carry
    rate_rps: float  # the rate sized for
    replicas: int
    per_replica_rps: float  # rate / replicas
    measured_rate_rps: float  # per_replica_rps mapped onto measured_config (smaller when extrapolated)
    predicted_p99_ms: float  # interpolated on the measured curve; replaced by the confirmation runs' worst p99
    cores_per_replica: float  # measured CPU at the planned load, with headroom
    memory_gib_per_replica: float  # measured peak RSS, with headroom
    headroom: float
    cost_per_hour: float
    cost_per_million: float
    extrapolated: bool
    extrapolation: Extrapolation | None = None
    confirmed: bool | None = None  # confirmation runs at measured_rate_rps met the SLO; None: not run
    # Capacity is a lower bound: no load point missed the SLO (the limit was never reached) or the
    # load generator, not the server, was the limit. Shown as "at least"; replicas only for a --rate.
    at_least: bool = False
    notes: tuple[str, ...] = ()

    def serve_settings(self) -> dict[str, Any]:
        """The recommended serving settings, as recorded with the version and shown in the report.

        `mlc serve` on the same target takes all five from the registry as the defaults of its
        flags, so it serves the layout that was measured (its queue follows the layout's rule).
        """
        c = self.config
        return {"max_batch_size": c.max_batch_size, "max_queue_delay_us": c.max_queue_delay_us,
                "instances": c.instances, "workers": c.workers, "intra_op_threads": c.threads}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = self.config.to_dict()
        data["measured_config"] = self.measured_config.to_dict()
        data["notes"] = list(self.notes)
        data["extrapolation"] = self.extrapolation.to_dict() if self.extrapolation else None
        data["serve"] = self.serve_settings()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recommendation:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["config"] = ServingLayout.from_dict(data["config"])
        values["measured_config"] = ServingLayout.from_dict(data.get("measured_config") or data["config"])
        values["notes"] = tuple(data.get("notes", ()))
        extra = data.get("extrapolation")
        values["extrapolation"] = Extrapolation.from_dict(extra) if extra else None
        return cls(**values)


@dataclass
class ProfileResult:
    """Everything one `mlc profile` run measured and concluded: the report's body."""

    ref: str
    target: str
    mode: str  # "inprocess" or "http"
    slo_p99_ms: float
    rate_rps: float | None
    arrivals: str  # "poisson" or "constant"
    point_duration_s: float
    search: str  # "grid" or "quick"
    usable_cores: int
    configs: list[ConfigResult] = field(default_factory=list)
    recommendation: Recommendation | None = None
    scaling: list[ConfigResult] = field(default_factory=list)  # pinned side measurements for an extrapolation
    resources: dict[str, list[float]] = field(default_factory=dict)  # time series: t_s, cpu_pct, rss_mb, ...
    url: str | None = None
    interrupted: bool = False
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    # What a reader must know before any figure (in-process scope, a generator bottleneck, the --url layout).
    headline: list[str] = field(default_factory=list)
    server_layout: str | None = None  # --url: the layout read from the server, or "external, unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "target": self.target, "mode": self.mode, "slo_p99_ms": self.slo_p99_ms,
            "rate_rps": self.rate_rps, "arrivals": self.arrivals, "point_duration_s": self.point_duration_s,
            "search": self.search, "usable_cores": self.usable_cores, "url": self.url,
            "configs": [c.to_dict() for c in self.configs],
            "scaling": [c.to_dict() for c in self.scaling],
            "recommendation": self.recommendation.to_dict() if self.recommendation else None,
            "resources": self.resources, "interrupted": self.interrupted, "elapsed_s": self.elapsed_s,
            "notes": list(self.notes), "files": dict(self.files), "headline": list(self.headline),
            "server_layout": self.server_layout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileResult:
        rec = data.get("recommendation")
        return cls(
            ref=data["ref"], target=data["target"], mode=data["mode"], slo_p99_ms=data["slo_p99_ms"],
            rate_rps=data.get("rate_rps"), arrivals=data["arrivals"], point_duration_s=data["point_duration_s"],
            search=data["search"], usable_cores=data["usable_cores"], url=data.get("url"),
            configs=[ConfigResult.from_dict(c) for c in data.get("configs", [])],
            scaling=[ConfigResult.from_dict(c) for c in data.get("scaling", [])],
            recommendation=Recommendation.from_dict(rec) if rec else None,
            resources=data.get("resources", {}), interrupted=data.get("interrupted", False),
            elapsed_s=data.get("elapsed_s", 0.0), notes=list(data.get("notes", [])),
            files=dict(data.get("files", {})), headline=list(data.get("headline", [])),
            server_layout=data.get("server_layout"),
        )
