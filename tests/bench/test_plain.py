"""The plain reference is what the converters give without mlc: not mlc's code, mlc's thread count."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

from mlc.bench.plain import plain_onnx, plain_variant
from mlc.bench.suite import QUICK
from mlc.convert import native
from mlc.loading import infer_signature
from mlc.loading.model import LoadedModel
from mlc.optimize.validate import REAL_DATA, Tolerance, compare


def test_building_the_plain_reference_loads_none_of_mlcs_conversion_or_runtime_code():
    code = ("import sys, numpy as np; from sklearn.linear_model import LogisticRegression\n"
            "from mlc.bench.plain import plain_onnx, plain_variant\n"
            "x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)\n"
            "m = LogisticRegression().fit(x, x[:, 0] > 0)\n"
            "b, _ = plain_onnx(m, 'sklearn', 4); v = plain_variant(b, ['CPUExecutionProvider'], 1, ['l', 'p'], 't')\n"
            "v.call(x)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('mlc.convert', 'mlc.passes', 'mlc.runtime'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("model", QUICK, ids=lambda m: m.name)
def test_plain_reference_matches_the_original_on_every_output(model):
    estimator, rows = model.train()
    loaded = LoadedModel(model=estimator, format="pickle", framework="sklearn",
                         signature=infer_signature(estimator, "sklearn"))
    reference = native(loaded).outputs(rows)
    onnx_bytes, how = plain_onnx(estimator, "sklearn", model.n_features)
    assert how.startswith("skl2onnx ") and "defaults" in how
    variant = plain_variant(onnx_bytes, ["CPUExecutionProvider"], 2, list(reference), how)
    assert variant.name == "ort-default" and "2 intra-op thread(s)" in variant.description
    report = compare(variant.outputs(rows), reference, tolerance=Tolerance.lossless(), evidence=REAL_DATA)
    assert report.passed, report.reason


def test_a_classifier_keeps_skl2onnx_default_zipmap_which_mlc_turns_off():
    estimator, rows = QUICK[0].train()
    graph = onnx.load_model_from_string(plain_onnx(estimator, "sklearn", QUICK[0].n_features)[0])
    assert "ZipMap" in {node.op_type for node in graph.graph.node}
    variant = plain_variant(graph.SerializeToString(), ["CPUExecutionProvider"], 1, ["label", "probabilities"], "t")
    probabilities = variant.outputs(rows[:5])["probabilities"]
    assert probabilities.shape == (5, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_an_unknown_framework_has_no_plain_reference():
    with pytest.raises(ValueError, match="no plain converter"):
        plain_onnx(object(), "catboost", 3)
