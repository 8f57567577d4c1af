"""Typed registry records: an older registry still reads, a bad row fails once and by name,
and the one rule for which version a reference serves."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import onnx
import pytest

from mlc.errors import NotFoundError, RecordError, UsageError
from mlc.loading.model import LoadedModel
from mlc.registry import RECORD_SCHEMA, EngineChoice, Metrics, Registry, Source
from mlc.registry.records import ProfileRecord, RecommendationRecord
from mlc.signature import Signature, tabular

RELEASE_0_1 = Path(__file__).parent / "data" / "release-0.1"


@pytest.fixture(scope="module")
def tiny_onnx_bytes() -> bytes:
    """A two-feature linear regressor: a real graph, a few hundred bytes."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    return to_onnx(LinearRegression().fit(x, x[:, 0]), x[:1]).SerializeToString()


@pytest.fixture()
def signature() -> Signature:
    return tabular(2, task="regression")


@pytest.fixture()
def old_registry(tmp_path: Path) -> Registry:
    """A copy of the registry mlc 0.1.0 wrote (see data/build_release_0_1_registry.py)."""
    home = tmp_path / "home"
    shutil.copytree(RELEASE_0_1, home)
    return Registry(home)


def _rows(home: Path) -> dict[str, tuple[dict, dict]]:
    with sqlite3.connect(home / "registry.db") as conn:
        return {f"{n}:{v}": (json.loads(s), json.loads(m))
                for n, v, s, m in conn.execute("select name, version, source, metrics from versions")}


def test_a_registry_written_by_release_0_1_reads_as_typed_records(old_registry):
    assert [mv.ref for mv in old_registry.list()] == ["iris:1", "iris:2", "raw:1", "reg:1"]
    source = old_registry.get("iris:1").source
    assert (source.kind, source.trusted, source.parent, source.runtime) == ("file", False, None, None)
    assert source.path is not None and source.path.endswith("iris.joblib") and source.schema == 1

    optimized = old_registry.get("iris@prod")
    src, metrics = optimized.source, optimized.metrics
    assert (optimized.ref, src.kind, src.parent, src.target) == ("iris:2", "optimize", "iris:1", "cpu-2")
    assert [s.name for s in src.chain] == ["convert", "mlc-trees"] and [s.name for s in src.passes] == ["mlc-trees"]
    assert not src.lossy and src.ort_version
    assert src.runtime is not None and src.runtime.engines == (EngineChoice("mlc-trees", None, 1),)
    assert src.runtime.session is not None and src.runtime.session["intra_op_threads"] == 2
    assert metrics.parity is not None and metrics.parity.passed and metrics.parity.n_rows == 1000
    assert set(metrics.latency_us) == set(metrics.native_latency_us) == set(metrics.speedup_vs_native) == {1, 16}
    assert set(metrics.parity_by_engine) == {"mlc-trees"}
    assert metrics.profile is not None and metrics.profile.target == "cpu-2"
    rec = metrics.profile.recommendation
    assert rec is not None and (rec.max_batch_size, rec.max_queue_delay_us, rec.workers, rec.intra_op_threads) == (
        32, 250, 1, 2)
    assert rec.capacity_rps == 1234.5 and rec.rate_rps is None and not rec.extrapolated

    assert old_registry.get("raw:1").source.kind == "bytes"
    assert old_registry.get("reg:1").source.kind == "file"


def test_old_rows_are_written_back_as_they_were_plus_the_schema_mark(old_registry):
    """What a reader of 0.1.0 finds stays there: the records' JSON is the old JSON, keys and values."""
    for ref, (source, metrics) in _rows(old_registry.home).items():
        mv = old_registry.get(ref)
        assert mv.source.to_dict() == {**source, "schema": RECORD_SCHEMA}, ref
        assert mv.metrics.to_dict() == metrics, ref


def test_metrics_update_on_an_old_row_keeps_what_was_there(old_registry):
    before = old_registry.get("iris:2").metrics
    after = old_registry.update_metrics("iris:2", {"auc": 0.91}).metrics
    assert after.extra == {"auc": 0.91}
    assert (after.parity, after.latency_us, after.profile) == (before.parity, before.latency_us, before.profile)


