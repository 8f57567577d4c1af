"""Malicious pickles are refused before any of them runs.

Every payload here would create a marker file; each test checks that it does not
exist afterwards. None of these pickles is ever loaded with trust=True.
"""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import posix
import struct
import subprocess
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from mlc.errors import ModelFormatError, UnsafeModelError
from mlc.loading import _pickle_load, load_model, scan_pickle
from mlc.loading._pickle_scan import ScanResult

from ._helpers import assert_same_predictions, save_joblib, save_pickle


class _Reduce:
    """Unpickles as func(*args): the shape of every pickle exploit."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, tuple[_Reduce, str]]:
    touch = f"touch {marker}"
    return {
        "os.system": (_Reduce(os.system, touch), "posix.system"),
        "posix.system": (_Reduce(posix.system, touch), "posix.system"),
        "builtins.eval": (_Reduce(builtins.eval, f"__import__('os').system({touch!r})"), "builtins.eval"),
        "builtins.exec": (_Reduce(builtins.exec, f"open({str(marker)!r}, 'w')"), "builtins.exec"),
        "subprocess.Popen": (_Reduce(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
    }


def _refused(path: Path, marker: Path, offender: str) -> UnsafeModelError:
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    message = str(info.value)
    assert offender in info.value.offenders
    assert offender in message and "--trust" in message and str(path) in message
    assert not marker.exists(), "the payload ran"
    return info.value


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("payload", ["os.system", "posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_reduce_payloads_are_refused(tmp_path: Path, payload: str, protocol: int) -> None:
    # Protocols 0-3 name the callable with GLOBAL, 4-5 with STACK_GLOBAL.
    marker = tmp_path / "marker"
    obj, offender = _payloads(marker)[payload]
    path = save_pickle(obj, tmp_path / "model.pkl", protocol=protocol)
    assert offender in scan_pickle(path.read_bytes())
    _refused(path, marker, offender)


def test_global_opcode_protocol0(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    assert scan_pickle(path.read_bytes()) == ["os.system"]
    _refused(path, marker, "os.system")


def test_inst_opcode_protocol0(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(f"(S'touch {marker}'\nios\nsystem\n.".encode())
    assert scan_pickle(path.read_bytes()) == ["os.system"]
    _refused(path, marker, "os.system")


def _short(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def test_stack_global_through_the_memo(tmp_path: Path) -> None:
    # The module and name are pushed, memoized, popped, and fetched back later.
    marker = tmp_path / "marker"
    body = (
        _short("os")
        + b"\x94"
        + _short("system")
        + b"\x94"
        + b"00"  # MEMOIZE, POP x2
        + b"h\x00h\x01\x93"  # BINGET 0, BINGET 1, STACK_GLOBAL
        + _short(f"touch {marker}")
        + b"\x85R."  # TUPLE1 REDUCE STOP
    )
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04" + body)
    assert scan_pickle(path.read_bytes()) == ["os.system"]
    _refused(path, marker, "os.system")


def test_stack_global_with_computed_operands_is_unresolvable(tmp_path: Path) -> None:
    # The module name is the result of a call, unknowable without running it.
    marker = tmp_path / "marker"
    body = (
        b"cbuiltins\nstr\n"
        + _short("os")
        + b"\x85R"  # str("os"), computed
        + _short("system")
        + b"\x93"
        + _short(f"touch {marker}")
        + b"\x85R."
    )
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04" + body)
    assert "<unresolvable STACK_GLOBAL>" in scan_pickle(path.read_bytes())
    _refused(path, marker, "<unresolvable STACK_GLOBAL>")


def test_payload_hidden_inside_a_valid_sklearn_pickle(tmp_path: Path, sklearn_models: dict) -> None:
    marker = tmp_path / "marker"
    model = pickle.loads(pickle.dumps(sklearn_models["forest"]))
    model.evil_ = _payloads(marker)["os.system"][0]
    path = save_pickle(model, tmp_path / "model.pkl")
    _refused(path, marker, "posix.system")


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "xz"])
def test_payload_hidden_inside_a_joblib_file(tmp_path: Path, sklearn_models: dict, compress: Any) -> None:
    marker = tmp_path / "marker"
    model = pickle.loads(pickle.dumps(sklearn_models["pipeline"]))
    model.evil_ = _payloads(marker)["subprocess.Popen"][0]
    path = save_joblib(model, tmp_path / "model.joblib", compress=compress)
    _refused(path, marker, "subprocess.Popen")


def test_payload_hidden_in_a_joblib_object_array(tmp_path: Path, sklearn_models: dict) -> None:
    # joblib writes object arrays as a nested pickle after the array wrapper.
    marker = tmp_path / "marker"
    model = pickle.loads(pickle.dumps(sklearn_models["logreg"]))
    model.notes_ = np.array(["fine", _payloads(marker)["builtins.eval"][0]], dtype=object)
    path = save_joblib(model, tmp_path / "model.joblib")
    assert "builtins.eval" in scan_pickle(path.read_bytes())
    _refused(path, marker, "builtins.eval")


def _partial_wrapper_then_hidden_opcodes(marker: Path) -> tuple[bytes, bytes]:
    """A NumpyArrayWrapper built through functools.partial, which the scan cannot
    see through, so the scan reads its 2 "array bytes" as opcodes: SHORT_BINBYTES
    swallowing a GLOBAL os.system that joblib's unpickler would then run."""
    hidden = b"cos\nsystem\n" + _short(f"touch {marker}") + b"\x85R"
    wrapper = (
        b"cfunctools\npartial\n("
        b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n"
        b"cnumpy\nndarray\nK\x02\x85" + _short("C")
        + b"cnumpy\ndtype\n" + _short("u1") + b"\x89\x88\x87R" + b"\x89N"
        + b"tR)R}b"  # TUPLE, REDUCE -> partial; EMPTY_TUPLE REDUCE -> wrapper; BUILD
    )  # fmt: skip
    return wrapper + b"C" + bytes([len(hidden)]), hidden


