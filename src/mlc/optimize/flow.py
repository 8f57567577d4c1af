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

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlc.convert import NativeModel, convert, native
from mlc.convert.graph import input_names, tensor_dtype
from mlc.errors import NotFoundError, ParityError, UsageError
from mlc.files import atomic_write
from mlc.loading.model import LoadedModel
from mlc.optimize.data import draw_inputs, load_rows, with_missing
from mlc.optimize.edges import check_edges, edge_families
from mlc.optimize.engines import Predictor, predictor
from mlc.optimize.result import OptimizeResult
from mlc.optimize.search import (
    ERROR,
    FAILED_PARITY,
    NOT_APPLICABLE,
    TREE_STRATEGIES,
    Candidate,
    Plan,
    chain_templates,
    choose,
    loss_reason,
    lossy_reason,
    session_variants,
    with_session,
)
from mlc.optimize.validate import DRAWN_INPUTS, REAL_DATA, Tolerance, check_parity
from mlc.passes.base import Artifact, Pass
from mlc.registry.records import NATIVE, OPTIMIZE, Metrics, Source
from mlc.runtime.session import available_providers, default_session_config
from mlc.signature import Signature, TensorSpec
from mlc.targets import HardwareTarget, get_target
from mlc.timing import Latency, cycling, cycling_calls, distinct_batches, measure

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
    allow_lossy: bool = False,
    output: Path | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    trust: bool = False,
    timing_budget_s: float = TIMING_BUDGET_S,
    tree_strategy: str | None = None,
) -> OptimizeResult:
    """Register the fastest ONNX of `source` for `target` that reproduces the original; see the module doc.

    Only lossless candidates may win unless `allow_lossy` (int8, fp16: judged by the label and error
    limits); lossy ones are validated and timed either way, so the report says what they would gain.
    """
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
    x_real, calibration, evidence = _sample_rows(data, base, n_features)
    x_real, reference = _reference(reference_model, x_real, data is None, base, n_features)
    row_families = {"drawn" if data is None else "real": len(x_real)}
    x_val, refused = x_real, dict[str, str]()
    if data is not None and x_real.dtype.kind == "f":
        x_val, reference, row_families, refused = _with_edge_rows(reference_model, base, n_features, x_real, reference)
        say("parity rows: " + ", ".join(f"{n} {family}" for family, n in row_families.items())
            + "".join(f"; {family} refused by the original ({why})" for family, why in refused.items()))
    lossy_tolerance = Tolerance(max_label_disagreement, max_abs_error, lossy=True)

    candidates = _build_candidates(base, hw, calibration, say, tree_strategy)
    if loaded.framework != "onnx":  # an ONNX source's own graph is the plain candidate already
        candidates.append(_native_candidate(f"c{len(candidates) + 1:02d}", base, source_mv, registry,
                                            reference_model))
    say(f"validating {len(candidates)} candidates on {len(x_val)} rows of {evidence}")
    predictors = _validate(candidates, x_val, reference, lossy_tolerance, evidence)
    passing = [c for c in candidates if c.passed]
    say(f"{len(passing)} candidates pass parity; timing them at batch sizes {', '.join(map(str, sizes))}")
    native_latency = _time(passing, predictors, reference_model, x_real, sizes, timing_budget_s, say)

    # The original model alone proves nothing about a graph: a plan needs an ONNX candidate that passed.
    graphs = [c for c in passing if c.engine != NATIVE and (allow_lossy or not c.lossy)]
    plan = choose(candidates, sizes, allow_lossy=allow_lossy) if graphs else None
    if plan is not None and plan.primary.engine == NATIVE:
        plan = replace(plan, graph=min(graphs, key=lambda c: Plan(((c, None),)).score(sizes)))
    if not allow_lossy:
        for candidate in passing:
            if candidate.lossy:
                candidate.reason = lossy_reason(candidate, plan, sizes)
    if plan is None:
        result = OptimizeResult.build(source_mv.ref, None, hw, sizes, evidence, len(x_val), reference_model,
                                      native_latency, candidates, None, allow_lossy=allow_lossy,
                                      row_families=row_families, refused_families=refused)
        registry.attach_report(source_mv, "optimize-failed.json", result.to_json())
        registry.attach_report(source_mv, "optimize-failed.md", result.to_markdown())
        raise ParityError(
            f"no candidate reproduced {source_mv.ref} within tolerance: {_failure_summary(candidates)}",
            f"the full list is attached to {source_mv.ref} as optimize-failed.md; if the drawn inputs are "
            "unrealistic, pass real rows with --data; lossy passes win only with --allow-lossy, within "
            "--max-label-disagreement/--max-abs-error",
        )
    reference_candidate = next((c for c in candidates if c.plain and c.passed), None)
    for candidate in passing:
        if candidate not in plan.candidates and (allow_lossy or not candidate.lossy):
            candidate.reason = loss_reason(candidate, plan, sizes, reference_candidate)
        if candidate is plan.graph:
            candidate.reason = f"the graph the version holds, the fastest that passed; {candidate.reason}"
    say(f"winner: {plan.describe()}")
    if native_sizes := plan.native_sizes(sizes):
        say(f"no ONNX candidate beat the original model at batch {', '.join(map(str, native_sizes))}: "
            "the plan keeps it (engine native) there")

    winner_artifact = plan.primary.artifact
    if winner_artifact is None:  # a candidate passes parity only by running an artifact
        raise RuntimeError(f"internal error: the winning candidate {plan.primary.id} has no artifact")
    mv = _register_winner(registry, source_mv, loaded, winner_artifact, plan, hw, native_latency, sizes)
    result = OptimizeResult.build(source_mv.ref, plan, hw, sizes, evidence, len(x_val), reference_model,
                                  native_latency, candidates, mv.ref, allow_lossy=allow_lossy,
                                  row_families=row_families, refused_families=refused)
    registry.attach_report(mv, "report.json", result.to_json())
    registry.attach_report(mv, "report.md", result.to_markdown())
    if data is not None:  # the rows it was validated on become its drift reference (mlc monitor)
        from mlc.monitor.store import store_data_reference

        store_data_reference(registry, mv, data)
        say(f"stored the reference of {mv.ref}'s data (mlc monitor {mv.ref} compares served data with it)")
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
    if not isinstance(source, LoadedModel) and Path(source).is_file():
        from mlc.loading import load_model

        source = load_model(Path(source), trust=trust)
    if isinstance(source, LoadedModel):
        # Optimizing the same file again reuses its version rather than registering a duplicate.
        mv = registry.register_file(source, name, trust=trust, reuse=True)
        say(f"the source is registered as {mv.ref}")
        return source, mv
    try:
        mv = registry.get(str(source))
    except (NotFoundError, UsageError):
        raise NotFoundError(f"{source} is neither a model file nor a registered model",
                            "pass a model file path, or NAME[:VERSION|@ALIAS] (see: mlc models list)") from None
    say(f"loading {mv.ref} from the registry")
    return registry.load(mv, trust=trust), mv


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
    if len(rows) < 2:
        return rows, None, REAL_DATA  # nothing to calibrate on that parity does not use
    # Up to VALIDATION_ROWS for parity, the rest (at least half) for calibration: never the same rows.
    n_val = min(VALIDATION_ROWS, len(rows) // 2)
    order = np.random.default_rng(0).permutation(len(rows))
    return rows[np.sort(order[:n_val])], rows[np.sort(order[n_val:])], REAL_DATA


def _with_edge_rows(model: NativeModel, base: Artifact, n_features: int, x_real: np.ndarray,
                    reference: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int],
                                                               dict[str, str]]:
    """Real rows plus the edge families the original answers (see mlc.optimize.edges): the rows,
    the original's outputs on them, rows per family and the families it refused with why."""
    edges = check_edges(edge_families(base.proto, n_features, x_real), model.outputs)
    rows = np.concatenate([x_real, *edges.rows.values()])
    outputs = {name: np.concatenate([value, *(o[name].reshape(-1, *value.shape[1:]) for o in edges.outputs.values())])
               for name, value in reference.items()}
    return np.ascontiguousarray(rows), outputs, {"real": len(x_real), **edges.counts()}, edges.refused


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