def test_an_old_registry_serves_through_the_scorer_with_its_recorded_plan(old_registry):
    from mlc.runtime.scorer import Scorer

    scorer = Scorer.from_registry("iris:1", "cpu-2", registry=old_registry)  # the joblib serves its child
    assert scorer.engines == (("mlc-trees", None),)
    assert scorer.predict(np.zeros((3, 4), dtype=np.float32))["label"].shape == (3,)


def test_a_row_from_a_newer_mlc_is_refused_with_the_upgrade_hint():
    with pytest.raises(RecordError, match="layout 2, newer than") as info:
        Source.from_dict({"kind": "file", "schema": RECORD_SCHEMA + 1}, "m:1's source")
    assert "upgrade mlc" in str(info.value.hint)


@pytest.mark.parametrize(("source", "needle"), [
    ({"path": "/x"}, "has no kind"),
    ({"kind": "file", "trusted": "yes"}, r"source\.trusted must be true or false"),
    ({"kind": "optimize", "chain": [{"config": {}}]}, r"source\.chain\[0\] names no pass"),
    ({"kind": "optimize", "runtime": {"engines": [{"engine": "tvm"}]}}, "unknown engine 'tvm'"),
    ({"kind": "optimize", "runtime": {"engines": [{"engine": "ort", "max_rows": "8"}]}},
     r"source\.runtime\.engines\[0\]\.max_rows must be an integer"),
    ({"kind": "optimize", "runtime": {"session": {"intra_op_threads": True}}}, "intra_op_threads has the wrong type"),
    ([1, 2], "must be a JSON object"),
])
def test_a_malformed_source_names_the_field(source, needle):
    with pytest.raises(RecordError, match=needle):
        Source.from_dict(source)


def test_malformed_metrics_name_the_field():
    with pytest.raises(RecordError, match=r"metrics\.latency_us\.1 needs median_us"):
        Metrics.from_dict({"latency_us": {"1": {"samples": 3}}})
    with pytest.raises(RecordError, match="which is no batch size"):
        Metrics.from_dict({"speedup_vs_native": {"one": 2.0}})
    with pytest.raises(RecordError, match=r"profile\.recommendation\.max_batch_size must be at least 1"):
        Metrics.from_dict({"profile": {"recommendation": {"max_batch_size": 0}}})


def test_a_row_that_would_not_read_back_is_never_written(tmp_path, tiny_onnx_bytes, signature):
    registry = Registry(tmp_path)
    with pytest.raises(RecordError):
        registry.register("m", tiny_onnx_bytes, format="onnx", framework="onnx", signature=signature,
                          source={"kind": "optimize", "parent": 3})
    registry.register("m", tiny_onnx_bytes, format="onnx", framework="onnx", signature=signature)
    with pytest.raises(RecordError, match="profile must be a JSON object"):
        registry.update_metrics("m:1", {"profile": "fast"})
    assert [mv.ref for mv in registry.list()] == ["m:1"] and registry.get("m:1").metrics == Metrics()


def test_a_row_changed_outside_mlc_fails_where_it_is_read_naming_the_version(old_registry):
    with sqlite3.connect(old_registry.home / "registry.db") as conn:
        conn.execute("""update versions set source = '{"kind": "optimize", "chain": 5}' where name = 'raw'""")
    with pytest.raises(RecordError, match=r"raw:1.s source\.chain must be a JSON list"):
        old_registry.get("raw:1")


def test_records_round_trip():
    rec = ProfileRecord(target="cpu-8", mode="http", slo_p99_ms=10.0, recommendation=RecommendationRecord(
        max_batch_size=16, preferred_batch_sizes=(4, 8), workers=2, capacity_rps=100.0, extra={"new": 1}))
    assert ProfileRecord.from_dict(rec.to_dict()) == rec
    assert Metrics.from_dict(Metrics(profile=rec, extra={"auc": 0.5}).to_dict()) == Metrics(profile=rec,
                                                                                            extra={"auc": 0.5})
    source = Source.from_dict({"kind": "import", "from": "mlflow", "parent": "m:1"})
    assert source.extra == {"from": "mlflow"} and Source.from_dict(source.to_dict()) == source


