"""The counters of metrics.py shown two ways: Prometheus text, and Triton's statistics extension.

Both read one snapshot summed over every worker, so /metrics and /v2/models/{m}/stats agree
with each other whichever worker answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlc.serve.metrics import GRPC_CODES, LATENCY_BUCKETS, STATUS_CODES, Layout, Slot

_OUTCOMES = (("success", Slot.SUCCESS), ("client_error", Slot.CLIENT_ERROR),
             ("queue_full", Slot.QUEUE_FULL), ("server_error", Slot.SERVER_ERROR))
# Batch-size histogram bounds for Prometheus (the exact sizes are in Triton's batch_stats).
_BATCH_BOUNDS = tuple(2 ** i for i in range(17))


def _labels(name: str, version: int, **extra: str) -> str:
    return prometheus_labels(model=name, version=str(version), **extra)


def prometheus_labels(**pairs: str) -> str:
    """`k="v",...` with each value escaped as the text format requires."""
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_number(value: float) -> str:
    """A sample value as the text format writes it: a whole number without a decimal point."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


_num = prometheus_number  # the short name keeps the exposition lines below readable


def prometheus_text(snapshot: np.ndarray, layout: Layout) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def family(metric: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")

    family("mlc_http_responses_total", "counter", "HTTP responses by status code, every route.")
    server = snapshot[layout.server_row]
    for index, code in enumerate((*STATUS_CODES, "other")):
        lines.append(f'mlc_http_responses_total{{code="{code}"}} {_num(server[index])}')
    family("mlc_grpc_responses_total", "counter", "gRPC responses by status code, every method.")
    for index, name in enumerate((*GRPC_CODES, "other"), start=len(STATUS_CODES) + 1):
        lines.append(f'mlc_grpc_responses_total{{code="{name}"}} {_num(server[index])}')

    family("mlc_inference_requests_total", "counter", "Inference requests by model, version and outcome.")
    for row, (name, version) in enumerate(layout.keys):
        for outcome, slot in _OUTCOMES:
            lines.append(f"mlc_inference_requests_total{{{_labels(name, version, outcome=outcome)}}} "
                         f"{_num(snapshot[row, slot])}")

    family("mlc_inference_rows_total", "counter", "Rows inferred successfully.")
    for row, (name, version) in enumerate(layout.keys):
        lines.append(f"mlc_inference_rows_total{{{_labels(name, version)}}} {_num(snapshot[row, Slot.ROWS])}")

    family("mlc_pending_rows", "gauge", "Rows queued in the batchers or running, summed over workers.")
    for row, (name, version) in enumerate(layout.keys):
        lines.append(f"mlc_pending_rows{{{_labels(name, version)}}} {_num(snapshot[row, Slot.PENDING_ROWS])}")

    family("mlc_request_duration_seconds", "histogram",
           "Time from request arrival to response, successful inference requests.")
    for row, (name, version) in enumerate(layout.keys):
        counts = snapshot[row, layout.latency_at:layout.latency_at + len(LATENCY_BUCKETS) + 1]
        cumulative = np.cumsum(counts)
        for bound, value in zip((*map(str, LATENCY_BUCKETS), "+Inf"), cumulative, strict=True):
            lines.append(f"mlc_request_duration_seconds_bucket{{{_labels(name, version, le=bound)}}} {_num(value)}")
        lines.append(f"mlc_request_duration_seconds_sum{{{_labels(name, version)}}} "
                     f"{_num(snapshot[row, Slot.LATENCY_SUM_NS] / 1e9)}")
        lines.append(f"mlc_request_duration_seconds_count{{{_labels(name, version)}}} {_num(cumulative[-1])}")

    family("mlc_batch_size_rows", "histogram", "Rows per batch the dynamic batcher ran.")
    sizes = np.arange(layout.max_batch_size + 1)
    for row, (name, version) in enumerate(layout.keys):
        counts = snapshot[row, layout.batch_count_at:layout.batch_count_at + layout.max_batch_size + 1]
        for bound in (*(b for b in _BATCH_BOUNDS if b < layout.max_batch_size), layout.max_batch_size):
            lines.append(f"mlc_batch_size_rows_bucket{{{_labels(name, version, le=str(bound))}}} "
                         f"{_num(counts[:bound + 1].sum())}")
        lines.append(f"mlc_batch_size_rows_bucket{{{_labels(name, version, le='+Inf')}}} {_num(counts.sum())}")
        lines.append(f"mlc_batch_size_rows_sum{{{_labels(name, version)}}} {_num((counts * sizes).sum())}")
        lines.append(f"mlc_batch_size_rows_count{{{_labels(name, version)}}} {_num(counts.sum())}")
    return "\n".join(lines) + "\n"


def _duration(count: float, ns: float) -> dict[str, int]:
    return {"count": int(count), "ns": int(ns)}


def triton_model_stats(snapshot: np.ndarray, layout: Layout, keys: list[tuple[str, int]]) -> dict[str, Any]:
    """Triton's statistics extension: {"model_stats": [...]} for the given (name, version)s."""
    index = {key: row for row, key in enumerate(layout.keys)}
    stats = []
    for name, version in keys:
        row = snapshot[index[(name, version)]]
        ok = row[Slot.SUCCESS]
        failed = row[Slot.CLIENT_ERROR] + row[Slot.QUEUE_FULL] + row[Slot.SERVER_ERROR]
        counts = row[layout.batch_count_at:layout.batch_count_at + layout.max_batch_size + 1]
        batch_ns = row[layout.batch_ns_at:layout.batch_ns_at + layout.max_batch_size + 1]
        batch_stats = [
            {"batch_size": size, "compute_input": _duration(counts[size], 0),
             "compute_infer": _duration(counts[size], batch_ns[size]), "compute_output": _duration(counts[size], 0)}
            for size in np.flatnonzero(counts).tolist()
        ]
        stats.append({
            "name": name,
            "version": str(version),
            "last_inference": int(row[Slot.LAST_INFERENCE_MS]),
            "inference_count": int(row[Slot.ROWS]),
            "execution_count": int(counts.sum()),
            "inference_stats": {
                "success": _duration(ok, row[Slot.SUCCESS_NS]),
                "fail": _duration(failed, row[Slot.FAIL_NS]),
                "queue": _duration(ok, row[Slot.QUEUE_NS]),
                "compute_input": _duration(ok, row[Slot.DECODE_NS]),
                "compute_infer": _duration(ok, row[Slot.INFER_NS]),
                "compute_output": _duration(ok, row[Slot.ENCODE_NS]),
                "cache_hit": _duration(0, 0),
                "cache_miss": _duration(0, 0),
            },
            "batch_stats": batch_stats,
        })
    return {"model_stats": stats}
