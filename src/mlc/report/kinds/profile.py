"""Profile reports (`mlc profile`): the recommended deployment, then the measurements behind it.

Drawn from the JSON alone (through ProfileResult), so a recorded run renders exactly as it did
live. Every figure says how it was measured; extrapolated ones say so. The page leads with the
recommendation and the four plots (latency vs throughput, the recommended configuration's
latency histogram, CPU and memory over the run); the load-point table, which runs to a hundred
rows on a full grid, is folded. The terminal gets the recommendation and a compact
configuration table, and points to the files for the load points.
"""

from __future__ import annotations

from typing import Any

from mlc.profile.results import ConfigResult, LoadPoint, ProfileResult, Recommendation
from mlc.report._registry import Report, ReportKind, register_kind
from mlc.report.blocks import (
    Block,
    Bullets,
    Document,
    Figure,
    Folded,
    Heading,
    KeyValues,
    Link,
    Paragraph,
    Table,
    Verdict,
    table,
)
from mlc.report.figures import plain_log_ticks
from mlc.report.kinds._common import environment, environment_pairs, number
from mlc.serve.layout import ServingLayout

_MODE_TEXT = {
    "inprocess": "in-process (Scorer + DynamicBatcher, no HTTP): the capacity ceiling of one replica",
    "http": "over HTTP (KServe v2) with locust",
}
_OPEN_ROWS = 12  # a configuration table longer than this is folded on the page
_MAX_LINES = 6  # more configurations than this make the latency plot unreadable: the best ones are drawn


def _rate(value: float | None) -> str:
    return number(value, 0)


def _layout(c: ServingLayout) -> str:
    return (f"batch {c.max_batch_size}, delay {c.max_queue_delay_us} µs, {c.workers} worker(s) × "
            f"{c.instances} instance(s) × {c.threads} thread(s)")


def _how(r: ProfileResult, hardware: dict[str, Any]) -> Paragraph:
    mode = _MODE_TEXT.get(r.mode, r.mode)
    where = f"{r.usable_cores} core(s) of {hardware.get('cpu_model') or 'this machine'}"
    at = f" at {r.url}" if r.url else ""
    warm = min(0.5, r.point_duration_s / 5)
    points = sum(len(c.points) for c in r.configs)
    return Paragraph(
        f"Measured {mode}{at}, on {where}. Open-loop {r.arrivals} arrivals at fixed rates, "
        f"{r.point_duration_s:g} s per load point (the first {warm:g} s not counted); latency runs from each "
        f"request's scheduled send time, so queueing is counted. SLO: p99 ≤ {r.slo_p99_ms:g} ms. Search: "
        f"{r.search}, {len(r.configs)} configuration(s), {points} load point(s), {r.elapsed_s:g} s.")


def _p99_text(rec: Recommendation) -> str:
    if rec.confirmed is None:
        return f"{number(rec.predicted_p99_ms)} ms (interpolated on the measured curve)"
    mapped = f" on the measured configuration at {_rate(rec.measured_rate_rps)}/s" if rec.extrapolated else ""
    verdict = "met the SLO" if rec.confirmed else "MISSED the SLO"
    return f"{number(rec.predicted_p99_ms)} ms (worst of the confirmation runs{mapped}: {verdict})"


def _verdict(r: ProfileResult, target: dict[str, Any]) -> Verdict:
    rec = r.recommendation
    if rec is None:
        return Verdict(f"**No configuration met p99 ≤ {r.slo_p99_ms:g} ms**: nothing to recommend.", "fail")
    how = "extrapolated" if rec.extrapolated else "measured"
    rate = f"for {_rate(r.rate_rps)}/s" if r.rate_rps else "(no --rate given)"
    least = "at least " if rec.at_least else ""
    unconfirmed = "UNCONFIRMED " if rec.confirmed is False else ""
    what = (f"the server at {r.url} ({r.server_layout or 'external, unknown'})" if r.url
            else f"{rec.config.label}")
    count = f"{rec.replicas} replica(s) of " if r.rate_rps or not (rec.at_least or r.url) else ""
    return Verdict(
        f"**{unconfirmed}Recommendation: {count}{what} on {target.get('name', r.target)} "
        f"{rate}**\n"
        f"{least}{_rate(rec.capacity_rps)}/s per replica at p99 ≤ {r.slo_p99_ms:g} ms ({how}); p99 "
        f"{number(rec.predicted_p99_ms)} ms at the planned load; ${number(rec.cost_per_hour, 4)}/h, "
        f"${number(rec.cost_per_million, 4)} per million inferences.",
        "fail" if rec.confirmed is False else "pass")


