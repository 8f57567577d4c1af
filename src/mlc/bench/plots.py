"""Plots of a bench report for its HTML page; matplotlib is optional, so its absence is an answer (None).

Two figures: latency per call against batch size for every variant (log-log, the repeats'
quartiles as error bars), and the subject's same-run ratios with every repeat drawn, so the
reader sees the spread the CI gate judges, not only the median.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

Figure = tuple[str, bytes]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def bench_figures(body: dict[str, Any]) -> list[Figure] | None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display in CI; must precede pyplot
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    models = {n: m for n, m in body["models"].items() if m.get("status") == "ok"}
    if not models:
        return []
    subject = body.get("settings", {}).get("subject", "mlc")
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    figures = []

    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
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
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    fig.tight_layout()
    figures.append(("Latency per row by batch size (median, quartiles of the repeats)", _png(fig)))
    plt.close(fig)

    points = [(f"{name}\nb{t['batch_size']}", ref, r["values"]) for name, m in models.items()
              for t in m["timings"] if t["variant"] == subject for ref, r in t["ratios"].items()]
    if points:
        refs = list(dict.fromkeys(ref for _, ref, _ in points))
        fig, axes = plt.subplots(len(refs), 1, figsize=(max(6.0, 0.6 * len(points) / len(refs) + 2), 3 * len(refs)),
                                 squeeze=False)
        rng = np.random.default_rng(0)
        for ax, ref in zip(axes[:, 0], refs, strict=True):
            mine = [(label, values) for label, r, values in points if r == ref]
            for i, (_, values) in enumerate(mine):
                ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=8, alpha=0.6)
                ax.hlines(float(np.median(values)), i - 0.3, i + 0.3, color="black")
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
            ax.set_xticks(range(len(mine)), [label for label, _ in mine], fontsize="small")
            ax.set(yscale="log", ylabel=f"{subject} / {ref}", title=f"{subject} / {ref} per repeat (< 1: faster)")
        fig.tight_layout()
        figures.append((f"Same-run ratios of {subject} to each reference, every repeat", _png(fig)))
        plt.close(fig)
    return figures
