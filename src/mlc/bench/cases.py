"""What to benchmark: the built-in suite's models, or registered versions, turned into timing cases.

Both end in the same variants (see variants.py; an ONNX original has no separate ort-default,
its native run *is* ONNX Runtime with default options). A suite model is trained here, saved,
loaded back through the safe loader and optimized into a scratch registry, so a benchmark never
adds versions to the user's registry. A registered reference is benchmarked as `mlc serve`
serves it (Registry.served: an ONNX version as named, a framework version through its newest
optimized child), against the original it was optimized from (its parent, else itself).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mlc.bench.runner import BenchSettings, Case, Progress
from mlc.bench.suite import EVAL_ROWS, SuiteModel
from mlc.bench.variants import Variant, native_variant, scorer_variant
from mlc.errors import UsageError
from mlc.registry import ModelVersion, Registry
from mlc.targets import HardwareTarget

CaseFactory = tuple[str, Callable[[], Case]]


def mlc_threads(scorer: Any) -> int:
    """The most threads mlc's plan runs on: the limit every reference gets too."""
    plan = scorer.plan
    return max([plan.session.intra_op_threads, *(e.n_threads or 0 for e in plan.engines)])


def _variants(loaded: Any, registry: Registry, served: ModelVersion, target: HardwareTarget
              ) -> tuple[list[Variant], dict[str, Any]]:
    """native (the parity reference), ort-default (the plain reference, unless the original is ONNX
    already), mlc; and what the report says about them (the thread limit, a missing plain reference).

    The plain reference comes from the converters themselves (bench/plain.py), never from
    mlc.convert: a change in mlc's converter must show in mlc's ratio, not cancel out of it.
    """
    from mlc import convert
    from mlc.bench.plain import PLAIN_TOOLS, plain_onnx, plain_variant
    from mlc.runtime.scorer import Scorer
    from mlc.runtime.session import available_providers

    native = convert.native(loaded)
    variants = [native_variant(native)]
    scorer = Scorer.from_registry(served.ref, target, registry=registry)  # the suite's scratch registry
    threads = mlc_threads(scorer)
    info: dict[str, Any] = {"threads": threads}
    n_features = loaded.signature.n_features
    if loaded.framework in PLAIN_TOOLS and n_features:
        try:
            onnx_bytes, how = plain_onnx(loaded.model, loaded.framework, int(n_features))
            probe = np.zeros((1, int(n_features)), dtype=np.float32)
            variants.append(plain_variant(onnx_bytes, available_providers(target.execution_providers), threads,
                                          list(native.outputs(probe)), how))
        except Exception as exc:  # a model the converters refuse by default has no plain reference
            info["plain_reference"] = f"none: {type(exc).__name__}: {exc}"
    elif loaded.framework != "onnx":
        info["plain_reference"] = f"none: no plain converter for {loaded.framework} models"
    engines = ", ".join(name + (f" up to {rows} rows" if rows else "") for name, rows in scorer.engines)
    chain = " -> ".join(s.name for s in served.source.passes) or "no graph passes"
    variants.append(scorer_variant(scorer, f"{served.ref}: {chain}; served by the Scorer via {engines}",
                                   lossy=served.source.lossy))
    return variants, info


def _info(loaded: Any, served: ModelVersion, source: str) -> dict[str, Any]:
    return {"source": source, "framework": loaded.framework, "task": loaded.signature.task,
            "n_features": loaded.signature.n_features, "chain": [s.name for s in served.source.passes],
            "session": served.source.session,
            "runtime": served.source.runtime.to_dict() if served.source.runtime else None}


def suite_cases(models: tuple[SuiteModel, ...], target: HardwareTarget, settings: BenchSettings,
                workdir: Path, suite_name: str, progress: Progress | None = None) -> list[CaseFactory]:
    """One factory per suite model, optimized into a scratch registry under workdir."""
    registry = Registry(workdir / "registry")

    def prepare(model: SuiteModel) -> Case:
        import joblib

        from mlc.loading import load_model
        from mlc.optimize import optimize

        estimator, rows = model.train()
        path = workdir / f"{model.name}.joblib"
        joblib.dump(estimator, path)
        loaded = load_model(path)  # through the safe loader, as a user's file would be
        result = optimize(loaded, name=model.name, target=target, data=rows, batch_sizes=settings.batch_sizes,
                          registry=registry, progress=progress, timing_budget_s=settings.search_budget_s)
        served = registry.get(str(result.winner))
        variants, about = _variants(loaded, registry, served, target)
        return Case(model.name, model.description, rows, variants, threads=about["threads"],
                    info=_info(loaded, served, f"suite:{suite_name}") | about)

    return [(m.name, partial(prepare, m)) for m in models]


def served_and_original(registry: Registry, ref: str) -> tuple[ModelVersion, ModelVersion]:
    """(the version mlc serves for ref, the original it was optimized from: its parent, else itself)."""
    served = registry.served(ref).version
    parent = served.source.parent
    return served, registry.get(parent) if parent else served


def ref_cases(refs: tuple[str, ...], target: HardwareTarget, data: Path | None) -> list[CaseFactory]:
    """One factory per registered reference; rows from `data`, else drawn to fit the model's graph.

    References are resolved now, so a typo fails before anything is timed.
    """
    registry = Registry.open()
    pairs = {ref: served_and_original(registry, ref) for ref in refs}

    def prepare(ref: str) -> Case:
        import onnx

        from mlc.optimize.data import draw_inputs, load_rows

        served, original = pairs[ref]
        loaded = registry.load(original, trust=original.source.trusted)
        variants, about = _variants(loaded, registry, served, target)
        n_features = served.signature.n_features
        if data is not None:
            rows = load_rows(data, n_features)
        elif n_features is None:
            raise UsageError(f"cannot draw rows for {served.ref}: its input has no fixed feature count",
                             "pass real rows with --data rows.npy")
        else:
            rows = draw_inputs(onnx.load_model(str(registry.artifact_path(served))), n_features, EVAL_ROWS)
        description = (f"{original.ref} ({original.framework}) and its optimized version {served.ref}"
                       if served.ref != original.ref else f"{served.ref} ({served.framework}) as registered")
        return Case(ref, description, rows, variants, real_data=data is not None, threads=about["threads"],
                    info=_info(loaded, served, f"registry:{served.ref}") | about)

    return [(ref, partial(prepare, ref)) for ref in refs]