def _recommendation(r: ProfileResult, target: dict[str, Any]) -> list[Block]:
    rec = r.recommendation
    if rec is None:
        return []
    how = "extrapolated" if rec.extrapolated else "measured"
    rate_label = f"replicas for {_rate(r.rate_rps)}/s" if r.rate_rps else "replicas (no --rate given)"
    least = "at least " if rec.at_least else ""
    replicas = str(rec.replicas) if r.rate_rps or not (rec.at_least or r.url) else "— (give --rate)"
    pairs = (
        ("configuration", f"the server at {r.url}: {r.server_layout or 'external, unknown'}" if r.url
         else _layout(rec.config)),
        (f"capacity per replica (p99 ≤ {r.slo_p99_ms:g} ms)", f"{least}{_rate(rec.capacity_rps)}/s ({how})"),
        (f"planned load per replica ({rec.headroom:.0%} headroom)", f"{_rate(rec.usable_rps)}/s"),
        (rate_label, replicas),
        (f"p99 at {_rate(rec.per_replica_rps)}/s per replica", _p99_text(rec)),
        ("cores per replica (measured CPU + headroom)", f"{number(rec.cores_per_replica, 1)} of {target['cores']}"),
        ("memory per replica (peak RSS + headroom)",
         f"{number(rec.memory_gib_per_replica)} GiB of {target['memory_gib']:g}"),
        ("cost", f"${number(rec.cost_per_hour, 4)}/h (${target['price_per_hour']:g}/h per replica); "
                 f"${number(rec.cost_per_million, 4)} per million inferences"),
    )
    blocks: list[Block] = [Heading("Recommendation"), KeyValues(pairs)]
    if not r.url:  # never a serve command for a layout it did not measure
        blocks.append(Paragraph(
            f"Serve with: `mlc serve {r.ref} --target {target['name']}`: the recorded profile supplies the rest; "
            f"spelled out, `{' '.join(rec.config.serve_flags())}`."))  # the flags the profiler serves it with
    if rec.extrapolation:
        x = rec.extrapolation
        blocks += [Heading("Extrapolated", 3), Paragraph(
            f"The target has {x.target_cores} cores; this machine measured on {x.measured_cores}. Measured here: "
            f"{rec.measured_config.label}, grown to {rec.config.label} for the target. "
            f"Capacity {_rate(x.target_rps)}/s = {x.method}. Cores per replica scale with the same factor.")]
    if rec.notes:
        blocks.append(Bullets(rec.notes))
    return blocks


def _by_capacity(configs: list[ConfigResult]) -> list[ConfigResult]:
    return sorted(configs, key=lambda c: -c.capacity_rps)


def _configs_table(r: ProfileResult) -> Table:
    rows = []
    for result in _by_capacity(r.configs):
        best = result.best
        row = [result.config.label, str(result.config.cores), _rate(result.capacity_rps)]
        if best is None:
            row += ["—"] * 8
        else:
            row += [number(best.p50_ms), number(best.p90_ms), number(best.p95_ms), number(best.p99_ms),
                    number(best.p999_ms), str(best.errors), number(best.cpu_peak_pct, 0), number(best.rss_peak_mb, 0)]
        rows.append([*row, result.note])
    return table(["configuration", "cores", "capacity/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms",
                  "errors", "CPU peak %", "RSS peak MB", "note"], rows, set(range(1, 11)))


