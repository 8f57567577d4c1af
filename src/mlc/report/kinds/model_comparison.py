"""Model-comparison reports (`mlc compare NEW OLD`, and `mlc promote`'s decision): two versions on the same rows.

The body is lifecycle.compare.compare_versions' (agreement, confusion, quality with paired
bootstrap intervals, interleaved latency) plus, from `mlc promote`, each criterion with its
values and whether it held, and the decision. The page leads with the decision (or, without
criteria, the one-line summary), then a plot of every quality difference with its interval
beside the latency of both at each batch size; the terminal ends with the decision, as a CI
log is read from its last line.
"""

from __future__ import annotations

import functools
from typing import Any

from mlc.report._registry import Report, ReportKind, register_kind
from mlc.report.blocks import Block, Document, Figure, Heading, KeyValues, Paragraph, Verdict, table
from mlc.report.kinds._common import environment, number

KIND = "model-comparison"
_NAMES = {"accuracy": "accuracy", "log_loss": "log-loss", "auc": "ROC AUC", "f1": "F1", "rmse": "RMSE",
          "mae": "MAE", "r2": "R²"}
_HIGHER = {"accuracy": True, "log_loss": False, "auc": True, "f1": True, "rmse": False, "mae": False, "r2": True}


def _body(report: Report) -> dict[str, Any]:
    body: dict[str, Any] = report["body"]
    return body


def _title(body: dict[str, Any]) -> str:
    return f"mlc compare: {body['new']['served']} vs {body['old']['served']}"


def _fmt(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.4f}"


def _est(est: dict[str, float]) -> str:
    return f"{_fmt(est['value'])} [{_fmt(est['low'])}, {_fmt(est['high'])}]"


def _diff(est: dict[str, float]) -> str:
    return f"{est['value']:+.4f} [{est['low']:+.4f}, {est['high']:+.4f}]"


def _judged(name: str, diff: dict[str, float]) -> str:
    """Better, worse, or unclear (the interval of the difference holds 0), from the new one's side."""
    low, high = diff["low"], diff["high"]
    if low != low or high != high:
        return "—"
    if low > 0 or high < 0:
        up = low > 0
        return "better" if up == _HIGHER.get(name, True) else "worse"
    return "unclear"


def _summary(body: dict[str, Any]) -> str:
    agreement = body["agreement"]
    parts = [f"{number(body['rows'], 0)} rows ({body['data']})"]
    if agreement.get("label_agreement") is not None:
        parts.append(f"labels agree on {agreement['label_agreement']:.2%}")
    parts.append(f"max output difference {agreement['max_abs_diff']:.3g}")
    quality = body.get("quality")
    if quality:
        first = quality["metrics"][0]
        parts.append(f"{_NAMES.get(first, first)} {_diff(quality['diff'][first])} (new − old)")
    latency = body["latency"]
    b = str(latency["batch_sizes"][0])
    parts.append(f"p99 at batch {b}: {latency['new'][b]['p99_us']:,.1f} µs against {latency['old'][b]['p99_us']:,.1f}")
    return "; ".join(parts) + "."


def _verdict(body: dict[str, Any]) -> Verdict:
    decision = body.get("decision")
    if not decision:
        return Verdict(_summary(body), "info")
    failed = [c for c in body.get("criteria", []) if not c["held"]]
    if decision.get("promoted"):
        return Verdict(f"**PROMOTED**: {decision['ref']} is now {decision['alias_ref']}"
                       f"{' (every criterion held)' if body.get('criteria') else ''}.", "pass")
    if failed:
        return Verdict(f"**REFUSED**: {len(failed)} of {len(body['criteria'])} criteria failed: "
                       + "; ".join(f"`{c['text']}`" for c in failed) + ".", "fail")
    return Verdict(f"**NOT PROMOTED**: {decision.get('reason', '')}.", "fail")


def _criteria(body: dict[str, Any]) -> list[Block]:
    rows = [[c["text"], _fmt(c["left"]), c["op"], _fmt(c["right"]), "held" if c["held"] else "FAILED"]
            for c in body.get("criteria", [])]
    if not rows:
        return []
    return [Heading("Promotion criteria"), table(["criterion", "left", "", "right", "result"], rows, {1, 3},
                                                 {0: 46})]


def _quality(body: dict[str, Any], compact: bool) -> list[Block]:
    quality = body.get("quality")
    if not quality:
        return [Heading("Quality"), Paragraph("No labels were given (`--labels`): agreement and latency only.")]
    rows = []
    for name in quality["metrics"]:
        if compact:
            rows.append([_NAMES.get(name, name), _fmt(quality["new"][name]["value"]),
                         _fmt(quality["old"][name]["value"]), _diff(quality["diff"][name]),
                         _judged(name, quality["diff"][name])])
        else:
            rows.append([_NAMES.get(name, name), _est(quality["new"][name]), _est(quality["old"][name]),
                         _diff(quality["diff"][name]), _judged(name, quality["diff"][name])])
    note = Paragraph(f"On {number(body['rows'], 0)} labelled rows; intervals: {quality['confidence']:.0%} paired "
                     f"bootstrap over {quality['resamples']:,} resamples (the same rows for both).")
    return [Heading("Quality"), note, table(["metric", "new", "old", "new − old", "new is"], rows, {1, 2, 3})]


