"""`mlc bench` for real, on a tiny model: suite and registry references, report files, the gate on itself."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from mlc.bench import BenchSettings, run, run_bench
from mlc.bench.suite import SuiteModel
from mlc.cli.bench import bench_cmd
from mlc.cli.report import report_group
from mlc.errors import NotFoundError, UsageError
from mlc.report.envelope import SCHEMA

TINY = BenchSettings(repeats=3, warmup=1, sample_ms=1.0)
TINY_SUITE = (
    SuiteModel("tiny", "LogisticRegression, 5 features", lambda: LogisticRegression(), 5, 2, train_rows=300),
    SuiteModel("ghost", "needs a package nobody has", LogisticRegression, 5, 2, requires="mlc_no_such_package"),
)


def test_bench_suite_writes_reports_that_pass_the_gate_against_themselves(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "suite_models", lambda name: TINY_SUITE)
    out = tmp_path / "bench-out"
    result = CliRunner().invoke(bench_cmd, ["--out", str(out), "--repeats", "3"])
    assert result.exit_code == 0, result.stderr
    assert "tiny @b1024" in result.stderr and "ghost: skipped" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == SCHEMA and report["kind"] == "bench" and report["target"]["name"] == "cpu-2"
    body = report["body"]
    assert body["suite"] == "quick" and body["settings"]["repeats"] == 3
    assert body["models"]["ghost"]["status"] == "skipped" and any("ghost skipped" in n for n in body["notes"])
    tiny = body["models"]["tiny"]
    assert tiny["status"] == "ok" and tiny["framework"] == "sklearn" and tiny["task"] == "classification"
    assert [(t["variant"], t["batch_size"]) for t in tiny["timings"]] == [
        (v, b) for b in (1, 32, 1024) for v in ("native", "ort-default", "mlc")]
    for t in tiny["timings"]:
        assert len(t["values"]) == 3 and t["median"] > 0
        assert t["parity"] is None if t["variant"] == "native" else t["parity"]["match"]
    mlc = [t for t in tiny["timings"] if t["variant"] == "mlc"]
    assert all(set(t["ratios"]) == {"native", "ort-default"} for t in mlc)
    # The plain reference is skl2onnx's own conversion, on mlc's thread count.
    assert tiny["variants"]["ort-default"].startswith("skl2onnx ")
    assert f"with {tiny['threads']} intra-op thread(s)" in tiny["variants"]["ort-default"]
    assert "| tiny | 1024 |" in (out / "report.md").read_text()
    assert "<table>" in (out / "report.html").read_text()
    same = CliRunner().invoke(report_group, ["compare", str(out / "report.json"), str(out / "report.json")])
    assert same.exit_code == 0 and "PASS" in same.stdout


@pytest.fixture()
def registry_with_optimized_model(tmp_path, monkeypatch):
    from mlc.optimize import optimize

    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLC_REGISTRY_URL", raising=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    path = tmp_path / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), path)
    result = optimize(str(path), name="clf", batch_sizes=(1, 32))
    joblib.dump(LogisticRegression().fit(x, (x[:, 2] > 0).astype(int)), tmp_path / "lonely.joblib")
    from mlc.registry import Registry

    Registry.open().register_file(tmp_path / "lonely.joblib", "lonely")
    return result


def test_bench_registered_source_and_optimized_versions(registry_with_optimized_model):
    assert registry_with_optimized_model.winner == "clf:2"
    settings = BenchSettings(batch_sizes=(1, 32), repeats=3, warmup=1, sample_ms=1.0)
    report = run_bench(("clf:1", "clf:2"), settings=settings)
    models = report["body"]["models"]
    assert models["clf:1"]["status"] == models["clf:2"]["status"] == "ok"
    assert models["clf:1"]["description"] == models["clf:2"]["description"]
    assert "clf:1 (sklearn) and its optimized version clf:2" in models["clf:1"]["description"]
    assert all(t["parity"]["match"] for t in models["clf:2"]["timings"] if t["parity"])
    assert any("drawn" in n for n in report["body"]["notes"])


def test_bench_refuses_unknown_or_unoptimized_references_before_timing(registry_with_optimized_model):
    with pytest.raises(NotFoundError):
        run_bench(("clf:9",), settings=TINY)
    with pytest.raises(UsageError, match="mlc optimize lonely:1"):
        run_bench(("lonely",), settings=TINY)
    with pytest.raises(UsageError, match="not both"):
        run_bench(("clf:2",), suite="quick", settings=TINY)