def _compact_configs(r: ProfileResult) -> list[Block]:
    """The terminal's configuration table: the columns that decide, notes beneath it."""
    rows = []
    for result in _by_capacity(r.configs):
        best = result.best
        rows.append([result.config.label, str(result.config.cores), _rate(result.capacity_rps),
                     *(["—"] * 5 if best is None else
                       [number(best.p50_ms), number(best.p99_ms), number(best.p999_ms), str(best.errors),
                        number(best.cpu_peak_pct, 0)])])
    out: list[Block] = [table(["configuration", "cores", "capacity/s", "p50 ms", "p99 ms", "p99.9 ms", "errors",
                               "CPU peak %"], rows, set(range(1, 8)))]
    notes = [f"{c.config.label}: {c.note}" for c in _by_capacity(r.configs) if c.note]
    if notes:
        out.append(Bullets(tuple(notes)))
    return out


def _point_row(label: str, p: LoadPoint) -> list[str]:
    gen = "—" if not p.loadgen_processes else (
        f"{p.loadgen_processes}p {number(p.loadgen_cpu_peak_pct, 0)}%" + (" LIMITED" if p.loadgen_limited else ""))
    return [label, _rate(p.offered_rps), _rate(p.throughput_rps), number(p.p50_ms), number(p.p90_ms),
            number(p.p95_ms), number(p.p99_ms), number(p.p999_ms), f"{p.errors}/{p.sent}", number(p.send_lag_p99_ms),
            number(p.cpu_mean_pct, 0), number(p.rss_peak_mb, 0), "yes" if p.meets_slo else "no", gen]


def _points_table(r: ProfileResult) -> Table:
    rows = [_point_row(c.config.label, p) for c in r.configs for p in c.points]
    rows += [_point_row(f"{c.config.label} pinned to {p.cores_pinned} core(s)", p) for c in r.scaling for p in c.points]
    return table(["configuration", "offered/s", "throughput/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms",
                  "errors/sent", "send lag p99 ms", "CPU mean %", "RSS peak MB", "meets SLO", "load generator"],
                 rows, set(range(1, 12)))


def _points_note(r: ProfileResult) -> Paragraph:
    return Paragraph(
        "CPU is % of one core summed over the serving processes"
        + (" (in-process: the load generator's scheduler thread included, so an upper bound)"
           if r.mode == "inprocess" else "")
        + "; the load generator column gives its processes and the busiest one's peak CPU (http mode).")


# ---- plots -------------------------------------------------------------------------------------


def _chosen(r: ProfileResult) -> ConfigResult | None:
    rec = r.recommendation
    if rec is None:
        return None
    return next((c for c in r.configs if c.config == rec.measured_config), None)


def latency_vs_throughput(ax: Any, r: ProfileResult) -> None:
    """p99 against achieved throughput, each configuration's points in the order of the rate offered.

    An overloaded point serves less than it was offered, so a curve that bends back to the
    left shows where a configuration saturated.
    """
    chosen = _chosen(r)
    for config in _by_capacity(r.configs)[:_MAX_LINES]:
        pts = sorted(config.points, key=lambda p: p.offered_rps)
        mine = config is chosen
        ax.plot([p.throughput_rps for p in pts], [p.p99_ms for p in pts], marker="o", markersize=4 if mine else 3,
                linewidth=2.5 if mine else 1, label=config.config.label + (" (recommended)" if mine else ""),
                zorder=3 if mine else 2)
    ax.axhline(r.slo_p99_ms, color="red", linestyle="--", linewidth=1, label=f"SLO p99 {r.slo_p99_ms:g} ms")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("p99 latency (ms, log)")
    ax.set_title("p99 latency vs throughput per configuration")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)


def latency_histogram(ax: Any, r: ProfileResult) -> None:
    chosen = _chosen(r)
    best = chosen.best if chosen else None
    if chosen is None or best is None or not best.histogram:
        ax.text(0.5, 0.5, "no load point met the SLO", ha="center", va="center", transform=ax.transAxes)
        return
    edges, counts = best.histogram["edges_ms"], best.histogram["counts"]
    ax.stairs(counts, edges, fill=True, alpha=0.6)
    for value, name in ((best.p50_ms, "p50"), (best.p99_ms, "p99"), (best.p999_ms, "p99.9")):
        ax.axvline(value, linestyle=":", color="black", linewidth=1)
        ax.text(value, max(counts) * 0.95, f" {name}", fontsize=9)
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("requests")
    ax.set_title(f"latency histogram: {chosen.config.label} at {best.throughput_rps:,.0f}/s")


