"""Drift reports (`mlc monitor`): did what a version receives move away from its reference, and where.

The body is `DriftResult.to_dict()` plus where the rows came from (the reference, the collected
folder, --since, --baseline, skipped columns) and, with `mlc monitor labels`, the live quality
measured against late labels. The page leads with the verdict, then one small plot per column
(the reference's and the collected rows' shares over the reference's deciles, or over the
categories), drifted columns first and titled in red, then the table of every check. The
terminal gets the verdict and a compact table, ending with the skipped columns.
"""

from __future__ import annotations

import functools
import math
from typing import Any

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
    fold_if_long,
    table,
)
from mlc.report.kinds._common import environment

_DRIFT = "drift"
_PANELS = 24  # more columns than this: the drifted ones and the largest PSIs are drawn, the rest listed
_COLUMNS_PER_ROW = 4
_METRIC_NAMES = {"accuracy": "accuracy", "log_loss": "log-loss", "rmse": "RMSE", "mae": "MAE"}


def _body(report: Report) -> dict[str, Any]:
    body: dict[str, Any] = report["body"]
    return body


def _columns(body: dict[str, Any], role: str | None = None) -> list[dict[str, Any]]:
    return [c for c in body.get("columns", []) if role is None or c.get("role") == role]


def _psi(column: dict[str, Any]) -> float:
    value = column.get("figures", {}).get("psi")
    return -1.0 if value is None else float(value)


