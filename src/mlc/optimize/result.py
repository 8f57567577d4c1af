"""What `optimize` returns and attaches to the registered version: every candidate, measured and explained.

JSON: the shared report envelope (mlc.report) with an optimize body whose own
schema is "mlc.optimize/1". Markdown, HTML and the terminal form are drawn from that JSON by
the report's optimize kind (mlc/report/kinds/optimize.py), so they read the same everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlc.convert import NativeModel
from mlc.optimize.search import Candidate, Plan
from mlc.targets import HardwareTarget
from mlc.timing import Latency

SCHEMA = "mlc.optimize/1"


@dataclass
class OptimizeResult:
    source: str  # the source version's ref
    winner: str | None  # the registered winner's ref; None when nothing passed parity
    target: HardwareTarget
    batch_sizes: tuple[int, ...]
    evidence: str
    validation_rows: int
    native: str  # the native call timed as the baseline
    native_latency: dict[int, Latency]
    candidates: list[Candidate]
    plan: Plan | None
    report: dict[str, Any] = field(default_factory=dict)
    allow_lossy: bool = False  # whether a lossy candidate could win (--allow-lossy)
    # Parity rows by family ("real" or "drawn", and the edge families of mlc.optimize.edges).
    row_families: dict[str, int] = field(default_factory=dict)
    refused_families: dict[str, str] = field(default_factory=dict)  # edge families the original refused, why

    @classmethod
    def build(cls, source: str, plan: Plan | None, target: HardwareTarget, batch_sizes: tuple[int, ...],
              evidence: str, validation_rows: int, native: NativeModel, native_latency: dict[int, Latency],
              candidates: list[Candidate], winner: str | None, *, allow_lossy: bool = False,
              row_families: dict[str, int] | None = None,
              refused_families: dict[str, str] | None = None) -> OptimizeResult:
        from mlc.report import envelope

        result = cls(source, winner, target, batch_sizes, evidence, validation_rows, native.description,
                     native_latency, candidates, plan, allow_lossy=allow_lossy,
                     row_families=dict(row_families or {}), refused_families=dict(refused_families or {}))
        result.report = envelope("optimize", result.body(), target=target.to_dict())
        return result

    def body(self) -> dict[str, Any]:
        winners = {c.id for c in self.plan.candidates} if self.plan else set()
        return {
            "schema": SCHEMA,
            "source": self.source,
            "winner": self.winner,
            "target": self.target.name,
            "batch_sizes": list(self.batch_sizes),
            "evidence": self.evidence,
            "validation_rows": self.validation_rows,
            "allow_lossy": self.allow_lossy,
            "parity_rows": {"families": self.row_families, "refused": self.refused_families},
            "native": {"call": self.native,
                       "latency": {str(b): lat.to_dict() for b, lat in self.native_latency.items()}},
            "plan": {
                "description": self.plan.describe(),
                "candidates": sorted(winners),
                "runtime": self.plan.runtime().to_dict(),
                "latency_us": {str(b): round(self.plan.latency(b), 3) for b in self.batch_sizes},
                "speedup_vs_native": self._plan_speedups(self.plan),
            } if self.plan else None,
            "candidates": [
                {**c.to_dict(self.native_latency), "winner": c.id in winners} for c in self.candidates
            ],
        }

    def _plan_speedups(self, plan: Plan) -> dict[str, float]:
        return {str(b): round(self.native_latency[b].median_us / plan.latency(b), 3)
                for b in self.batch_sizes if b in self.native_latency}

    def to_dict(self) -> dict[str, Any]:
        return self.report

    def to_json(self) -> str:
        return json.dumps(self.report, indent=2, default=str)

    def to_markdown(self) -> str:
        """The report as Markdown, drawn by mlc.report from the JSON alone (as `mlc report show` draws it)."""
        from mlc.report.render import to_markdown

        return to_markdown(json.loads(self.to_json()))  # exactly what report.json holds
