"""What format a model file is in, judged by its content.

The extension is only a hint: it settles pickle vs joblib for an uncompressed
pickle without arrays (the two are the same bytes), and it sharpens the error
message when the content matches nothing.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import re
import zipfile
import zlib
from pathlib import Path

from mlc.errors import ModelFormatError, NotFoundError

_HEAD = 4096
_SUPPORTED = "pickle, joblib, skops (.skops zip), ONNX, XGBoost JSON or UBJSON, LightGBM text"
_EXTENSION_FORMATS = {
    ".pkl": "pickle", ".pickle": "pickle", ".joblib": "joblib", ".jbl": "joblib",
    ".skops": "skops", ".onnx": "onnx", ".json": "xgboost-json", ".ubj": "xgboost-ubj",
    ".txt": "lightgbm-text",
}  # fmt: skip
# joblib's compressors, by magic (joblib.compressor); the zlib one is checked further.
_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_JSON_XGBOOST = re.compile(rb'^\s*\{\s*"(learner|version)"\s*:')
_PICKLE_PROTOCOLS = range(2, 6)
# Opcodes that can open a protocol 0/1 pickle (mark, global, inst, empty containers, scalars...).
_PROTO0_FIRST = frozenset(b"(c]})NIFLSVGJKMTUXBCde")


def _format_error(path: Path, found: str, *, by_extension: bool = False) -> ModelFormatError:
    hint = _EXTENSION_FORMATS.get(path.suffix.lower())
    extra = f" (its {path.suffix} extension suggests {hint})" if hint and not by_extension else ""
    return ModelFormatError(
        f"cannot load {path}: {found}{extra}; supported formats are {_SUPPORTED}",
        "check that the file is a saved model and was copied completely",
    )


def _describe(head: bytes) -> str:
    sample = head[:16]
    try:
        text = sample.decode("utf-8")
        if text.isprintable() or text.replace("\n", "").replace("\r", "").isprintable():
            return f"it starts with text {text!r}"
    except UnicodeDecodeError:
        pass
    return f"it starts with bytes {sample!r}"


def _decompressed_head(path: Path, method: str, head: bytes) -> bytes:
    try:
        if method == "zlib":
            return zlib.decompressobj().decompress(head, 16)
        if method == "gzip":
            return zlib.decompressobj(wbits=31).decompress(head, 16)
        if method == "bz2":
            with bz2.open(path, "rb") as f:
                return f.read(16)
        if method in ("xz", "lzma"):
            with lzma.open(path, "rb", format=lzma.FORMAT_AUTO) as f:
                return f.read(16)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return b""
    return b""


def _is_pickle_head(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x80 and data[1] in _PICKLE_PROTOCOLS


def _ubj_first_key(head: bytes) -> bytes | None:
    """The first key of an UBJSON object, as XGBoost writes it ('{', length, key)."""
    if len(head) < 3 or head[0:1] != b"{":
        return None
    sizes = {b"i": 1, b"U": 1, b"I": 2, b"l": 4, b"L": 8}
    width = sizes.get(head[1:2])
    if width is None or len(head) < 2 + width:
        return None
    n = int.from_bytes(head[2 : 2 + width], "big", signed=True)
    if not 0 < n <= 64:
        return None
    return head[2 + width : 2 + width + n]


def _looks_like_onnx(data: bytes) -> bool:
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:  # pragma: no cover - onnx is a core dependency
        return False
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, ValueError, RuntimeError):
        return False
    return model.ir_version > 0 and model.HasField("graph") and len(model.graph.node) > 0


def _parses_as_old_pickle(data: bytes) -> bool:
    """Protocol 0/1 pickles have no header: they are pickles if the scan follows them."""
    if not data or data[0] not in _PROTO0_FIRST:
        return False
    from mlc.loading._pickle_scan import PickleScanError, scan_stream

    try:
        scan_stream(io.BytesIO(data))
    except PickleScanError:
        return False
    return True


def detect_format(path: Path) -> str:
    """The format of the model file at `path` (one of loading.model.FORMATS).

    Raises ModelFormatError for empty, truncated-beyond-recognition or unknown
    files, naming the file, what it holds and the supported formats.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelFormatError(f"cannot load {path}: it is a directory, not a model file")
    size = path.stat().st_size
    if size == 0:
        raise _format_error(path, "the file is empty")
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    ext = path.suffix.lower()

    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise _format_error(path, f"it is a damaged zip archive ({exc})") from None
        if "schema.json" in names:
            return "skops"
        raise _format_error(path, "it is a zip archive without schema.json, so not a skops file")

    if _is_pickle_head(head):
        if ext in (".joblib", ".jbl") or _contains(path, b"joblib.numpy_pickle"):
            return "joblib"
        return "pickle"

    for magic, method in _COMPRESSED:
        if head.startswith(magic):
            if method == "lz4":
                return "joblib"  # loading says so if the lz4 package is missing
            if _is_pickle_head(_decompressed_head(path, method, head)):
                return "joblib"
            raise _format_error(path, f"it is {method}-compressed but does not hold a pickle")
    zlib_header = head[:1] == b"\x78" and len(head) > 1 and (head[0] * 256 + head[1]) % 31 == 0
    if zlib_header and _is_pickle_head(_decompressed_head(path, "zlib", head)):
        return "joblib"

    if head.startswith((b"tree\nversion=", b"tree\r\nversion=")):
        return "lightgbm-text"

    if head[:1] == b"{" and _ubj_first_key(head) in (b"learner", b"version"):
        return "xgboost-ubj"
    if head.lstrip()[:1] == b"{":
        if _JSON_XGBOOST.match(head):
            return "xgboost-json"
        try:
            doc = json.loads(_whole(path))
        except (ValueError, UnicodeDecodeError):
            doc = None
        if isinstance(doc, dict):
            if "learner" in doc:
                return "xgboost-json"
            raise _format_error(path, "it is JSON but not an XGBoost model (no 'learner' key)")

    data = _whole(path)
    if _looks_like_onnx(data):
        return "onnx"
    if _parses_as_old_pickle(data):
        if ext in (".joblib", ".jbl") or b"joblib.numpy_pickle" in data:
            return "joblib"
        return "pickle"

    if ext == ".onnx":
        raise _format_error(
            path,
            "it has a .onnx extension but does not parse as an ONNX model (truncated or corrupt?)",
            by_extension=True,
        )
    if ext in (".pkl", ".pickle", ".joblib", ".jbl"):
        raise _format_error(
            path, f"it has a {path.suffix} extension but is not a pickle: {_describe(head)}", by_extension=True
        )
    raise _format_error(path, f"its content matches no supported format: {_describe(head)}")


def _contains(path: Path, needle: bytes, chunk: int = 1 << 20) -> bool:
    """Whether the file holds `needle`, read in chunks (files can be large)."""
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-len(needle) :]
    return False


def _whole(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()
