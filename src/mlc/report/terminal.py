"""Documents on a terminal (rich), at most 100 columns wide.

A kind's terminal document is built to fit 100 columns at its natural width (compact tables,
no figures); this drawer wraps paragraphs at min(terminal, 100) columns and never widens a
table past that, so a piped log and an 80-column terminal both read line by line. Text is
printed as text: brackets in a model's description are not rich markup.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from mlc.report.blocks import (
    Block,
    Bullets,
    Document,
    Figure,
    Folded,
    Heading,
    KeyValues,
    Link,
    Paragraph,
    Table,
    Verdict,
    spans,
)

WIDTH = 100
_MARK_STYLE = {"": "", "code": "cyan", "bold": "bold"}
_TONE_STYLE = {"pass": "bold green", "fail": "bold red", "info": "bold"}


def _text(text: str, style: str = "") -> Text:
    out = Text(style=style)
    for piece, mark in spans(text):
        out.append(piece, _MARK_STYLE[mark])
    return out


def _table(t: Table) -> RichTable:
    out = RichTable(header_style="bold", box=None, pad_edge=False)
    caps = dict(t.max_widths)
    for i, header in enumerate(t.headers):
        out.add_column(header, justify="right" if i in t.numeric else "left", overflow="fold", max_width=caps.get(i))
    for row in t.rows:
        out.add_row(*(Text(c) for c in row))
    return out


def _grid(rows: list[tuple[Text, Text]], padding: int = 2) -> RichTable:
    """Two columns, the second wrapping under itself: key/value pairs and bullets."""
    grid = RichTable.grid(padding=(0, padding))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for left, right in rows:
        grid.add_row(left, right)
    return grid


def _draw(b: Block, console: Console, width: int) -> None:
    if isinstance(b, Heading):
        console.print(Text(b.text, style="bold underline" if b.level == 1 else "bold"), width=width)
    elif isinstance(b, Paragraph):
        for line in b.text.splitlines():
            console.print(_text(line), width=width)
    elif isinstance(b, Verdict):
        for line in b.text.splitlines():
            console.print(_text(line, _TONE_STYLE[b.tone]), width=width)
    elif isinstance(b, Link):
        console.print(Text.assemble(b.text, ": ", (b.href, "cyan")), width=width)
    elif isinstance(b, KeyValues):
        console.print(_grid([(Text(k, style="bold"), _text(v)) for k, v in b.pairs]), width=width)
    elif isinstance(b, Bullets):
        console.print(_grid([(Text("-"), _text(item)) for item in b.items], padding=1), width=width)
    elif isinstance(b, Table):
        console.print(_table(b), width=width)
    elif isinstance(b, Folded):
        _draw_all((Heading(b.summary, 3), *b.blocks), console, width)
    elif not isinstance(b, Figure):  # figures are for the page only
        raise TypeError(f"no terminal drawing for block {type(b).__name__}")


def _draw_all(blocks: tuple[Block, ...], console: Console, width: int) -> None:
    """Blocks separated by a blank line, as Markdown reads, except a heading and what it heads."""
    shown = [b for b in blocks if not isinstance(b, Figure)]
    for i, block in enumerate(shown):
        if i and not isinstance(shown[i - 1], Heading):
            console.print()
        _draw(block, console, width)


def draw(doc: Document, console: Console) -> None:
    _draw_all(doc.blocks, console, min(console.width, WIDTH))


def to_text(doc: Document, width: int = WIDTH) -> str:
    """What `draw` prints on a terminal `width` columns wide, without colours: for tests and goldens."""
    console = Console(record=True, width=width, force_terminal=False, color_system=None, file=io.StringIO())
    draw(doc, console)
    return "".join(line.rstrip() + "\n" for line in console.export_text().splitlines())


def table_width(t: Table) -> int:
    """The columns a table takes when nothing constrains it: a terminal table must fit WIDTH unsqueezed."""
    return Console(width=10_000).measure(_table(t)).maximum
