"""Documents as one self-contained HTML page: styles inline, plots embedded as PNG data URIs.

The page is meant to be read by a person: the kind puts its verdict and plots first, and long
tables in folded sections; this drawer gives the verdict a coloured box, keeps plots at their
drawn size up to the page's width, and lets a table wider than the page scroll on its own
rather than widen the page.
"""

from __future__ import annotations

import base64
import html

from mlc.report import figures
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

# A figure drawn wider than this takes a row of its own: shrunk into half a page its text is unreadable.
_SIDE_BY_SIDE_IN = 7.0
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;line-height:1.45;margin:0}
main{max-width:1100px;margin:0 auto;padding:1.5em 1.5em 3em}
h1{font-size:1.6em;margin:.2em 0 .6em}h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:1px solid #d8dee4}
h3{font-size:1.05em;margin:1.2em 0 .4em}
code{font-family:ui-monospace,"SFMono-Regular",Menlo,monospace;font-size:.9em;background:#f3f4f6;
padding:.1em .3em;border-radius:4px}
.verdict{border-left:6px solid #1a56db;background:#eef4ff;padding:.8em 1em;margin:1em 0;font-size:1.1em}
.verdict.pass{border-color:#1f883d;background:#e9f7ee}.verdict.fail{border-color:#cf222e;background:#fdecec}
.scroll{overflow-x:auto;margin:.8em 0}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f6f8fa}tbody tr:nth-child(even){background:#fafbfc}
.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:.25em 1.2em;margin:.8em 0}dt{font-weight:600}dd{margin:0}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:0 1.5em}
.plots .wide{grid-column:1/-1}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #e5e7eb}
figcaption{font-weight:600;margin-bottom:.3em}
details{border:1px solid #d0d7de;border-radius:6px;padding:.4em .9em;margin:.8em 0}
summary{cursor:pointer;font-weight:600}.missing{color:#9a6700;font-style:italic}
"""


def _inline(text: str) -> str:
    out = []
    for piece, mark in spans(text):
        escaped = html.escape(piece)
        out.append(f"<code>{escaped}</code>" if mark == "code" else f"<b>{escaped}</b>" if mark == "bold"
                   else escaped)
    return "".join(out)


def _table(t: Table) -> str:
    def cell(tag: str, i: int, text: str) -> str:
        cls = ' class="num"' if i in t.numeric else ""
        return f"<{tag}{cls}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(t.headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in t.rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


class _Page:
    """Draws blocks in order, saying once that plots are missing when matplotlib is."""

    def __init__(self) -> None:
        self.said_missing = False

    def figure(self, f: Figure) -> str:
        data = figures.png(f)
        if data is None:
            if self.said_missing:
                return ""
            self.said_missing = True
            return f'<p class="missing">{html.escape(figures.MISSING)}</p>'
        title = html.escape(f.title)
        src = "data:image/png;base64," + base64.b64encode(data).decode()
        width = round(f.width_in * figures.DPI)
        wide = ' class="wide"' if f.width_in > _SIDE_BY_SIDE_IN else ""
        return (f'<figure{wide}><figcaption>{title}</figcaption>'
                f'<img alt="{title}" width="{width}" src="{src}"></figure>')

    def block(self, b: Block) -> str:
        if isinstance(b, Heading):
            return f"<h{b.level}>{html.escape(b.text)}</h{b.level}>"
        if isinstance(b, Paragraph):
            return "".join(f"<p>{_inline(line)}</p>" for line in b.text.splitlines())
        if isinstance(b, Verdict):
            return f'<div class="verdict {b.tone}">' + "<br>".join(map(_inline, b.text.splitlines())) + "</div>"
        if isinstance(b, Link):
            return f'<p>{html.escape(b.text)}: <a href="{html.escape(b.href)}">{html.escape(b.href)}</a></p>'
        if isinstance(b, KeyValues):
            return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{_inline(v)}</dd>" for k, v in b.pairs) + "</dl>"
        if isinstance(b, Bullets):
            return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in b.items) + "</ul>"
        if isinstance(b, Table):
            return _table(b)
        if isinstance(b, Figure):
            return self.figure(b)
        if isinstance(b, Folded):
            inner = self.blocks(b.blocks)
            return f"<details><summary>{html.escape(b.summary)}</summary>{inner}</details>"
        raise TypeError(f"no HTML for block {type(b).__name__}")


    def blocks(self, blocks: tuple[Block, ...]) -> str:
        """Blocks in order; a run of figures side by side where the window is wide enough for two."""
        out: list[str] = []
        run: list[str] = []
        for b in (*blocks, None):
            if isinstance(b, Figure):
                run.append(self.figure(b))
                continue
            if run:
                out.append('<div class="plots">' + "".join(run) + "</div>" if len(run) > 1 else run[0])
                run = []
            if b is not None:
                out.append(self.block(b))
        return "\n".join(out)


def to_html(doc: Document) -> str:
    body = _Page().blocks(doc.blocks)
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head>\n"
            f"<body><main>\n{body}\n</main></body></html>\n")
