"""Reports as Markdown (CI logs, PR comments), terminal tables and self-contained HTML.

Every report is first turned into a short list of blocks (headings, key/value lists, tables,
text); the three formats only differ in how they draw blocks, so they can never disagree on
content. Bench reports get their own tables; any other kind (optimize, profile, or one this
version does not know) is drawn generically from its body: scalars as key/values, lists of
records as tables, nested sections as sub-headings.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text as RichText

from mlc.files import atomic_write
from mlc.report.compare import REGRESSION, Comparison


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class KeyValues:
    pairs: list[tuple[str, str]]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # columns aligned right


@dataclass
class Text:
    text: str


Block = Heading | KeyValues | Table | Text
Figure = tuple[str, bytes]  # (title, PNG bytes)

_VARIANT_ORDER = ("native", "ort-default", "mlc")


# ---- content -----------------------------------------------------------------------------------


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header_blocks(report: dict[str, Any]) -> list[Block]:
    hw = report.get("hardware") or {}
    target = report.get("target") or {}
    pkgs = report.get("packages") or {}
    cpu = f"{hw.get('usable_cores', '?')} usable cores, {hw.get('cpu_model') or '?'}"
    pairs = [
        ("created", str(report.get("created_at", "?"))),
        ("git commit", str(report.get("git_commit") or "not a git checkout")),
        ("target", str(target.get("name", "-"))),
        ("machine", f"{cpu}; {hw.get('memory_gib', '?')} GiB; {hw.get('platform', '?')}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in pkgs.items()) or "-"),
    ]
    return [Heading(f"mlc {report.get('kind', '?')} report", 1), KeyValues(pairs)]


def _cell(value: Any, limit: int = 40) -> str:
    """A table cell: dicts as k=v pairs, lists comma-joined, so records with nested fields stay readable."""
    if isinstance(value, dict):
        return _short(", ".join(f"{k}={_short(v, limit)}" for k, v in value.items()), limit)
    if isinstance(value, list):
        return _short(", ".join(_short(v, limit) for v in value), limit)
    return _short(value, limit)


def _generic_blocks(body: Any, title: str) -> list[Block]:
    """Nested fields as dotted key/values; every list of records as its own table."""
    if not isinstance(body, dict):
        return [Heading(title), Text(_short(body, 2000))]
    pairs: list[tuple[str, str]] = []
    tables: list[tuple[str, list[dict[str, Any]]]] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value:
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                tables.append((f"{prefix}{key}", value))
            else:
                pairs.append((f"{prefix}{key}", _cell(value, 200)))

    walk(body, "")
    blocks: list[Block] = [Heading(title)]
    if pairs:
        blocks.append(KeyValues(pairs))
    for key, records in tables:
        headers = [h for h in dict.fromkeys(k for r in records for k in r)
                   if any(r.get(h) not in (None, "", {}, []) for r in records)]
        blocks += [Heading(key, 3), Table(headers, [[_cell(r.get(h, "")) for h in headers] for r in records])]
    return blocks


def _ratio_cell(ratio: dict[str, Any] | None) -> str:
    if not ratio:
        return "-"
    values = sorted(ratio["values"])
    median = ratio["median"]
    spread = (values[(3 * len(values)) // 4] - values[len(values) // 4]) / 2 / median if median else 0.0
    return f"{median:.3g} ±{spread:.0%}"


def _parity_cell(timings: list[dict[str, Any]]) -> str:
    checked = [t for t in timings if t.get("parity")]
    if not checked:
        return "-"
    bad = [f"{t['variant']}: {t['parity']['reason']}" for t in checked if not t["parity"]["match"]]
    if bad:
        return "MISMATCH " + "; ".join(bad)
    worst = max(t["parity"]["max_abs_err"] for t in checked)
    return f"ok (max abs err {worst:.1e})"


def _variants_in(models: dict[str, Any]) -> list[str]:
    seen = {t["variant"] for m in models.values() for t in m.get("timings", [])}
    return [v for v in _VARIANT_ORDER if v in seen] + sorted(seen - set(_VARIANT_ORDER))


def bench_table(body: dict[str, Any]) -> Table:
    """One row per model and batch size: median µs per variant, the subject's ratios, parity."""
    subject = body.get("settings", {}).get("subject", "mlc")
    models = {n: m for n, m in body["models"].items() if m.get("status") == "ok"}
    variants = _variants_in(models)
    refs = [v for v in variants if v != subject]
    headers = ["model", "batch", *(f"{v} µs" for v in variants), *(f"{subject}/{r}" for r in refs), "parity"]
    rows = []
    for name, model in models.items():
        by_batch: dict[int, list[dict[str, Any]]] = {}
        for t in model["timings"]:
            by_batch.setdefault(t["batch_size"], []).append(t)
        for batch, timings in by_batch.items():
            by_variant = {t["variant"]: t for t in timings}
            mine = by_variant.get(subject, {})
            rows.append([
                name, str(batch),
                *(f"{by_variant[v]['median']:,.1f}" if v in by_variant else "-" for v in variants),
                *(_ratio_cell(mine.get("ratios", {}).get(r)) for r in refs),
                _parity_cell(timings),
            ])
    return Table(headers, rows, numeric=set(range(1, 2 + len(variants) + len(refs))))


