"""Bench reports (`mlc bench`): native vs plain ONNX Runtime vs mlc, per model and batch size.

The verdict is the subject's geometric-mean speed-up over each reference, per batch size, and
whether every output matched. Two plots: latency per row against batch size for every variant
(log-log, the repeats' quartiles as error bars), and the subject's same-run ratios with every
repeat drawn, so a reader sees the spread the CI gate judges, not only the median.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlc.report._registry import Report, ReportKind, register_kind
from mlc.report.blocks import (
    Block,
    Bullets,
    Document,
    Figure,
    Heading,
    KeyValues,
    Paragraph,
    Table,
    Verdict,
    table,
)
from mlc.report.figures import plain_log_ticks
from mlc.report.kinds._common import environment, environment_pairs

_VARIANT_ORDER = ("native", "ort-default", "mlc")


def _subject(body: dict[str, Any]) -> str:
    return str(body.get("settings", {}).get("subject", "mlc"))


def _measured(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: m for n, m in body["models"].items() if m.get("status") == "ok"}


def _variants_in(models: dict[str, Any]) -> list[str]:
    seen = {t["variant"] for m in models.values() for t in m.get("timings", [])}
    return [v for v in _VARIANT_ORDER if v in seen] + sorted(seen - set(_VARIANT_ORDER))


def _ratio_cell(ratio: dict[str, Any] | None) -> str:
    if not ratio:
        return "-"
    values = sorted(ratio["values"])
    median = ratio["median"]
    spread = (values[(3 * len(values)) // 4] - values[len(values) // 4]) / 2 / median if median else 0.0
    return f"{median:.3g} ±{spread:.0%}"


def _parity_cell(timings: list[dict[str, Any]], *, terse: bool) -> str:
    checked = [t for t in timings if t.get("parity")]
    if not checked:
        return "-"
    bad = [t for t in checked if not t["parity"]["match"]]
    if bad:
        if terse:
            return "MISMATCH " + ", ".join(t["variant"] for t in bad)
        return "MISMATCH " + "; ".join(f"{t['variant']}: {t['parity']['reason']}" for t in bad)
    worst = max(t["parity"]["max_abs_err"] for t in checked)
    return f"ok {worst:.0e}" if terse else f"ok (max abs err {worst:.1e})"


def results_table(body: dict[str, Any], *, terse: bool = False) -> Table:
    """One row per model and batch size: median µs per variant, the subject's ratios, parity."""
    subject = _subject(body)
    models = _measured(body)
    variants = _variants_in(models)
    refs = [v for v in variants if v != subject]
    headers = ["model", "batch", *(f"{v} µs" for v in variants), *(f"{subject}/{r}" for r in refs),
               "parity" if not terse else "parity (max err)"]
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
                _parity_cell(timings, terse=terse),
            ])
    return table(headers, rows, set(range(1, 2 + len(variants) + len(refs))))


def _speedup_lines(body: dict[str, Any]) -> list[str]:
    """Geometric mean over models of the subject's ratios, per reference and batch size."""
    subject = _subject(body)
    ratios: dict[tuple[str, int], list[float]] = {}
    for model in _measured(body).values():
        for t in model.get("timings", []):
            if t["variant"] == subject:
                for ref, r in t["ratios"].items():
                    ratios.setdefault((ref, t["batch_size"]), []).append(r["median"])
    lines = []
    for ref in dict.fromkeys(ref for ref, _ in ratios):
        parts = [f"{1 / math.exp(sum(map(math.log, values)) / len(values)):.3g}× at b{batch}"
                 for (r, batch), values in ratios.items() if r == ref]
        lines.append(f"{subject} speed-up over {ref} (geometric mean over models): " + ", ".join(parts))
    return lines


def _verdict(body: dict[str, Any]) -> Verdict:
    models = body["models"]
    mismatched = [f"{name} {t['variant']} @b{t['batch_size']}" for name, m in _measured(body).items()
                  for t in m["timings"] if t.get("parity") and not t["parity"]["match"]]
    failed = [name for name, m in models.items() if m.get("status") == "error"]
    lines = _speedup_lines(body) or ["no model was measured"]
    if mismatched:
        lines.append("**Outputs differ from the reference:** " + ", ".join(mismatched))
    if failed:
        lines.append("**Failed:** " + ", ".join(failed) + " (see the notes)")
    if not mismatched and not failed and _measured(body):
        lines.append("Every output matched the reference at every batch size.")
    return Verdict("\n".join(lines), "fail" if mismatched or failed or not _measured(body) else "info")


def _method(body: dict[str, Any]) -> Paragraph:
    s = body.get("settings", {})
    return Paragraph(
        f"{s.get('repeats')} repeats per variant and batch size, interleaved, after {s.get('warmup')} warm-up "
        f"calls; each repeat is the median of ~{s.get('sample_ms')} ms of calls. Ratios are per repeat, within "
        f"this run (< 1: {_subject(body)} is faster); ± is half the interquartile range of the repeats. Parity is "
        f"checked against the first variant at every batch size. Took {body.get('duration_s', '?')} s.")


