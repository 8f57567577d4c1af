"""`optimize`: convert a model, try every pass chain that applies, keep the fastest proven equal.

The flow: resolve the source (a file, registered first as the source version, or a
registry reference) → convert → build candidates (pass chains × session settings,
plus the tree kernel) → validate each against the original model's own predictions
→ time the survivors interleaved with the native predict at each batch size →
choose a plan (search.choose) → register it as a new version with its lineage,
metrics and reports. If nothing passes parity, only the source stays registered and
ParityError says why each candidate failed.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlc.convert import NativeModel, convert, native
from mlc.convert.graph import input_names, tensor_dtype
from mlc.data import draw_inputs, load_rows, with_missing
from mlc.engines import Predictor, predictor
from mlc.errors import NotFoundError, ParityError, UsageError
from mlc.files import atomic_write
from mlc.loading.model import LoadedModel
from mlc.optimize_result import OptimizeResult
from mlc.passes.base import Artifact, Pass
from mlc.runtime.session import available_providers, default_session_config
from mlc.search import (
    ERROR,
    FAILED_PARITY,
    NOT_APPLICABLE,
    TREE_STRATEGIES,
    Candidate,
    Plan,
    chain_templates,
    choose,
    loss_reason,
    session_variants,
    with_session,
)
from mlc.signature import Signature, TensorSpec
from mlc.targets import HardwareTarget, get_target
from mlc.timing import Latency, cycling, distinct_batches, measure
from mlc.validate import DRAWN_INPUTS, REAL_DATA, Tolerance, check_parity

if TYPE_CHECKING:
    from mlc.registry import ModelVersion, Registry

# Rows used for parity: enough to catch a 0.1% label flip rate, cheap for any tabular model.
VALIDATION_ROWS = 2000
DRAWN_ROWS = 1000
# Seconds of interleaved timing per candidate per batch size.
TIMING_BUDGET_S = 0.1

Progress = Callable[[str], None]


def optimize(
    source: str | Path | LoadedModel,
    *,
    name: str | None = None,
    target: str | HardwareTarget = "cpu",
    data: str | Path | np.ndarray | None = None,
    batch_sizes: tuple[int, ...] | None = None,
    max_label_disagreement: float = 0.005,
    max_abs_error: float = 0.05,
    output: Path | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    trust: bool = False,
    timing_budget_s: float = TIMING_BUDGET_S,
    tree_strategy: str | None = None,
) -> OptimizeResult:
    """Register the fastest ONNX of `source` for `target` that reproduces the original; see the module doc."""
    if tree_strategy is not None and tree_strategy not in TREE_STRATEGIES:
        raise UsageError(f"unknown tree strategy {tree_strategy!r}", f"choose one of: {', '.join(TREE_STRATEGIES)}")
    say: Progress = progress or (lambda _message: None)
    hw = target if isinstance(target, HardwareTarget) else get_target(target)
    sizes = tuple(batch_sizes or hw.batch_sizes)
    _check_limits(sizes, max_label_disagreement, max_abs_error)
    available_providers(hw.execution_providers)  # a GPU target on a CPU-only machine fails here, not later
    if registry is None:
        from mlc.registry import Registry

        registry = Registry.open()

    loaded, source_mv = _resolve_source(source, name, registry, trust, say)
    say(f"converting {loaded.framework} model {source_mv.ref}")
    base = convert(loaded, session=default_session_config(hw.cores, hw.device))
    reference_model = native(loaded)
    n_features = loaded.signature.n_features or _graph_features(base)
    x_val, calibration, evidence = _sample_rows(data, base, n_features)
    x_val, reference = _reference(reference_model, x_val, data is None, base, n_features)
    lossy_tolerance = Tolerance(max_label_disagreement, max_abs_error, lossy=True)

    candidates = _build_candidates(base, hw, calibration, say, tree_strategy)
    say(f"validating {len(candidates)} candidates on {len(x_val)} rows of {evidence}")
    predictors = _validate(candidates, x_val, reference, lossy_tolerance, evidence)
    passing = [c for c in candidates if c.passed]
    say(f"{len(passing)} candidates pass parity; timing them at batch sizes {', '.join(map(str, sizes))}")
    native_latency = _time(passing, predictors, reference_model, x_val, sizes, timing_budget_s, say)

    plan = choose(candidates, sizes)
    if plan is None:
        result = OptimizeResult.build(source_mv.ref, None, hw, sizes, evidence, len(x_val), reference_model,
                                      native_latency, candidates, None)
        registry.attach_report(source_mv, "optimize-failed.json", result.to_json())
        registry.attach_report(source_mv, "optimize-failed.md", result.to_markdown())
        raise ParityError(
            f"no candidate reproduced {source_mv.ref} within tolerance: {_failure_summary(candidates)}",
            f"the full list is attached to {source_mv.ref} as optimize-failed.md; if the drawn inputs are "
            "unrealistic, pass real rows with --data; lossy passes obey --max-label-disagreement/--max-abs-error",
        )
    reference_candidate = next((c for c in candidates if c.plain and c.passed), None)
    for candidate in passing:
        if candidate not in plan.candidates:
            candidate.reason = loss_reason(candidate, plan, sizes, reference_candidate)
    say(f"winner: {plan.describe()}")

    winner_artifact = plan.primary.artifact
    mv = _register_winner(registry, source_mv, loaded, winner_artifact, plan, hw, native_latency, sizes)
    result = OptimizeResult.build(source_mv.ref, plan, hw, sizes, evidence, len(x_val), reference_model,
                                  native_latency, candidates, mv.ref)
    registry.attach_report(mv, "report.json", result.to_json())
    registry.attach_report(mv, "report.md", result.to_markdown())
    if output is not None:
        atomic_write(Path(output), winner_artifact.onnx_bytes)
        say(f"wrote {output}")
    return result


def _check_limits(sizes: tuple[int, ...], max_label_disagreement: float, max_abs_error: float) -> None:
    if not sizes or min(sizes) < 1:
        raise UsageError(f"batch sizes must be positive integers, got {sizes}")
    if not 0 <= max_label_disagreement < 1:
        raise UsageError(f"max_label_disagreement must be a fraction in [0, 1), got {max_label_disagreement}")
    if max_abs_error < 0:
        raise UsageError(f"max_abs_error must be non-negative, got {max_abs_error}")


# ---- source ----------------------------------------------------------------------------------


def _resolve_source(source: str | Path | LoadedModel, name: str | None, registry: Registry, trust: bool,
                    say: Progress) -> tuple[LoadedModel, ModelVersion]:
    """The loaded model and its registered version: a file is registered first, a ref is looked up."""
    if isinstance(source, LoadedModel):
        return source, _register_file(source, name, registry, trust, say)
    path = Path(source)
    if path.is_file():
        from mlc.loading import load_model

        loaded = load_model(path, trust=trust)
        return loaded, _register_file(loaded, name, registry, trust, say)
    try:
        mv = registry.get(str(source))
    except (NotFoundError, UsageError):
        raise NotFoundError(f"{source} is neither a model file nor a registered model",
                            "pass a model file path, or NAME[:VERSION|@ALIAS] (see: mlc models list)") from None
    say(f"loading {mv.ref} from the registry")
    return registry.load(mv, trust=trust), mv


def _register_file(loaded: LoadedModel, name: str | None, registry: Registry, trust: bool,
                   say: Progress) -> ModelVersion:
    if loaded.path is not None:
        artifact: Path | bytes = loaded.path
        source = {"kind": "file", "path": str(Path(loaded.path).resolve()), "trusted": trust}
    elif loaded.is_onnx:
        artifact = loaded.model.SerializeToString()
        source = {"kind": "bytes"}
    else:
        raise UsageError("a model loaded in memory without its file cannot be registered",
                         "pass the model file's path instead")
    model_name = name or (Path(loaded.path).stem.replace(" ", "-") if loaded.path else None)
    if not model_name:
        raise UsageError("the model needs a name", "pass name=... (--name)")
    data = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    for existing in registry.list(name=model_name):
        # Optimizing the same file again reuses its version rather than registering a duplicate.
        if existing.digest == digest and existing.source.get("kind") in ("file", "bytes"):
            say(f"the source is already registered as {existing.ref}")
            return existing
    mv = registry.register(model_name, data, format=loaded.format, framework=loaded.framework,
                           signature=loaded.signature, source=source)
    say(f"registered the source as {mv.ref}")
    return mv


# ---- inputs ----------------------------------------------------------------------------------


def _graph_features(artifact: Artifact) -> int:
    dims = artifact.proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value"):
        raise UsageError("cannot tell the model's feature count from its input shape",
                         "export the ONNX graph with a fixed feature dimension: (batch, features)")
    return int(dims[1].dim_value)


def _sample_rows(data: str | Path | np.ndarray | None, base: Artifact,
                 n_features: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(validation and timing rows, calibration rows or None, evidence).

    Calibration rows are real rows other than the validation rows when the data has enough,
    so a statically quantized candidate is not judged on the rows it was calibrated on.
    """
    if data is None:
        return _as_graph_input(draw_inputs(base.proto, n_features, DRAWN_ROWS), base), None, DRAWN_INPUTS
    rows = _as_graph_input(load_rows(data, n_features), base)
    if len(rows) <= VALIDATION_ROWS:
        return rows, rows, REAL_DATA
    order = np.random.default_rng(0).permutation(len(rows))
    return rows[np.sort(order[:VALIDATION_ROWS])], rows[order[VALIDATION_ROWS:]], REAL_DATA


