"""The registry's contracts: numbering, refs, aliases, tags, deletion rules, integrity."""

from __future__ import annotations

import os

import pytest

from mlc.errors import ConflictError, IntegrityError, NotFoundError, UsageError
from mlc.registry import Registry
from mlc.signature import tabular

SIG = tabular(4, task="classification", classes=[0, 1])


@pytest.fixture()
def reg(tmp_path, registry_url):
    """The same contracts on SQLite and on a real PostgreSQL server (see conftest.py)."""
    return Registry(tmp_path / "home", registry_url)


def _add(reg, name="m", data=b"model-bytes", **kw):
    return reg.register(name, data, format="onnx", framework="onnx", signature=SIG, **kw)


def test_versions_start_at_one_and_grow_per_name(reg):
    assert [_add(reg, data=bytes([i])).version for i in range(3)] == [1, 2, 3]
    assert _add(reg, name="other").version == 1
    assert reg.get("m").version == 3  # a bare name is the latest


def test_every_recorded_field_round_trips(reg):
    mv = _add(reg, tags={"team": "risk"}, description="first", aliases=["prod"],
              source={"kind": "file", "path": "/x.onnx"}, metrics={"auc": 0.9})
    got = reg.get("m@prod").to_dict()
    assert got["digest"] == mv.digest and len(got["digest"]) == 64
    assert got["signature"]["n_features"] == 4 and got["signature"]["classes"] == [0, 1]
    assert got["tags"] == {"team": "risk"} and got["aliases"] == ["prod"]
    assert got["source"] == {"kind": "file", "path": "/x.onnx", "trusted": False, "schema": 1}
    assert got["metrics"] == {"auc": 0.9}
    typed = reg.get("m:1")
    assert (typed.source.kind, typed.source.path, typed.source.trusted) == ("file", "/x.onnx", False)
    assert typed.metrics.extra == {"auc": 0.9} and typed.metrics.parity is None
    assert got["creator"] and got["created_at"].endswith("Z")
    assert "onnxruntime" in got["packages"] and "numpy" in got["packages"]


def test_refs_resolve_and_bad_refs_are_usage_errors(reg):
    _add(reg)
    _add(reg, data=b"2")
    reg.set_alias("m:1", "prod")
    assert reg.get("m:1").version == 1 and reg.get("m@prod").version == 1
    reg.set_alias("m:2", "prod")  # moving an alias
    assert reg.get("m@prod").version == 2
    with pytest.raises(NotFoundError):
        reg.get("m:9")
    with pytest.raises(NotFoundError):
        reg.get("m@nope")
    with pytest.raises(UsageError):
        reg.get("m:x:y")
    with pytest.raises(UsageError):
        reg.set_alias("m:1", "7")


def test_list_filters_by_name_and_tag(reg):
    _add(reg, tags={"stage": "dev"})
    _add(reg, data=b"2", tags={"stage": "prod"})
    _add(reg, name="n", tags={"stage": "prod"})
    assert [mv.ref for mv in reg.list(tags={"stage": "prod"})] == ["m:2", "n:1"]
    assert [mv.ref for mv in reg.list(name="m")] == ["m:1", "m:2"]
    reg.set_tags("m:1", {"stage": "prod"}, remove=())
    assert len(reg.list(tags={"stage": "prod"})) == 3


def test_delete_is_refused_for_deployed_or_aliased_versions(reg):
    _add(reg)
    _add(reg, data=b"2")
    reg.record_deployment("m", {1: 90, 2: 10})
    with pytest.raises(ConflictError, match="deployment"):
        reg.delete("m:2")
    reg.record_deployment("m", {1: 100})  # the new deployment replaces the old one
    reg.set_alias("m:2", "candidate")
    with pytest.raises(ConflictError, match="@candidate"):
        reg.delete("m:2")
    reg.remove_alias("m", "candidate")
    blob = reg.store.path_for(reg.get("m:2").digest)
    reg.delete("m:2")
    assert not blob.exists()
    with pytest.raises(NotFoundError):
        reg.get("m:2")
    assert reg.get("m").version == 1


def test_deployment_shares_must_add_up(reg):
    _add(reg)
    with pytest.raises(UsageError, match="100"):
        reg.record_deployment("m", {1: 60})


def test_shared_blob_survives_deleting_one_of_its_versions(reg):
    _add(reg)
    _add(reg)  # same bytes, same digest
    reg.delete("m:1")
    assert reg.artifact_path("m:2").read_bytes() == b"model-bytes"


def test_corrupted_artifact_is_detected_on_read_and_repaired_by_registering_it_again(reg):
    mv = _add(reg)
    reg.store.path_for(mv.digest).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupted"):
        reg.artifact_path("m:1")
    _add(reg)  # what the error's hint says to do
    assert reg.artifact_path("m:1").read_bytes() == reg.artifact_path("m:2").read_bytes() == b"model-bytes"


def test_a_delete_between_a_registers_write_and_its_row_leaves_no_row_without_its_blob(reg, monkeypatch):
    _add(reg, name="a")  # the only version holding these bytes
    other = Registry(reg.home, reg.url)  # another process on the same registry
    put = other.store.put
    calls = []

    def put_then_delete(data, digest=None):
        calls.append(digest)
        stored = put(data, digest)
        if len(calls) == 1:  # after the first write, before the register's transaction
            reg.delete("a:1")
        return stored

    monkeypatch.setattr(other.store, "put", put_then_delete)
    mv = other.register("b", b"model-bytes", format="onnx", framework="onnx", signature=SIG)
    assert other.artifact_path(mv.ref).read_bytes() == b"model-bytes"


def test_names_end_where_they_end(reg):
    with pytest.raises(UsageError):
        _add(reg, name="x\n")  # "$" would match before the newline; the name could never be looked up


def test_reports_are_stored_beside_the_version(reg, tmp_path):
    mv = _add(reg)
    path = reg.attach_report(mv, "report.json", '{"a": 1}')
    assert path.read_text() == '{"a": 1}' and path.parent == reg.version_dir(mv)
    assert reg.get("m:1").reports == ["report.json"]
    with pytest.raises(UsageError):
        reg.attach_report(mv, "../escape.json", "x")


def test_export_writes_a_verified_copy(reg, tmp_path):
    _add(reg)
    out = reg.export("m:1", tmp_path)
    assert out.name == "m-1.onnx" and out.read_bytes() == b"model-bytes"
    # A folder that does not exist yet, named with a trailing slash, is a folder (not a file "new").
    made = reg.export("m:1", f"{tmp_path}/new/")
    assert made == tmp_path / "new" / "m-1.onnx" and made.read_bytes() == b"model-bytes"
    umask = os.umask(0)
    os.umask(umask)
    assert made.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


def test_registry_home_defaults_to_dot_mlc_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLC_HOME", raising=False)
    monkeypatch.delenv("MLC_REGISTRY_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Registry.open().home == tmp_path / ".mlc"
    monkeypatch.setenv("MLC_HOME", str(tmp_path / "elsewhere"))
    assert Registry.open().home == tmp_path / "elsewhere"
