"""Any mlc report as Markdown, an HTML page or terminal text, and the report files written whole.

The one entry point for drawing a report: the envelope's `kind` picks its module in
report/kinds/ (report/_registry.py), which builds the document; markdown.py, html.py and
terminal.py draw it. Every command that writes a report prints it through `show`, and `mlc
report show` calls the same functions on the JSON it reads back, so the two always agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from mlc.files import atomic_write
from mlc.report import html, markdown, terminal
from mlc.report._registry import get_kind
from mlc.report.blocks import Document
from mlc.report.envelope import check_schema

Medium = Literal["page", "terminal"]


def document(report: dict[str, Any], medium: Medium = "page") -> Document:
    """The report's blocks for a page (Markdown, HTML) or a terminal."""
    check_schema(report)
    kind = get_kind(str(report.get("kind")))
    return kind.page(report) if medium == "page" else kind.terminal(report)


def to_markdown(report: dict[str, Any]) -> str:
    return markdown.to_markdown(document(report))


def to_html(report: dict[str, Any]) -> str:
    """A self-contained page with its plots (a note in their place when matplotlib is missing)."""
    return html.to_html(document(report))


def show(report: dict[str, Any], console: Console) -> None:
    """The terminal form: what a command prints after writing the report, and `mlc report show` again."""
    terminal.draw(document(report, "terminal"), console)


def to_text(report: dict[str, Any], width: int = terminal.WIDTH) -> str:
    """The terminal form as plain text, for tests and logs."""
    return terminal.to_text(document(report, "terminal"), width)


def report_json(report: dict[str, Any], indent: int = 2) -> str:
    return json.dumps(report, indent=indent, default=str) + "\n"


def write_files(report: dict[str, Any], paths: Mapping[str, Path], *, json_indent: int = 2,
                extra: Mapping[Path, str] | None = None) -> None:
    """The report as each file in `paths` ("json", "markdown", "html"), plus `extra` texts beside them.

    Every text is rendered before any file is written (plotting can fail), then each file is
    written whole: never a mix of two runs, or half a file after a full disk.
    """
    renderers = {"json": lambda: report_json(report, json_indent), "markdown": lambda: to_markdown(report),
                 "html": lambda: to_html(report)}
    unknown = set(paths) - set(renderers)
    if unknown:
        raise ValueError(f"no report format {sorted(unknown)}; formats: {sorted(renderers)}")
    texts = {paths[fmt]: renderers[fmt]() for fmt in paths}
    texts.update(extra or {})
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode())


def write_report_files(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and report.html in out_dir (created if needed), as `mlc bench` writes them."""
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    write_files(report, paths, json_indent=1)
    return paths
