"""What to benchmark: the built-in suite's models, or registered versions, turned into timing cases.

Both end in the same variants (see variants.py; an ONNX original has no separate ort-default,
its native run *is* ONNX Runtime with default options). A suite model is trained here, saved,
loaded back through the safe loader and optimized into a scratch registry, so a benchmark never
adds versions to the user's registry. A registered reference is taken as it is: an optimized
version is served as recorded and compared with its parent; a source version is compared with
its latest optimized child.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlc.bench.runner import BenchSettings, Case, Progress
from mlc.bench.suite import EVAL_ROWS, SuiteModel
from mlc.bench.variants import Variant, native_variant, ort_default_variant, scorer_variant
from mlc.errors import UsageError
from mlc.registry import ModelVersion, Registry
from mlc.targets import HardwareTarget

CaseFactory = tuple[str, Callable[[], Case]]


def _steps(version: ModelVersion) -> list[dict[str, Any]]:
    """The passes `mlc optimize` applied after conversion, as recorded in the version's lineage."""
    return [s for s in version.source.get("chain", []) if s.get("pass") != "convert"]


def _variants(loaded: Any, registry: Registry, served: ModelVersion, target: HardwareTarget) -> list[Variant]:
    """native (the reference), ort-default (unless the original is ONNX already), mlc."""
    from mlc import convert
    from mlc.runtime.scorer import Scorer
    from mlc.runtime.session import available_providers

    variants = [native_variant(convert.native(loaded))]
    if loaded.framework != "onnx":
        artifact = convert.convert(loaded)
        tool = artifact.steps[0].notes.get("tool", loaded.framework)
        variants.append(ort_default_variant(artifact.onnx_bytes, available_providers(target.execution_providers),
                                            f"{tool} conversion, onnxruntime default session options"))
    scorer = Scorer.from_registry(served.ref, target, registry=registry)  # the suite's scratch registry
    engines = ", ".join(name + (f" up to {rows} rows" if rows else "") for name, rows in scorer.engines)
    chain = " -> ".join(s["pass"] for s in _steps(served)) or "no graph passes"
    variants.append(scorer_variant(scorer, f"{served.ref}: {chain}; served by the Scorer via {engines}",
                                   lossy=any(s.get("lossy") for s in _steps(served))))
    return variants


def _info(loaded: Any, served: ModelVersion, source: str) -> dict[str, Any]:
    return {"source": source, "framework": loaded.framework, "task": loaded.signature.task,
            "n_features": loaded.signature.n_features, "chain": [s["pass"] for s in _steps(served)],
            "session": served.source.get("session"), "runtime": served.source.get("runtime")}


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
        return Case(model.name, model.description, rows, _variants(loaded, registry, served, target),
                    info=_info(loaded, served, f"suite:{suite_name}"))

    return [(m.name, lambda m=m: prepare(m)) for m in models]


def served_and_original(registry: Registry, version: ModelVersion) -> tuple[ModelVersion, ModelVersion]:
    """(the optimized version mlc serves, the original it was made from) for any reference to either."""
    parent = version.source.get("parent")
    if parent:
        return version, registry.get(str(parent))
    children = [v for v in registry.list() if v.source.get("parent") == version.ref]
    if not children:
        raise UsageError(f"{version.ref} has no optimized version to benchmark against its original",
                         f"optimize it first: mlc optimize {version.ref}")
    return max(children, key=lambda v: v.created_at), version


def ref_cases(refs: tuple[str, ...], target: HardwareTarget, data: Path | None) -> list[CaseFactory]:
    """One factory per registered reference; rows from `data`, else drawn to fit the model's graph.

    References are resolved now, so a typo fails before anything is timed.
    """
    registry = Registry.open()
    pairs = {ref: served_and_original(registry, registry.get(ref)) for ref in refs}

    def prepare(ref: str) -> Case:
        import onnx

        from mlc.data import draw_inputs, load_rows

        served, original = pairs[ref]
        loaded = registry.load(original, trust=bool(original.source.get("trusted")))
        variants = _variants(loaded, registry, served, target)
        n_features = served.signature.n_features
        if data is not None:
            rows = load_rows(data, n_features)
        elif n_features is None:
            raise UsageError(f"cannot draw rows for {served.ref}: its input has no fixed feature count",
                             "pass real rows with --data rows.npy")
        else:
            rows = draw_inputs(onnx.load_model(str(registry.artifact_path(served))), n_features, EVAL_ROWS)
        description = f"{original.ref} ({original.framework}) and its optimized version {served.ref}"
        return Case(ref, description, rows, variants, real_data=data is not None,
                    info=_info(loaded, served, f"registry:{served.ref}"))

    return [(ref, lambda ref=ref: prepare(ref)) for ref in refs]