def _models(body: dict[str, Any]) -> Bullets:
    return Bullets(tuple(
        f"**{name}**: {model.get('description', '')}. "
        + "; ".join(f"{v}: {d}" for v, d in model.get("variants", {}).items())
        for name, model in _measured(body).items()))


def _title(body: dict[str, Any]) -> str:
    what = f"suite '{body['suite']}'" if body.get("suite") else f"models {', '.join(body.get('refs') or [])}"
    return f"mlc bench: {what}"


def _latency_figure(fig: Any, body: dict[str, Any]) -> None:
    models = _measured(body)
    cols = min(3, len(models))
    axes = fig.subplots(math.ceil(len(models) / cols), cols, squeeze=False)
    for ax, (name, model) in zip(axes.flat, models.items(), strict=False):
        by_variant: dict[str, list[dict[str, Any]]] = {}
        for t in model["timings"]:
            by_variant.setdefault(t["variant"], []).append(t)
        for variant, timings in by_variant.items():
            batches = [t["batch_size"] for t in timings]
            per_row = [np.asarray(t["values"]) / t["batch_size"] for t in timings]
            med = [float(np.median(v)) for v in per_row]
            low = [m - float(np.percentile(v, 25)) for m, v in zip(med, per_row, strict=True)]
            high = [float(np.percentile(v, 75)) - m for m, v in zip(med, per_row, strict=True)]
            ax.errorbar(batches, med, yerr=[low, high], marker="o", capsize=3, label=variant)
        ax.set(xscale="log", yscale="log", title=name, xlabel="batch size", ylabel="µs per row")
        plain_log_ticks(ax.xaxis, decades_only=True)
        plain_log_ticks(ax.yaxis, decades_only=True)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)


def _ratio_points(body: dict[str, Any]) -> list[tuple[str, str, list[float]]]:
    subject = _subject(body)
    return [(f"{name}\nb{t['batch_size']}", ref, r["values"]) for name, m in _measured(body).items()
            for t in m["timings"] if t["variant"] == subject for ref, r in t["ratios"].items()]


def _ratio_figure(fig: Any, body: dict[str, Any]) -> None:
    subject = _subject(body)
    points = _ratio_points(body)
    refs = list(dict.fromkeys(ref for _, ref, _ in points))
    rng = np.random.default_rng(0)  # the jitter is seeded: the same report draws the same picture
    for ax, ref in zip(fig.subplots(len(refs), 1, squeeze=False)[:, 0], refs, strict=True):
        mine = [(label, values) for label, r, values in points if r == ref]
        for i, (_, values) in enumerate(mine):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=8, alpha=0.6)
            ax.hlines(float(np.median(values)), i - 0.3, i + 0.3, color="black")
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(mine)), [label for label, _ in mine], fontsize="small")
        ax.set(yscale="log", ylabel=f"{subject} / {ref}", title=f"{subject} / {ref} per repeat (< 1: faster)")
        spread = [value for _, values in mine for value in values]
        plain_log_ticks(ax.yaxis, decades_only=max(spread) / min(spread) > 100)
        ax.grid(True, axis="y", which="both", alpha=0.3)


def _figures(body: dict[str, Any]) -> list[Figure]:
    models = _measured(body)
    if not models:
        return []
    cols = min(3, len(models))
    out = [Figure("Latency per row by batch size (median, quartiles of the repeats)",
                  lambda fig: _latency_figure(fig, body), 3.6 * cols, 3.0 * math.ceil(len(models) / cols))]
    points = _ratio_points(body)
    if points:
        refs = len({ref for _, ref, _ in points})
        out.append(Figure(f"Same-run ratios of {_subject(body)} to each reference, every repeat",
                          lambda fig: _ratio_figure(fig, body),
                          min(10.8, max(6.0, 0.6 * len(points) / refs + 2)), 3.0 * refs))
    return out


def _notes(body: dict[str, Any]) -> list[Block]:
    return [Heading("Notes"), Bullets(tuple(body["notes"]))] if body.get("notes") else []


def page(report: Report) -> Document:
    body = report["body"]
    title = _title(body)
    blocks: list[Block] = [Heading(title, 1), _verdict(body), *_figures(body),
                           Heading("Results"), _method(body), results_table(body)]
    if _measured(body):
        blocks += [Heading("Models"), _models(body)]
    return Document(title, (*blocks, *_notes(body), environment(report)))


def terminal(report: Report) -> Document:
    body = report["body"]
    title = _title(body)
    blocks: list[Block] = [Heading(title, 1), _verdict(body), Heading("Results"), _method(body),
                           results_table(body, terse=True)]
    if _measured(body):
        blocks += [Heading("Models"), _models(body)]
    return Document(title, (*blocks, *_notes(body), Heading("Environment"), KeyValues(environment_pairs(report))))


register_kind(ReportKind("bench", page, terminal))
