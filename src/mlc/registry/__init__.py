"""Versioned model store; see _registry.Registry for the consistency rules.

The public API, where stages find what a version holds and which version a reference serves:
- `Registry`: register (`register`, `register_file`), read (`get`, `list`, `load`, `served`), aliases,
  tags, metrics, reports, deployments;
- `ModelVersion`: one version's row, with its lineage and measurements as typed records
  (`Source`, `Metrics`, `RuntimeRecord`, `ProfileRecord`... from `mlc.registry.records`);
- `Served`: what `Registry.served(ref)` answers (the one rule for serve, profile, bench, score).

Names load on first use, so `import mlc.registry.records` (the scorer and the passes read
those types) does not import SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlc.registry._refs import Ref, parse_ref
    from mlc.registry._registry import ModelVersion, Registry
    from mlc.registry._serving import Served
    from mlc.registry.records import (
        RECORD_SCHEMA,
        EngineChoice,
        Metrics,
        ProfileRecord,
        RecommendationRecord,
        RuntimeRecord,
        Source,
        Step,
    )

_HOMES = {
    "ModelVersion": "mlc.registry._registry",
    "Registry": "mlc.registry._registry",
    "Ref": "mlc.registry._refs",
    "parse_ref": "mlc.registry._refs",
    "Served": "mlc.registry._serving",
    **{name: "mlc.registry.records" for name in (
        "RECORD_SCHEMA", "EngineChoice", "Metrics", "ProfileRecord", "RecommendationRecord", "RuntimeRecord",
        "Source", "Step")},
}

__all__ = [
    "RECORD_SCHEMA", "EngineChoice", "Metrics", "ModelVersion", "ProfileRecord", "RecommendationRecord", "Ref",
    "Registry", "RuntimeRecord", "Served", "Source", "Step", "parse_ref",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mlc.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
