"""Any report whose kind this version does not know, drawn from its body's shape.

Scalars become key/values (nested fields dotted), every list of records its own table. It is
the fallback of the kind registry, so a report from a newer mlc still shows rather than fails.
"""

from __future__ import annotations

from typing import Any

from mlc.report._registry import Report, ReportKind
from mlc.report.blocks import Block, Document, Heading, KeyValues, Paragraph, Table, table
from mlc.report.kinds._common import environment, environment_pairs, short


def _cell(value: Any, limit: int = 40) -> str:
    """Dicts as k=v pairs, lists comma-joined, so records with nested fields stay readable."""
    if isinstance(value, dict):
        return short(", ".join(f"{k}={short(v, limit)}" for k, v in value.items()), limit)
    if isinstance(value, list):
        return short(", ".join(short(v, limit) for v in value), limit)
    return short(value, limit)


def _records(key: str, records: list[dict[str, Any]]) -> Table:
    headers = [h for h in dict.fromkeys(k for r in records for k in r)
               if any(r.get(h) not in (None, "", {}, []) for r in records)]
    return table(headers, [[_cell(r.get(h, "")) for h in headers] for r in records])


def _body_blocks(body: Any) -> list[Block]:
    if not isinstance(body, dict):
        return [Paragraph(short(body, 2000))]
    pairs: list[tuple[str, str]] = []
    tables: list[tuple[str, list[dict[str, Any]]]] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value:
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                tables.append((f"{prefix}{key}", value))
            else:
                pairs.append((f"{prefix}{key}", _cell(value, 200)))

    walk(body, "")
    out: list[Block] = [KeyValues(tuple(pairs))] if pairs else []
    for key, records in tables:
        out += [Heading(key, 3), _records(key, records)]
    return out


def _title(report: Report) -> str:
    return f"mlc {report.get('kind', '?')} report"


def page(report: Report) -> Document:
    note = Paragraph(f"This mlc has no renderer for {report.get('kind')!r} reports: the body is shown as recorded.")
    blocks = (Heading(_title(report), 1), note, *_body_blocks(report.get("body")), environment(report))
    return Document(_title(report), blocks)


def terminal(report: Report) -> Document:
    blocks = (Heading(_title(report), 1), KeyValues(environment_pairs(report)), Heading("Details"),
              *_body_blocks(report.get("body")))
    return Document(_title(report), blocks)


GENERIC = ReportKind("generic", page, terminal)
