"""Every registered pass: convert a tiny model → run the pass → parity with the original."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlc.convert import convert, native
from mlc.convert.graph import normalize
from mlc.errors import ConflictError, NotFoundError
from mlc.optimize.data import draw_inputs
from mlc.optimize.engines import predictor
from mlc.optimize.validate import Tolerance, check_parity
from mlc.passes import all_passes, get_pass, register_pass, unregister_pass
from mlc.passes.base import Pass
from mlc.passes.graph_opt import GraphOptimizationConfig
from mlc.passes.quantize import QuantizeDynamicConfig, QuantizeStaticConfig
from mlc.passes.session_tuning import SessionTuningConfig, grid
from mlc.passes.tree_kernel import TreeKernelConfig
from mlc.targets import get_target
from tests import zoo

CPU = get_target("cpu-2")
GPU = get_target("gpu")
# The lossy contract (mlc.optimize.validate): labels kept on 98% of rows, and the 99th percentile of
# the rows' probability error within 0.1. On 500 drawn rows (N(0,1) also in the zoo's integer column,
# outside its domain) the int8 MLP changes 0.6% of labels, p99 error 0.06, max 0.15-0.2: a max bound
# failed a correct quantization on its boundary rows. The optimizer's defaults are stricter.
LOSSY = Tolerance(max_label_disagreement=0.02, max_abs_error=0.1, lossy=True)


def _calibration():
    return draw_inputs(convert(zoo.model("sklearn-mlp-wide")).proto, zoo.N_FEATURES, 256, seed=3)


# pass name -> (model, target, config factory)
CASES = {
    "ort-graph-opt": ("sklearn-mlp", CPU, GraphOptimizationConfig),
    "fold-linear": ("sklearn-scaler-pca-logreg", CPU, None),
    "quantize-dynamic": ("sklearn-mlp-wide", CPU, QuantizeDynamicConfig),
    "quantize-static": ("sklearn-mlp-wide", CPU, lambda: QuantizeStaticConfig(calibration=_calibration())),
    "session-tuning": ("sklearn-gb-multi", CPU, lambda: SessionTuningConfig(intra_op_threads=2, allow_spinning=False)),
    "fp16": ("sklearn-mlp", GPU, None),
    "tensorize-trees": ("sklearn-forest-binary", GPU, None),
    "mlc-trees": ("xgboost-multi", CPU, lambda: TreeKernelConfig(n_threads=1)),
}


def test_every_pass_has_a_contract_case():
    missing = set(all_passes()) - set(CASES)
    assert not missing, f"add a contract case for {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_contract_pass_output_matches_the_original(name):
    model_name, target, make_config = CASES[name]
    cls = get_pass(name)
    step = cls(make_config() if make_config else None)
    loaded = zoo.model(model_name)
    base = convert(loaded)
    assert step.applies(base, target) is None
    out = step.run(base, target)
    assert out.steps[-1].name == name and out.steps[-1].lossy == cls.lossy
    assert out.lossy == cls.lossy
    x = draw_inputs(base.proto, zoo.N_FEATURES, 500, seed=2)
    tolerance = LOSSY if cls.lossy else Tolerance.lossless()
    report = check_parity(predictor(out).predict, native(loaded).outputs(x), x, tolerance=tolerance,
                          evidence="drawn")
    assert report.passed, report.reason


@pytest.mark.parametrize("model_name", ["sklearn-mlp-wide", "sklearn-scaler-pca-logreg"])
def test_quantize_dynamic_accepts_skl2onnx_output(model_name):
    """skl2onnx graphs (duplicate opset imports, ai.onnx.ml ops feeding MatMul) quantize cleanly."""
    quantize = get_pass("quantize-dynamic")(QuantizeDynamicConfig(min_weights=1))
    base = convert(zoo.model(model_name))
    out = quantize.run(base, CPU)
    assert "MatMulInteger" in out.op_types or "DynamicQuantizeMatMul" in out.op_types
    x = zoo.data()[0]
    report = check_parity(predictor(out).predict, native(zoo.model(model_name)).outputs(x), x,
                          tolerance=LOSSY, evidence="real data")
    assert report.passed, report.reason


def test_quantize_dynamic_runs_on_a_normalized_logistic_regression():
    """The raw skl2onnx LogisticRegression graph makes quantize_dynamic fail ('Failed to find proper
    ai.onnx domain'); after normalize it runs (and leaves the ai.onnx.ml graph as it is)."""
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import quantize_dynamic

    from mlc.convert.sklearn import SklearnConverter

    raw = SklearnConverter().convert(zoo.model("sklearn-logreg"))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(normalize(raw), src)
        quantize_dynamic(src, dst)
        assert dst.stat().st_size > 0


def test_not_applicable_reasons():
    mlp = convert(zoo.model("sklearn-mlp-wide"))
    forest = convert(zoo.model("sklearn-forest-binary"))
    assert "GPU" in get_pass("fp16")().applies(mlp, CPU)
    assert "CPU" in get_pass("quantize-dynamic")().applies(mlp, GPU)
    assert "nothing worth quantizing" in get_pass("quantize-dynamic")().applies(forest, CPU)
    assert "--data" in get_pass("quantize-static")().applies(mlp, CPU)
    assert "tree" in get_pass("mlc-trees")().applies(mlp, CPU)
    assert "tree" in get_pass("tensorize-trees")().applies(mlp, GPU)
    assert "nothing to fuse" in get_pass("ort-graph-opt")().applies(forest, CPU)
    assert "portable" in get_pass("ort-graph-opt")(GraphOptimizationConfig(level="all")).applies(mlp, CPU)


def test_graph_optimization_records_level_and_version():
    import onnxruntime as ort

    out = get_pass("ort-graph-opt")().run(convert(zoo.model("sklearn-mlp")), CPU)
    assert out.steps[-1].notes == {"level": "extended", "ort_version": ort.__version__}


def test_session_grid_fits_the_target():
    artifact = convert(zoo.model("sklearn-mlp"))
    cpu2 = grid(artifact, CPU)
    assert {c.intra_op_threads for c in cpu2} == {1, 2}
    assert any(not c.allow_spinning for c in cpu2)
    one_core = replace(CPU, cores=1)
    assert grid(artifact, one_core) == [SessionTuningConfig()]
    assert len(grid(artifact, GPU)) == 1
    assert max(c.intra_op_threads for c in grid(artifact, get_target("cpu-8"))) == 8


def test_session_tuning_changes_only_the_session():
    base = convert(zoo.model("sklearn-mlp"))
    out = get_pass("session-tuning")(SessionTuningConfig(intra_op_threads=2, allow_spinning=False)).run(base, CPU)
    assert out.onnx_bytes == base.onnx_bytes
    assert out.session.intra_op_threads == 2 and not out.session.allow_spinning


def test_describe_shows_non_default_config():
    assert get_pass("quantize-dynamic")().describe() == "quantize-dynamic"
    assert get_pass("quantize-dynamic")(QuantizeDynamicConfig(per_channel=True)).describe() == \
        "quantize-dynamic(per_channel=True)"


def test_pass_registry_refuses_to_overwrite_unless_asked():
    class Other(Pass):
        name = "ort-graph-opt"
        lossy = False

        def applies(self, artifact, target):
            return None

        def run(self, artifact, target):
            return artifact

    original = get_pass("ort-graph-opt")
    with pytest.raises(ConflictError, match="already registered"):
        register_pass(Other)
    try:
        register_pass(Other, overwrite=True)
        assert get_pass("ort-graph-opt") is Other
    finally:
        register_pass(original, overwrite=True)
    with pytest.raises(NotFoundError, match="known passes"):
        get_pass("no-such-pass")
    unregister_pass("no-such-pass")  # removing an absent pass is harmless


def test_drawn_inputs_reach_both_sides_of_tree_thresholds():
    model = convert(zoo.model("sklearn-tree-multi")).proto
    x = draw_inputs(model, zoo.N_FEATURES, 400, seed=0)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    attrs = {a.name: a for a in node.attribute}
    for feature, value, mode in zip(attrs["nodes_featureids"].ints, attrs["nodes_values"].floats,
                                    attrs["nodes_modes"].strings, strict=True):
        if mode != b"LEAF":
            column = x[:, feature]
            assert (column <= value).any() and (column > value).any()
    assert np.isfinite(x).all() and x.dtype == np.float32


def _pipeline(*steps, kind="three"):
    from sklearn.pipeline import make_pipeline

    from mlc.loading.model import LoadedModel
    from mlc.signature import tabular

    x, _, three, reg = zoo.data()
    model = make_pipeline(*steps).fit(x, reg if kind == "reg" else three)
    task = "regression" if kind == "reg" else "classification"
    return LoadedModel(model, "pickle", "sklearn",
                       tabular(zoo.N_FEATURES, task=task, classes=None if kind == "reg" else [0, 1, 2]))


def _folded_parity(loaded):
    out = get_pass("fold-linear")().run(convert(loaded), CPU)
    x = zoo.data()[0]
    report = check_parity(predictor(out).predict, native(loaded).outputs(x), x, tolerance=Tolerance.lossless(),
                          evidence="real data")
    assert report.passed, report.reason
    return out


def test_fold_linear_makes_scaler_pca_logreg_one_linear_classifier():
    out = _folded_parity(zoo.model("sklearn-scaler-pca-logreg"))
    assert not out.op_types & {"Scaler", "Sub", "MatMul"}
    assert "LinearClassifier" in out.op_types
    assert out.steps[-1].notes["folded"] == ["Scaler", "Sub", "MatMul", "LinearClassifier"]


def test_fold_linear_into_a_regressor_and_into_a_gemm():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    out = _folded_parity(_pipeline(StandardScaler(), PCA(4), LinearRegression(), kind="reg"))
    assert out.op_types == {"LinearRegressor"}
    mlp = MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    out = _folded_parity(_pipeline(StandardScaler(), PCA(4), mlp, kind="reg"))
    assert "Gemm" in out.op_types and "Scaler" not in out.op_types


def test_fold_linear_leaves_single_steps_alone():
    fold = get_pass("fold-linear")()
    for name in ("sklearn-logreg", "sklearn-mlp", "sklearn-forest-binary"):
        assert fold.applies(convert(zoo.model(name)), CPU) is not None
