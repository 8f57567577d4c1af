"""The timing harness on fake variants: interleaving, same-run ratios, parity beside timings, failures."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.bench import runner
from mlc.bench.runner import BenchSettings, Case, run_cases, time_batch, time_case
from mlc.bench.suite import SuiteModel, suite
from mlc.bench.variants import Variant
from mlc.errors import MissingDependencyError, UsageError

FAST = BenchSettings(batch_sizes=(1, 4), repeats=3, warmup=1, sample_ms=0.2)


def _variant(name: str, scale: float = 1.0, lossy: bool = False) -> Variant:
    """A 'model' returning label and probabilities; `scale` != 1 makes its probabilities wrong."""
    def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
        p = np.full((len(x), 2), 0.5 * scale)
        p[:, 0] = 0.2 * scale
        return {"label": np.ones(len(x), dtype=np.int64), "probabilities": p}
    return Variant(name, f"fake {name}", outputs, outputs, lossy=lossy)


def test_repeats_rotate_which_variant_goes_first(monkeypatch):
    order: list[str] = []
    variants = [_variant("a"), _variant("b"), _variant("c")]
    names = {id(v.call): v.name for v in variants}

    def fake_sample(call, x, number):
        order.append(names[id(call)])
        return {"a": 10.0, "b": 5.0, "c": 2.0}[names[id(call)]]

    monkeypatch.setattr(runner, "_sample", fake_sample)
    monkeypatch.setattr(runner, "_calls_per_repeat", lambda call, x, ms: 1)
    values = time_batch(variants, [np.zeros((1, 3), np.float32)], BenchSettings(repeats=3, warmup=0))
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert values == {"a": [10.0] * 3, "b": [5.0] * 3, "c": [2.0] * 3}


def test_case_entry_has_repeats_ratios_to_earlier_variants_and_parity(monkeypatch):
    times = iter([10.0, 5.0, 2.0] * 100)
    monkeypatch.setattr(runner, "_sample", lambda call, x, number: next(times))
    case = Case("m", "fake", np.zeros((3, 2), np.float32), [_variant("native"), _variant("ort"), _variant("mlc")])
    entry = time_case(case, BenchSettings(batch_sizes=(1, 8), repeats=3, warmup=0, sample_ms=0.1))
    assert entry["status"] == "ok" and entry["reference"] == "native"
    assert [(t["variant"], t["batch_size"]) for t in entry["timings"]] == [
        (v, b) for b in (1, 8) for v in ("native", "ort", "mlc")]
    first = {t["variant"]: t for t in entry["timings"] if t["batch_size"] == 1}
    assert first["native"]["parity"] is None and first["native"]["ratios"] == {}
    assert set(first["mlc"]["ratios"]) == {"native", "ort"}
    assert len(first["mlc"]["values"]) == 3 and first["mlc"]["metric"] == "latency_us@b1"
    assert first["mlc"]["parity"]["match"] and first["mlc"]["parity"]["label_agreement"] == 1.0


def test_a_fast_wrong_answer_is_flagged_beside_its_timing():
    case = Case("m", "fake", np.zeros((3, 2), np.float32), [_variant("native"), _variant("mlc", scale=1.5)])
    entry = time_case(case, FAST)
    wrong = [t for t in entry["timings"] if t["variant"] == "mlc"]
    assert all(not t["parity"]["match"] and t["parity"]["max_abs_err"] == pytest.approx(0.25) for t in wrong)
    # Within the lossy tolerance (0.05) the same error would pass; 0.25 does not.
    lossy = Case("m", "fake", case.x, [_variant("native"), _variant("mlc", scale=1.5, lossy=True)])
    assert all(not t["parity"]["match"] for t in time_case(lossy, FAST)["timings"] if t["parity"])


def test_one_failing_model_does_not_stop_the_others():
    def broken() -> Case:
        raise RuntimeError("converter exploded")

    def missing() -> Case:
        raise MissingDependencyError("xgboost", "xgboost", "the xgboost-300 benchmark")

    def fine() -> Case:
        return Case("ok", "fake", np.zeros((2, 2), np.float32), [_variant("native"), _variant("mlc")])

    messages: list[str] = []
    models = run_cases([("broken", broken), ("x", missing), ("ok", fine)], FAST, messages.append)
    assert models["broken"] == {"status": "error", "reason": "RuntimeError: converter exploded"}
    assert models["x"]["status"] == "skipped" and "xgboost" in models["x"]["reason"]
    assert models["ok"]["status"] == "ok"
    assert any("FAILED" in m for m in messages) and any(m.startswith("ok @b4") for m in messages)


def test_suites_and_optional_dependencies():
    assert [m.name for m in suite("quick")] == ["logreg", "forest", "mlp"]
    assert {m.requires for m in suite("full")} == {None, "xgboost", "lightgbm"}
    with pytest.raises(UsageError):
        suite("huge")
    absent = SuiteModel("ghost", "needs a package nobody has", lambda: None, 3, 2, requires="mlc_no_such_package")
    with pytest.raises(MissingDependencyError, match="mlc_no_such_package"):
        absent.train()


def test_suite_models_are_trained_reproducibly():
    model = suite("quick")[0]
    (m1, x1), (m2, x2) = model.train(), model.train()
    assert x1.shape == (1024, 20) and x1.dtype == np.float32
    assert np.array_equal(x1, x2) and np.array_equal(m1.predict_proba(x1), m2.predict_proba(x2))