def _order(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drifted columns first, then by PSI, largest first: the order a reader should look in."""
    return sorted(columns, key=lambda c: (c.get("verdict") != _DRIFT, -_psi(c)))


def _flagged(column: dict[str, Any]) -> list[str]:
    return [str(c["name"]) for c in column.get("checks", []) if c.get("verdict") == _DRIFT]


def _share(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.{digits}f}"


def _test(column: dict[str, Any]) -> str:
    """The distribution test's statistic and p-value: KS D for numbers, chi-squared for categories."""
    check = next((c for c in column.get("checks", []) if c.get("name") == "distribution"), None)
    if check is None or check.get("p_value") is None:
        return "—"
    name = "D" if check.get("test") == "ks" else "χ²"
    return f"{name} {float(check['statistic']):.3g}, p {float(check['p_value']):.2g}"


def _missing(column: dict[str, Any]) -> str:
    f = column.get("figures", {})
    return f"{_share(f.get('missing_reference'))} → {_share(f.get('missing_collected'))}"


def _verdict(body: dict[str, Any]) -> Verdict:
    verdict = str(body.get("verdict", "?"))
    rows = f"{int(body.get('rows_collected', 0)):,} collected rows against {int(body.get('rows_reference', 0)):,}"
    if verdict == _DRIFT:
        names = ", ".join(f"`{n}`" for n in body.get("drifted", []))
        return Verdict(f"**DRIFT** in {len(body.get('drifted', []))} column(s): {names} ({rows}).", "fail")
    if verdict == "not checked":
        return Verdict(f"**Drift not checked**: {body.get('note', 'no reference')}.", "info")
    if verdict == "no drift":
        return Verdict(f"**No drift** in any column ({rows}).", "pass")
    return Verdict(f"**Insufficient data**: {rows}; a column needs "
                   f"{body.get('thresholds', {}).get('min_rows', '?')} present values on each side.", "info")


def _method(body: dict[str, Any]) -> Paragraph:
    t = body.get("thresholds", {})
    return Paragraph(
        f"{body.get('tests', 0)} tests share a family-wise alpha of {t.get('alpha')} (Bonferroni: "
        f"{float(body.get('alpha_per_test', 0)):.2g} each). A check flags drift only when its test is significant "
        f"and its effect reaches the floor: PSI ≥ {t.get('psi')} (with KS for numbers, chi-squared for "
        f"categories), missing share moved ≥ {t.get('missing_shift')}, ≥ {t.get('out_of_range')} of values "
        f"outside the reference's range.")


def _source(body: dict[str, Any]) -> KeyValues:
    reference = (f"the oldest {body['baseline_rows']:,} collected rows (--baseline)" if body.get("baseline_rows")
                 else f"`{body.get('ref')}`")
    pairs = [("reference", reference), ("collected", f"`{body.get('collected')}` ({body.get('files', 0)} file(s))")]
    if body.get("since"):
        pairs.append(("since", f"the last {body['since']}"))
    return KeyValues(tuple(pairs))


def _quality(body: dict[str, Any]) -> list[Block]:
    """Live quality from late labels (mlc monitor labels), when the report has it."""
    quality = body.get("quality")
    if not quality:
        return []
    pairs = [("task", str(quality.get("task"))),
             ("labels joined", f"{int(quality['rows']):,} of {int(quality['labels']):,} label(s) "
                               f"({int(quality['unmatched']):,} without a collected row)")]
    for name, value in quality.get("metrics", {}).items():
        pairs.append((_METRIC_NAMES.get(name, name), _num(value, 4)))
    notes = [Bullets(tuple(quality["notes"]))] if quality.get("notes") else []
    return [Heading("Live quality (late labels)"), KeyValues(tuple(pairs)), *notes]


def _panel_note(column: dict[str, Any]) -> str:
    """What the bars cannot show (they are shares of present values within the reference's bins)."""
    f = column.get("figures", {})
    notes = []
    ref_missing, cur_missing = f.get("missing_reference") or 0.0, f.get("missing_collected") or 0.0
    if abs(cur_missing - ref_missing) >= 0.005:
        notes.append(f"missing {ref_missing:.0%} → {cur_missing:.0%}")
    if (f.get("out_of_range") or 0.0) >= 0.005:
        notes.append(f"{f['out_of_range']:.0%} out of range")
    return "\n" + ", ".join(notes) if notes else ""


def _panel(ax: Any, column: dict[str, Any]) -> None:
    dist = column.get("distribution") or {}
    drifted = column.get("verdict") == _DRIFT
    title = f"{column['name']} ({column.get('role')}): {column.get('verdict')}" + _panel_note(column)
    ax.set_title(title, fontsize=8, color="tab:red" if drifted else "black")
    ax.tick_params(labelsize=7)
    if not dist:
        ax.text(0.5, 0.5, "no present values", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ref, cur = dist["reference"], dist["collected"]
    positions = list(range(len(ref)))
    ax.bar([p - 0.2 for p in positions], ref, width=0.4, color="tab:gray", label="reference")
    ax.bar([p + 0.2 for p in positions], cur, width=0.4, color="tab:red" if drifted else "tab:blue",
           label="collected")
    if dist.get("kind") == "numeric":
        edges = dist["edges"]  # bin i lies between edges i and i + 1: ticks on the min, median, max edges
        ticks = sorted({0, len(ref) // 2, len(ref)})
        ax.set_xticks([t - 0.5 for t in ticks], [f"{edges[t]:.3g}" for t in ticks], fontsize=6)
        ax.set_xlabel("reference deciles (min, median, max)", fontsize=7)
    else:
        labels = [str(c)[:8] for c in dist["categories"]]
        ax.set_xticks(positions, labels, fontsize=6, rotation=45 if len(labels) > 6 else 0)
    ax.set_ylabel("share", fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def _draw(fig: Any, columns: list[dict[str, Any]]) -> None:
    rows = math.ceil(len(columns) / _COLUMNS_PER_ROW)
    axes = fig.subplots(rows, _COLUMNS_PER_ROW, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(columns):
            _panel(ax, columns[i])
        else:
            ax.set_axis_off()
    axes.flat[0].legend(fontsize=7, loc="best", framealpha=0.9)


def _figures(body: dict[str, Any]) -> list[Block]:
    """Per-column plots, features then outputs; beyond _PANELS columns the most telling ones."""
    blocks: list[Block] = []
    for role, title in (("feature", "Features"), ("output", "Model outputs")):
        columns = _order(_columns(body, role))
        if not columns:
            continue
        shown = columns[:_PANELS]
        more = f" (the {len(shown)} most changed of {len(columns)})" if len(shown) < len(columns) else ""
        rows = math.ceil(len(shown) / _COLUMNS_PER_ROW)
        blocks.append(Figure(f"{title}: reference (grey) and collected shares per bin{more}",
                             functools.partial(_draw, columns=shown), 10.0, 0.4 + 2.2 * rows))
    return blocks


def _wide_table(body: dict[str, Any]) -> Table:
    rows = [[c["name"], c.get("role", ""), c.get("kind", ""), c.get("verdict", ""), _num(c["figures"].get("psi")),
             _test(c), _missing(c), _share(c["figures"].get("out_of_range")), ", ".join(_flagged(c)) or "—"]
            for c in _order(_columns(body))]
    return table(["column", "role", "kind", "verdict", "PSI", "distribution test", "missing (ref → now)",
                  "out of range", "flagged"], rows, {4, 7})


def _compact_table(body: dict[str, Any]) -> Table:
    """Outputs named out:NAME, so the table needs no role column and fits 100 columns."""
    rows = [[c["name"] if c.get("role") == "feature" else f"out:{c['name']}", c.get("verdict", ""),
             _num(c["figures"].get("psi")), _missing(c), _share(c["figures"].get("out_of_range")),
             ", ".join(_flagged(c)) or "—"]
            for c in _order(_columns(body))]
    return table(["column", "verdict", "PSI", "missing ref → now", "out of range", "flagged"], rows,
                 {2, 4}, {0: 20, 5: 28})


def _skipped(body: dict[str, Any]) -> list[Block]:
    skipped = body.get("skipped") or []
    return [Heading("Skipped columns", 3), Bullets(tuple(f"skipped {s}" for s in skipped))] if skipped else []


def _title(body: dict[str, Any]) -> str:
    return f"mlc monitor: {body.get('ref')}"


def page(report: Report) -> Document:
    body = _body(report)
    blocks: list[Block] = [Heading(_title(body), 1), _verdict(body), _source(body), *_quality(body),
                           *_figures(body)]
    if _columns(body):
        blocks += [Heading("Checks"), _method(body), *fold_if_long("Every column", _wide_table(body), rows=30,
                                                                   level=3)]
    return Document(_title(body), (*blocks, *_skipped(body), environment(report)))


def terminal(report: Report) -> Document:
    body = _body(report)
    checks: list[Block] = [_method(body), _compact_table(body)] if _columns(body) else []
    blocks: list[Block] = [Heading(_title(body), 1), _source(body), *_quality(body), *checks, *_skipped(body),
                           _verdict(body)]
    return Document(_title(body), tuple(blocks))


register_kind(ReportKind("drift", page, terminal))
