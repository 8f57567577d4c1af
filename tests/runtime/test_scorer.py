"""The Scorer: ONNX Runtime parity, request checks, engine routing by batch size, registry plans."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx

from mlc.errors import InvalidInputError, ModelFormatError, NotFoundError, UnsupportedModelError, UsageError
from mlc.registry import Registry
from mlc.runtime.scorer import RuntimePlan, Scorer
from mlc.runtime.session import SessionConfig
from mlc.signature import tabular
from mlc.targets import get_target

ONE_THREAD = {"session": SessionConfig(intra_op_threads=1).to_dict()}
TREES_THEN_ORT = {**ONE_THREAD, "engines": [{"engine": "ort", "max_rows": None},
                                            {"engine": "mlc-trees", "max_rows": 8, "n_threads": 1}]}


def _ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"X": x}), strict=True))


def test_predict_equals_onnx_runtime_and_sklearn(forest):
    scorer = Scorer(forest.onnx, runtime_plan=ONE_THREAD)
    got = scorer.predict(forest.X)
    assert scorer.input_name == "X" and scorer.output_names == ("label", "probabilities")
    expected = _ort(forest.onnx, forest.X)  # threads differ, so sums may differ in the last bit
    np.testing.assert_array_equal(got["label"], expected["label"])
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=1e-6)
    np.testing.assert_array_equal(got["label"], forest.estimator.predict(forest.X))
    np.testing.assert_allclose(got["probabilities"], forest.estimator.predict_proba(forest.X), atol=1e-6)


def test_model_sources_path_bytes_and_proto_agree(forest, tmp_path):
    path = tmp_path / "forest.onnx"
    path.write_bytes(forest.onnx.SerializeToString())
    outputs = [Scorer(src, runtime_plan=ONE_THREAD).predict(forest.X)["probabilities"]
               for src in (forest.onnx, path, str(path), forest.onnx.SerializeToString())]
    for other in outputs[1:]:
        np.testing.assert_array_equal(other, outputs[0])


def test_bad_model_sources_are_named(tmp_path):
    with pytest.raises(NotFoundError):
        Scorer(tmp_path / "absent.onnx")
    with pytest.raises(ModelFormatError):
        Scorer(b"\x08\x07garbage that is not protobuf \xff\xff")


def test_zipmap_output_is_refused_with_the_fix(forest):
    with pytest.raises(UnsupportedModelError, match="zipmap"):
        Scorer(to_onnx(forest.estimator, forest.X[:1]))


def test_inputs_are_cast_to_the_model_dtype(forest):
    scorer = Scorer(forest.onnx, runtime_plan=ONE_THREAD)
    expected = scorer.predict(forest.X)["probabilities"]
    np.testing.assert_array_equal(scorer.predict(forest.X.astype(np.float64))["probabilities"], expected)
    np.testing.assert_array_equal(scorer.predict(np.asfortranarray(forest.X))["probabilities"], expected)
    np.testing.assert_array_equal(scorer.predict(forest.X.tolist())["probabilities"], expected)
    ints = np.arange(8).reshape(2, 4)
    np.testing.assert_array_equal(scorer.predict(ints)["probabilities"],
                                  scorer.predict(ints.astype(np.float32))["probabilities"])


@pytest.mark.parametrize(
    ("x", "needle"),
    [
        (np.zeros((3, 5), np.float32), r"takes \(rows, 4\) arrays; got shape \(3, 5\)"),
        (np.zeros(4, np.float32), "reshape"),
        (np.zeros((2, 4, 1), np.float32), "shape"),
        (np.zeros((0, 4), np.float32), "no rows"),
        (np.array([["a", "b", "c", "d"]]), "float32 values; got <U1"),
    ],
)
def test_malformed_requests_are_invalid_input(forest, x, needle):
    with pytest.raises(InvalidInputError, match=needle):
        Scorer(forest.onnx, runtime_plan=ONE_THREAD).predict(x)


def test_plan_routes_small_batches_to_the_tree_kernel(forest):
    scorer = Scorer(forest.onnx, runtime_plan=TREES_THEN_ORT)
    assert scorer.engines == (("mlc-trees", 8), ("ort", None))
    assert [scorer.engine_for(n) for n in (1, 8, 9, 500)] == ["mlc-trees", "mlc-trees", "ort", "ort"]
    reference = _ort(forest.onnx, forest.X)
    for rows in (1, 8, 9, len(forest.X)):
        got = scorer.predict(forest.X[:rows])
        np.testing.assert_array_equal(got["label"], reference["label"][:rows])
        np.testing.assert_allclose(got["probabilities"], reference["probabilities"][:rows], rtol=1e-6, atol=1e-7)
    scorer.warmup()


def test_tree_engine_falls_back_to_ort_for_models_it_cannot_run(logreg):
    scorer = Scorer(logreg.onnx, runtime_plan=TREES_THEN_ORT)
    assert scorer.engines == (("ort", None),)
    np.testing.assert_array_equal(scorer.predict(logreg.X)["label"], logreg.estimator.predict(logreg.X))


def test_bounded_plan_gets_ort_for_larger_batches(forest):
    scorer = Scorer(forest.onnx, runtime_plan={"engines": [{"engine": "mlc-trees", "max_rows": 4}]})
    assert scorer.engines == (("mlc-trees", 4), ("ort", None))
    assert scorer.plan.session.intra_op_threads == scorer.target.cores  # the target's default session


def test_default_plan_is_ort_with_one_thread_per_core(forest):
    scorer = Scorer(forest.onnx, target="cpu-8")
    assert scorer.engines == (("ort", None),)
    assert scorer.plan == RuntimePlan.default(scorer.target)
    assert scorer.plan.session.intra_op_threads == 8


@pytest.mark.parametrize(
    ("plan", "needle"),
    [({"engines": [{"engine": "tensorrt-magic"}]}, "unknown engine"),
     ({"engines": [{"engine": "ort", "max_rows": 0}]}, "at least 1")],
)
def test_malformed_plans_are_usage_errors(forest, plan, needle):
    with pytest.raises(UsageError, match=needle):
        Scorer(forest.onnx, runtime_plan=plan)


def test_a_serving_plan_sets_the_threads_and_stops_spinning():
    recorded = RuntimePlan.from_dict({"session": SessionConfig(intra_op_threads=4, inter_op_threads=2,
                                                               allow_spinning=True).to_dict(),
                                      "engines": [{"engine": "mlc-trees", "max_rows": 8, "n_threads": 1},
                                                  {"engine": "ort"}]}, get_target("cpu-8"))
    served = recorded.serving(2)
    assert (served.session.intra_op_threads, served.session.inter_op_threads) == (2, 2)
    assert not served.session.allow_spinning
    assert served.engines[0].n_threads == 1  # the tree kernel keeps the count optimize chose
    assert recorded.serving(1).session.inter_op_threads == 1


def test_plan_round_trips_through_its_dict(forest):
    plan = Scorer(forest.onnx, runtime_plan=TREES_THEN_ORT).plan
    assert RuntimePlan.from_dict(plan.to_dict(), Scorer(forest.onnx).target) == plan


def test_predict_is_thread_safe(forest):
    scorer = Scorer(forest.onnx, runtime_plan=TREES_THEN_ORT)
    rows = [forest.X[i:i + 1 + i % 12] for i in range(40)]
    expected = [scorer.predict(r)["probabilities"] for r in rows]
    failures = []

    def hammer() -> None:
        for _ in range(5):
            for r, want in zip(rows, expected, strict=True):
                if not np.array_equal(scorer.predict(r)["probabilities"], want):
                    failures.append(r.shape)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_from_registry_reads_the_recorded_plan_and_signature(forest, tmp_path, monkeypatch):
    monkeypatch.setenv("MLC_HOME", str(tmp_path))
    monkeypatch.delenv("MLC_REGISTRY_URL", raising=False)
    registry = Registry.open()
    signature = tabular(4, task="classification", classes=[0, 1, 2])
    registry.register("iris", forest.onnx.SerializeToString(), format="onnx", framework="sklearn",
                      signature=signature, source={"kind": "optimize", "runtime": TREES_THEN_ORT})
    registry.register("iris", b"\x80\x04N.", format="pickle", framework="sklearn", signature=signature)
    scorer = Scorer.from_registry("iris:1")
    assert scorer.engines == (("mlc-trees", 8), ("ort", None))
    assert scorer.signature == signature
    np.testing.assert_array_equal(scorer.predict(forest.X)["label"], forest.estimator.predict(forest.X))
    # A framework version without an optimized child is refused as `mlc serve` refuses it (Registry.served).
    with pytest.raises(UsageError, match="sklearn pickle model") as refused:
        Scorer.from_registry("iris:2")
    assert "mlc optimize iris:2" in str(refused.value.hint)
