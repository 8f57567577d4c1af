"""Loading pickle and joblib files: scan first, then a restricted unpickler.

Both formats go through the same path. joblib's file wrapper undoes its
compression (zlib, gzip, bz2, lzma/xz, lz4); `_pickle_scan` lists every global
and where joblib's array payloads sit; only when every global is allowed are
the objects built, by an unpickler whose `find_class` enforces the same list:

- no joblib arrays in the stream: the C unpickler (plain pickle semantics, which
  is what the scan followed);
- joblib arrays: joblib's NumpyUnpickler, whose BUILD additionally checks that
  each array payload starts and ends exactly where the scan said, so the bytes it
  runs as opcodes are the bytes that were scanned.
"""

from __future__ import annotations

import contextlib
import functools
import lzma
import pickle
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlc.errors import MissingDependencyError, MlcError, ModelFormatError, UnsafeModelError
from mlc.loading import _allowlist
from mlc.loading._pickle_scan import PickleScanError, ScanResult, _py3_name, scan_stream

_OPTIONAL = {"xgboost": "XGBoost", "lightgbm": "LightGBM"}


class _Desync(Exception):
    """The unpickler met a joblib array payload the scan did not predict."""


def _missing_dependency(qualified: str, exc: Exception) -> MlcError:
    top = qualified.split(".", 1)[0]
    if top in _OPTIONAL and isinstance(exc, ImportError):
        return MissingDependencyError(top, top, f"loading this {_OPTIONAL[top]} model")
    return ModelFormatError(
        f"the pickle needs {qualified}, which this environment cannot import ({exc})",
        "it was probably saved with another version of its library; "
        "load it with the version that saved it and re-save it (skops or ONNX travel better)",
    )


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[IO[bytes]]:
    """The decompressed pickle stream of a pickle or joblib file."""
    from joblib import numpy_pickle

    with open(path, "rb") as raw:
        opener = getattr(numpy_pickle, "_validate_fileobject_and_memmap", None)
        if opener is None:  # pragma: no cover - joblib moved its internals
            yield raw
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with opener(raw, str(path)) as (stream, _mmap):
                if isinstance(stream, str):
                    raise ModelFormatError(
                        f"{path} is in the format of joblib < 0.10, which keeps arrays in "
                        "side files that mlc does not load",
                        "load it with joblib in a trusted environment and save it again",
                    )
                yield stream


class _RestrictedCUnpickler(pickle.Unpickler):
    """The C unpickler held to the allowlist, for pickles without joblib arrays.

    With no array payloads in the stream, plain pickle semantics are exactly what
    the scan followed. (The C unpickler does not expose the protocol, so Python 2
    names are mapped whatever it is; they name no Python 3 module anyway.)
    """

    def find_class(self, module: str, name: str) -> Any:
        return _allowlist.resolve(*_py3_name(module, name))


