"""What several report kinds draw the same way: the environment a report was made in, numbers."""

from __future__ import annotations

import json
from typing import Any

from mlc.report.blocks import Folded, KeyValues


def short(value: Any, limit: int = 80) -> str:
    """A value as one line of text, floats to 4 significant digits, cut with an ellipsis past `limit`."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: float | None, digits: int = 2) -> str:
    """Thousands separated; a dash for a figure that was not measured (None or NaN)."""
    if value is None or value != value:
        return "—"
    return f"{value:,.{digits}f}"


def environment_pairs(report: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Where and when the figures were measured: machine, target, packages, commit."""
    hw = report.get("hardware") or {}
    target = report.get("target") or {}
    packages = report.get("packages") or {}
    cpu = f"{hw.get('usable_cores', '?')} usable of {hw.get('logical_cores', '?')} cores, {hw.get('cpu_model') or '?'}"
    target_text = str(target.get("name", "—"))
    if target.get("cores"):
        target_text += (f" ({target.get('description', '')}): {target['cores']} cores, "
                        f"{target.get('memory_gib')} GiB, ${target.get('price_per_hour')}/h")
    return (
        ("created", str(report.get("created_at", "?"))),
        ("git commit", str(report.get("git_commit") or "not a git checkout")),
        ("target", target_text),
        ("machine", f"{cpu}; {hw.get('memory_gib', '?')} GiB; {hw.get('platform', '?')}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in packages.items() if v) or "—"),
    )


def environment(report: dict[str, Any]) -> Folded:
    """The environment, folded on a page: it matters when comparing, not when reading the verdict."""
    return Folded("Environment", (KeyValues(environment_pairs(report)),))