def _speedup_lines(body: dict[str, Any]) -> list[str]:
    """Geometric mean over models of the subject's ratios, per reference and batch size."""
    import math

    subject = body.get("settings", {}).get("subject", "mlc")
    ratios: dict[tuple[str, int], list[float]] = {}
    for model in body["models"].values():
        for t in model.get("timings", []):
            if t["variant"] == subject:
                for ref, r in t["ratios"].items():
                    ratios.setdefault((ref, t["batch_size"]), []).append(r["median"])
    lines = []
    for ref in dict.fromkeys(ref for ref, _ in ratios):
        parts = []
        for (r, batch), values in ratios.items():
            if r == ref:
                speedup = 1 / math.exp(sum(map(math.log, values)) / len(values))
                parts.append(f"{speedup:.3g}× at b{batch}")
        lines.append(f"{subject} speed-up over {ref} (geometric mean over models): " + ", ".join(parts))
    return lines


def _bench_blocks(body: dict[str, Any]) -> list[Block]:
    settings = body.get("settings", {})
    what = f"suite '{body['suite']}'" if body.get("suite") else f"models {', '.join(body.get('refs') or [])}"
    blocks: list[Block] = [
        Heading(f"Benchmark: {what}"),
        Text(f"{settings.get('repeats')} repeats per variant and batch size, interleaved, after "
             f"{settings.get('warmup')} warm-up calls; each repeat is the median of ~{settings.get('sample_ms')} ms "
             f"of calls. Ratios are per repeat, within this run (< 1: {settings.get('subject', 'mlc')} is faster); "
             "± is half the interquartile range of the repeats. Parity is checked against the first variant "
             f"at every batch size. Took {body.get('duration_s', '?')} s."),
        bench_table(body),
    ]
    speedups = _speedup_lines(body)
    if speedups:
        blocks.append(Text("\n".join(speedups)))
    for name, model in body["models"].items():
        if model.get("status") == "ok":
            blocks.append(Text(f"{name}: {model.get('description', '')}. "
                               + "; ".join(f"{v}: {d}" for v, d in model.get("variants", {}).items())))
    if body.get("notes"):
        blocks += [Heading("Notes", 3), Text("\n".join(f"- {n}" for n in body["notes"]))]
    return blocks


def report_blocks(report: dict[str, Any]) -> list[Block]:
    body = report.get("body", {})
    if report.get("kind") == "bench" and isinstance(body.get("models"), dict):
        return _header_blocks(report) + _bench_blocks(body)
    return _header_blocks(report) + _generic_blocks(body, "Details")


def comparison_blocks(result: Comparison, *, all_lines: bool = False) -> list[Block]:
    """Lines that moved (or every line with all_lines), regressions first, their notes, and the verdict."""
    t = result.thresholds
    shown = [c for c in result.changes if all_lines or c.verdict != "ok"]
    shown.sort(key=lambda c: (c.verdict != REGRESSION, not c.gated, c.model, c.metric))
    rows = []
    for c in shown:
        interval = f"[{c.low:+.1%}, {c.high:+.1%}]" if c.low is not None and c.high is not None else "-"
        change = "-" if c.change is None else f"{c.change:+.1%}" if c.kind == "ratio" else f"{c.change:+.3g}"
        verdict = c.verdict.upper() if c.verdict == REGRESSION else c.verdict
        rows.append([c.model, c.metric, "-" if c.baseline is None else _short(c.baseline),
                     "-" if c.new is None else _short(c.new), change, interval,
                     verdict if c.gated else f"{verdict} (not gated)"])
    n_ok = sum(1 for c in result.changes if c.verdict == "ok")
    blocks: list[Block] = [
        Heading(f"Comparison: {result.new} vs {result.baseline}"),
        Text(f"Speed is judged on same-run ratios; a change fails only when its whole 95% bootstrap interval "
             f"is beyond +{t.max_slowdown:.0%} against every reference. Accuracy fails on a drop of more than "
             f"{t.max_accuracy_drop:g}. {n_ok} line(s) unchanged within thresholds"
             + (" (shown)." if all_lines else " (not shown; --all lists them).")),
    ]
    if rows:
        blocks.append(Table(["model", "metric", "baseline", "new", "change", "95% interval", "verdict"], rows,
                            numeric={2, 3, 4}))
    notes = [f"{c.model} {c.metric}: {c.note}" for c in shown if c.note] + result.notes
    if notes:
        blocks.append(Text("\n".join(f"- {n}" for n in notes)))
    blocks.append(Text(f"FAIL: {len(result.regressions)} regression(s) beyond the thresholds" if result.failed
                       else "PASS: no regression beyond the thresholds"))
    return blocks


