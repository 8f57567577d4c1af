"""What a registered version holds, as typed records: read and checked once, where the registry reads a row.

A version's row keeps two JSON columns, laid out as mlc 0.1.0 wrote them:
- `source`, its lineage: a file (`path`, `trusted`), bytes, or `mlc optimize` of a `parent`
  with the pass `chain`, the session options and the runtime plan it chose (`Source`);
- `metrics`: parity and latency as optimize measured them, the recommendation `mlc profile`
  recorded, and any metric a user added (`Metrics`).
Readers used to pick string keys out of those dicts in a dozen places, each with its own
default for a missing key. Now the registry parses each row into these records once, and a
malformed row fails there, naming the version and the field (RecordError).

Schema: `source["schema"]` is the layout of a row's records. Rows written by mlc 0.1.0 carry
no mark and read as layout 1 (the layout is the same; the mark started with this module). A
row marked newer than RECORD_SCHEMA was written by a newer mlc and is refused, rather than
half-read. Keys this release does not know are kept in `extra` and written back unchanged.

The records are frozen dataclasses, like the rest of mlc's recorded values (Signature,
SessionConfig, ParityReport): no dependency beyond numpy, cheap to import, and picklable
into serve and score workers. Parity and latency reuse the optimize stage's own types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlc.errors import RecordError, UsageError
from mlc.optimize.validate import ParityReport, Tolerance
from mlc.timing import Latency

RECORD_SCHEMA = 1

# Source kinds: how a version entered the registry.
FILE, BYTES, OPTIMIZE = "file", "bytes", "optimize"
# The artifact format mlc serves; every other format is a framework model to optimize first.
ONNX = "onnx"
# The engines a runtime plan may name.
ORT, TREES = "ort", "mlc-trees"
# The original model's own predict, loaded with the safe loader from the optimized version's parent:
# kept at batch sizes where no ONNX candidate beat it.
NATIVE = "native"
ENGINES = (ORT, TREES, NATIVE)
# The step every optimized chain starts with.
CONVERT = "convert"


# ---- reading JSON values, with the field's path in every error ----------------------------


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(f"{where} must be a JSON object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"{where}.{key} must be a string, not {_kind(value)}")
    return value


def _int(data: Mapping[str, Any], key: str, where: str, minimum: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{where}.{key} must be an integer, not {_kind(value)}")
    if minimum is not None and value < minimum:
        raise RecordError(f"{where}.{key} must be at least {minimum}, not {value}")
    return value


def _float(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where}.{key} must be a number, not {_kind(value)}")
    return float(value)


def _bool(data: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise RecordError(f"{where}.{key} must be true or false, not {_kind(value)}")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise RecordError(f"{where}.{key} must be a JSON list, not {_kind(value)}")
    return list(value)


def _by_batch(data: Mapping[str, Any], key: str, where: str) -> dict[int, Any]:
    """A JSON object keyed by batch size ("1", "16"), with int keys."""
    out: dict[int, Any] = {}
    for batch, value in _object(data.get(key) or {}, f"{where}.{key}").items():
        try:
            out[int(batch)] = value
        except ValueError:
            raise RecordError(f"{where}.{key} has key {batch!r}, which is no batch size") from None
    return out


def _extra(data: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


# ---- lineage -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One applied pass, as recorded in a version's lineage (the conversion is the first)."""

    name: str
    config: dict[str, Any]
    lossy: bool
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"pass": self.name, "config": self.config, "lossy": self.lossy, "notes": self.notes}

    @classmethod
    def from_dict(cls, data: Any, where: str = "step") -> Step:
        data = _object(data, where)
        name = _str(data, "pass", where)
        if not name:
            raise RecordError(f"{where} names no pass")
        return cls(name=name, config=dict(_object(data.get("config") or {}, f"{where}.config")),
                   lossy=bool(_bool(data, "lossy", where)),
                   notes=dict(_object(data.get("notes") or {}, f"{where}.notes")))


@dataclass(frozen=True)
class EngineChoice:
    """Which engine of a runtime plan serves batches up to max_rows."""

    engine: str  # "ort", "mlc-trees" or "native"
    max_rows: int | None = None  # the largest batch it serves; None: any size
    n_threads: int | None = None  # threads of the mlc-trees kernel; None: the session's intra-op threads

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"runtime plan names unknown engine {self.engine!r}",
                             f"known engines: {', '.join(ENGINES)}")
        if self.max_rows is not None and self.max_rows < 1:
            raise UsageError(f"runtime plan: max_rows of engine {self.engine} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "max_rows": self.max_rows} | (
            {} if self.n_threads is None else {"n_threads": self.n_threads})

    @classmethod
    def from_dict(cls, data: Any, where: str = "engine") -> EngineChoice:
        data = _object(data, where)
        engine = _str(data, "engine", where) or ORT
        if engine not in ENGINES:
            raise RecordError(f"{where} names unknown engine {engine!r} (known: {', '.join(ENGINES)})")
        return cls(engine, _int(data, "max_rows", where, minimum=1), _int(data, "n_threads", where, minimum=1))


