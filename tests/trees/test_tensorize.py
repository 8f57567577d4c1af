"""Tensorized ensembles against the original graph, both run by ONNX Runtime on the CPU."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlc.errors import UnsupportedModelError, UsageError
from mlc.trees import tensorize_tree_ensemble
from mlc.trees.tensorize import STRATEGIES
from tests import zoo
from tests.trees.random_ensembles import classifiers, ensembles_v5, inputs, regressors
from tests.trees.reference import ort_run


def assert_close_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Same names, dtypes, shapes and labels; floats equal up to float32 rounding (the
    tensorized sums run in another order than ORT's)."""
    assert list(got) == list(want)
    for name, ref in want.items():
        assert got[name].dtype == ref.dtype and got[name].shape == ref.shape, name
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], ref, err_msg=name)


def no_ml_ops(model: onnx.ModelProto) -> bool:
    return all(n.domain in ("", "ai.onnx") for n in model.graph.node) and \
        all(o.domain in ("", "ai.onnx") for o in model.opset_import)


@pytest.mark.parametrize("strategy", ["gemm", "tree_traversal", "auto"])
@pytest.mark.parametrize("name", zoo.names(trees=True))
def test_tensorized_matches_onnxruntime(name: str, strategy: str, eval_rows: np.ndarray) -> None:
    proto = zoo.converted(name)
    tensorized = tensorize_tree_ensemble(proto, strategy)
    onnx.checker.check_model(tensorized, full_check=True)
    assert no_ml_ops(tensorized)
    for n in (1, 150):
        assert_close_outputs(ort_run(tensorized, eval_rows[:n]), ort_run(proto, eval_rows[:n]))


def test_auto_prefers_traversal_for_deep_trees() -> None:
    from sklearn.ensemble import RandomForestRegressor

    x, y = zoo.data().xy("reg")
    deep = zoo.convert_fitted(RandomForestRegressor(n_estimators=3, max_depth=8, random_state=0).fit(x, y))
    ops = {n.op_type for n in tensorize_tree_ensemble(deep).graph.node}
    assert "GatherElements" in ops and "MatMul" not in ops
    shallow = zoo.converted("sklearn-gb-reg")  # depth 2
    assert "MatMul" in {n.op_type for n in tensorize_tree_ensemble(shallow).graph.node}


def test_refusals() -> None:
    proto = zoo.converted("sklearn-forest-binary")
    with pytest.raises(UsageError):
        tensorize_tree_ensemble(proto, "quantum")
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    x, y = zoo.data().xy("binary")
    # A ZipMap output, which mlc.convert never emits: skl2onnx's own default, to be refused.
    zipmap = to_onnx(RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y), x[:1])
    with pytest.raises(UnsupportedModelError):
        tensorize_tree_ensemble(zipmap)


SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(model: onnx.ModelProto, data: st.DataObject) -> None:
    strategy = data.draw(st.sampled_from(STRATEGIES))
    try:
        tensorized = tensorize_tree_ensemble(model, strategy)
    except UnsupportedModelError:  # MIN/MAX, or targets scored on some rows only
        assume(False)
    assert no_ml_ops(tensorized)
    x = data.draw(inputs(model))
    assert_close_outputs(ort_run(tensorized, x), ort_run(model, x))


@SETTINGS
@given(model=st.one_of(classifiers(), regressors(), ensembles_v5()), data=st.data())
def test_random_ensembles_tensorized(model: onnx.ModelProto, data: st.DataObject) -> None:
    _check(model, data)