# ---- drawing -----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, KeyValues):
            out.append("\n".join(f"- **{k}**: {_md_cell(v)}" for k, v in b.pairs))
        elif isinstance(b, Table):
            align = ["---:" if i in b.numeric else "---" for i in range(len(b.headers))]
            lines = ["| " + " | ".join(map(_md_cell, b.headers)) + " |", "|" + "|".join(align) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        else:
            out.append(b.text)
    return "\n\n".join(out) + "\n"


def print_blocks(blocks: Sequence[Block], console: Console) -> None:
    for b in blocks:
        if isinstance(b, Heading):
            style = "bold underline" if b.level == 1 else "bold"
            console.print(("" if b.level == 1 else "\n") + f"[{style}]{escape(b.text)}[/]", highlight=False)
        elif isinstance(b, KeyValues):
            width = max(len(k) for k, _ in b.pairs)
            for k, v in b.pairs:
                console.print(f"  [bold]{escape(k):{width}}[/]  {escape(v)}", highlight=False)
        elif isinstance(b, Table):
            table = RichTable(header_style="bold", box=None, pad_edge=False)
            for i, h in enumerate(b.headers):
                table.add_column(h, justify="right" if i in b.numeric else "left", overflow="fold")
            for row in b.rows:
                table.add_row(*(RichText(c) for c in row))
            console.print(table)
        else:
            console.print(b.text, highlight=False, markup=False)


def _html_block(b: Block) -> str:
    esc = html.escape
    if isinstance(b, Heading):
        return f"<h{b.level}>{esc(b.text)}</h{b.level}>"
    if isinstance(b, KeyValues):
        return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in b.pairs) + "</dl>"
    if isinstance(b, Table):
        def cell(tag: str, i: int, text: str) -> str:
            cls = ' class="num"' if i in b.numeric else ""
            return f"<{tag}{cls}>{esc(text)}</{tag}>"
        head = "".join(cell("th", i, h) for i, h in enumerate(b.headers))
        body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return "".join(f"<p>{esc(line)}</p>" for line in b.text.splitlines())


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}dl{display:grid;
grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}img{max-width:100%}"""


def to_html(report: dict[str, Any], figures: Sequence[Figure] | None = None) -> str:
    """A self-contained page; `figures` None means the plotting library was unavailable (said on the page)."""
    parts = [_html_block(b) for b in report_blocks(report)]
    if figures is None:
        parts.append("<p><em>Plots are missing: matplotlib is not installed "
                     "(pip install matplotlib, then re-render). Tables only.</em></p>")
    for title, png in figures or ():
        data = base64.b64encode(png).decode()
        parts.append(f"<h3>{html.escape(title)}</h3><img alt=\"{html.escape(title)}\" "
                     f"src=\"data:image/png;base64,{data}\">")
    title = html.escape(f"mlc {report.get('kind', '')} report {report.get('created_at', '')}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def to_markdown(report: dict[str, Any]) -> str:
    return markdown(report_blocks(report))


def show(report: dict[str, Any], console: Console) -> None:
    print_blocks(report_blocks(report), console)


def figures_for(report: dict[str, Any]) -> list[Figure] | None:
    """The plots of a report kind that has some; None when matplotlib is not installed."""
    if report.get("kind") != "bench":
        return []
    from mlc.bench.plots import bench_figures

    return bench_figures(report["body"])


def write_report_files(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and report.html in out_dir (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    # Every text first (plotting can fail), then each file whole: never a mix of two runs or half a file.
    texts = {"json": json.dumps(report, indent=1) + "\n", "md": to_markdown(report),
             "html": to_html(report, figures_for(report))}
    for kind, text in texts.items():
        atomic_write(paths[kind], text.encode())
    return paths