# Session option keys and what each must hold; the values are mlc.runtime.session.SessionConfig's.
_SESSION_KEYS: dict[str, type | tuple[type, ...]] = {
    "intra_op_threads": int, "inter_op_threads": int, "execution_mode": str, "allow_spinning": bool,
    "graph_optimization_level": str, "providers": (list, tuple),
}


def _session(value: Any, where: str) -> dict[str, Any] | None:
    """ONNX Runtime session options as recorded (SessionConfig.to_dict()): kept as a checked mapping,
    since SessionConfig lives beside onnxruntime, which reading a registry must not import."""
    if value is None:
        return None
    data = _object(value, where)
    for key, expected in _SESSION_KEYS.items():
        if key not in data:
            continue
        value = data[key]
        # bool is an int to isinstance: a thread count of true is still wrong
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise RecordError(f"{where}.{key} has the wrong type ({_kind(value)})")
    return dict(data)


@dataclass(frozen=True)
class RuntimeRecord:
    """The runtime plan `mlc optimize` recorded: the session options, and which engine serves which
    batch sizes. `mlc.runtime.scorer.RuntimePlan.from_record` turns it into a plan for a target."""

    session: dict[str, Any] | None = None  # SessionConfig.to_dict(); None: the target's default
    engines: tuple[EngineChoice, ...] = (EngineChoice(ORT),)
    native: str | None = None  # NAME:VERSION of the original model a "native" engine runs

    def to_dict(self) -> dict[str, Any]:
        return (_without_none({"session": self.session}) | {"engines": [e.to_dict() for e in self.engines]}
                | _without_none({"native": self.native}))

    @classmethod
    def from_dict(cls, data: Any, where: str = "runtime") -> RuntimeRecord:
        data = _object(data, where)
        entries = _list(data, "engines", where)
        engines = tuple(EngineChoice.from_dict(e, f"{where}.engines[{i}]") for i, e in enumerate(entries))
        native = _str(data, "native", where)
        if native is None and any(e.engine == NATIVE for e in engines):
            raise RecordError(f"{where} runs engine 'native' but names no original model (native)")
        return cls(session=_session(data.get("session"), f"{where}.session"), engines=engines or (EngineChoice(ORT),),
                   native=native)


_SOURCE_KEYS = ("kind", "schema", "path", "trusted", "parent", "chain", "session", "runtime", "target",
                "ort_version")


@dataclass(frozen=True)
class Source:
    """Where a version came from: a file, bytes, or `mlc optimize` of a parent version."""

    kind: str  # FILE, BYTES, OPTIMIZE (another kind is kept as written)
    path: str | None = None  # FILE: the resolved path it was registered from
    trusted: bool = False  # FILE: loaded with --trust (a pickle importing globals outside the allowlist)
    parent: str | None = None  # OPTIMIZE: the NAME:VERSION it was made from
    chain: tuple[Step, ...] = ()  # OPTIMIZE: the conversion, then each pass, in order
    session: dict[str, Any] | None = None  # OPTIMIZE: the winner's ONNX Runtime session options
    runtime: RuntimeRecord | None = None  # OPTIMIZE: the runtime plan the version is served with
    target: str | None = None  # OPTIMIZE: the hardware target it was optimized for
    ort_version: str | None = None  # OPTIMIZE: the onnxruntime that measured it
    extra: dict[str, Any] = field(default_factory=dict)  # keys this release does not know
    schema: int = RECORD_SCHEMA

    @classmethod
    def file(cls, path: str, trusted: bool) -> Source:
        return cls(FILE, path=path, trusted=trusted)

    @property
    def passes(self) -> tuple[Step, ...]:
        """The chain's steps after the conversion."""
        return tuple(step for step in self.chain if step.name != CONVERT)

    @property
    def lossy(self) -> bool:
        return any(step.lossy for step in self.chain)

    def to_dict(self) -> dict[str, Any]:
        data = _without_none({
            "kind": self.kind, "path": self.path,
            "trusted": self.trusted if self.kind == FILE or self.trusted else None,
            "parent": self.parent, "chain": [s.to_dict() for s in self.chain] if self.chain else None,
            "session": self.session, "runtime": self.runtime.to_dict() if self.runtime else None,
            "target": self.target, "ort_version": self.ort_version,
        })
        return data | self.extra | {"schema": self.schema}

    @classmethod
    def from_dict(cls, data: Any, where: str = "source") -> Source:
        data = _object(data, where)
        schema = _int(data, "schema", where, minimum=1) or 1
        if schema > RECORD_SCHEMA:
            raise RecordError(f"{where} has record layout {schema}, newer than this mlc reads ({RECORD_SCHEMA})",
                              "it was written by a newer mlc: upgrade mlc to read this registry")
        kind = _str(data, "kind", where)
        if not kind:
            raise RecordError(f"{where} has no kind (file, bytes or optimize)")
        chain = tuple(Step.from_dict(s, f"{where}.chain[{i}]") for i, s in enumerate(_list(data, "chain", where)))
        runtime = data.get("runtime")
        return cls(
            kind=kind, path=_str(data, "path", where), trusted=bool(_bool(data, "trusted", where)),
            parent=_str(data, "parent", where), chain=chain, session=_session(data.get("session"), f"{where}.session"),
            runtime=None if runtime is None else RuntimeRecord.from_dict(runtime, f"{where}.runtime"),
            target=_str(data, "target", where), ort_version=_str(data, "ort_version", where),
            extra=_extra(data, _SOURCE_KEYS), schema=schema,
        )


