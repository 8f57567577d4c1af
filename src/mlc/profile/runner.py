"""`mlc profile` end to end: resolve, measure, size, report, record.

The order matters for honesty: the target's execution providers are checked before anything
runs (a GPU target on a machine without one is an error, never a CPU run labelled GPU); every
figure is measured on the cores the target has (pinned when this machine has more), and a
target bigger than this machine gets extrapolated figures that say so. Ctrl-C ends the
measuring, never the reporting: what was measured is written and marked interrupted.
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlc.config import load_settings
from mlc.errors import MissingDependencyError, UsageError
from mlc.profile.affinity import usable_cores
from mlc.profile.arrivals import ARRIVALS
from mlc.profile.loadgen_http import Distributed, Endpoint, HttpLoad
from mlc.profile.loadgen_inprocess import InProcessLoad
from mlc.profile.results import ConfigResult, ProfileResult, Recommendation, choose
from mlc.profile.sampling import ProcessSampler
from mlc.profile.server import EXTERNAL_UNKNOWN, model_ready, served_layout
from mlc.profile.sizing import DEFAULT_HEADROOM, extrapolate, grown_cores, recommend
from mlc.profile.sweep import Space, Sweep
from mlc.registry import ModelVersion, Registry
from mlc.registry.records import ProfileRecord, RecommendationRecord
from mlc.runtime.scorer import RuntimePlan
from mlc.runtime.session import available_providers
from mlc.serve.codec import datatype_of
from mlc.serve.layout import ServingLayout
from mlc.targets import HardwareTarget, get_target

MODES = ("inprocess", "http")
CONFIRM_RUNS = 3  # holds of the planned rate that must all meet the SLO
_CONFIRM_RATES = 3  # planned rates tried, each lower than the last, before the plan is unconfirmed
INPROCESS_HEADLINE = ("In-process: this sizes the scoring core alone (Scorer + batcher, no HTTP), not a server; "
                      "`mlc serve` delivers less. Profile with --mode http (the default) to size a deployment.")
# The input dtypes the profiler makes request data for (see Endpoint.bodies).
_SENDS_DTYPES = ("float32", "float64", "int64", "int32", "bool")


@dataclass(frozen=True)
class ProfileOptions:
    slo_p99_ms: float = 20.0
    rate_rps: float | None = None  # the traffic to size replicas for; None: one replica
    # http by default: what gets deployed is `mlc serve`, and the scoring core alone overstates it (12x once).
    mode: str = "http"
    url: str | None = None  # measure this v2 server instead of starting `mlc serve`
    model_name: str | None = None  # the model's name at --url (default: the registry name)
    duration_s: float = 2.0  # per load point
    quick: bool = False
    arrivals: str = "poisson"
    headroom: float = DEFAULT_HEADROOM
    pyinstrument: bool = False
    html: Path | None = None
    out_dir: Path = field(default_factory=Path.cwd)
    record: bool = True
    record_inprocess: bool = False  # an in-process profile records its layout for `mlc serve` only when asked
    seed: int = 0
    # --locust-master/--locust-workers: locust in distributed mode (None: the processes of this machine,
    # added one at a time while the generator is the limit)
    locust: Distributed | None = None

    def check(self) -> None:
        if not (math.isfinite(self.slo_p99_ms) and self.slo_p99_ms > 0):
            raise UsageError(f"--slo-p99-ms must be a positive number, not {self.slo_p99_ms}")
        if self.rate_rps is not None and not (math.isfinite(self.rate_rps) and self.rate_rps > 0):
            raise UsageError(f"--rate must be a positive number, not {self.rate_rps}")
        if not math.isfinite(self.duration_s):
            raise UsageError(f"--duration must be a number of seconds, not {self.duration_s}")
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.url and self.mode != "http":
            raise UsageError("--url measures a server over HTTP", "add --mode http")
        if self.locust is not None and self.mode != "http":
            raise UsageError("distributed locust (--locust-master/--locust-workers) drives HTTP load",
                             "add --mode http")
        if self.arrivals not in ARRIVALS:
            raise UsageError(f"arrivals must be one of {', '.join(ARRIVALS)}, not {self.arrivals!r}")
        if not 0 <= self.headroom < 1:
            raise UsageError(f"--headroom is a fraction in [0, 1), not {self.headroom}")
        if self.duration_s < 0.5:
            raise UsageError(f"--duration {self.duration_s:g}s is too short to measure a p99",
                             "use at least 0.5s per load point")

    @property
    def warmup_s(self) -> float:
        """The start of each point not counted: the queue and the generator settle first."""
        return min(0.5, self.duration_s / 5)


@dataclass
class ProfileOutcome:
    result: ProfileResult
    report: dict[str, Any]  # the mlc.report/1 envelope
    files: dict[str, Path]


def profile(ref: str, target: str | None = "cpu", options: ProfileOptions | None = None,
            progress: Callable[[str], None] | None = None) -> ProfileOutcome:
    """Measure a registered model under load on a target and recommend how to deploy it."""
    from mlc.profile.report import write_reports

    opts = options or ProfileOptions()
    opts.check()
    say = progress or (lambda _msg: None)
    hw = get_target(target)
    available_providers(hw.execution_providers)  # a GPU target without a GPU stops here, loudly
    registry = Registry.open()
    served = registry.served(ref)
    mv, note = served.version, served.note
    cores_all = usable_cores()
    measured_cores = min(hw.cores, len(cores_all))
    pin = cores_all[:measured_cores] if hw.cores < len(cores_all) else None
    result = ProfileResult(
        ref=mv.ref, target=hw.name, mode=opts.mode, slo_p99_ms=opts.slo_p99_ms, rate_rps=opts.rate_rps,
        arrivals=opts.arrivals, point_duration_s=opts.duration_s, search="quick" if opts.quick else "grid",
        usable_cores=measured_cores, url=opts.url, notes=[note] if note else [])
    if opts.mode == "inprocess":
        result.headline.append(INPROCESS_HEADLINE + (
            " Recorded for `mlc serve` as asked (--record-inprocess)." if opts.record_inprocess else
            " Nothing is recorded for `mlc serve` (--record-inprocess to record it anyway)."))
    started = time.perf_counter()
    hot_path: str | None = None
    with tempfile.TemporaryDirectory(prefix="mlc-profile-") as scratch, \
            _load(mv, registry, hw, opts, measured_cores, Path(scratch)) as load, \
            ProcessSampler(load.serving_pids, gpu=hw.is_gpu) as sampler:
        sweep = Sweep(load, sampler, max_points=4 if opts.quick else 5, cores=pin, progress=say)
        try:
            _measure(sweep, hw, opts, measured_cores, result, cores_all, say)
            if opts.pyinstrument and not load.stop.is_set():
                hot_path = _hot_path(registry, mv, hw, result, say)
        except KeyboardInterrupt:
            load.stop.set()
        result.interrupted = load.stop.is_set()
        if hw.is_gpu and not sampler.has_gpu:
            result.notes.append("GPU utilization and memory were not sampled: NVML (nvidia-ml-py) is unavailable")
        result.resources = sampler.series(started)
    result.configs = sweep.results
    if opts.mode == "http":
        result.headline += generator_verdict(result)
    result.elapsed_s = round(time.perf_counter() - started, 1)
    if result.interrupted:
        result.notes.append("interrupted (Ctrl-C): the report holds what was measured until then")
    report, files = write_reports(result, hw, opts.out_dir, html=opts.html, hot_path=hot_path)
    if opts.record:
        _record(registry, mv, result, report, files, opts.record_inprocess)
    return ProfileOutcome(result, report, files)


def _measure(sweep: Sweep, hw: HardwareTarget, opts: ProfileOptions, measured_cores: int, result: ProfileResult,
             cores_all: list[int], say: Callable[[str], None]) -> None:
    http = opts.mode == "http"
    if opts.url:
        say(f"measuring the server at {opts.url} as it is configured")
        layout, how = served_layout(opts.url, opts.model_name or result.ref.split(":")[0])
        result.server_layout = f"{_describe(layout)} ({how})" if layout else EXTERNAL_UNKNOWN
        result.headline.append(f"Measured the server at {opts.url} as it runs: {result.server_layout}. "
                               "No layout is recommended for it and nothing is recorded for `mlc serve`.")
        # The layout it reports, or a placeholder the report never shows as the server's (server_layout says).
        measured = sweep.measure(layout or ServingLayout.of())
        measured.note = "; ".join(filter(None, [f"the settings of the server at {opts.url}", measured.note]))
    else:
        space = Space.for_target(cores=measured_cores, gpu=hw.is_gpu, slo_ms=opts.slo_p99_ms, http=http,
                                 max_request_rows=load_settings().max_request_rows)
        if opts.quick:
            sweep.quick(space, max_configs=6)
        else:
            sweep.grid(space)
    if sweep.stopped:
        chosen = choose(sweep.results)
        if chosen is not None:
            rec = recommend(chosen, hw, rate_rps=opts.rate_rps, headroom=opts.headroom,
                            measured_cores=measured_cores, http=http)
            partial = "from an interrupted run: neither confirmed at its planned load nor extrapolated"
            result.recommendation = replace(rec, notes=(*rec.notes, partial))
        return
    extrapolation = None
    chosen = choose(sweep.results)
    if chosen is not None and hw.cores > measured_cores and not opts.url:
        # The replica is bigger than this machine: size it from per-core capacity, checked on 1 and all cores.
        full = choose([r for r in sweep.results if r.config.cores == measured_cores]) or chosen
        say(f"target {hw.name} has {hw.cores} cores, this machine {measured_cores}: measuring 1-core capacity "
            "to extrapolate")
        one_core = replace(full.config, instances=1, threads=1, workers=1)
        single = sweep.measure(one_core, cores=cores_all[:1], keep=False)
        result.scaling = [single]
        if single.capacity_rps > 0 and not sweep.stopped:
            measured_cores = full.config.cores  # the cores the extrapolated configuration really used
            extrapolation = extrapolate(single.capacity_rps, full.capacity_rps, measured_cores,
                                        grown_cores(measured_cores, hw.cores))
            chosen = full
    if chosen is None:
        lowest = min((p for r in sweep.results for p in r.points if p.ok), key=lambda p: p.p99_ms, default=None)
        seen = f"; the lowest p99 seen was {lowest.p99_ms:.2f} ms at {lowest.throughput_rps:.0f}/s" if lowest else ""
        result.notes.append(f"no configuration met p99 <= {opts.slo_p99_ms:g} ms{seen}")
        return
    sizing: dict[str, Any] = {"rate_rps": opts.rate_rps, "headroom": opts.headroom, "measured_cores": measured_cores,
                              "http": http, "extrapolation": extrapolation}
    rec = _confirmed(sweep, chosen, recommend(chosen, hw, **sizing), hw, sizing, opts.slo_p99_ms)
    result.recommendation = _bounded(rec, chosen, opts.rate_rps)


def _bounded(rec: Recommendation, chosen: ConfigResult, rate_rps: float | None) -> Recommendation:
    """Mark a capacity that is a lower bound: the sweep never saw a miss, or the generator was the limit."""
    valid = [p for p in chosen.points if not p.loadgen_limited]
    never_missed = bool(valid) and all(p.meets_slo for p in valid)
    limited = any(p.loadgen_limited for p in chosen.points)
    if not (never_missed or limited):
        return rec
    why = ("every load point met the SLO: capacity is at least the highest rate tried, not a measured limit"
           if never_missed else "the load generator was the limit before the server was")
    replicas = "" if rate_rps else "; no replica count without --rate (a lower bound sizes nothing)"
    return replace(rec, at_least=True, notes=(*rec.notes, why + replicas))


def _confirmed(sweep: Sweep, chosen: ConfigResult, rec: Recommendation, hw: HardwareTarget, sizing: dict[str, Any],
               slo_ms: float) -> Recommendation:
    """Serve the recommended layout afresh at its planned per-replica rate CONFIRM_RUNS times; every run
    must meet the SLO. On a miss, plan from the next-lower load point the sweep measured and try again.

    The sweep's points are single short measurements; on a noisy machine the curve between them
    can flatter. A plan is recorded only once it held, run after run, at the load it plans.
    """
    tried: list[str] = []
    for attempt in range(_CONFIRM_RATES):
        points = sweep.confirm(rec.measured_config, rec.measured_rate_rps, repeats=CONFIRM_RUNS)
        if not points:  # interrupted
            return rec
        worst = max(p.p99_ms for p in points)
        ok = len(points) >= CONFIRM_RUNS and all(p.meets_slo for p in points)
        rec = replace(rec, predicted_p99_ms=round(worst, 3), confirmed=ok)
        if ok:
            break
        tried.append(f"{rec.measured_rate_rps:.0f}/s (worst p99 {worst:.2f} ms)")
        lower = _below(chosen, rec)
        if lower is None or attempt == _CONFIRM_RATES - 1:  # the plan returned is the last one tried
            break
        chosen = lower
        rec = recommend(chosen, hw, **sizing)
    if tried:
        rates = ", ".join(tried)
        verdict = (f"confirmed at {rec.measured_rate_rps:.0f}/s after lower rates were tried" if rec.confirmed
                   else "UNCONFIRMED: not recorded as `mlc serve`'s default; measure again on a quieter machine")
        rec = replace(rec, notes=(*rec.notes, f"the planned load missed p99 <= {slo_ms:g} ms in {CONFIRM_RUNS} "
                                  f"confirmation runs at {rates}: {verdict}"))
    return rec


def _below(chosen: ConfigResult, rec: Recommendation) -> ConfigResult | None:
    """The chosen configuration with its capacity read from the next-lower load point, or None when
    no point below the planned one met the SLO."""
    best = chosen.best
    if best is None:
        return None
    lower = replace(chosen, points=[p for p in chosen.points if p.throughput_rps < best.throughput_rps])
    return lower if lower.best is not None else None


def generator_verdict(result: ProfileResult) -> list[str]:
    """Whether locust (on this machine's cores) was the bottleneck, and what the capacity then means."""
    points = [p for c in result.configs for p in c.points if p.loadgen_processes]
    if not points:
        return []
    limited = [p for p in points if p.loadgen_limited]
    cpu = max((p.loadgen_cpu_peak_pct or 0.0) for p in points)
    lag = max(p.send_lag_p99_ms for p in points)
    if not limited:
        return [f"The load generator kept up: its busiest process peaked at {cpu:.0f}% CPU and sent at most "
                f"{lag:.2f} ms late (p99), so the capacity below is the server's."]
    first = min(limited, key=lambda p: p.offered_rps)
    rec = result.recommendation
    bound = f"at least {rec.capacity_rps:,.0f}/s" if rec else "not measured"
    return [f"The load generator was the bottleneck from {first.offered_rps:,.0f}/s: its busiest process peaked at "
            f"{first.loadgen_cpu_peak_pct or 0:.0f}% CPU and sent {first.send_lag_p50_ms:.2f} ms late (p50), sharing "
            f"this machine's cores with the server. Capacity is {bound}; to measure more, serve the model on one "
            "machine and run `mlc profile REF --url http://HOST:PORT` from another."]


def _describe(layout: ServingLayout) -> str:
    return (f"batch {layout.max_batch_size}, delay {layout.max_queue_delay_us} us, {layout.workers} worker(s) x "
            f"{layout.instances} instance(s) x {layout.threads} thread(s)")


@contextmanager
def _load(mv: ModelVersion, registry: Registry, hw: HardwareTarget, opts: ProfileOptions, measured_cores: int,
          scratch: Path) -> Iterator[InProcessLoad | HttpLoad]:
    common: dict[str, Any] = {"poisson": opts.arrivals == "poisson", "duration_s": opts.duration_s,
                              "warmup_s": opts.warmup_s, "slo_ms": opts.slo_p99_ms, "seed": opts.seed}
    if opts.mode == "inprocess":
        plan = RuntimePlan.from_record(mv.source.runtime, hw)
        yield InProcessLoad(registry.artifact_path(mv), hw, plan, **common)
        return
    if importlib.util.find_spec("locust") is None:
        raise MissingDependencyError("locust", "profile", "--mode http")
    endpoint = _endpoint(mv, opts)
    if opts.url:
        model_ready(opts.url, endpoint.model_name)  # a wrong URL or name fails here, with a hint
    yield HttpLoad(endpoint, ref=mv.ref, serve_target=_serve_target(hw, measured_cores, scratch),
                   url=opts.url, workdir=scratch, distributed=opts.locust, **common)


def _endpoint(mv: ModelVersion, opts: ProfileOptions) -> Endpoint:
    """The v2 request for one row of the model, from its registered signature."""
    if len(mv.signature.inputs) != 1:
        raise UsageError(f"{mv.ref} has {len(mv.signature.inputs)} inputs; the profiler sends one-input requests")
    spec = mv.signature.inputs[0]
    shape = tuple(d for d in spec.shape[1:] if isinstance(d, int))
    if len(shape) != len(spec.shape) - 1:
        raise UsageError(f"{mv.ref}'s input {spec.name} has free dimensions {spec.shape}; "
                         "the profiler needs a fixed row shape")
    if spec.dtype not in _SENDS_DTYPES:
        raise UsageError(f"{mv.ref}'s input is {spec.dtype}; the profiler sends {', '.join(_SENDS_DTYPES)}")
    return Endpoint(opts.model_name or mv.name, spec.name, datatype_of(spec.dtype), shape)


def _serve_target(hw: HardwareTarget, measured_cores: int, scratch: Path) -> str:
    """The target `mlc serve` is started with: the real one, or a copy cut to the cores measured on."""
    if measured_cores >= hw.cores:
        return hw.source or hw.name
    path = scratch / f"{hw.name}-measured.toml"
    providers = ", ".join(f'"{p}"' for p in hw.execution_providers)
    path.write_text(
        f'name = "{hw.name}-measured"\ndevice = "{hw.device}"\nexecution_providers = [{providers}]\n'
        f"cores = {measured_cores}\nmemory_gib = {hw.memory_gib}\nprice_per_hour = {hw.price_per_hour}\n")
    return str(path)


def _hot_path(registry: Registry, mv: ModelVersion, hw: HardwareTarget, result: ProfileResult,
              say: Callable[[str], None]) -> str:
    from mlc.profile.hotpath import profile_hot_path

    say("profiling the scoring hot path with pyinstrument")
    config = result.recommendation.config if result.recommendation else ServingLayout.of()
    plan = RuntimePlan.from_record(mv.source.runtime, hw)
    return profile_hot_path(registry.artifact_path(mv), hw, plan, config)


def _record(registry: Registry, mv: ModelVersion, result: ProfileResult, report: dict[str, Any],
            files: dict[str, Path], record_inprocess: bool = False) -> None:
    """Attach the reports to the version; a complete profile's recommendation becomes serve's default."""
    for path in files.values():
        if path.suffix in (".json", ".md", ".html"):
            registry.attach_report(mv, path.name, path.read_bytes())
    rec = result.recommendation
    if rec is None or result.interrupted or result.url or rec.confirmed is False:
        return
    if result.mode == "inprocess" and not record_inprocess:
        return
    recorded = ProfileRecord(
        target=result.target, mode=result.mode, slo_p99_ms=result.slo_p99_ms, created_at=report["created_at"],
        report=files["json"].name,
        recommendation=RecommendationRecord.from_dict({
            **rec.serve_settings(), "capacity_rps": rec.capacity_rps, "replicas": rec.replicas,
            "rate_rps": rec.rate_rps, "extrapolated": rec.extrapolated}))
    registry.update_metrics(mv.ref, {"profile": recorded.to_dict()})
