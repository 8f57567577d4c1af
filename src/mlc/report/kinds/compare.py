"""The CI gate's comparison of two bench reports (`mlc report compare`): pass or fail, and why.

The body is `Comparison.to_dict()` plus `all_lines` (whether unchanged lines are listed, the
command's --all). The page leads with the gate's result and a plot of every speed change with
its 95% interval against the allowed slowdown, the picture of what the gate judged; the
terminal ends with the result instead, since a CI log is read from its last line.
"""

from __future__ import annotations

from typing import Any

from mlc.report._registry import Report, ReportKind, register_kind
from mlc.report.blocks import Block, Bullets, Document, Figure, Folded, Heading, Paragraph, Table, Verdict, table
from mlc.report.compare import FASTER, MISSING, NEW, OK, REGRESSION, UNCLEAR, Change, Comparison
from mlc.report.kinds._common import environment, short

_OPEN_ROWS = 30  # a longer list of lines (--all on a full suite) is folded on the page
_ORDER = (REGRESSION, UNCLEAR, MISSING, FASTER, OK, NEW)  # the order a reader cares about
_COLOURS = {REGRESSION: "tab:red", UNCLEAR: "tab:orange", FASTER: "tab:green", OK: "tab:blue"}


def _read(report: Report) -> tuple[Comparison, bool]:
    body = report["body"]
    return Comparison.from_dict(body), bool(body.get("all_lines", False))


def _shown(result: Comparison, all_lines: bool) -> list[Change]:
    """Lines that moved (or every line with all_lines), regressions first."""
    shown = [c for c in result.changes if all_lines or c.verdict != OK]
    return sorted(shown, key=lambda c: (c.verdict != REGRESSION, not c.gated, c.model, c.metric))


def _verdict_word(c: Change) -> str:
    word = c.verdict.upper() if c.verdict == REGRESSION else c.verdict
    return word if c.gated else f"{word} (not gated)"


def _interval(c: Change) -> str:
    return f"[{c.low:+.1%}, {c.high:+.1%}]" if c.low is not None and c.high is not None else "-"


def _change(c: Change) -> str:
    return "-" if c.change is None else f"{c.change:+.1%}" if c.kind == "ratio" else f"{c.change:+.3g}"


def _table(shown: list[Change], *, compact: bool) -> Table:
    if compact:  # the terminal: the ratio medians themselves are in the files
        return table(["model", "metric", "change", "95% interval", "verdict"],
                     [[c.model, c.metric, _change(c), _interval(c), _verdict_word(c)] for c in shown], {2, 3})
    return table(["model", "metric", "baseline", "new", "change", "95% interval", "verdict"],
                 [[c.model, c.metric, "-" if c.baseline is None else short(c.baseline),
                   "-" if c.new is None else short(c.new), _change(c), _interval(c), _verdict_word(c)]
                  for c in shown], {2, 3, 4})


def _method(result: Comparison, all_lines: bool) -> Paragraph:
    t = result.thresholds
    n_ok = sum(1 for c in result.changes if c.verdict == OK)
    return Paragraph(
        f"Speed is judged on same-run ratios; a change fails only when its whole 95% bootstrap interval is beyond "
        f"+{t.max_slowdown:.0%} against every reference. Accuracy fails on a drop of more than "
        f"{t.max_accuracy_drop:g}. {n_ok} line(s) unchanged within thresholds"
        + (" (shown)." if all_lines else " (not shown; --all lists them)."))


def _notes(result: Comparison, shown: list[Change]) -> list[Block]:
    notes = [f"{c.model} {c.metric}: {c.note}" for c in shown if c.note] + result.notes
    return [Bullets(tuple(notes))] if notes else []


def _verdict(result: Comparison) -> Verdict:
    if result.failed:
        return Verdict(f"FAIL: {len(result.regressions)} regression(s) beyond the thresholds", "fail")
    return Verdict("PASS: no regression beyond the thresholds", "pass")


def _counts(result: Comparison) -> Paragraph:
    counts: dict[str, int] = {}
    for c in sorted(result.changes, key=lambda c: (_ORDER.index(c.verdict) if c.verdict in _ORDER else 9,
                                                    not c.gated)):
        word = _verdict_word(c).lower()
        counts[word] = counts.get(word, 0) + 1
    words = ", ".join(f"{n} {word}" for word, n in counts.items()) or "no lines"
    return Paragraph(f"`{result.new}` against the baseline `{result.baseline}`: {words}.")


def _speed_lines(result: Comparison) -> list[tuple[Change, float]]:
    """Every speed line that has a change to draw, with it."""
    return [(c, c.change) for c in result.changes if c.kind == "ratio" and c.change is not None]


def _intervals(fig: Any, result: Comparison) -> None:
    """Each speed change as a point with its interval; the gate fails a gated line wholly right of the red line."""
    lines = _speed_lines(result)
    ax = fig.subplots()
    for y, (c, change) in enumerate(reversed(lines)):
        colour = _COLOURS.get(c.verdict, "tab:gray")
        low = change if c.low is None else c.low
        high = change if c.high is None else c.high
        ax.plot([low * 100, high * 100], [y, y], color=colour, linewidth=2, alpha=0.8)
        ax.plot(change * 100, y, "o", color=colour, markerfacecolor=colour if c.gated else "white")
    ax.axvline(0, color="grey", linewidth=1)
    ax.axvline(result.thresholds.max_slowdown * 100, color="red", linestyle="--", linewidth=1,
               label=f"allowed slowdown +{result.thresholds.max_slowdown:.0%}")
    ax.set_yticks(range(len(lines)), [f"{c.model} {c.metric}" for c, _ in reversed(lines)], fontsize=8)
    ax.set_xlabel("change of the same-run ratio, new vs baseline (%; right is slower)")
    ax.set_title("Speed changes with their 95% bootstrap intervals (hollow: not gated)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)


def _figures(result: Comparison) -> list[Figure]:
    n = len(_speed_lines(result))
    if not n:
        return []
    return [Figure("Speed changes against the threshold", lambda fig: _intervals(fig, result), 9.0,
                   min(14.0, 1.4 + 0.28 * n))]


def _title(result: Comparison) -> str:
    return f"mlc compare: {result.new} vs {result.baseline}"


def page(report: Report) -> Document:
    result, all_lines = _read(report)
    shown = _shown(result, all_lines)
    blocks: list[Block] = [Heading(_title(result), 1), _verdict(result), _counts(result), *_figures(result),
                           Heading("Changes"), _method(result, all_lines)]
    if shown:
        lines = _table(shown, compact=False)
        blocks.append(lines if len(shown) <= _OPEN_ROWS else Folded(f"Every line listed ({len(shown)})", (lines,)))
    return Document(_title(result), (*blocks, *_notes(result, shown), environment(report)))


def terminal(report: Report) -> Document:
    result, all_lines = _read(report)
    shown = _shown(result, all_lines)
    blocks: list[Block] = [Heading(_title(result), 1), _method(result, all_lines)]
    if shown:
        blocks.append(_table(shown, compact=True))
    return Document(_title(result), (*blocks, *_notes(result, shown), _verdict(result)))


def body(result: Comparison, all_lines: bool) -> dict[str, Any]:
    """A compare report's body: the comparison and whether every line is listed."""
    return {**result.to_dict(), "all_lines": all_lines}


register_kind(ReportKind("compare", page, terminal))
