"""The profile's plots as PNG bytes, drawn from the report JSON alone.

matplotlib's object API (Figure, no pyplot) keeps no global state and needs no display.
Each plot is a function drawing on one Axes, so the HTML's separate images and the one-image
grid (for a README or a pull request) are the same drawings.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from mlc.errors import MissingDependencyError
from mlc.profile.results import ConfigResult, ProfileResult

_MAX_LINES = 6  # more configurations than this make the latency plot unreadable: the best ones are drawn

Draw = Callable[[Any, ProfileResult], None]


def _chosen(result: ProfileResult) -> ConfigResult | None:
    rec = result.recommendation
    if rec is None:
        return None
    return next((r for r in result.configs if r.config == rec.measured_config), None)


def latency_vs_throughput(ax: Any, result: ProfileResult) -> None:
    """p99 against achieved throughput, each configuration's points in the order of the rate offered.

    An overloaded point serves less than it was offered, so a curve that bends back to the
    left shows where a configuration saturated.
    """
    chosen = _chosen(result)
    shown = sorted(result.configs, key=lambda r: -r.capacity_rps)[:_MAX_LINES]
    for config in shown:
        pts = sorted(config.points, key=lambda p: p.offered_rps)
        mine = config is chosen
        ax.plot([p.throughput_rps for p in pts], [p.p99_ms for p in pts], marker="o", markersize=4 if mine else 3,
                linewidth=2.5 if mine else 1, label=config.config.label + (" (recommended)" if mine else ""),
                zorder=3 if mine else 2)
    ax.axhline(result.slo_p99_ms, color="red", linestyle="--", linewidth=1, label=f"SLO p99 {result.slo_p99_ms:g} ms")
    ax.set_yscale("log")
    _plain_ticks(ax.yaxis)
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("p99 latency (ms, log)")
    ax.set_title("p99 latency vs throughput per configuration")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)


def _plain_ticks(axis: Any) -> None:
    """Log-axis labels as plain numbers (0.5, 1, 2, 5, ...) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def latency_histogram(ax: Any, result: ProfileResult) -> None:
    chosen = _chosen(result)
    best = chosen.best if chosen else None
    if best is None or not best.histogram:
        ax.text(0.5, 0.5, "no load point met the SLO", ha="center", va="center", transform=ax.transAxes)
        return
    edges, counts = best.histogram["edges_ms"], best.histogram["counts"]
    ax.stairs(counts, edges, fill=True, alpha=0.6)
    for value, name in ((best.p50_ms, "p50"), (best.p99_ms, "p99"), (best.p999_ms, "p99.9")):
        ax.axvline(value, linestyle=":", color="black", linewidth=1)
        ax.text(value, max(counts) * 0.95, f" {name}", fontsize=8)
    ax.set_xscale("log")
    _plain_ticks(ax.xaxis)
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("requests")
    ax.set_title(f"latency histogram: {chosen.config.label if chosen else ''} at {best.throughput_rps:,.0f}/s")


def cpu_over_time(ax: Any, result: ProfileResult) -> None:
    series = result.resources
    ax.plot(series.get("t_s", []), series.get("cpu_pct", []), linewidth=1, label="CPU")
    if series.get("gpu_util_pct"):
        ax.plot(series["t_s"], series["gpu_util_pct"], linewidth=1, label="GPU utilization")
        ax.legend(fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("% of one core (CPU) / % (GPU)")
    ax.set_title("serving processes: CPU over the run")
    ax.grid(True, alpha=0.3)


def memory_over_time(ax: Any, result: ProfileResult) -> None:
    series = result.resources
    ax.plot(series.get("t_s", []), series.get("rss_mb", []), linewidth=1, color="tab:green", label="RSS")
    if series.get("gpu_mem_mb"):
        ax.plot(series["t_s"], series["gpu_mem_mb"], linewidth=1, color="tab:purple", label="GPU memory")
        ax.legend(fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MB")
    ax.set_title("serving processes: resident memory over the run")
    ax.grid(True, alpha=0.3)


PLOTS: tuple[tuple[str, Draw], ...] = (
    ("Latency vs throughput", latency_vs_throughput),
    ("Latency histogram (recommended configuration)", latency_histogram),
    ("CPU over time", cpu_over_time),
    ("Memory over time", memory_over_time),
)


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "profile", "the HTML report's plots") from None
    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def figures(report: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(title, PNG) for each plot, for the HTML report."""
    result = ProfileResult.from_dict(report["body"])
    out = []
    for title, draw in PLOTS:
        fig = _figure(9, 4.5)
        draw(fig.subplots(), result)
        out.append((title, _png(fig)))
    return out


def grid_png(report: dict[str, Any]) -> bytes:
    """Every plot on one image (2 x 2)."""
    result = ProfileResult.from_dict(report["body"])
    fig = _figure(16, 9)
    fig.suptitle(f"mlc profile: {result.ref} on {result.target} ({result.mode})")
    for ax, (_, draw) in zip(fig.subplots(2, 2).flat, PLOTS, strict=True):
        draw(ax, result)
    return _png(fig)