def _as_graph_input(rows: np.ndarray, base: Artifact) -> np.ndarray:
    """Rows in the graph's input type: an ONNX model taking int64 (or double) gets it on both
    sides, the original's and the candidates' (a Scorer refuses a lossy float-to-int cast)."""
    graph_input = next(i for i in base.proto.graph.input if i.name == input_names(base.proto)[0])
    dtype = np.dtype(tensor_dtype(graph_input.type.tensor_type.elem_type))
    if dtype == rows.dtype or dtype.kind not in "biuf":
        return rows
    return np.ascontiguousarray(np.rint(rows) if dtype.kind in "biu" else rows, dtype=dtype)


def _reference(model: NativeModel, rows: np.ndarray, drawn: bool, base: Artifact,
               n_features: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(validation rows, the original's outputs on them).

    Drawn rows get some missing values where trees read a column when the original takes NaN
    (XGBoost, LightGBM, HistGradientBoosting, recent scikit-learn forests), so a candidate that
    routes them differently fails; an original that refuses NaN is judged without them.
    """
    if drawn and rows.dtype.kind == "f":
        holed = with_missing(rows, base.proto, n_features)
        if np.isnan(holed).any():
            try:
                return holed, model.outputs(holed)
            except ValueError:
                pass  # "Input X contains NaN": the original does not take missing values
    return rows, model.outputs(rows)


# ---- candidates ------------------------------------------------------------------------------


def _build_candidates(base: Artifact, target: HardwareTarget, calibration: np.ndarray | None,
                      say: Progress, tree_strategy: str | None = None) -> list[Candidate]:
    candidates: list[Candidate] = []

    def add(**fields: Any) -> Candidate:
        candidate = Candidate(id=f"c{len(candidates) + 1:02d}", **fields)
        candidates.append(candidate)
        return candidate

    for chain in chain_templates(target, calibration, tree_strategy):
        names = tuple(p.describe() for p in chain)
        try:
            artifact, reason = _apply_chain(base, chain, target)
        except Exception as exc:  # a pass crashing on one model must not end the search: report it
            add(chain=names, status=ERROR, reason=f"{type(exc).__name__}: {exc}")
            continue
        if artifact is None:
            add(chain=names, status=NOT_APPLICABLE, reason=reason)
            continue
        if artifact.engine != "ort":
            add(chain=names, artifact=artifact)
            continue
        for config, is_default in session_variants(artifact, target):
            add(chain=names, artifact=with_session(artifact, config, target), plain=not chain and is_default)
        if names:
            say(f"built {' → '.join(names)}")
    return candidates


def _apply_chain(base: Artifact, chain: tuple[Pass, ...],
                 target: HardwareTarget) -> tuple[Artifact | None, str]:
    artifact = base
    for step in chain:
        reason = step.applies(artifact, target)
        if reason is not None:
            return None, f"{step.name}: {reason}"
        artifact = step.run(artifact, target)
    return artifact, ""


def _validate(candidates: list[Candidate], x: np.ndarray, reference: dict[str, np.ndarray],
              lossy: Tolerance, evidence: str) -> dict[str, Predictor]:
    predictors: dict[str, Predictor] = {}
    for candidate in candidates:
        if candidate.artifact is None:
            continue
        try:
            runner = predictor(candidate.artifact)
            tolerance = lossy if candidate.artifact.lossy else Tolerance.lossless()
            candidate.parity = check_parity(runner.predict, reference, x, tolerance=tolerance, evidence=evidence)
        except Exception as exc:  # an engine refusing a graph is a finding about this candidate only
            candidate.status, candidate.reason = ERROR, f"{type(exc).__name__}: {exc}"
            continue
        if candidate.parity.passed:
            predictors[candidate.id] = runner
        else:
            candidate.status, candidate.reason = FAILED_PARITY, candidate.parity.reason
    return predictors


def _time(passing: list[Candidate], predictors: dict[str, Predictor], native_model: NativeModel,
          rows: np.ndarray, sizes: tuple[int, ...], budget_s: float, say: Progress) -> dict[int, Latency]:
    native_latency: dict[int, Latency] = {}
    for batch in sizes:
        batches = distinct_batches(rows, batch)
        calls = {c.id: cycling(operator.call, [predictors[c.id].bind(x) for x in batches]) for c in passing}
        calls["native"] = cycling(native_model.baseline, batches)
        say(f"timing {len(calls)} calls at batch {batch}")
        measured = measure(calls, budget_s=budget_s * len(calls))
        native_latency[batch] = measured.pop("native")
        for candidate in passing:
            candidate.latency[batch] = measured[candidate.id]
    return native_latency


def _failure_summary(candidates: list[Candidate]) -> str:
    failed = [c for c in candidates if c.status in (FAILED_PARITY, ERROR)]
    shown = "; ".join(f"{c.label}: {c.reason}" for c in failed[:3])
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    return shown + more if shown else "no candidate applied"


# ---- registering -----------------------------------------------------------------------------


def _register_winner(registry: Registry, source_mv: ModelVersion, loaded: LoadedModel, artifact: Artifact,
                     plan: Plan, target: HardwareTarget, native_latency: dict[int, Latency],
                     sizes: tuple[int, ...]) -> ModelVersion:
    import onnxruntime as ort

    primary = plan.primary
    source = {
        "kind": "optimize",
        "parent": source_mv.ref,
        "chain": [step.to_dict() for step in artifact.steps],
        "session": artifact.session.to_dict(),
        "runtime": plan.runtime(),
        "target": target.name,
        "ort_version": ort.__version__,
    }
    metrics = {
        "parity": primary.parity.to_dict() if primary.parity else None,
        "parity_by_engine": {c.engine: c.parity.to_dict() for c in plan.candidates if c.parity},
        "latency_us": {str(b): plan.candidate_at(b).latency[b].to_dict() for b in sizes},
        "native_latency_us": {str(b): native_latency[b].to_dict() for b in sizes},
        "speedup_vs_native": {str(b): round(native_latency[b].median_us / plan.latency(b), 3) for b in sizes},
    }
    return registry.register(
        source_mv.name, artifact.onnx_bytes, format="onnx", framework="onnx",
        signature=_winner_signature(loaded.signature, artifact),
        tags={"optimized-for": target.name},
        description=f"optimized for {target.name}: {plan.describe()}",
        source=source, metrics=metrics,
    )


def _winner_signature(original: Signature, artifact: Artifact) -> Signature:
    """The ONNX graph's own inputs and outputs, with the original's task and classes."""
    def spec(value: Any) -> TensorSpec:
        t = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
        return TensorSpec(value.name, tensor_dtype(t.elem_type), dims)

    graph = artifact.proto.graph
    initializers = {t.name for t in graph.initializer}
    # An output the original declares keeps its shape (its type is the graph's): converters
    # declare (None, 1) for every regression, a multi-output one included.
    shapes = {o.name: o.shape for o in original.outputs}

    def output(value: Any) -> TensorSpec:
        graph_spec = spec(value)
        return TensorSpec(graph_spec.name, graph_spec.dtype, shapes.get(value.name, graph_spec.shape))

    return Signature(
        inputs=tuple(spec(i) for i in graph.input if i.name not in initializers),
        outputs=tuple(output(o) for o in graph.output),
        task=original.task, classes=original.classes, extra=dict(original.extra),
    )

