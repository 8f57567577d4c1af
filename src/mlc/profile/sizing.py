"""From measured capacities to a deployment: configuration, replicas, cores, memory and cost.

A replica is one machine of the target running the chosen configuration. The cheapest
configuration meeting the SLO is the one with the most capacity per replica (all replicas
cost the target's price), ties going to fewer cores and a lower p99. Replicas are planned
to run at (1 - headroom) of their measured capacity, so a burst or a noisy neighbour does
not push p99 over the SLO; cores and memory per replica are what was measured at that load,
plus the same headroom.

A target with more cores than this machine cannot be measured; its capacity is
extrapolated from the per-core capacity (the configuration pinned to one core) times its
cores, discounted by the scaling efficiency seen from one core to every usable core
(applied once per doubling), and marked as extrapolated with that method.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

from mlc.profile.results import ConfigResult, Extrapolation, LoadPoint, Recommendation
from mlc.serve.layout import ServingLayout
from mlc.targets import HardwareTarget

DEFAULT_HEADROOM = 0.25


def extrapolate(one_core_rps: float, all_cores_rps: float, measured_cores: int, target_cores: int) -> Extrapolation:
    """Per-core capacity x target cores, discounted per doubling by the measured scaling efficiency.

    Scaling better than linear (a measurement artefact: the generator had a core to itself, or
    noise) is never extrapolated: it is taken as linear.
    """
    efficiency = all_cores_rps / (measured_cores * one_core_rps) if one_core_rps > 0 else 0.0
    doublings = math.log2(target_cores) if target_cores > 1 else 0.0
    per_doubling = min(1.0, efficiency) ** (1 / math.log2(measured_cores)) if measured_cores > 1 else 1.0
    target_rps = one_core_rps * target_cores * per_doubling**doublings
    checked = (f"1 -> {measured_cores} cores measured {all_cores_rps:.0f}/s = {efficiency:.0%} of linear"
               if measured_cores > 1 else "scaling unchecked: this machine has one core")
    method = (f"per-core capacity ({one_core_rps:.0f}/s, measured pinned to 1 core) x {target_cores} cores "
              f"x {per_doubling:.2f} per doubling of cores, {doublings:.0f} doubling(s) ({checked}; "
              "never more than linear)")
    return Extrapolation(measured_cores=measured_cores, target_cores=target_cores, one_core_rps=one_core_rps,
                         all_cores_rps=all_cores_rps, efficiency=round(efficiency, 4), target_rps=target_rps,
                         method=method)


def grown_cores(measured_cores: int, target_cores: int) -> int:
    """The cores a configuration grown to the target uses: whole copies of the measured layout.

    Capacity is extrapolated to these cores, not to all of the target's, so the recommended
    configuration and its capacity describe the same thing (a 4-core layout on a 6-core
    target stays one copy, on 4 cores).
    """
    return max(1, target_cores // measured_cores) * measured_cores


def scale_config(config: ServingLayout, factor: int, http: bool) -> ServingLayout:
    """The configuration grown to the target's cores: more workers (http) or more instances."""
    if factor <= 1:
        return config
    return replace(config, workers=config.workers * factor) if http else replace(
        config, instances=config.instances * factor)


def p99_at(points: list[LoadPoint], rps: float) -> float:
    """p99 at a throughput, interpolated on the measured curve (SLO-meeting points and the first miss).

    Below the lowest measured point its p99 is taken as is; above the highest, the highest.
    """
    curve = sorted((p.throughput_rps, p.p99_ms) for p in points if p.ok > 0)
    if not curve:
        return math.nan
    if rps <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if x0 <= rps <= x1:
            return y0 + (y1 - y0) * (rps - x0) / (x1 - x0) if x1 > x0 else max(y0, y1)
    return curve[-1][1]


def _point_near(points: list[LoadPoint], rps: float) -> LoadPoint | None:
    """The measured point at or just above rps (its resources are an upper bound for that load)."""
    above = [p for p in points if p.throughput_rps >= rps and p.meets_slo]
    if above:
        return min(above, key=lambda p: p.throughput_rps)
    met = [p for p in points if p.meets_slo]
    return max(met, key=lambda p: p.throughput_rps, default=None)


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def recommend(result: ConfigResult, target: HardwareTarget, *, rate_rps: float | None, headroom: float,
              measured_cores: int, http: bool, extrapolation: Extrapolation | None = None,
              min_replicas: int = 1) -> Recommendation:
    """Sizing for `rate_rps` (or one replica at its planned load) from the chosen configuration's points.

    min_replicas lets the caller add replicas when a confirmation run at the planned load missed the SLO.
    """
    best = result.best
    if best is None:
        raise ValueError("recommend() needs a configuration that met the SLO")
    measured_rps = best.throughput_rps
    factor = max(1, extrapolation.target_cores // measured_cores) if extrapolation else 1
    capacity = extrapolation.target_rps if extrapolation else measured_rps
    usable = capacity * (1 - headroom)
    rate = rate_rps if rate_rps else usable
    replicas = max(min_replicas, math.ceil(rate / usable - 1e-9))
    per_replica = rate / replicas
    # The curve was measured on measured_cores; map the replica's load onto it.
    on_curve = per_replica * measured_rps / capacity
    near = _point_near(result.points, on_curve)
    cpu_cores = (near.cpu_peak_pct or 0.0) / 100 if near else 0.0
    rss_gib = max((p.rss_peak_mb or 0.0) for p in result.points) / 1024
    memory_scale = factor if http else 1  # http workers are processes; in-process instances share one session
    notes = []
    if cpu_cores == 0.0:
        notes.append("CPU use was not sampled (a remote --url): cores per replica is the configuration's layout")
        cpu_cores = float(result.config.cores)
    cores = _round_up(cpu_cores * factor * (1 + headroom), 0.1)
    memory = _round_up(rss_gib * memory_scale * (1 + headroom), 0.05)
    if cores > target.cores:
        notes.append(f"measured CPU with headroom ({cores:.1f} cores) exceeds the target's {target.cores} cores")
    if memory > target.memory_gib:
        notes.append(f"measured memory with headroom ({memory:.2f} GiB) exceeds the target's {target.memory_gib} GiB")
    cost_hour = replicas * target.price_per_hour
    return Recommendation(
        config=scale_config(result.config, factor, http), measured_config=result.config,
        capacity_rps=round(capacity, 1), usable_rps=round(usable, 1), rate_rps=round(rate, 1), replicas=replicas,
        per_replica_rps=round(per_replica, 1), measured_rate_rps=round(on_curve, 1),
        predicted_p99_ms=round(p99_at(result.points, on_curve), 3),
        cores_per_replica=round(cores, 1), memory_gib_per_replica=round(memory, 2), headroom=headroom,
        cost_per_hour=round(cost_hour, 4), cost_per_million=round(cost_hour / (rate * 3600) * 1e6, 4),
        extrapolated=extrapolation is not None, extrapolation=extrapolation, notes=tuple(notes),
    )
