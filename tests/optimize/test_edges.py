"""Parity with --data also runs the rows a server can receive that the data lacks (mlc.optimize.edges)."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from mlc.convert import convert, get_converter, native, register_converter
from mlc.errors import ParityError
from mlc.optimize import optimize
from mlc.optimize.edges import EXTREMES, MISSING, THRESHOLDS, ZEROS, check_edges, edge_families
from mlc.optimize.flow import _sample_rows
from mlc.registry import Registry
from tests import zoo
from tests.optimize.faulty import ForgetsMissingValues, MovesTies

FAST = {"timing_budget_s": 0.005, "batch_sizes": (1, 16)}


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    return Registry(tmp_path / "home")


def test_families_hold_the_edge_values_of_each_column():
    loaded = zoo.model("sklearn-forest-binary")
    x = zoo.data()[0]
    families = edge_families(convert(loaded).proto, zoo.N_FEATURES, x)
    assert set(families) == {MISSING, EXTREMES, ZEROS, THRESHOLDS}
    for column in range(zoo.N_FEATURES):
        assert np.isnan(families[MISSING][:, column]).any()
        assert (families[ZEROS][:, column] == 0).any()
        lo, hi = x[:, column].min(), x[:, column].max()
        values = families[EXTREMES][:, column]
        assert lo in values and hi in values and values.min() < lo and values.max() > hi
    # Thresholds read from the ONNX forest, exactly and one float32 step either side.
    from mlc.trees import find_tree_ensemble

    ensemble = find_tree_ensemble(convert(loaded).proto).ensemble
    split = ensemble.mode != 7
    t = np.float32(ensemble.threshold[split][0])
    column = int(ensemble.feature[split][0])
    values = families[THRESHOLDS][:, column]
    for value in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))):
        assert value in values


def test_a_family_the_original_refuses_is_named_not_checked():
    loaded = zoo.model("sklearn-gb-multi")  # GradientBoosting takes no NaN
    x = zoo.data()[0]
    edges = check_edges(edge_families(convert(loaded).proto, zoo.N_FEATURES, x), native(loaded).outputs)
    assert MISSING in edges.refused and "NaN" in edges.refused[MISSING]
    assert MISSING not in edges.rows and edges.counts()[THRESHOLDS] > 0


def test_calibration_and_parity_rows_are_disjoint():
    base = convert(zoo.model("sklearn-mlp-wide"))
    x = np.random.default_rng(0).normal(size=(300, zoo.N_FEATURES)).astype(np.float32)
    parity, calibration, _ = _sample_rows(x, base, zoo.N_FEATURES)
    assert len(parity) == 150 and len(calibration) == 150
    assert not {r.tobytes() for r in parity} & {r.tobytes() for r in calibration}


@pytest.mark.parametrize(("converter", "model"), [(ForgetsMissingValues, "sklearn-forest-binary"),
                                                  (MovesTies, "sklearn-forest-binary")])
def test_with_real_data_a_graph_wrong_only_on_edge_rows_fails_parity(tmp_path, registry, converter, model):
    """Real rows hold no NaN and hit no threshold exactly: those wrong graphs passed --data before."""
    path = tmp_path / "model.joblib"
    joblib.dump(zoo.model(model).model, path)
    rows = tmp_path / "rows.npy"
    np.save(rows, zoo.data()[0])
    original = get_converter("sklearn")
    register_converter(converter(), overwrite=True)
    try:
        with pytest.raises(ParityError):
            optimize(path, registry=registry, data=rows, **FAST)
    finally:
        register_converter(original, overwrite=True)
    result = optimize(path, registry=registry, data=rows, **FAST)  # the right converter passes them
    families = result.to_dict()["body"]["parity_rows"]["families"]
    assert families[THRESHOLDS] > 0 and families["real"] == 40
    assert "thresholds" in result.to_markdown()


@pytest.mark.parametrize("name", sorted(zoo.SPECS))
def test_every_zoo_conversion_reproduces_the_original_on_every_edge_family(name):
    """HistGradientBoosting failed on threshold ties until its double thresholds were repaired."""
    from mlc.optimize.engines import predictor
    from mlc.optimize.validate import Tolerance, compare

    loaded = zoo.model(name)
    base = convert(loaded)
    edges = check_edges(edge_families(base.proto, zoo.N_FEATURES, zoo.data()[0]), native(loaded).outputs)
    run = predictor(base).predict
    for family, rows in edges.rows.items():
        report = compare(run(rows), edges.outputs[family], tolerance=Tolerance.lossless(), evidence=family)
        assert report.passed, f"{family}: {report.reason}"