# ---- metrics -----------------------------------------------------------------------------


def _latency(value: Any, where: str) -> Latency:
    data = _object(value, where)
    median, p99, samples = _float(data, "median_us", where), _float(data, "p99_us", where), _int(data, "samples", where)
    if median is None or p99 is None:
        raise RecordError(f"{where} needs median_us and p99_us")
    return Latency(median_us=median, p99_us=p99, samples=samples or 0)


def _parity(value: Any, where: str) -> ParityReport:
    data = _object(value, where)
    tol = _object(data.get("tolerance"), f"{where}.tolerance")
    floats = {k: _float(data, k, where) for k in ("max_abs_error", "max_rel_error", "label_disagreement")}
    passed = _bool(data, "passed", where)
    if passed is None or any(v is None for v in floats.values()):
        raise RecordError(f"{where} needs passed, max_abs_error, max_rel_error and label_disagreement")
    return ParityReport(
        passed=passed, max_abs_error=float(floats["max_abs_error"] or 0.0),
        max_rel_error=float(floats["max_rel_error"] or 0.0),
        label_disagreement=float(floats["label_disagreement"] or 0.0),
        n_rows=_int(data, "n_rows", where) or 0, n_ties=_int(data, "n_ties", where) or 0,
        evidence=_str(data, "evidence", where) or "", reason=_str(data, "reason", where) or "",
        tolerance=Tolerance(max_label_disagreement=_float(tol, "max_label_disagreement", f"{where}.tolerance") or 0.0,
                            max_abs_error=_float(tol, "max_abs_error", f"{where}.tolerance") or 0.0,
                            lossy=bool(_bool(tol, "lossy", f"{where}.tolerance"))),
    )


_RECOMMENDATION_KEYS = ("max_batch_size", "max_queue_delay_us", "preferred_batch_sizes", "instances", "workers",
                        "intra_op_threads", "capacity_rps", "replicas", "rate_rps", "extrapolated")


@dataclass(frozen=True)
class RecommendationRecord:
    """The serving layout and capacity `mlc profile` recommended; None where it was not recorded.

    `mlc serve` on the profile's target takes the layout as the defaults of its flags."""

    max_batch_size: int | None = None
    max_queue_delay_us: int | None = None
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int | None = None
    workers: int | None = None
    intra_op_threads: int | None = None
    capacity_rps: float | None = None  # per replica, at the p99 SLO
    replicas: int | None = None
    rate_rps: float | None = None  # the traffic the replicas were sized for; None: one replica
    extrapolated: bool = False  # sized beyond the cores measured on
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = _without_none({
            "max_batch_size": self.max_batch_size, "max_queue_delay_us": self.max_queue_delay_us,
            "preferred_batch_sizes": list(self.preferred_batch_sizes) or None, "instances": self.instances,
            "workers": self.workers, "intra_op_threads": self.intra_op_threads, "capacity_rps": self.capacity_rps,
            "replicas": self.replicas,
        })
        return data | {"rate_rps": self.rate_rps, "extrapolated": self.extrapolated} | self.extra

    @classmethod
    def from_dict(cls, data: Any, where: str = "recommendation") -> RecommendationRecord:
        data = _object(data, where)
        preferred = []
        for i, b in enumerate(_list(data, "preferred_batch_sizes", where)):
            size = _int({"size": b}, "size", f"{where}.preferred_batch_sizes[{i}]", minimum=1)
            preferred.append(int(size or 1))
        return cls(
            max_batch_size=_int(data, "max_batch_size", where, minimum=1),
            max_queue_delay_us=_int(data, "max_queue_delay_us", where, minimum=0),
            preferred_batch_sizes=tuple(preferred), instances=_int(data, "instances", where, minimum=1),
            workers=_int(data, "workers", where, minimum=1), intra_op_threads=_int(data, "intra_op_threads", where, 1),
            capacity_rps=_float(data, "capacity_rps", where), replicas=_int(data, "replicas", where, minimum=1),
            rate_rps=_float(data, "rate_rps", where), extrapolated=bool(_bool(data, "extrapolated", where)),
            extra=_extra(data, _RECOMMENDATION_KEYS),
        )


