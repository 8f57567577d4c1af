"""Every registered converter, checked against the original model's own predictions."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from mlc.convert import all_converters, convert, get_converter, native, register_converter
from mlc.convert.sklearn import SklearnConverter
from mlc.errors import ConflictError, UnsupportedModelError
from mlc.loading.model import LoadedModel
from mlc.optimize.data import draw_inputs
from mlc.optimize.engines import predictor
from mlc.optimize.validate import Tolerance, check_parity
from mlc.signature import tabular
from tests import zoo

CASES = [(framework, name) for framework in sorted(all_converters()) for name in zoo.names(framework)]


def test_every_converter_has_contract_cases():
    covered = {framework for framework, _ in CASES}
    assert covered == set(all_converters()), "add a tiny model of the new framework to tests/zoo.py"


@pytest.mark.parametrize(("framework", "name"), CASES)
def test_contract_converted_graph_reproduces_the_original(framework, name):
    loaded = zoo.model(name)
    assert get_converter(framework) is get_converter(loaded.framework)
    artifact = convert(loaded)
    model = artifact.proto
    onnx.checker.check_model(model)
    reference = native(loaded)
    run = predictor(artifact)
    x_train = zoo.data()[0]
    x_drawn = draw_inputs(model, zoo.N_FEATURES, 300, seed=1)
    for x, evidence in ((x_train, "real data"), (x_drawn, "drawn")):
        report = check_parity(run.predict, reference.outputs(x), x, tolerance=Tolerance.lossless(),
                              evidence=evidence)
        assert report.passed, f"{name} on {evidence}: {report.reason}"


@pytest.mark.parametrize("name", zoo.names())
def test_graph_is_clean(name):
    model = convert(zoo.model(name)).proto
    domains = [imp.domain for imp in model.opset_import]
    assert len(domains) == len(set(domains)), f"duplicate opset imports: {model.opset_import}"
    assert "ZipMap" not in {n.op_type for n in model.graph.node}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    for out in model.graph.output:
        first = out.type.tensor_type.shape.dim[0]
        assert not first.HasField("dim_value"), f"output {out.name} has a fixed batch dim"


@pytest.mark.parametrize("name", zoo.names())
def test_outputs_are_exactly_what_predict_needs(name):
    loaded = zoo.model(name)
    graph_outputs = {o.name for o in convert(loaded).proto.graph.output}
    assert graph_outputs == set(native(loaded).outputs(zoo.data()[0][:3]))


def test_histgradientboosting_converts():
    for name in ("sklearn-hgb-binary", "sklearn-hgb-reg"):
        ops = {n.op_type for n in convert(zoo.model(name)).proto.graph.node}
        assert ops & {"TreeEnsembleClassifier", "TreeEnsembleRegressor"}


def test_conversion_is_recorded_as_the_first_step():
    artifact = convert(zoo.model("xgboost-binary"))
    (step,) = artifact.steps
    assert step.name == "convert" and not step.lossy
    assert step.notes["tool"].startswith("onnxmltools")
    assert artifact.passes == ()


def _pipeline_with(step):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x, y, _, _ = zoo.data()
    model = make_pipeline(step, LogisticRegression()).fit(x, y)
    return LoadedModel(model, "pickle", "sklearn", tabular(zoo.N_FEATURES, task="classification", classes=[0, 1]))


def test_unsupported_step_is_named():
    from sklearn.preprocessing import SplineTransformer

    with pytest.raises(UnsupportedModelError, match="SplineTransformer") as info:
        convert(_pipeline_with(SplineTransformer()))
    assert "export the model to ONNX" in str(info.value)


def test_function_transformer_with_python_code_is_refused():
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(UnsupportedModelError, match="FunctionTransformer"):
        convert(_pipeline_with(FunctionTransformer(np.abs)))


def test_unknown_framework_is_refused():
    loaded = LoadedModel(object(), "pickle", "torch", tabular(3, task=None))
    with pytest.raises(UnsupportedModelError, match="torch"):
        convert(loaded)


def test_registry_refuses_to_overwrite_unless_asked():
    class Other(SklearnConverter):
        pass

    original = get_converter("sklearn")
    with pytest.raises(ConflictError, match="already registered"):
        register_converter(Other())
    try:
        register_converter(Other(), overwrite=True)
        assert isinstance(get_converter("sklearn"), Other)
    finally:
        register_converter(original, overwrite=True)
    assert get_converter("sklearn") is original


@pytest.mark.parametrize("with_nan", [True, False])
def test_a_scikit_learn_forest_sends_missing_values_where_scikit_learn_does(with_nan):
    """skl2onnx sent NaN right at every split; scikit-learn follows each split's missing_go_to_left."""
    import onnxruntime as ort
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    holes = x.copy()
    holes[rng.random(x.shape) < 0.2] = np.nan
    model = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(holes if with_nan else x, y)
    loaded = LoadedModel(model, "pickle", "sklearn", tabular(5, task="classification", classes=[0, 1]))
    graph = convert(loaded).onnx_bytes
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    labels = session.run(None, {session.get_inputs()[0].name: holes})[0]
    np.testing.assert_array_equal(labels, model.predict(holes))


def test_lightgbm_zero_as_missing_is_refused_not_converted_wrong():
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = 0.0
    model = lightgbm.LGBMClassifier(n_estimators=5, zero_as_missing=True, verbose=-1).fit(x, (x[:, 0] > 0).astype(int))
    loaded = LoadedModel(model, "pickle", "lightgbm", tabular(4, task="classification", classes=[0, 1]))
    with pytest.raises(UnsupportedModelError, match="zero as a missing value"):
        convert(loaded)


@pytest.mark.parametrize("kind", ["outlier detector", "clusterer"])
def test_models_that_predict_no_class_or_value_are_refused_up_front(kind):
    """Their converted outputs (anomaly scores, cluster ids) never matched the parity reference."""
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest

    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    model = IsolationForest(n_estimators=5).fit(x) if kind == "outlier detector" else KMeans(2, n_init=1).fit(x)
    with pytest.raises(UnsupportedModelError, match="neither a classifier nor a regressor"):
        convert(LoadedModel(model, "pickle", "sklearn", tabular(3, task=None)))
