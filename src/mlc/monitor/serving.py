"""The collector as `mlc serve` starts it in each worker: feature names from the registry,
counters beside the server's other metrics files so /metrics sums them over workers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlc.errors import UsageError
from mlc.monitor.collect import Collector, CollectSettings, Counters
from mlc.monitor.rolling import RollingDrift
from mlc.monitor.summary import DataSummary, default_feature_names


def feature_names(signature: Any) -> list[str]:
    """The model's feature names when registration recorded them, else x0, x1, ... (as references use)."""
    names = (signature.extra or {}).get("feature_names") if signature is not None else None
    if names:
        return [str(n) for n in names]
    return default_feature_names(signature.n_features or 0) if signature is not None else []


def start_collector(settings: CollectSettings, versions: Iterable[tuple[str, int]], metrics_dir: Any) -> Collector:
    """A started collector for the served versions; refuses --collect-exclude/--collect-hash typos,
    and --drift-metrics for a version without a reference."""
    from mlc.registry import Registry

    registry = Registry.open()
    features: dict[tuple[str, int], Sequence[str]] = {}
    for name, version in versions:
        features[(name, version)] = feature_names(registry.get(f"{name}:{version}").signature)
    drift = None
    if settings.drift is not None:
        references = drift_references(settings.drift_references, features, registry)
        drift = RollingDrift(references, settings.drift, metrics_dir)
    return Collector(settings, features, counters=Counters(metrics_dir, os.getpid()), drift=drift)


def drift_references(files: Sequence[Path], served: Mapping[tuple[str, int], Sequence[str]],
                     registry: Any) -> dict[tuple[str, int], DataSummary]:
    """Each served version's reference: a --drift-reference file naming it, else the one stored with it."""
    from mlc.monitor.store import stored_reference

    given: dict[tuple[str, int], DataSummary] = {}
    for path in files:
        summary = DataSummary.load(path)
        name, _, version = str(summary.meta.get("ref") or "").partition(":")
        if not version.isdigit():
            raise UsageError(f"--drift-reference {path} does not say which version it describes",
                             "build it with mlc monitor reference DATA --ref NAME:VERSION -o FILE")
        given[(name, int(version))] = summary
    references = {}
    for key, names in served.items():
        reference = given.get(key) or stored_reference(registry, f"{key[0]}:{key[1]}")
        if reference is None:
            raise UsageError(f"--drift-metrics: {key[0]}:{key[1]} has no reference to score drift against",
                             "register it with --data (mlc register/optimize --data), or pass --drift-reference FILE")
        if len(reference.features) != len(names):  # matched by position, as the rows arrive
            raise UsageError(f"the reference for {key[0]}:{key[1]} has {len(reference.features)} features; "
                             f"the model has {len(names)}")
        references[key] = reference
    return references
