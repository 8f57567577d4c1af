"""The one place reports touch matplotlib: a Figure block drawn to PNG bytes, or None without it.

matplotlib is optional (the `plots` and `profile` extras). Without it every report kind does the
same thing: the HTML page is written with its tables and says, once, that its plots are missing
and how to get them; no command fails for want of a plot. The object API (matplotlib.figure,
no pyplot) keeps no global state and needs no display, and PNGs are written without the
"Software" stamp so the same report and matplotlib draw the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

from mlc.report.blocks import Figure

DPI = 100
MISSING = ("Plots are missing: matplotlib is not installed. Install it (pip install \"mlc[plots]\") and "
           "render the page again with: mlc report show REPORT.json --html > REPORT.html")


def png(figure: Figure) -> bytes | None:
    """The figure as PNG bytes; None when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure as MplFigure
    except ImportError:
        return None
    canvas = MplFigure(figsize=(figure.width_in, figure.height_in), layout="constrained")
    figure.draw(canvas)
    buf = io.BytesIO()
    canvas.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def plain_log_ticks(axis: Any, *, decades_only: bool = False) -> None:
    """Log-axis labels as plain numbers (0.5, 1, 2, 5, ...; 1, 10, 100 over a wide range) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades_only else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())
