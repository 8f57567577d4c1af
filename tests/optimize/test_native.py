"""The original model as an engine (`native`): never slower than the original, for every model."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest

from mlc.convert import native
from mlc.loading import load_model
from mlc.optimize import optimize
from mlc.optimize.search import MEASURED, Candidate, choose
from mlc.optimize.validate import ParityReport, Tolerance
from mlc.passes.base import Artifact
from mlc.registry import EngineChoice, Registry
from mlc.registry.records import NATIVE, RuntimeRecord
from mlc.runtime.scorer import RuntimePlan, Scorer
from mlc.runtime.session import SessionConfig
from mlc.targets import get_target
from mlc.timing import Latency

FAST = {"timing_budget_s": 0.005, "batch_sizes": (1, 16)}


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    return Registry(tmp_path / "home")


def _candidate(cid: str, latencies: dict[int, float], *, engine: str = "ort", plain: bool = False,
               onnx_bytes: bytes = b"graph") -> Candidate:
    options = {"ref": "m:1", "call": "predict_proba"} if engine == NATIVE else {}
    artifact = Artifact(onnx_bytes=onnx_bytes, session=SessionConfig(intra_op_threads=1), engine=engine,
                        engine_options=options)
    parity = ParityReport(True, 0.0, 0.0, 0.0, 10, 0, "real data", "", Tolerance.lossless())
    return Candidate(id=cid, chain=(NATIVE,) if engine == NATIVE else (), artifact=artifact, status=MEASURED,
                     parity=parity, plain=plain, latency={b: Latency(v, v, 10) for b, v in latencies.items()})


def test_where_nothing_beats_the_original_the_plan_is_native():
    plain = _candidate("plain", {1: 100.0, 256: 1000.0}, plain=True)
    original = _candidate("native", {1: 10.0, 256: 100.0}, engine=NATIVE)
    plan = choose([plain, original], (1, 256))
    assert plan.candidates == [original] and plan.native_sizes((1, 256)) == [1, 256]
    runtime = plan.runtime()
    assert runtime.engines == (EngineChoice(NATIVE, None),) and runtime.native == "m:1"
    assert plan.primary is original  # the version still holds the ONNX graph it was converted to


def test_native_is_kept_only_at_the_batch_sizes_it_wins():
    graph = _candidate("ort", {1: 50.0, 32: 60.0, 1024: 200.0}, plain=True, onnx_bytes=b"any graph")
    original = _candidate("native", {1: 10.0, 32: 100.0, 1024: 2000.0}, engine=NATIVE, onnx_bytes=b"base")
    plan = choose([graph, original], (1, 32, 1024))
    assert [c.id for c in plan.candidates] == ["native", "ort"] and plan.native_sizes((1, 32, 1024)) == [1]
    assert plan.primary is graph
    assert plan.runtime().engines == (EngineChoice(NATIVE, 1), EngineChoice("ort", None))


def test_a_plan_faster_on_average_but_slower_than_the_original_somewhere_loses():
    original = _candidate("native", {1: 10.0, 1024: 1000.0}, engine=NATIVE)
    lopsided = _candidate("ort", {1: 1.0, 1024: 1500.0}, plain=True)
    plan = choose([original, lopsided], (1, 1024))
    assert all(plan.latency(b) <= original.latency[b].median_us * 1.03 for b in (1, 1024))


def test_a_native_runtime_record_needs_its_original():
    from mlc.errors import RecordError

    with pytest.raises(RecordError, match="names no original model"):
        RuntimeRecord.from_dict({"engines": [{"engine": "native", "max_rows": None}]})
    record = RuntimeRecord.from_dict({"engines": [{"engine": "native", "max_rows": 4}, {"engine": "ort"}],
                                      "native": "knn:1"})
    assert record.native == "knn:1" and RuntimeRecord.from_dict(record.to_dict()) == record


def _kd_knn(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    model = KNeighborsClassifier(n_neighbors=5, algorithm="kd_tree").fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    path = tmp_path / "knn.joblib"
    joblib.dump(model, path)
    return path, x


def test_kd_tree_knn_optimizes_with_the_original_as_a_candidate(tmp_path, registry):
    """A KD-tree KNN loads without --trust, its brute-force graph and the original are both measured,
    and whatever the plan keeps, the registered version serves it and answers as the original."""
    path, x = _kd_knn(tmp_path)
    result = optimize(path, registry=registry, **FAST)
    original = next(c for c in result.candidates if c.engine == NATIVE)
    assert original.passed and set(original.latency) == {1, 16}
    assert original.label == "native KNeighborsClassifier.predict_proba [the original model]"
    mv = registry.get(result.winner)
    assert mv.source.parent == "knn:1"
    kept = result.plan.native_sizes((1, 16))
    assert (mv.source.runtime.native == "knn:1") == bool(kept)
    body = result.to_dict()["body"]
    assert body["candidates"][-1]["engine"] == NATIVE and "path" not in body["candidates"][-1]["engine_options"]
    if kept:
        assert "No ONNX candidate beat the original model" in result.to_markdown()
    if kept == [1, 16]:  # the version still holds the fastest graph that passed parity
        assert result.plan.graph is not None and result.plan.graph.passed
        assert registry.artifact_path(mv).read_bytes() == result.plan.graph.artifact.onnx_bytes

    scorer = Scorer.from_registry(result.winner, registry=registry)
    expected = native(load_model(path)).outputs(x[:16])
    for rows in (1, 16):
        got = scorer.predict(x[:rows])
        np.testing.assert_array_equal(got["label"], expected["label"][:rows])
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"][:rows], atol=1e-6)
        assert got["probabilities"].dtype == np.float32


def test_a_native_plan_travels_to_a_worker_process_and_loads_there(tmp_path, registry):
    """serve and profile build their Scorer in worker processes from the recorded plan: the plan pickles
    as the parent's reference, and the worker loads the original from the registry with the safe loader."""
    path, x = _kd_knn(tmp_path)
    source = registry.register_file(load_model(path), "knn")
    from mlc.convert import convert

    onnx_bytes = convert(load_model(path)).onnx_bytes
    record = RuntimeRecord(None, (EngineChoice(NATIVE, 1), EngineChoice("ort")), native=source.ref)
    plan = pickle.loads(pickle.dumps(RuntimePlan.from_record(record, get_target("cpu-2")).serving(1)))
    scorer = Scorer(onnx_bytes, get_target("cpu-2"), plan)  # resolves knn:1 in MLC_HOME, as a worker does
    assert scorer.engines == ((NATIVE, 1), ("ort", None))
    assert scorer.engine_for(1) == NATIVE and scorer.engine_for(2) == "ort"
    expected = native(load_model(path)).outputs(x[:3])
    np.testing.assert_array_equal(scorer.predict(x[:1])["label"], expected["label"][:1])
    np.testing.assert_array_equal(scorer.predict(x[:3])["label"], expected["label"])
