"""optimize(): the search end to end on tiny models, and the choice of a winner."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from mlc.convert import get_converter, native, register_converter
from mlc.convert.sklearn import SklearnConverter
from mlc.errors import DeviceUnavailableError, ParityError, UsageError
from mlc.optimize import optimize
from mlc.optimize.search import FAILED_PARITY, MEASURED, Candidate, choose
from mlc.optimize.validate import ParityReport, Tolerance, compare
from mlc.passes import register_pass, unregister_pass
from mlc.passes.base import Artifact, Pass, Step
from mlc.registry import EngineChoice, Registry
from mlc.runtime.session import SessionConfig
from mlc.timing import Latency
from tests import zoo
from tests.optimize.faulty import ForgetsMissingValues

FAST = {"timing_budget_s": 0.005, "batch_sizes": (1, 16)}


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    return Registry(tmp_path / "home")


def _save(tmp_path: Path, name: str, file_name: str | None = None) -> Path:
    path = tmp_path / f"{file_name or name}.joblib"
    joblib.dump(zoo.model(name).model, path)
    return path


def _halve_probabilities(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with its probabilities output multiplied by 0.5: fast, and wrong."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for node in model.graph.node:
        node.output[:] = ["probabilities_raw" if o == "probabilities" else o for o in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"))
    model.graph.node.append(helper.make_node("Mul", ["probabilities_raw", "half"], ["probabilities"]))
    return model


class Corrupt(Pass):
    """A pass that claims to be lossless and is not: the search must reject it on parity."""

    name = "test-corrupt"
    lossy = False

    def applies(self, artifact, target):
        return None if artifact.engine == "ort" else "ORT only"

    def run(self, artifact, target):
        return artifact.derive(self.step(), onnx_bytes=_halve_probabilities(artifact.proto).SerializeToString())


class CorruptConverter(SklearnConverter):
    def convert(self, loaded):
        return _halve_probabilities(super().convert(loaded))


def test_winner_is_registered_with_lineage_metrics_and_reports(tmp_path, registry):
    path = _save(tmp_path, "sklearn-forest-binary", "forest")
    messages: list[str] = []
    result = optimize(path, registry=registry, progress=messages.append, **FAST)

    assert (result.source, result.winner) == ("forest:1", "forest:2")
    assert any("winner" in m for m in messages)
    mv = registry.get("forest:2")
    assert mv.format == "onnx" and mv.framework == "onnx"
    src = mv.source
    assert src.kind == "optimize" and src.parent == "forest:1" and src.target == "cpu-2"
    assert src.chain[0].name == "convert" and src.ort_version
    assert src.runtime is not None
    engines = src.runtime.engines
    assert engines[-1].max_rows is None
    bounded = [e.max_rows for e in engines[:-1] if e.max_rows is not None]
    assert len(bounded) == len(engines) - 1 and bounded == sorted(bounded)
    assert SessionConfig.from_dict(src.runtime.session or {}) == result.plan.primary.artifact.session
    assert mv.metrics.parity is not None and mv.metrics.parity.passed and set(mv.metrics.latency_us) == {1, 16}
    assert mv.metrics.speedup_vs_native[1] > 0
    # The row on disk keeps mlc 0.1.0's layout, marked with the record schema.
    row = mv.to_dict()
    assert row["source"]["runtime"]["engines"][-1]["max_rows"] is None and row["source"]["schema"] == 1
    assert row["metrics"]["parity"]["passed"] and set(row["metrics"]["latency_us"]) == {"1", "16"}
    assert sorted(mv.reports) == ["report.json", "report.md"]
    stored = json.loads((registry.version_dir(mv) / "report.json").read_text())
    assert stored["kind"] == "optimize" and stored["body"]["schema"] == "mlc.optimize/1"
    assert result.to_dict()["body"]["winner"] == "forest:2"

    markdown = result.to_markdown()
    for candidate in result.candidates:
        assert candidate.id in markdown
        if candidate.status == MEASURED and candidate.id not in {c.id for c in result.plan.candidates}:
            assert candidate.reason.startswith(("slower", "tied")), candidate.reason
        if candidate.status != MEASURED:
            assert candidate.reason

    # The registered artifact is the winner, and it reproduces the original.
    winner = onnx.load(registry.artifact_path(mv))
    import onnxruntime as ort

    x = zoo.data()[0]
    session = ort.InferenceSession(winner.SerializeToString(), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"input": x})[0]
    np.testing.assert_allclose(probabilities, native(zoo.model("sklearn-forest-binary")).outputs(x)["probabilities"],
                               atol=1e-5)


def test_a_candidate_failing_parity_never_wins(tmp_path, registry):
    register_pass(Corrupt)
    try:
        result = optimize(_save(tmp_path, "sklearn-mlp"), registry=registry, **FAST)
    finally:
        unregister_pass(Corrupt.name)
    corrupt = [c for c in result.candidates if c.chain == ("test-corrupt",)]
    assert corrupt and all(c.status == FAILED_PARITY and not c.latency for c in corrupt)
    assert "'probabilities' differs" in corrupt[0].reason
    assert not {c.id for c in corrupt} & {c.id for c in result.plan.candidates}
    chain = [s.name for s in registry.get(result.winner).source.chain]
    assert "test-corrupt" not in chain


def test_no_candidate_passing_raises_and_registers_only_the_source(tmp_path, registry):
    original = get_converter("sklearn")
    register_converter(CorruptConverter(), overwrite=True)
    try:
        with pytest.raises(ParityError, match="no candidate reproduced forest:1"):
            optimize(_save(tmp_path, "sklearn-forest-binary", "forest"), registry=registry, **FAST)
    finally:
        register_converter(original, overwrite=True)
    versions = registry.list("forest")
    assert [v.version for v in versions] == [1]
    assert "optimize-failed.md" in versions[0].reports


def test_optimize_a_registered_ref_with_real_data_and_output(tmp_path, registry):
    from mlc.loading import load_model

    path = _save(tmp_path, "sklearn-mlp-wide", "wide")
    loaded = load_model(path)
    registry.register("wide", path, format=loaded.format, framework=loaded.framework, signature=loaded.signature)
    rows = tmp_path / "rows.npy"
    np.save(rows, zoo.data()[0])
    out = tmp_path / "out" / "winner.onnx"

    result = optimize("wide", registry=registry, data=rows, output=out, **FAST)

    assert (result.source, result.winner) == ("wide:1", "wide:2")
    assert result.evidence == "real data"
    static = next(c for c in result.candidates if c.chain and c.chain[0].startswith("quantize-static"))
    assert static.status != "not applicable"
    onnx.checker.check_model(onnx.load(out))
    assert out.read_bytes() == registry.artifact_path(registry.get("wide:2")).read_bytes()


def test_csv_rows_and_a_wrong_column_count(tmp_path, registry):
    path = _save(tmp_path, "sklearn-logreg", "lr")
    csv = tmp_path / "rows.csv"
    x = zoo.data()[0]
    csv.write_text("\n".join(",".join(map(str, row)) for row in x[:, :3]))
    with pytest.raises(UsageError, match="3 columns but the model takes 6"):
        optimize(path, registry=registry, data=csv, **FAST)
    header = ",".join(f"f{i}" for i in range(x.shape[1]))
    csv.write_text(header + "\n" + "\n".join(",".join(map(str, row)) for row in x))
    result = optimize(path, registry=registry, data=csv, **FAST)
    # Half the rows check parity, the other half calibrate: never the same rows. Edge rows join parity.
    assert result.evidence == "real data" and result.row_families["real"] == len(x) // 2
    assert result.validation_rows == sum(result.row_families.values()) > len(x) // 2


def test_gpu_target_needs_a_gpu(tmp_path, registry):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailableError):
        optimize(_save(tmp_path, "sklearn-forest-binary"), registry=registry, target="gpu", **FAST)
    assert registry.list() == []


# ---- choosing among measured candidates (no timing involved) ---------------------------------


def _candidate(cid: str, latencies: dict[int, float], *, chain=(), engine="ort", passed=True, plain=False,
               lossy=False, threads=1, onnx_bytes=b"graph") -> Candidate:
    steps = tuple(Step(name, {}, lossy) for name in chain)
    artifact = Artifact(onnx_bytes=onnx_bytes, session=SessionConfig(intra_op_threads=threads), engine=engine,
                        engine_options={"n_threads": threads} if engine != "ort" else {}, steps=steps)
    parity = ParityReport(passed, 0.0, 0.0, 0.0, 10, 0, "real data", "", Tolerance.lossless())
    return Candidate(id=cid, chain=tuple(chain), artifact=artifact, status=MEASURED if passed else FAILED_PARITY,
                     parity=parity, plain=plain,
                     latency={b: Latency(v, v, 10) for b, v in latencies.items()})


def test_ties_go_to_the_simpler_chain():
    plain = _candidate("plain", {1: 10.0, 32: 100.0}, plain=True)
    fancy = _candidate("fancy", {1: 9.9, 32: 99.0}, chain=("ort-graph-opt",), onnx_bytes=b"other")
    assert choose([plain, fancy], (1, 32)).candidates == [plain]
    faster = _candidate("faster", {1: 5.0, 32: 60.0}, chain=("ort-graph-opt",), onnx_bytes=b"other")
    assert choose([plain, faster], (1, 32)).candidates == [faster]


def test_fewer_threads_win_a_tie():
    two = _candidate("two", {1: 10.0, 32: 100.0}, plain=True, threads=2)
    one = _candidate("one", {1: 10.1, 32: 101.0}, threads=1)
    assert choose([two, one], (1, 32)).candidates == [one]


def test_a_faster_candidate_that_failed_parity_is_ignored():
    plain = _candidate("plain", {1: 10.0, 32: 100.0}, plain=True)
    wrong = _candidate("wrong", {1: 1.0, 32: 10.0}, chain=("x",), passed=False)
    assert choose([plain, wrong], (1, 32)).candidates == [plain]
    assert choose([wrong], (1, 32)) is None


def test_split_plan_by_batch_size():
    ort_plain = _candidate("ort", {1: 10.0, 32: 20.0, 1024: 200.0}, plain=True)
    kernel = _candidate("trees", {1: 2.0, 32: 8.0, 1024: 400.0}, chain=("mlc-trees",), engine="mlc-trees")
    plan = choose([ort_plain, kernel], (1, 32, 1024))
    assert [c.id for c in plan.candidates] == ["trees", "ort"]
    assert plan.runtime().engines == (EngineChoice("mlc-trees", 32, 1), EngineChoice("ort", None))
    assert plan.latency(1) == 2.0 and plan.latency(1024) == 200.0


def test_split_needs_the_same_graph():
    ort_quantized = _candidate("q", {1: 10.0, 1024: 100.0}, chain=("quantize-dynamic",), onnx_bytes=b"q")
    kernel = _candidate("trees", {1: 2.0, 1024: 400.0}, chain=("mlc-trees",), engine="mlc-trees")
    plan = choose([ort_quantized, kernel], (1, 1024))
    assert len(plan.parts) == 1


def test_nowhere_slower_than_the_plain_conversion():
    plain = _candidate("plain", {1: 10.0, 1024: 100.0}, plain=True)
    # Better geometric mean, but 30% slower than plain at batch 1024.
    lopsided = _candidate("lop", {1: 2.0, 1024: 130.0}, chain=("x",), onnx_bytes=b"x")
    assert choose([plain, lopsided], (1, 1024)).candidates == [plain]


@pytest.mark.parametrize("name", ["xgboost-multi", "lightgbm-booster-binary", "onnx-logreg"])
def test_native_files_of_every_framework(tmp_path, registry, name):
    loaded = zoo.model(name)
    if loaded.framework == "xgboost":
        path = tmp_path / "model.json"
        loaded.model.save_model(path)
    elif loaded.framework == "lightgbm":
        path = tmp_path / "model.txt"
        loaded.model.save_model(str(path))
    else:
        path = tmp_path / "model.onnx"
        onnx.save(loaded.model, path)
    result = optimize(path, registry=registry, **FAST)
    assert result.winner == "model:2"
    assert registry.get("model:1").framework == loaded.framework

    # The registered artifact reproduces the original model within the winner's tolerance.
    import onnxruntime as ort

    mv = registry.get(result.winner)
    session = ort.InferenceSession(registry.artifact_path(mv).read_bytes(), providers=["CPUExecutionProvider"])
    x = zoo.data()[0]
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {session.get_inputs()[0].name: x}), strict=True))
    parity = compare(outputs, native(loaded).outputs(x), tolerance=result.plan.primary.parity.tolerance,
                     evidence="zoo rows")
    assert parity.passed, parity.reason


def test_optimizing_the_same_file_again_reuses_its_source_version(tmp_path, registry):
    path = _save(tmp_path, "sklearn-logreg")
    first = optimize(path, registry=registry, **FAST)
    second = optimize(path, registry=registry, **FAST)
    assert first.source == second.source
    assert [mv.version for mv in registry.list(name=registry.get(first.source).name)
            if mv.source.kind == "file"] == [registry.get(first.source).version]


def test_a_forced_tree_strategy_is_the_only_one_tried_on_gpu_targets():
    from mlc.optimize.search import chain_templates
    from mlc.targets import get_target

    def strategies(forced):
        return {step.config.strategy for chain in chain_templates(get_target("gpu"), None, forced)
                for step in chain if step.name == "tensorize-trees"}

    assert strategies(None) == {"gemm", "tree_traversal"}
    assert strategies("gemm") == {"gemm"}
    with pytest.raises(UsageError, match="tree strategy"):
        optimize("unused.onnx", target="gpu", tree_strategy="forest-fire")


def test_without_data_a_graph_that_routes_missing_values_wrongly_fails_parity(tmp_path, registry):
    """Drawn rows carry NaN where trees read a column, when the original takes NaN (HistGradientBoosting)."""
    original = get_converter("sklearn")
    register_converter(ForgetsMissingValues(), overwrite=True)
    try:
        with pytest.raises(ParityError):
            optimize(_save(tmp_path, "sklearn-hgb-binary", "hgb"), registry=registry, **FAST)
    finally:
        register_converter(original, overwrite=True)
    # An original that refuses NaN (GradientBoosting) is judged on rows without any.
    assert optimize(_save(tmp_path, "sklearn-gb-multi", "gb"), registry=registry, **FAST).winner


def test_an_onnx_model_with_an_integer_input_is_optimized(tmp_path, registry):
    weights = numpy_helper.from_array(np.arange(1, 7, dtype=np.float32).reshape(3, 2), "w")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xf"], to=onnx.TensorProto.FLOAT),
         helper.make_node("MatMul", ["xf", "w"], ["y"])],
        "ints", [helper.make_tensor_value_info("x", onnx.TensorProto.INT64, [None, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 2])], [weights])
    path = tmp_path / "ints.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    result = optimize(path, registry=registry, **FAST)  # the rows were drawn as floats: cast for both sides
    assert registry.get(result.winner).signature.inputs[0].dtype == "int64"


def test_a_gpu_target_chooses_on_score_not_against_the_plain_graph():
    """A GPU plan may lose at one row and win by far at large batches: no GPU candidate is plain."""
    from mlc.convert import convert
    from mlc.optimize.search import session_variants
    from mlc.runtime.session import default_session_config
    from mlc.targets import get_target

    gpu = get_target("gpu-h100")
    base = convert(zoo.model("sklearn-forest-binary"), session=default_session_config(gpu.cores, gpu.device))
    variants = session_variants(base, gpu)
    assert variants and not any(is_default for _config, is_default in variants)
    plain = _candidate("c1", {1: 15.0, 65536: 90_000.0})
    tensorized = _candidate("c2", {1: 60.0, 65536: 3_000.0}, chain=("tensorize-trees",))
    assert choose([plain, tensorized], (1, 65536)).primary is tensorized


def test_a_multi_output_regressor_keeps_its_output_width(tmp_path, registry):
    from sklearn.ensemble import ExtraTreesRegressor

    x = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    path = tmp_path / "multi.joblib"
    joblib.dump(ExtraTreesRegressor(n_estimators=4, max_depth=4, random_state=0).fit(x, x[:, :3]), path)
    result = optimize(path, registry=registry, **FAST)
    for ref in (result.source, result.winner):  # the converter declares (None, 1); the model gives 3
        assert registry.get(ref).signature.outputs[0].shape == (None, 3)


def test_a_lossy_candidate_wins_only_when_allowed():
    plain = _candidate("plain", {1: 10.0, 32: 100.0}, plain=True)
    int8 = _candidate("int8", {1: 5.0, 32: 40.0}, chain=("quantize-dynamic",), lossy=True, onnx_bytes=b"q")
    assert choose([plain, int8], (1, 32), allow_lossy=False).candidates == [plain]
    assert choose([plain, int8], (1, 32), allow_lossy=True).candidates == [int8]
    assert choose([int8], (1, 32), allow_lossy=False) is None


def test_by_default_lossy_candidates_are_reported_not_registered(tmp_path, registry):
    rows = tmp_path / "rows.npy"
    np.save(rows, zoo.data()[0])
    # Limits wide enough for int8 on this tiny MLP's edge rows (labels 1.4%, p99 error 0.09 measured).
    result = optimize(_save(tmp_path, "sklearn-mlp-wide", "wide"), registry=registry, data=rows,
                      max_label_disagreement=0.02, max_abs_error=0.1, **FAST)
    assert not any(step.lossy for step in registry.get(result.winner).source.chain)
    lossy = [c for c in result.candidates if c.lossy and c.passed]
    assert lossy and all(c.latency and c.reason.startswith("lossy: chosen only with --allow-lossy") for c in lossy)
    assert result.to_dict()["body"]["allow_lossy"] is False
    assert "win only with --allow-lossy" in result.to_markdown()