def test_smuggling_opcodes_as_joblib_array_bytes_is_caught(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    smuggler, hidden = _partial_wrapper_then_hidden_opcodes(marker)
    # A real joblib array first, so the file is read with joblib's array protocol.
    buffer = io.BytesIO()
    joblib.dump([np.arange(2, dtype=np.uint8)], buffer, protocol=2)
    data = buffer.getvalue()[:-1] + smuggler + hidden + b"."
    assert "os.system" not in scan_pickle(data)  # the first line alone is fooled...
    path = tmp_path / "model.joblib"
    path.write_bytes(data)
    with pytest.raises(UnsafeModelError) as info:  # ...the second line is not
        load_model(path)
    assert "joblib array payload mismatch" in str(info.value)
    assert not marker.exists()


def test_smuggling_without_real_arrays_reads_as_plain_pickle(tmp_path: Path) -> None:
    # With no array the scan followed, the file is unpickled with plain pickle
    # semantics, exactly as scanned: the "hidden" opcodes stay inert bytes.
    marker = tmp_path / "marker"
    smuggler, hidden = _partial_wrapper_then_hidden_opcodes(marker)
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x80\x02" + smuggler + hidden + b"0.")  # POP the bytes: the wrapper is left
    with pytest.raises(ModelFormatError, match="NumpyArrayWrapper, not a model"):
        load_model(path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_what_a_fooled_scan_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    path = save_pickle(_payloads(marker)["os.system"][0], tmp_path / "model.pkl")
    monkeypatch.setattr(_pickle_load, "scan_stream", lambda stream: ScanResult(globals=[]))
    _refused(path, marker, "posix.system")


def test_joblib_payload_offsets_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sklearn_models: dict
) -> None:
    path = save_joblib(sklearn_models["logreg"], tmp_path / "model.joblib")
    real = _pickle_load.scan_stream

    def shifted(stream: Any) -> ScanResult:
        scan = real(stream)
        scan.payloads = {k: (a + 1, b + 1) for k, (a, b) in scan.payloads.items()}
        return scan

    monkeypatch.setattr(_pickle_load, "scan_stream", shifted)
    with pytest.raises(UnsafeModelError, match="payload mismatch"):
        load_model(path)


def test_extension_opcodes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x02\x82\x01" + b")R.")  # EXT1 1, then call it
    with pytest.raises(UnsafeModelError, match="extension code 1"):
        load_model(path)


