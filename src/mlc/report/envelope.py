"""The envelope every mlc report shares, so any report can be shown, stored and compared.

{"schema": "mlc.report/1", "kind": "optimize"|"profile"|"bench", "created_at": ISO-8601 UTC,
 "hardware": {...}, "packages": {...}, "git_commit": str|None, "target": {...}|None, "body": {...}}

`body` is the kind's own content. A reader refuses an unknown major schema version.
"""

from __future__ import annotations

import time
from typing import Any

from mlc.errors import UsageError

SCHEMA = "mlc.report/1"


def hardware_summary() -> dict[str, Any]:
    """What the figures were measured on: enough to tell two machines apart in a comparison."""
    from mlc.doctor import collect

    info = collect()
    return {
        "cpu_model": info["cpu"]["model"],
        "logical_cores": info["cpu"]["logical_cores"],
        "usable_cores": info["cpu"]["usable_cores"],
        "memory_gib": info["memory_gib"],
        "gpus": info["gpus"],
        "execution_providers": info["onnxruntime"].get("providers", []),
        "platform": info["platform"],
        "python": info["python"],
    }


def envelope(kind: str, body: dict[str, Any], *, target: dict[str, Any] | None = None) -> dict[str, Any]:
    from mlc.registry._provenance import git_commit, package_versions

    return {
        "schema": SCHEMA,
        "kind": kind,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": hardware_summary(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "target": target,
        "body": body,
    }


def check_schema(report: dict[str, Any], source: str = "report") -> dict[str, Any]:
    schema = str(report.get("schema", ""))
    if not schema.startswith("mlc.report/"):
        raise UsageError(f"{source} is not an mlc report (no 'schema': 'mlc.report/N' field)")
    if schema.split("/")[1] != SCHEMA.split("/")[1]:
        raise UsageError(f"{source} uses schema {schema}; this mlc reads {SCHEMA}",
                         "re-run the benchmark with this mlc version")
    return report
