"""What `optimize` returns and attaches to the registered version: every candidate, measured and explained.

JSON: the shared report envelope (mlc.report) with an optimize body whose own
schema is "mlc.optimize/1". Markdown: the same content for CI logs and pull requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlc.convert import NativeModel
from mlc.search import Candidate, Plan
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

    @classmethod
    def build(cls, source: str, plan: Plan | None, target: HardwareTarget, batch_sizes: tuple[int, ...],
              evidence: str, validation_rows: int, native: NativeModel, native_latency: dict[int, Latency],
              candidates: list[Candidate], winner: str | None) -> OptimizeResult:
        from mlc.report import envelope

        result = cls(source, winner, target, batch_sizes, evidence, validation_rows, native.description,
                     native_latency, candidates, plan)
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
            "native": {"call": self.native,
                       "latency": {str(b): lat.to_dict() for b, lat in self.native_latency.items()}},
            "plan": {
                "description": self.plan.describe(),
                "candidates": sorted(winners),
                "runtime": self.plan.runtime(),
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
        lines = [f"# mlc optimize: {self.source} for {self.target.name}", ""]
        if self.plan is not None:
            lines += [f"**Winner:** `{self.winner}` — {self.plan.describe()}", ""]
            if len(self.plan.parts) > 1:
                lines += ["The winner uses different engines by batch size (runtime plan: "
                          + ", ".join(f"{e['engine']} up to {e['max_rows'] or 'any'} rows"
                                      for e in self.plan.runtime()["engines"]) + ").", ""]
        else:
            lines += ["**No candidate reproduced the original model within tolerance.**", ""]
        lines += [f"Parity checked on {self.validation_rows} rows of {self.evidence}. "
                  f"Speed-ups are over the native call `{self.native}`.", ""]
        header = "| candidate | status | " + " | ".join(f"b={b} median / p99 µs (×native)" for b in self.batch_sizes)
        lines += [header + " | parity | why |", "|" + "---|" * (len(self.batch_sizes) + 4)]
        native_cells = " | ".join(
            f"{self.native_latency[b].median_us:.1f} / {self.native_latency[b].p99_us:.1f}"
            if b in self.native_latency else "–" for b in self.batch_sizes)
        lines.append(f"| native `{self.native}` | baseline | {native_cells} | – | – |")
        winners = {c.id for c in self.plan.candidates} if self.plan else set()
        for c in self.candidates:
            cells = " | ".join(self._latency_cell(c, b) for b in self.batch_sizes)
            status = "**winner**" if c.id in winners else c.status
            reason = c.reason.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {c.id} {c.label} | {status} | {cells} | {self._parity_cell(c)} | {reason} |")
        return "\n".join(lines) + "\n"

    def _latency_cell(self, c: Candidate, batch: int) -> str:
        lat = c.latency.get(batch)
        if lat is None:
            return "–"
        native = self.native_latency.get(batch)
        speedup = f" (×{native.median_us / lat.median_us:.1f})" if native and lat.median_us > 0 else ""
        return f"{lat.median_us:.1f} / {lat.p99_us:.1f}{speedup}"

    @staticmethod
    def _parity_cell(c: Candidate) -> str:
        if c.parity is None:
            return "–"
        p = c.parity
        kind = "lossy" if p.tolerance.lossy else "lossless"
        return f"{kind}: max err {p.max_rel_error:.1e}, labels {p.label_disagreement:.2%}"
