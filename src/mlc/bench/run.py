"""`run_bench`: the whole benchmark, from what to measure to the report envelope."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from mlc.bench.cases import ref_cases, suite_cases
from mlc.bench.runner import BenchSettings, Progress, run_cases
from mlc.bench.suite import suite as suite_models
from mlc.errors import UsageError
from mlc.report.envelope import envelope
from mlc.targets import get_target


def _notes(models: dict[str, dict[str, Any]], refs: tuple[str, ...], data: Path | None) -> list[str]:
    notes = [f"{name} {m['status']}: {m['reason']}" for name, m in models.items() if m["status"] != "ok"]
    if refs and data is None:
        notes.append("input rows were drawn to fit each model's graph (no --data): parity is weaker evidence "
                     "than on real rows")
    return notes


def run_bench(refs: tuple[str, ...] = (), *, suite: str | None = None, target: str = "cpu",
              settings: BenchSettings | None = None, data: Path | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Benchmark registered versions (refs) or a built-in suite (default: quick); returns a bench report."""
    if refs and suite:
        raise UsageError("give model references or --suite, not both")
    if data is not None and not refs:
        raise UsageError("--data applies to registered models; the suites bring their own rows")
    settings = settings or BenchSettings()
    if settings.repeats < 1 or min(settings.batch_sizes, default=0) < 1:
        raise UsageError("repeats and batch sizes must be at least 1")
    hardware = get_target(target)
    started = time.perf_counter()
    if refs:
        models = run_cases(ref_cases(refs, hardware, data), settings, progress)
    else:
        suite = suite or "quick"
        chosen = suite_models(suite)
        with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp:
            models = run_cases(suite_cases(chosen, hardware, settings, Path(tmp), suite, progress),
                               settings, progress)
    body = {
        "suite": None if refs else suite,
        "refs": list(refs) or None,
        "settings": settings.to_dict(),
        "models": models,
        "notes": _notes(models, refs, data),
        "duration_s": round(time.perf_counter() - started, 1),
    }
    return envelope("bench", body, target=hardware.to_dict())