_PROFILE_KEYS = ("target", "mode", "slo_p99_ms", "created_at", "report", "recommendation")


@dataclass(frozen=True)
class ProfileRecord:
    """What `mlc profile` recorded with a version: where it measured and what it recommends."""

    target: str | None = None  # the hardware target measured; its recommendation fits that target only
    mode: str | None = None  # "inprocess" or "http"
    slo_p99_ms: float | None = None
    created_at: str | None = None  # ISO time of the report
    report: str | None = None  # the report's file name among the version's reports
    recommendation: RecommendationRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _without_none({
            "target": self.target, "mode": self.mode, "slo_p99_ms": self.slo_p99_ms, "created_at": self.created_at,
            "report": self.report, "recommendation": self.recommendation.to_dict() if self.recommendation else None,
        }) | self.extra

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> ProfileRecord:
        data = _object(data, where)
        rec = data.get("recommendation")
        return cls(
            target=_str(data, "target", where), mode=_str(data, "mode", where),
            slo_p99_ms=_float(data, "slo_p99_ms", where), created_at=_str(data, "created_at", where),
            report=_str(data, "report", where),
            recommendation=RecommendationRecord.from_dict(rec, f"{where}.recommendation") if rec else None,
            extra=_extra(data, _PROFILE_KEYS),
        )


_METRICS_KEYS = ("parity", "parity_by_engine", "latency_us", "native_latency_us", "speedup_vs_native", "profile")


@dataclass(frozen=True)
class Metrics:
    """What was measured of a version: by `mlc optimize` (parity, latency by batch size, speed-up over
    the native call), by `mlc profile` (its recommendation), and by users (`extra`)."""

    parity: ParityReport | None = None  # of the served (primary) engine
    parity_by_engine: dict[str, ParityReport] = field(default_factory=dict)
    latency_us: dict[int, Latency] = field(default_factory=dict)  # by batch size
    native_latency_us: dict[int, Latency] = field(default_factory=dict)
    speedup_vs_native: dict[int, float] = field(default_factory=dict)
    profile: ProfileRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # user metrics (update_metrics), kept as given

    def to_dict(self) -> dict[str, Any]:
        data = _without_none({
            "parity": self.parity.to_dict() if self.parity else None,
            "parity_by_engine": {e: p.to_dict() for e, p in self.parity_by_engine.items()} or None,
            "latency_us": {str(b): lat.to_dict() for b, lat in self.latency_us.items()} or None,
            "native_latency_us": {str(b): lat.to_dict() for b, lat in self.native_latency_us.items()} or None,
            "speedup_vs_native": {str(b): s for b, s in self.speedup_vs_native.items()} or None,
            "profile": self.profile.to_dict() if self.profile else None,
        })
        return data | self.extra

    @classmethod
    def from_dict(cls, data: Any, where: str = "metrics") -> Metrics:
        data = _object(data or {}, where)
        parity, profile = data.get("parity"), data.get("profile")
        speedups = {}
        for b, value in _by_batch(data, "speedup_vs_native", where).items():
            speedups[b] = _float({"x": value}, "x", f"{where}.speedup_vs_native.{b}") or 0.0
        return cls(
            parity=None if parity is None else _parity(parity, f"{where}.parity"),
            parity_by_engine={e: _parity(p, f"{where}.parity_by_engine.{e}")
                              for e, p in _object(data.get("parity_by_engine") or {}, where).items()},
            latency_us={b: _latency(v, f"{where}.latency_us.{b}")
                        for b, v in _by_batch(data, "latency_us", where).items()},
            native_latency_us={b: _latency(v, f"{where}.native_latency_us.{b}")
                               for b, v in _by_batch(data, "native_latency_us", where).items()},
            speedup_vs_native=speedups,
            profile=None if profile is None else ProfileRecord.from_dict(profile, f"{where}.profile"),
            extra=_extra(data, _METRICS_KEYS),
        )
