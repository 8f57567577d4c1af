"""Optimize reports (`mlc optimize`): the winner, and every candidate measured and explained.

Drawn from the report's body alone (the "mlc.optimize/1" body OptimizeResult writes), so the
report attached to a version, `mlc optimize`'s output and `mlc report show` are one rendering.
The page keeps the wide candidate table (median and p99 per batch size, parity, why a loser
lost); the terminal gets a compact one that fits 100 columns: each candidate's speed-up over
the native call per batch size and why it lost, text wrapping within its column.
"""

from __future__ import annotations

import math
from typing import Any

from mlc.report._registry import Report, ReportKind, register_kind
from mlc.report.blocks import (
    Block,
    Document,
    Figure,
    Heading,
    Paragraph,
    Table,
    Verdict,
    fold_if_long,
    table,
)
from mlc.report.figures import plain_log_ticks
from mlc.report.kinds._common import environment

_MEASURED, _NOT_APPLICABLE = "measured", "not applicable"
_REASON = 38  # terminal columns for why a candidate lost


def _batches(body: dict[str, Any]) -> list[int]:
    return [int(b) for b in body.get("batch_sizes", [])]


def _native(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("native") or {}


def _median(latency: dict[str, Any], batch: int) -> float | None:
    lat = latency.get(str(batch))
    return float(lat["median_us"]) if lat else None


def _speedup(body: dict[str, Any], candidate: dict[str, Any], batch: int) -> float | None:
    native = _median(_native(body).get("latency", {}), batch)
    mine = _median(candidate.get("latency", {}), batch)
    return native / mine if native and mine else None


def _times(value: float | None) -> str:
    return "–" if value is None else f"×{value:.3g}" if value < 100 else f"×{value:,.0f}"


def _latency_cell(body: dict[str, Any], candidate: dict[str, Any], batch: int) -> str:
    lat = candidate.get("latency", {}).get(str(batch))
    if lat is None:
        return "–"
    speedup = _speedup(body, candidate, batch)
    return f"{lat['median_us']:.1f} / {lat['p99_us']:.1f}" + (f" (×{speedup:.1f})" if speedup else "")


def _parity_cell(candidate: dict[str, Any]) -> str:
    p = candidate.get("parity")
    if not p:
        return "–"
    kind = "lossy" if p["tolerance"]["lossy"] else "lossless"
    return f"{kind}: max err {p['max_rel_error']:.1e}, labels {p['label_disagreement']:.2%}"


def _verdict(body: dict[str, Any]) -> Verdict:
    plan = body.get("plan")
    if plan is None or body.get("winner") is None:
        return Verdict("**No candidate reproduced the original model within tolerance**: nothing was registered.",
                       "fail")
    speedups = plan.get("speedup_vs_native") or {}
    faster = ", ".join(f"{_times(float(speedups[str(b)]))} at batch {b}" for b in _batches(body)
                       if str(b) in speedups)
    native = _native(body).get("call", "the native call")
    return Verdict(f"**Winner: `{body['winner']}`** — {plan['description']}\n"
                   f"Speed-up over `{native}`: {faster or 'not timed'}.", "pass")


def _engine_at(engines: list[dict[str, Any]], batch: int) -> str:
    return next((e["engine"] for e in engines if e.get("max_rows") is None or batch <= e["max_rows"]),
                engines[-1]["engine"] if engines else "ort")


def _native_line(body: dict[str, Any]) -> list[Block]:
    """Where the plan keeps the original model, said in so many words."""
    runtime = (body.get("plan") or {}).get("runtime") or {}
    engines = runtime.get("engines") or []
    kept = [b for b in _batches(body) if _engine_at(engines, b) == "native"]
    if not kept:
        return []
    where = "any batch size" if kept == _batches(body) else "batch " + ", ".join(map(str, kept))
    return [Paragraph(f"No ONNX candidate beat the original model at {where}: the plan keeps it there "
                      f"(engine native, loaded from {runtime.get('native')} with the safe loader).")]


def _plan_lines(body: dict[str, Any]) -> list[Block]:
    plan = body.get("plan") or {}
    engines = (plan.get("runtime") or {}).get("engines") or []
    if len(engines) < 2:
        return _native_line(body)
    return [*_native_line(body), Paragraph("The winner uses different engines by batch size (runtime plan: "
                      + ", ".join(f"{e['engine']} up to {e['max_rows'] or 'any'} rows" for e in engines) + ").")]


def _evidence(body: dict[str, Any]) -> Paragraph:
    text = f"Parity checked on {body.get('validation_rows')} rows of {body.get('evidence')}."
    rows = body.get("parity_rows") or {}
    families = rows.get("families") or {}
    if len(families) > 1:
        text = (f"Parity checked on {body.get('validation_rows')} rows: "
                + ", ".join(f"{n} {family}" for family, n in families.items()) + ".")
    for family, why in (rows.get("refused") or {}).items():
        text += f" No {family} rows: the original refuses them ({why})."
    lossy = [c for c in body.get("candidates", []) if c.get("lossy") and c.get("latency")]
    if lossy and body.get("allow_lossy") is False:
        text += (f" {len(lossy)} lossy candidate{'s' if len(lossy) > 1 else ''} (int8, fp16) passed their "
                 "tolerance and were timed, but win only with --allow-lossy.")
    return Paragraph(text)


def _outcome(candidate: dict[str, Any]) -> str:
    """Why a candidate did not win, in one short cell: its reason, after its status unless it was measured."""
    if candidate.get("winner"):
        return "winner"
    status, reason = candidate.get("status", ""), candidate.get("reason", "")
    if status == _MEASURED:
        return reason or "measured"
    head, sep, rest = reason.partition(": ")
    if sep and " " not in head:  # "fold-linear: no MatMul ...": the pass is named in the row already
        reason = rest
    return f"{'n/a' if status == _NOT_APPLICABLE else status}: {reason}" if reason else status


def _terminal_order(candidate: dict[str, Any]) -> int:
    """The winner first, then what was measured, then what failed or did not apply."""
    return 0 if candidate.get("winner") else 1 if candidate.get("latency") else 2


def wide_table(body: dict[str, Any]) -> Table:
    """Every candidate with median / p99 µs and speed-up per batch size, parity and why: for the page."""
    batches = _batches(body)
    native = _native(body)
    rows = [[f"native {native.get('call')}", "baseline",
             *(f"{lat['median_us']:.1f} / {lat['p99_us']:.1f}" if (lat := native.get("latency", {}).get(str(b)))
               else "–" for b in batches), "–", "–"]]
    for c in body.get("candidates", []):
        rows.append([f"{c['id']} {c['label']}", "winner" if c.get("winner") else c.get("status", ""),
                     *(_latency_cell(body, c, b) for b in batches), _parity_cell(c), c.get("reason", "")])
    return table(["candidate", "status", *(f"b={b} median / p99 µs (×native)" for b in batches), "parity", "why"],
                 rows, set(range(2, 2 + len(batches))))


def compact_table(body: dict[str, Any]) -> Table:
    """Each candidate's speed-up over native per batch size and why it lost: for a 100-column terminal."""
    batches = _batches(body)
    rows = [[c["id"], c["label"], *(_times(_speedup(body, c, b)) for b in batches), _outcome(c)]
            for c in sorted(body.get("candidates", []), key=_terminal_order)]
    # 100 columns: id, the label, a speed-up column per batch size (6 wide), the reason, a gap of 2 between.
    label = max(14, 100 - 3 - 6 * len(batches) - _REASON - 2 * (len(batches) + 2))
    return table(["", "candidate", *(f"b{b}" for b in batches), "why not the winner"], rows,
                 set(range(2, 2 + len(batches))), {1: label, 2 + len(batches): _REASON})


def _speedup_figure(fig: Any, body: dict[str, Any]) -> None:
    """Speed-up over native per measured candidate, one panel per batch size, the winner highlighted."""
    batches = _batches(body)
    measured = [c for c in body.get("candidates", []) if c.get("latency")]
    axes = fig.subplots(1, len(batches), sharey=True, squeeze=False)[0]
    labels = [c["id"] for c in measured]
    for ax, batch in zip(axes, batches, strict=True):
        values = [_speedup(body, c, batch) or math.nan for c in measured]
        colours = ["tab:green" if c.get("winner") else "tab:gray" for c in measured]
        # Bars grow from 1× (as fast as native) to the right when faster, to the left when slower.
        ax.barh(range(len(measured)), [abs(v - 1) for v in values], left=[min(v, 1.0) for v in values],
                color=colours)
        for y, value in enumerate(values):
            if value == value:
                ax.text(value, y, f" {_times(value)}", va="center", fontsize=8)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        low = min(0.5, *(v / 2 for v in values if v == v))
        high = max(2.0, *(v * 4 for v in values if v == v))
        ax.set_xlim(low, high)
        plain_log_ticks(ax.xaxis, decades_only=high / low > 300)
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("× native (log)")
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(range(len(measured)), labels)
    axes[0].invert_yaxis()


def _figures(body: dict[str, Any]) -> list[Figure]:
    measured = [c for c in body.get("candidates", []) if c.get("latency")]
    if not measured or not _batches(body):
        return []
    return [Figure("Speed-up over the native call per candidate (green: the winner)",
                   lambda fig: _speedup_figure(fig, body), 9.0, 1.2 + 0.35 * len(measured))]


def _title(body: dict[str, Any]) -> str:
    return f"mlc optimize: {body.get('source')} for {body.get('target')}"


def page(report: Report) -> Document:
    body = report["body"]
    blocks: list[Block] = [Heading(_title(body), 1), _verdict(body), *_plan_lines(body), _evidence(body),
                           *_figures(body), *fold_if_long("Candidates", wide_table(body), rows=15)]
    return Document(_title(body), (*blocks, environment(report)))


def terminal(report: Report) -> Document:
    body = report["body"]
    blocks: list[Block] = [Heading(_title(body), 1), _verdict(body), *_plan_lines(body), _evidence(body),
                           Heading("Candidates"), Paragraph("× is the speed-up over the native call, by batch size."),
                           compact_table(body)]
    return Document(_title(body), tuple(blocks))


register_kind(ReportKind("optimize", page, terminal))
