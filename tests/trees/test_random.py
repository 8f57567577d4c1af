"""The kernel against ONNX Runtime on random ensembles (see random_ensembles.py)."""

from __future__ import annotations

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlc.trees import compile_tree_ensemble
from tests.trees.random_ensembles import classifiers, ensembles_v5, inputs, regressors
from tests.trees.reference import assert_same_outputs, ort_run

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(model: onnx.ModelProto, data: st.DataObject) -> None:
    kernel = compile_tree_ensemble(model)
    assert kernel is not None
    x = data.draw(inputs(model))
    assert_same_outputs(kernel.predict(x), ort_run(model, x))


@SETTINGS
@given(model=classifiers(), data=st.data())
def test_random_classifiers(model: onnx.ModelProto, data: st.DataObject) -> None:
    _check(model, data)


@SETTINGS
@given(model=regressors(), data=st.data())
def test_random_regressors(model: onnx.ModelProto, data: st.DataObject) -> None:
    _check(model, data)


@SETTINGS
@given(model=ensembles_v5(), data=st.data())
def test_random_opset5_ensembles(model: onnx.ModelProto, data: st.DataObject) -> None:
    _check(model, data)
