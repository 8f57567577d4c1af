"""A profile as JSON (the shared mlc.report/1 envelope), Markdown, and HTML with plots.

Markdown and HTML are drawn from one list of blocks built from the JSON alone, so a recorded
run renders exactly as it did live (the golden-report test replays one), and the two formats
cannot disagree. Every figure says how it was measured; extrapolated ones say so.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.files import atomic_write
from mlc.profile.results import ConfigResult, LoadPoint, ProfileResult, Recommendation
from mlc.report.envelope import check_schema, envelope
from mlc.targets import HardwareTarget

_MODE_TEXT = {
    "inprocess": "in-process (Scorer + DynamicBatcher, no HTTP): the capacity ceiling of one replica",
    "http": "over HTTP (KServe v2) with locust",
}


@dataclass
class Block:
    kind: str  # "h1", "h2", "h3", "p", "list", "table"
    text: str = ""
    items: list[str] | None = None
    headers: list[str] | None = None
    rows: list[list[str]] | None = None


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:,.{digits}f}"


def _rate(value: float | None) -> str:
    return _num(value, 0)


def _layout(c: dict[str, Any]) -> str:
    return (f"batch {c['max_batch_size']}, delay {c['max_queue_delay_us']} µs, {c['workers']} worker(s) × "
            f"{c['instances']} instance(s) × {c['intra_op_threads']} thread(s)")


def _how(body: dict[str, Any], hardware: dict[str, Any]) -> str:
    mode = _MODE_TEXT.get(body["mode"], body["mode"])
    where = f"{body['usable_cores']} core(s) of {hardware.get('cpu_model') or 'this machine'}"
    target = f" at {body['url']}" if body.get("url") else ""
    warm = min(0.5, body["point_duration_s"] / 5)
    return (f"Measured {mode}{target}, on {where}. Open-loop {body['arrivals']} arrivals at fixed rates, "
            f"{body['point_duration_s']:g} s per load point (the first {warm:g} s not counted); latency runs from "
            f"each request's scheduled send time, so queueing is counted. SLO: p99 ≤ {body['slo_p99_ms']:g} ms. "
            f"Search: {body['search']}, {len(body['configs'])} configuration(s), "
            f"{sum(len(c['points']) for c in body['configs'])} load point(s), {body['elapsed_s']:g} s.")


def _p99_text(rec: Recommendation) -> str:
    if rec.confirmed is None:
        return f"{_num(rec.predicted_p99_ms)} ms (interpolated on the measured curve)"
    mapped = f" on the measured configuration at {_rate(rec.measured_rate_rps)}/s" if rec.extrapolated else ""
    verdict = "met the SLO" if rec.confirmed else "MISSED the SLO"
    return f"{_num(rec.predicted_p99_ms)} ms (worst of the confirmation runs{mapped}: {verdict})"


def _recommendation_blocks(body: dict[str, Any], target: dict[str, Any]) -> list[Block]:
    data = body.get("recommendation")
    if not data:
        return [Block("h2", "Recommendation"), Block("p", "No configuration met the SLO; nothing to recommend.")]
    rec = Recommendation.from_dict(data)
    how = "extrapolated" if rec.extrapolated else "measured"
    rate_label = f"replicas for {_rate(body['rate_rps'])}/s" if body.get("rate_rps") else "replicas (no --rate given)"
    rows = [
        ["configuration", _layout(rec.config.to_dict())],
        [f"capacity per replica (p99 ≤ {body['slo_p99_ms']:g} ms)", f"{_rate(rec.capacity_rps)}/s ({how})"],
        [f"planned load per replica ({rec.headroom:.0%} headroom)", f"{_rate(rec.usable_rps)}/s"],
        [rate_label, str(rec.replicas)],
        [f"p99 at {_rate(rec.per_replica_rps)}/s per replica", _p99_text(rec)],
        ["cores per replica (measured CPU + headroom)", f"{_num(rec.cores_per_replica, 1)} of {target['cores']}"],
        ["memory per replica (peak RSS + headroom)", f"{_num(rec.memory_gib_per_replica)} GiB of "
                                                      f"{target['memory_gib']:g}"],
        ["cost", f"${_num(rec.cost_per_hour, 4)}/h (${target['price_per_hour']:g}/h per replica); "
                 f"${_num(rec.cost_per_million, 4)} per million inferences"],
    ]
    blocks = [Block("h2", "Recommendation"), Block("table", headers=["", ""], rows=rows)]
    c = rec.config
    blocks.append(Block("p", f"Serve with: `mlc serve {body['ref']} --target {target['name']}`: the recorded "
                             "profile supplies the rest; spelled out, `--workers "
                             f"{c.workers} --instances {c.instances} --threads {c.intra_op_threads} --max-batch-size "
                             f"{c.max_batch_size} --max-queue-delay-us {c.max_queue_delay_us}`."))
    if rec.extrapolation:
        x = rec.extrapolation
        blocks += [Block("h3", "Extrapolated"), Block("p", (
            f"The target has {x.target_cores} cores; this machine measured on {x.measured_cores}. Measured here: "
            f"{rec.measured_config.label}, grown to {c.label} for the target. Capacity {_rate(x.target_rps)}/s = "
            f"{x.method}. Cores per replica scale with the same factor."))]
    if rec.notes:
        blocks.append(Block("list", items=list(rec.notes)))
    return blocks


def _config_rows(configs: list[ConfigResult]) -> list[list[str]]:
    rows = []
    for result in sorted(configs, key=lambda r: -r.capacity_rps):
        best = result.best
        row = [result.config.label, str(result.config.cores), _rate(result.capacity_rps)]
        if best is None:
            row += ["—"] * 8
        else:
            row += [_num(best.p50_ms), _num(best.p90_ms), _num(best.p95_ms), _num(best.p99_ms), _num(best.p999_ms),
                    str(best.errors), _num(best.cpu_peak_pct, 0), _num(best.rss_peak_mb, 0)]
        rows.append([*row, result.note])
    return rows


def _point_row(label: str, p: LoadPoint) -> list[str]:
    gen = "—" if not p.loadgen_processes else (
        f"{p.loadgen_processes}p {_num(p.loadgen_cpu_peak_pct, 0)}%" + (" LIMITED" if p.loadgen_limited else ""))
    return [label, _rate(p.offered_rps), _rate(p.throughput_rps), _num(p.p50_ms), _num(p.p90_ms), _num(p.p95_ms),
            _num(p.p99_ms), _num(p.p999_ms), f"{p.errors}/{p.sent}", _num(p.send_lag_p99_ms),
            _num(p.cpu_mean_pct, 0), _num(p.rss_peak_mb, 0), "yes" if p.meets_slo else "no", gen]


_POINT_HEADERS = ["configuration", "offered/s", "throughput/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms",
                  "errors/sent", "send lag p99 ms", "CPU mean %", "RSS peak MB", "meets SLO", "load generator"]


def blocks(report: dict[str, Any]) -> list[Block]:
    """The report's content, in order, from the envelope alone."""
    check_schema(report, "profile report")
    body, target, hardware = report["body"], report["target"] or {}, report.get("hardware") or {}
    result = ProfileResult.from_dict(body)
    out = [Block("h1", f"mlc profile: {body['ref']} on {body['target']}"), Block("p", _how(body, hardware))]
    if body.get("interrupted"):
        out.append(Block("p", "**Interrupted**: this report holds what was measured before Ctrl-C."))
    out += _recommendation_blocks(body, target)
    out += [Block("h2", "Configurations"),
            Block("p", "Each configuration's best load point: the highest throughput whose p99 met the SLO."),
            Block("table", headers=["configuration", "cores", "capacity/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms",
                                    "p99.9 ms", "errors", "CPU peak %", "RSS peak MB", "note"],
                  rows=_config_rows(result.configs))]
    rows = [_point_row(r.config.label, p) for r in result.configs for p in r.points]
    rows += [_point_row(f"{r.config.label} pinned to {p.cores_pinned} core(s)", p)
             for r in result.scaling for p in r.points]
    out += [Block("h2", "Load points"),
            Block("p", "CPU is % of one core summed over the serving processes"
                       + (" (in-process: the load generator's scheduler thread included, so an upper bound)"
                          if body["mode"] == "inprocess" else "")
                       + "; the load generator column gives its processes and the busiest one's peak CPU "
                         "(http mode)."),
            Block("table", headers=_POINT_HEADERS, rows=rows)]
    if body.get("notes"):
        out += [Block("h2", "Notes"), Block("list", items=list(body["notes"]))]
    packages = report.get("packages") or {}
    out += [Block("h2", "Environment"), Block("list", items=[
        f"target: {target.get('name')} ({target.get('description', '')}), {target.get('cores')} cores, "
        f"{target.get('memory_gib')} GiB, ${target.get('price_per_hour')}/h",
        f"measured on: {hardware.get('cpu_model')}, {hardware.get('usable_cores')} usable of "
        f"{hardware.get('logical_cores')} logical cores, {hardware.get('memory_gib')} GiB",
        "packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v),
        f"created {report.get('created_at')}, git {report.get('git_commit') or '—'}",
    ])]
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: dict[str, Any]) -> str:
    parts = []
    for b in blocks(report):
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"{'#' * int(b.kind[1])} {b.text}")
        elif b.kind == "p":
            parts.append(b.text)
        elif b.kind == "list":
            parts.append("\n".join(f"- {item}" for item in b.items or []))
        else:
            headers = b.headers or []
            lines = ["| " + " | ".join(map(_md_cell, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in b.rows or []]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** as HTML, after escaping."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{piece}</code>" if i % 2 else re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", piece)
                   for i, piece in enumerate(pieces))


_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
          "font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
          "td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:.5em 0}")