@functools.cache
def _restricted_unpickler_class() -> type:
    """Built lazily so that importing mlc.loading does not import joblib."""
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
    from joblib.numpy_pickle_compat import NDArrayWrapper

    base_build = pickle._Unpickler.load_build  # type: ignore[attr-defined]

    class _RestrictedUnpickler(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def __init__(self, filename: str, stream: IO[bytes], scan: ScanResult, base: int) -> None:
            super().__init__(filename, stream, ensure_native_byte_order=True)
            self._scan = scan
            self._base = base
            self._builds = 0

        def find_class(self, module: str, name: str) -> Any:
            if self.proto < 3 and self.fix_imports:
                module, name = _py3_name(module, name)
            return _allowlist.resolve(module, name)

        def load_build(self) -> None:
            # The joblib payload protocol of NumpyUnpickler.load_build, but only
            # where the scan saw it, at the offsets the scan saw.
            self._builds += 1
            base_build(self)
            top = self.stack[-1]
            if isinstance(top, NDArrayWrapper):
                raise _allowlist.RefusedGlobal(
                    "joblib.numpy_pickle_compat.NDArrayWrapper", "reads side files named by the pickle"
                )
            expected = self._scan.payloads.get(self._builds)
            if not isinstance(top, NumpyArrayWrapper):
                if expected is not None:
                    raise _Desync("array payload expected but no array wrapper built")
                return
            if expected is None or self.file_handle.tell() - self._base != expected[0]:
                raise _Desync("array wrapper built where the scan saw none")
            # What follows is raw bytes or a nested pickle by the real dtype; the scan must have
            # read it the same way before any of it is read here.
            if bool(top.dtype.hasobject) != (self._builds in self._scan.object_payloads):
                raise _Desync("array payload is a nested pickle where the scan saw raw bytes, or the reverse")
            self.stack.pop()
            array = top.read(self, self.ensure_native_byte_order)
            if self.file_handle.tell() - self._base != expected[1]:
                raise _Desync("array payload does not end where the scan ended it")
            self.stack.append(array)

        dispatch[pickle.BUILD[0]] = load_build

    return _RestrictedUnpickler


def scan_file(path: Path) -> ScanResult:
    """Scan the pickle in a pickle or joblib file; ModelFormatError if it is malformed.

    A malformed stream that already named a refused global raises UnsafeModelError.
    """
    try:
        with _open_stream(path) as stream:
            return scan_stream(stream)
    except PickleScanError as exc:
        refused, _ = _allowlist.offenders_of(exc.globals)
        if refused:
            raise UnsafeModelError(refused, str(path)) from None
        if exc.crafted:
            raise UnsafeModelError([f"<{exc.reason}>"], str(path), "the pickle builds objects") from None
        raise ModelFormatError(
            f"{path} is a truncated or corrupt pickle: {exc.reason}",
            "check that the file was copied completely",
        ) from None
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:  # corrupt compression
        raise ModelFormatError(f"{path} could not be decompressed: {exc}") from None


def load_pickled(path: Path, fmt: str, *, trust: bool) -> Any:
    """The object in a pickle/joblib file, refusing globals outside the allowlist."""
    if trust:
        return _load_trusted(path, fmt)
    scan = scan_file(path)
    refused, missing = _allowlist.offenders_of(scan.globals)
    if refused:
        raise UnsafeModelError(refused, str(path))
    if missing:
        raise _missing_dependency(*missing[0])
    try:
        with _open_stream(path) as stream:
            unpickler: Any
            if scan.payloads:
                cls = _restricted_unpickler_class()
                unpickler = cls(str(path), stream, scan, stream.tell())
            else:
                unpickler = _RestrictedCUnpickler(stream)
            with warnings.catch_warnings():
                # Version-mismatch warnings (InconsistentVersionWarning) are the
                # user's to see; numpy's own deprecation chatter is not.
                warnings.simplefilter("ignore", DeprecationWarning)
                return unpickler.load()
    except _allowlist.RefusedGlobal as exc:
        # The scan passed but the unpickler met another name: never run it.
        raise UnsafeModelError([exc.qualified], str(path)) from None
    except _Desync as exc:
        raise UnsafeModelError([f"<joblib array payload mismatch: {exc}>"], str(path)) from None
    except MlcError:
        raise
    except (ImportError, AttributeError) as exc:
        raise ModelFormatError(f"could not load {path}: {exc}") from None
    except Exception as exc:
        raise ModelFormatError(
            f"could not unpickle {path}: {type(exc).__name__}: {exc}",
            "the file may be corrupt, or saved by incompatible library versions",
        ) from None


def _load_trusted(path: Path, fmt: str) -> Any:
    try:
        if fmt == "joblib":
            import joblib

            return joblib.load(path)
        with open(path, "rb") as f:
            return pickle.load(f)
    except MlcError:
        raise
    except ImportError as exc:
        name = getattr(exc, "name", None) or ""
        raise _missing_dependency(name or str(exc), exc) from None
    except Exception as exc:
        raise ModelFormatError(
            f"could not unpickle {path}: {type(exc).__name__}: {exc}",
            "the file may be corrupt, or saved by incompatible library versions",
        ) from None
