"""Documents as Markdown, for CI logs and pull-request comments (GitHub-flavoured).

Figures are left out (a PR comment cannot hold a PNG); folded sections become `<details>`,
which GitHub folds and a log shows as two short lines.
"""

from __future__ import annotations

import html

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
)


def cell(text: str) -> str:
    """A table cell: a pipe would end the cell and a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> str:
    align = ["---:" if i in t.numeric else "---" for i in range(len(t.headers))]
    lines = ["| " + " | ".join(map(cell, t.headers)) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in t.rows]
    return "\n".join(lines)


def _block(b: Block) -> str | None:
    if isinstance(b, Heading):
        return f"{'#' * b.level} {b.text}"
    if isinstance(b, Paragraph):
        return b.text
    if isinstance(b, Verdict):
        return "\n".join(f"> {line}" if line else ">" for line in b.text.splitlines())
    if isinstance(b, Link):
        return f"{b.text}: [{b.href}]({b.href.replace(' ', '%20')})"
    if isinstance(b, KeyValues):
        return "\n".join(f"- **{k}**: {v}" for k, v in b.pairs)
    if isinstance(b, Bullets):
        return "\n".join(f"- {item}" for item in b.items)
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Folded):
        inner = _blocks(b.blocks)
        return f"<details><summary>{html.escape(b.summary)}</summary>\n\n{inner}\n\n</details>"
    if isinstance(b, Figure):
        return None
    raise TypeError(f"no Markdown for block {type(b).__name__}")


def _blocks(blocks: tuple[Block, ...]) -> str:
    return "\n\n".join(text for text in map(_block, blocks) if text is not None)


def to_markdown(doc: Document) -> str:
    return _blocks(doc.blocks) + "\n"