def test_truncated_malicious_pickle_still_names_the_offender(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = pickle.dumps(_payloads(marker)["os.system"][0], protocol=2)
    path = tmp_path / "model.pkl"
    path.write_bytes(data[:-3])
    _refused(path, marker, "posix.system")


def test_trust_loads_a_harmless_global_outside_the_allowlist(tmp_path: Path, sklearn_models: dict, data: dict) -> None:
    # collections.Counter is harmless but not on the list: refused, then trusted.
    original = sklearn_models["logreg"]
    model = pickle.loads(pickle.dumps(original))
    model.tally_ = collections.Counter(a=1)
    path = save_pickle(model, tmp_path / "model.pkl")
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert info.value.offenders == ["collections.Counter"]
    loaded = load_model(path, trust=True)
    assert loaded.model.tally_ == collections.Counter(a=1)
    assert_same_predictions(original, loaded.model, data["X"])

    joblib_path = save_joblib(model, tmp_path / "model.joblib", compress=3)
    with pytest.raises(UnsafeModelError):
        load_model(joblib_path)
    assert_same_predictions(original, load_model(joblib_path, trust=True).model, data["X"])


def test_skops_untrusted_types_follow_the_allowlist(tmp_path: Path, sklearn_models: dict, data: dict) -> None:
    import skops.io as sio
    original = sklearn_models["logreg"]
    model = pickle.loads(pickle.dumps(original))
    model.tally_ = collections.Counter(a=1)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert info.value.offenders == ["collections.Counter"] and "--trust" in str(info.value)
    assert_same_predictions(original, load_model(path, trust=True).model, data["X"])


def test_error_offenders_are_listed_once_each(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    obj = [_payloads(marker)["os.system"][0], _payloads(marker)["builtins.eval"][0]] * 2
    path = save_pickle(obj, tmp_path / "model.pkl")
    error = _refused(path, marker, "posix.system")
    assert error.offenders == ["builtins.eval", "posix.system"]


def test_unsafe_protocol_5_frames(tmp_path: Path) -> None:
    # Large framed pickles: the offender sits after a big frame of data.
    marker = tmp_path / "marker"
    obj = [b"x" * 200_000, _payloads(marker)["os.system"][0]]
    path = save_pickle(obj, tmp_path / "model.pkl", protocol=5)
    assert struct.unpack("<Q", path.read_bytes()[3:11])[0] > 0  # starts with a FRAME
    _refused(path, marker, "posix.system")


def test_malicious_pickle_behind_another_extension(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = save_pickle(_payloads(marker)["os.system"][0], tmp_path / "model.onnx", protocol=4)
    _refused(path, marker, "posix.system")


def _short(text: str) -> bytes:
    """SHORT_BINUNICODE: a string pushed on the pickle stack."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _object_field_dtype(version: int, flags: int | None) -> bytes:
    """numpy.dtype('V8') then a BUILD whose state gives it one field 'f' of dtype('O') (memo 0).

    Version 3 states carry the object flag, which numpy trusts; older ones do not, and numpy
    works it out from the fields.
    """
    head = _short("numpy") + _short("dtype") + b"\x93" + _short("V8") + b"\x89\x88\x87R"
    state = b"(K" + bytes([version]) + _short("|") + b"N" + _short("f") + b"\x85}" + _short("f") + b"h\x00K\x00\x86s"
    state += b"K\x08K\x01" + (b"K" + bytes([flags]) if flags is not None else b"") + b"tb"
    return head + state


_DTYPE_MADE = {
    # numpy's own way: numpy.dtype('V8', False, True), judged at its BUILD.
    "call": _short("numpy") + _short("dtype") + b"\x93" + _short("V8") + b"\x89\x88\x87R",
    # The same dtype through allowed copyreg helpers, which the judgement must not miss.
    "reconstructor": (_short("copyreg") + _short("_reconstructor") + b"\x93" + _short("numpy") + _short("dtype")
                      + b"\x93" + _short("numpy") + _short("dtype") + b"\x93" + _short("V8") + b"\x87R"),
    "newobj": (_short("copyreg") + _short("__newobj__") + b"\x93" + _short("numpy") + _short("dtype") + b"\x93"
               + _short("V8") + b"\x86R"),
}


@pytest.mark.parametrize(("made", "needle"), [("call", "object flag contradicts its fields"),
                                              ("reconstructor", "other than by calling numpy.dtype"),
                                              ("newobj", "other than by calling numpy.dtype")])
def test_a_dtype_hiding_its_object_field_is_refused_before_it_builds_object_pointers(
        tmp_path: Path, made: str, needle: str) -> None:
    """With the object flag off, numpy would take 8 raw bytes as a PyObject* (a crash or worse)."""
    data = b"\x80\x04" + _short("numpy") + _short("dtype") + b"\x93" + _short("O") + b"\x89\x88\x87R\x94"
    data += _short("numpy._core.multiarray") + _short("_reconstruct") + b"\x93"
    data += _short("numpy") + _short("ndarray") + b"\x93K\x00\x85C\x01b\x87R"
    state = (b"(K\x03" + _short("|") + b"N" + _short("f") + b"\x85}" + _short("f") + b"h\x00K\x00\x86s"
             + b"K\x08K\x01K\x00tb")
    data += b"(K\x01K\x01\x85" + _DTYPE_MADE[made] + state + b"\x89C\x08" + b"A" * 8 + b"tb."
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeModelError, match=needle) as info:
        load_model(path)
    assert info.value.exit_code == 3


def test_a_joblib_array_whose_dtype_gains_objects_from_its_fields_has_its_nested_pickle_scanned(
        tmp_path: Path) -> None:
    """An old-style dtype state: numpy finds the object field, so joblib unpickles what follows."""
    marker = tmp_path / "marker"
    data = b"\x80\x04" + _short("numpy") + _short("dtype") + b"\x93" + _short("O") + b"\x89\x88\x87R\x94"
    data += _short("joblib.numpy_pickle") + _short("NumpyArrayWrapper") + b"\x93("
    data += _short("numpy") + _short("ndarray") + b"\x93K\x01\x85" + _short("C")
    data += _object_field_dtype(2, flags=None) + b"\x89K\x10tR}b"
    nested = b"cposix\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    skip = 1 + nested[0] + 8  # what a scan reading 'V8' as raw bytes would skip: padding, then the data
    path = tmp_path / "model.joblib"
    path.write_bytes(data + nested + b"N" * (skip - len(nested)) + b".")
    assert "posix.system" in scan_pickle(path.read_bytes())
    _refused(path, marker, "posix.system")
