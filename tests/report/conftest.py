"""Synthesized bench reports whose differences are known, so the gate's verdicts can be checked exactly."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlc.report.envelope import SCHEMA

BATCHES = (1, 32, 1024)


def _ratio(values: np.ndarray) -> dict[str, Any]:
    return {"values": [float(v) for v in values], "median": float(np.median(values))}


def _timing(variant: str, batch: int, values: np.ndarray, ratios: dict[str, Any], parity: Any) -> dict[str, Any]:
    return {"metric": f"latency_us@b{batch}", "variant": variant, "batch_size": batch, "values": values.tolist(),
            "median": float(np.median(values)), "ratios": ratios, "parity": parity}


def _synth_model(*, mlc_ratio: float = 0.5, spread: float = 0.01, scale: float = 1.0, agreement: float = 1.0,
                 err: float = 1e-7, seed: int = 0, repeats: int = 20, ort_ratio: float | None = None
                 ) -> dict[str, Any]:
    """One model's entry: native and mlc timings whose per-repeat ratio is mlc_ratio × (1 ± spread).

    `scale` multiplies every absolute time (a slower or faster machine) and leaves ratios alone.
    `ort_ratio` adds an ort-default variant at that ratio to native, a second reference for mlc.
    """
    rng = np.random.default_rng(seed)
    parity = {"match": True, "max_abs_err": err, "max_rel_err": err, "label_agreement": agreement,
              "tolerance": "lossless", "reason": "within tolerance"}
    timings = []
    for batch in BATCHES:
        native = scale * 10.0 * batch * (1 + 0.05 * rng.standard_normal(repeats)).clip(0.5)
        mlc = native * mlc_ratio * (1 + spread * rng.standard_normal(repeats)).clip(0.05)
        timings.append(_timing("native", batch, native, {}, None))
        mlc_ratios = {"native": _ratio(mlc / native)}
        if ort_ratio is not None:
            ort = native * ort_ratio * (1 + spread * rng.standard_normal(repeats)).clip(0.05)
            timings.append(_timing("ort-default", batch, ort, {"native": _ratio(ort / native)}, parity))
            mlc_ratios["ort-default"] = _ratio(mlc / ort)
        timings.append(_timing("mlc", batch, mlc, mlc_ratios, parity))
    return {"status": "ok", "description": "synthetic", "reference": "native",
            "variants": {"native": "x.predict_proba", "mlc": "optimized"}, "timings": timings}


def _synth_report(models: dict[str, dict[str, Any]], cpu: str = "test-cpu") -> dict[str, Any]:
    return {
        "schema": SCHEMA, "kind": "bench", "created_at": "2024-01-01T00:00:00Z",
        "hardware": {"cpu_model": cpu, "usable_cores": 2, "memory_gib": 8, "platform": "test"},
        "packages": {"numpy": "2"}, "git_commit": "abc", "target": {"name": "cpu-2"},
        "body": {"suite": "quick", "refs": None, "settings": {"repeats": 20, "warmup": 5, "sample_ms": 5,
                                                             "subject": "mlc", "batch_sizes": list(BATCHES)},
                 "models": models, "notes": [], "duration_s": 1.0},
    }


@pytest.fixture()
def write(tmp_path: Path) -> Callable[[str, Any], Path]:
    def _write(name: str, data: Any) -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return path
    return _write


@pytest.fixture()
def synth_model() -> Callable[..., dict[str, Any]]:
    return _synth_model


@pytest.fixture()
def synth_report() -> Callable[..., dict[str, Any]]:
    return _synth_report


@pytest.fixture()
def baseline() -> dict[str, Any]:
    """One model, mlc at half the native time, repeats within about 1%."""
    return _synth_report({"m": _synth_model(seed=1)})


@pytest.fixture()
def variant_of() -> Callable[..., dict[str, Any]]:
    """A copy of a report with model 'm' re-synthesized with other parameters."""
    def _variant(report: dict[str, Any], **model_kwargs: Any) -> dict[str, Any]:
        out = copy.deepcopy(report)
        out["body"]["models"]["m"] = _synth_model(**model_kwargs)
        return out
    return _variant