def cpu_over_time(ax: Any, r: ProfileResult) -> None:
    series = r.resources
    ax.plot(series.get("t_s", []), series.get("cpu_pct", []), linewidth=1, label="CPU")
    if series.get("gpu_util_pct"):
        ax.plot(series["t_s"], series["gpu_util_pct"], linewidth=1, label="GPU utilization")
        ax.legend(fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("% of one core (CPU) / % (GPU)")
    ax.set_title("serving processes: CPU over the run")
    ax.grid(True, alpha=0.3)


def memory_over_time(ax: Any, r: ProfileResult) -> None:
    series = r.resources
    ax.plot(series.get("t_s", []), series.get("rss_mb", []), linewidth=1, color="tab:green", label="RSS")
    if series.get("gpu_mem_mb"):
        ax.plot(series["t_s"], series["gpu_mem_mb"], linewidth=1, color="tab:purple", label="GPU memory")
        ax.legend(fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MB")
    ax.set_title("serving processes: resident memory over the run")
    ax.grid(True, alpha=0.3)


PLOTS = (
    ("Latency vs throughput", latency_vs_throughput),
    ("Latency histogram (recommended configuration)", latency_histogram),
    ("CPU over time", cpu_over_time),
    ("Memory over time", memory_over_time),
)


def _figures(r: ProfileResult) -> list[Figure]:
    def one(draw: Any) -> Any:
        return lambda fig: draw(fig.subplots(), r)

    return [Figure(title, one(draw), 6.4, 4.2) for title, draw in PLOTS]


# ---- documents ---------------------------------------------------------------------------------


def _title(r: ProfileResult) -> str:
    return f"mlc profile: {r.ref} on {r.target}"


def _head(r: ProfileResult, target: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading(_title(r), 1), *(Paragraph(f"**{line}**") for line in r.headline)]
    if r.interrupted:
        blocks.append(Verdict("**Interrupted**: this report holds what was measured before Ctrl-C.", "fail"))
    return [*blocks, _verdict(r, target), *_recommendation(r, target)]


def _notes(r: ProfileResult) -> list[Block]:
    return [Heading("Notes"), Bullets(tuple(r.notes))] if r.notes else []


def page(report: Report) -> Document:
    r = ProfileResult.from_dict(report["body"])
    target = report.get("target") or {}
    blocks: list[Block] = [*_head(r, target), *_figures(r),
                           Heading("How this was measured"), _how(r, report.get("hardware") or {})]
    configs = (Paragraph("Each configuration's best load point: the highest throughput whose p99 met the SLO."),
               _configs_table(r))
    if len(r.configs) <= _OPEN_ROWS:
        blocks += [Heading("Configurations"), *configs]
    else:
        blocks.append(Folded(f"Configurations ({len(r.configs)})", configs))
    points = _points_table(r)
    blocks.append(Folded(f"Load points ({len(points.rows)})", (_points_note(r), points)))
    if "pyinstrument" in r.files:
        blocks.append(Link("Scoring hot path (pyinstrument)", r.files["pyinstrument"]))
    return Document(_title(r), (*blocks, *_notes(r), environment(report)))


def terminal(report: Report) -> Document:
    r = ProfileResult.from_dict(report["body"])
    target = report.get("target") or {}
    points = sum(len(c.points) for c in (*r.configs, *r.scaling))
    where = ", ".join(name for kind, name in r.files.items() if kind in ("markdown", "html")) or "the JSON report"
    blocks: list[Block] = [*_head(r, target), Heading("How this was measured"),
                           _how(r, report.get("hardware") or {}), Heading("Configurations"),
                           *_compact_configs(r), Paragraph(f"Every one of the {points} load points: in {where}.")]
    if "pyinstrument" in r.files:
        blocks.append(Link("Scoring hot path (pyinstrument)", r.files["pyinstrument"]))
    return Document(_title(r), (*blocks, *_notes(r), Heading("Environment"), KeyValues(environment_pairs(report))))


register_kind(ReportKind("profile", page, terminal))