# ---- which version a reference serves -----------------------------------------------------


@pytest.fixture()
def lineage(tmp_path, tiny_onnx_bytes, signature) -> Registry:
    """m:1 a joblib; m:2 ONNX made from it; m:3 a pickle; m:4, m:5 ONNX made from m:1; m:6 from m:3, lossy;
    o:1 an ONNX file."""
    registry = Registry(tmp_path)

    def add(name, fmt, source=None, data=tiny_onnx_bytes):
        return registry.register(name, data, format=fmt, framework="sklearn" if fmt != "onnx" else "onnx",
                                 signature=signature, source=source)

    add("m", "joblib", {"kind": "file", "path": "/m.joblib"}, data=b"joblib")
    add("m", "onnx", {"kind": "optimize", "parent": "m:1"})
    add("m", "pickle", {"kind": "file", "path": "/m.pkl"}, data=b"pickle")
    add("m", "onnx", {"kind": "optimize", "parent": "m:1"})
    add("m", "onnx", {"kind": "optimize", "parent": "m:1"})
    add("m", "onnx", {"kind": "optimize", "parent": "m:3", "chain": [{"pass": "fp16", "lossy": True}]})
    add("o", "onnx", {"kind": "file", "path": "/o.onnx"})
    return registry


def test_an_onnx_version_serves_itself_as_named(lineage):
    for ref in ("m:2", "o", "m"):  # "m" is its newest version, m:6
        served = lineage.served(ref)
        assert served.version.ref == served.named.ref and served.note == ""
    assert lineage.served("m").version.ref == "m:6"


def test_a_framework_version_serves_its_newest_optimized_child_by_number(lineage):
    served = lineage.served("m:1")
    assert (served.version.ref, served.named.ref) == ("m:5", "m:1")
    assert served.note == "m:1 is a sklearn joblib model: serving its optimized version m:5"
    assert lineage.served(lineage.get("m:3")).version.ref == "m:6"  # a ModelVersion is taken as well


def test_a_framework_version_without_an_optimized_child_is_refused_with_the_command(lineage, signature):
    lineage.register("lonely", b"pickle", format="pickle", framework="sklearn", signature=signature)
    with pytest.raises(UsageError, match="mlc serves ONNX versions only") as info:
        lineage.served("lonely")
    assert "mlc optimize lonely:1" in str(info.value.hint)
    with pytest.raises(NotFoundError):
        lineage.served("nope")


# ---- registering a file ---------------------------------------------------------------------


def test_register_file_adds_a_version_each_time_unless_asked_to_reuse(tmp_path, tiny_onnx_bytes):
    path = tmp_path / "my model.onnx"
    path.write_bytes(tiny_onnx_bytes)
    registry = Registry(tmp_path / "home")
    first = registry.register_file(path, tags={"team": "risk"}, aliases=("prod",), description="d")
    assert (first.ref, first.format, first.tags, first.aliases) == ("my-model:1", "onnx", {"team": "risk"}, ["prod"])
    assert first.source == Source.file(str(path.resolve()), trusted=False)
    assert registry.register_file(path).ref == "my-model:2"  # `mlc register` twice: two versions
    assert registry.register_file(path, reuse=True).ref == "my-model:1"  # optimize again: the first one
    with pytest.raises(NotFoundError, match="no such file"):
        registry.register_file(tmp_path / "absent.onnx")


def test_register_file_takes_an_onnx_model_loaded_in_memory_as_bytes(tmp_path, tiny_onnx_bytes, signature):
    registry = Registry(tmp_path)
    loaded = LoadedModel(model=onnx.load_from_string(tiny_onnx_bytes), format="onnx", framework="onnx",
                         signature=signature, path=None)
    mv = registry.register_file(loaded, "mem")
    assert mv.source.kind == "bytes"
    assert registry.register_file(loaded, "mem", reuse=True).ref == mv.ref
    with pytest.raises(UsageError, match="needs a name"):
        registry.register_file(loaded)