def _agreement(body: dict[str, Any]) -> list[Block]:
    agreement = body["agreement"]
    pairs = [("rows", number(body["rows"], 0))]
    if agreement.get("label_agreement") is not None:
        pairs.append(("label agreement", f"{agreement['label_agreement']:.2%}"))
    pairs += [("max output difference", f"{agreement['max_abs_diff']:.4g} (output `{agreement['output']}`)"),
              ("mean output difference", f"{agreement['mean_abs_diff']:.4g} (largest per row, averaged)"),
              ("rows that differ", number(agreement["rows_differing"], 0))]
    blocks: list[Block] = [Heading("Agreement"), KeyValues(tuple(pairs))]
    confusion = body.get("confusion")
    if confusion:
        classes = confusion["classes"]
        rows = [[f"old: {cls}", *(str(n) for n in counts)] for cls, counts in zip(classes, confusion["counts"],
                                                                                 strict=True)]
        blocks.append(table(["labels", *(f"new: {c}" for c in classes)], rows, set(range(1, len(classes) + 1))))
    return blocks


def _latency(body: dict[str, Any]) -> list[Block]:
    latency = body["latency"]
    rows = []
    for b in latency["batch_sizes"]:
        new, old = latency["new"][str(b)], latency["old"][str(b)]
        ratio = new["median_us"] / old["median_us"] if old["median_us"] else float("nan")
        rows.append([str(b), number(new["median_us"], 1), number(new["p99_us"], 1), number(old["median_us"], 1),
                     number(old["p99_us"], 1), f"{ratio:.2f}x"])
    note = Paragraph(f"Each one's runtime plan on target `{body['target']}`, timed interleaved in one run "
                     f"({latency['budget_s']:g} s budget), µs per batch.")
    return [Heading("Latency"), note,
            table(["batch", "new median", "new p99", "old median", "old p99", "new/old"], rows, {0, 1, 2, 3, 4, 5})]


def _versions(body: dict[str, Any]) -> list[Block]:
    pairs = []
    for side in ("new", "old"):
        v = body[side]
        text = f"`{v['served']}` ({v['framework']} {v['format']}; engines {', '.join(v['engines'])})"
        if v["ref"] != v["served"]:
            text += f", asked as `{v['ref']}`"
        pairs.append((side, text))
    return [Heading("Versions"), KeyValues(tuple(pairs))]


def _draw(fig: Any, body: dict[str, Any]) -> None:
    """Left: each quality difference (new − old) with its interval; right: median and p99 per batch size."""
    quality = body.get("quality")
    left, right = fig.subplots(1, 2) if quality else (None, fig.subplots())
    if quality and left is not None:
        names = list(reversed(quality["metrics"]))
        for y, name in enumerate(names):
            d = quality["diff"][name]
            verdict = _judged(name, d)
            colour = {"better": "tab:green", "worse": "tab:red"}.get(verdict, "tab:gray")
            left.plot([d["low"], d["high"]], [y, y], color=colour, linewidth=2)
            left.plot(d["value"], y, "o", color=colour)
        left.axvline(0, color="grey", linewidth=1)
        left.set_yticks(range(len(names)), [_NAMES.get(n, n) for n in names])
        left.set_xlabel("new − old, with its 95% interval")
        left.set_title("Quality difference (green: better, red: worse)")
        left.grid(True, axis="x", alpha=0.3)
    latency = body["latency"]
    sizes = latency["batch_sizes"]
    xs = range(len(sizes))
    for offset, side, colour in ((-0.2, "new", "tab:blue"), (0.2, "old", "tab:gray")):
        med = [latency[side][str(b)]["median_us"] for b in sizes]
        p99 = [latency[side][str(b)]["p99_us"] for b in sizes]
        right.bar([x + offset for x in xs], med, width=0.4, color=colour, label=f"{side} median")
        right.plot([x + offset for x in xs], p99, "v", color="black", markersize=5)
    right.set_yscale("log")
    right.set_xticks(list(xs), [str(b) for b in sizes])
    right.set_xlabel("batch size (rows)")
    right.set_ylabel("µs per batch (bars: median, ▼: p99)")
    right.set_title("Latency, measured interleaved")
    right.legend(fontsize=8)
    right.grid(True, axis="y", alpha=0.3)


def page(report: Report) -> Document:
    body = _body(report)
    blocks: list[Block] = [
        Heading(_title(body), 1), _verdict(body),
        Figure("Quality difference and latency", functools.partial(_draw, body=body), 11.0, 4.0),
        *_criteria(body), *_quality(body, compact=False), *_agreement(body), *_latency(body), *_versions(body),
        environment(report)]
    return Document(_title(body), tuple(blocks))


def terminal(report: Report) -> Document:
    body = _body(report)
    blocks: list[Block] = [Heading(_title(body), 1), *_versions(body), *_quality(body, compact=True),
                           *_agreement(body), *_latency(body), *_criteria(body), _verdict(body)]
    return Document(_title(body), tuple(blocks))


register_kind(ReportKind(KIND, page, terminal))