def _native_candidate(cid: str, base: Artifact, source_mv: ModelVersion, registry: Registry,
                      model: NativeModel) -> Candidate:
    """The original model as an engine (`native`): validated and timed through the Scorer like any
    candidate, loaded from the source version's artifact with the safe loader, as serve will load it.
    Where no ONNX candidate beats it at a batch size, the plan keeps it there."""
    options = {"ref": source_mv.ref, "path": str(registry.artifact_path(source_mv)), "format": source_mv.format,
               "trusted": source_mv.source.trusted, "call": model.description}
    artifact = Artifact(onnx_bytes=base.onnx_bytes, session=base.session, engine=NATIVE, engine_options=options,
                        steps=base.steps)
    return Candidate(id=cid, chain=(NATIVE,), artifact=artifact)


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
        calls = {c.id: cycling_calls([predictors[c.id].bind(x) for x in batches]) for c in passing}
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

    source = Source(
        OPTIMIZE, parent=source_mv.ref, chain=artifact.steps, session=artifact.session.to_dict(),
        runtime=plan.runtime(), target=target.name, ort_version=ort.__version__,
    )
    metrics = Metrics(
        parity=plan.primary.parity,
        parity_by_engine={c.engine: c.parity for c in plan.candidates if c.parity},
        latency_us={b: plan.candidate_at(b).latency[b] for b in sizes},
        native_latency_us={b: native_latency[b] for b in sizes},
        speedup_vs_native={b: round(native_latency[b].median_us / plan.latency(b), 3) for b in sizes},
    )
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