def to_html(report: dict[str, Any], figures: list[tuple[str, bytes]], hot_path: str | None = None) -> str:
    """A self-contained page: the report's blocks, then the plots as embedded PNGs."""
    parts = []
    for b in blocks(report):
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items or []) + "</ul>")
        else:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers or [])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                           for row in b.rows or [])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    if figures:
        parts.append("<h2>Plots</h2>")
        for title, png in figures:
            data = base64.b64encode(png).decode()
            parts.append(f"<h3>{html.escape(title)}</h3><img alt=\"{html.escape(title)}\" "
                         f"src=\"data:image/png;base64,{data}\">")
    if hot_path:
        parts.append(f"<p>Scoring hot path (pyinstrument): <a href=\"{html.escape(hot_path)}\">"
                     f"{html.escape(hot_path)}</a></p>")
    title = html.escape(f"mlc profile: {report['body']['ref']} on {report['body']['target']}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>{_STYLE}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")


def write_reports(result: ProfileResult, target: HardwareTarget, out_dir: Path, *, html: Path | None = None,
                  hot_path: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """JSON and Markdown always, HTML with plots when asked, pyinstrument's page beside them; returns the envelope."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name, _, version = result.ref.partition(":")
    stem = f"profile-{name}-{version}-{result.target}"
    files = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    if html is not None:
        files["html"] = html
    if hot_path is not None:
        files["pyinstrument"] = (html.parent if html else out_dir) / f"{stem}-hotpath.html"
    result.files = {kind: path.name for kind, path in files.items()}  # names: a report must not leak local paths
    report = envelope("profile", result.to_dict(), target=target.to_dict())
    # Every text first (plotting can fail), then each file whole: never a mix of two runs or half a file.
    texts = {"json": json.dumps(report, indent=2) + "\n", "markdown": to_markdown(report)}
    if hot_path is not None:
        texts["pyinstrument"] = hot_path
    if html is not None:
        from mlc.profile.plots import figures

        hot_name = files["pyinstrument"].name if "pyinstrument" in files else None
        texts["html"] = to_html(report, figures(report), hot_name)
    for kind, text in texts.items():
        atomic_write(files[kind], text.encode())
    return report, files
