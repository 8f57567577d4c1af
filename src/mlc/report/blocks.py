"""The one block model every report is made of, whatever its kind and whatever it is drawn as.

A report kind (report/kinds/) turns a report's JSON into a `Document`: a title and a list of
blocks. The drawers (markdown.py, html.py, terminal.py) only decide how each block looks, so
the Markdown, the HTML page and the terminal can never disagree on content, and a new kind
writes no drawing code at all.

Text in `Paragraph`, `Verdict`, `KeyValues` values and `Bullets` may use two inline marks,
`code` and **bold**; every drawer understands them and escapes everything else. Table cells
are plain text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Tone = Literal["pass", "fail", "info"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 1 is the document's title


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Verdict:
    """The answer a reader came for (winner, recommendation, gate result): drawn first and prominently."""

    text: str
    tone: Tone = "info"


@dataclass(frozen=True)
class Link:
    """A file or page beside the report (a relative name: a report must not leak local paths)."""

    text: str
    href: str


@dataclass(frozen=True)
class KeyValues:
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()  # column indexes aligned right
    # (column, characters): on a terminal, text longer than this wraps within its column.
    max_widths: tuple[tuple[int, int], ...] = ()


# Draws on a fresh matplotlib Figure (typed Any: matplotlib is optional, and only figures.py imports it).
Draw = Callable[[Any], None]


@dataclass(frozen=True)
class Figure:
    """A plot, drawn only by the HTML drawer (through report.figures), so Markdown costs no plotting."""

    title: str
    draw: Draw = field(compare=False)
    width_in: float = 9.0  # at 100 dpi: 900 px, readable without zooming at a laptop's width
    height_in: float = 4.5


@dataclass(frozen=True)
class Folded:
    """A section a page reader opens when they want it (`<details>`): long tables, the environment."""

    summary: str
    blocks: tuple[Block, ...]


Block = Heading | Paragraph | Verdict | Link | KeyValues | Bullets | Table | Figure | Folded


@dataclass(frozen=True)
class Document:
    """One report as drawn for one medium: `page` (Markdown, HTML) or `terminal` (what a command prints)."""

    title: str
    blocks: tuple[Block, ...]


def table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None,
          max_widths: dict[int, int] | None = None) -> Table:
    """A Table from lists, the shape the kinds build them in."""
    return Table(tuple(headers), tuple(tuple(row) for row in rows), frozenset(numeric or ()),
                 tuple(sorted((max_widths or {}).items())))


def fold_if_long(title: str, body: Table, *, rows: int = 12, level: int = 2) -> tuple[Block, ...]:
    """A short table under its heading; a long one folded, its row count in the summary."""
    if len(body.rows) <= rows:
        return Heading(title, level), body
    return (Folded(f"{title} ({len(body.rows)} rows)", (body,)),)


def walk(blocks: tuple[Block, ...]) -> list[Block]:
    """Every block, folded ones included, in document order."""
    out: list[Block] = []
    for block in blocks:
        out.append(block)
        if isinstance(block, Folded):
            out += walk(block.blocks)
    return out


Mark = Literal["", "code", "bold"]


def spans(text: str) -> list[tuple[str, Mark]]:
    """Text split on its inline marks: `code` first (nothing inside it is bold), then **bold**."""
    out: list[tuple[str, Mark]] = []
    for i, piece in enumerate(text.split("`")):
        if i % 2:
            out.append((piece, "code"))
            continue
        for j, part in enumerate(piece.split("**")):
            if part:
                out.append((part, "bold" if j % 2 else ""))
    return [(t, m) for t, m in out if t or m == "code"]
