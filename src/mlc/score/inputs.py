"""The input files of a run and how each is read: as a stream of fixed-size chunks, never whole.

Parquet is read batch by batch with pyarrow (buffered, no pre-buffering of whole row groups),
CSV with pyarrow's streaming reader, JSON lines a fixed number of lines at a time, and .npy
through a memory map. Chunks are cut at fixed row counts (rows i*N to (i+1)*N-1 of each file),
so the same input always gives the same chunks: that is what makes parts resumable.

Text formats (CSV, JSON lines) are read as text and parsed into numbers by mlc.score.features,
so a bad cell rejects its row instead of failing the whole read, and their passed-through
columns are written as text. A CSV line that does not split into the header's number of fields
cannot be parsed into a row at all: the reader keeps it, with its line number, as unparsed.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlc.errors import NotFoundError, UsageError
from mlc.score.formats import SUFFIXES

_BUFFER = 1 << 20  # bytes of Parquet read ahead per column: reads stream instead of holding row groups


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str
    size: int
    mtime_ns: int

    @property
    def label(self) -> str:
        return str(self.path)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input for a resumed run: a changed file is another run's input."""
        return {"path": str(self.path), "format": self.format, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass
class Chunk:
    """Rows first_row .. first_row + rows - 1 of one file, in the form its worker parses."""

    index: int
    first_row: int
    rows: int
    kind: str  # "arrow" (a table), "jsonl" (raw lines), "npy" (an array)
    payload: pa.Table | bytes | np.ndarray


@dataclass
class Unparsed:
    """Lines of a file the reader could not split into a row, with their line numbers (1-based)."""

    lines: list[tuple[int | None, str, str]] = field(default_factory=list)  # (line, reason, text)


def discover(inputs: Sequence[str | Path]) -> list[InputFile]:
    """Every input file, in the order given; a folder gives its readable files in name order."""
    if not inputs:
        raise UsageError("no input given", "name one or more files or folders: mlc score REF INPUT... --out DIR")
    found: dict[Path, InputFile] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                           and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts))
            if not files:
                raise UsageError(f"folder {path} holds no input files",
                                 f"inputs are files ending in {', '.join(sorted(SUFFIXES))}")
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise UsageError(f"cannot score {path.name}: unknown file type {path.suffix or '(none)'}",
                                 f"inputs are Parquet, CSV, JSON lines or .npy files ({', '.join(sorted(SUFFIXES))})")
            files = [path]
        else:
            raise NotFoundError(f"input {path} does not exist")
        for file in files:
            resolved = file.resolve()
            stat = resolved.stat()
            found.setdefault(resolved, InputFile(resolved, SUFFIXES[file.suffix.lower()], stat.st_size,
                                                 stat.st_mtime_ns))
    return list(found.values())


class Reader:
    """One input file: its columns (None for an .npy array), its row count when known, its chunks."""

    def __init__(self, file: InputFile) -> None:
        self.file = file
        self.unparsed = Unparsed()

    def columns(self) -> list[str] | None:
        raise NotImplementedError

    def types(self) -> dict[str, pa.DataType]:
        """Column types as read (text formats: all text)."""
        return {c: pa.string() for c in self.columns() or ()}

    def width(self) -> int | None:
        """The number of values per row of a positional (.npy) input."""
        return None

    def total_rows(self) -> int | None:
        return None

    def chunks(self, columns: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        raise NotImplementedError


def open_reader(file: InputFile) -> Reader:
    readers: dict[str, type[Reader]] = {"parquet": ParquetReader, "csv": CsvReader, "jsonl": JsonLinesReader,
                                        "npy": NpyReader}
    return readers[file.format](file)


def _rechunk(batches: Iterator[pa.RecordBatch], schema: pa.Schema, chunk_rows: int) -> Iterator[Chunk]:
    """Batches of any size cut into chunks of exactly chunk_rows rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    index = first = 0
    for batch in itertools.chain(batches, [None]):
        if batch is not None:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            held += batch.num_rows
        while held >= chunk_rows or (batch is None and held):
            table = pa.Table.from_batches(pending, schema=schema)
            take = min(chunk_rows, held)
            yield Chunk(index, first, take, "arrow", table.slice(0, take))
            rest = table.slice(take)
            pending = rest.to_batches() if rest.num_rows else []
            held -= take
            index += 1
            first += take


class ParquetReader(Reader):
    def _open(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.file.path, buffer_size=_BUFFER, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UsageError(f"{self.file.label} is not a readable Parquet file: {exc}") from exc

    def columns(self) -> list[str]:
        return list(self._open().schema_arrow.names)

    def types(self) -> dict[str, pa.DataType]:
        schema = self._open().schema_arrow
        return {name: schema.field(name).type for name in schema.names}

    def total_rows(self) -> int:
        return int(self._open().metadata.num_rows)

    def chunks(self, columns: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        handle = self._open()
        schema = pa.schema([handle.schema_arrow.field(c) for c in columns])
        batches = handle.iter_batches(batch_size=min(chunk_rows, 65536), columns=list(columns))
        yield from _rechunk(batches, schema, chunk_rows)


class CsvReader(Reader):
    def columns(self) -> list[str]:
        import pyarrow.csv as pcsv

        try:
            with pcsv.open_csv(self.file.path, read_options=pcsv.ReadOptions(block_size=1 << 16),
                               parse_options=pcsv.ParseOptions(invalid_row_handler=lambda _row: "skip")) as reader:
                return list(reader.schema.names)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise UsageError(f"{self.file.label} is empty: a CSV input needs a header line") from exc
            raise UsageError(f"cannot read the header of {self.file.label}: {exc}") from exc

    def chunks(self, columns: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        import pyarrow.csv as pcsv

        names = self.columns()

        def unparsable(row: Any) -> str:
            reason = f"has {row.actual_columns} fields, the header {row.expected_columns}"
            self.unparsed.lines.append((row.number, reason, row.text))
            return "skip"

        convert = pcsv.ConvertOptions(column_types={c: pa.string() for c in names}, include_columns=list(columns),
                                      strings_can_be_null=True)
        # One thread: the parser then knows the line number of a line it cannot split (None otherwise).
        with pcsv.open_csv(self.file.path, read_options=pcsv.ReadOptions(use_threads=False),
                           parse_options=pcsv.ParseOptions(invalid_row_handler=unparsable),
                           convert_options=convert) as reader:
            schema = pa.schema([(c, pa.string()) for c in columns])
            yield from _rechunk(iter(reader), schema, chunk_rows)


class JsonLinesReader(Reader):
    def _first_object(self) -> dict[str, Any]:
        import orjson

        with self.file.path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        value = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise UsageError(f"{self.file.label} line {number} is not JSON: {exc}",
                                         "inputs ending in .json/.jsonl are JSON lines: one object per line") from exc
                    if not isinstance(value, dict):
                        raise UsageError(f"{self.file.label} line {number} is not a JSON object",
                                         "a JSON lines input has one object per line, keyed by column name")
                    return value
        raise UsageError(f"{self.file.label} has no rows")

    def columns(self) -> list[str]:
        return list(self._first_object())

    def chunks(self, columns: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        with self.file.path.open("rb") as handle:
            lines = (line for line in handle if line.strip())
            for index in itertools.count():
                block = list(itertools.islice(lines, chunk_rows))
                if not block:
                    return
                if not block[-1].endswith(b"\n"):
                    block[-1] += b"\n"
                yield Chunk(index, index * chunk_rows, len(block), "jsonl", b"".join(block))


class NpyReader(Reader):
    def _array(self) -> np.ndarray:
        try:
            array: np.ndarray = np.load(self.file.path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise UsageError(f"{self.file.label} is not a plain numeric .npy array: {exc}") from exc
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise UsageError(f"{self.file.label} holds a {array.ndim}-D {array.dtype} array",
                             "an .npy input is one 2-D numeric array, a row per example")
        return array

    def columns(self) -> None:
        return None

    def width(self) -> int:
        return int(self._array().shape[1])

    def total_rows(self) -> int:
        return int(self._array().shape[0])

    def chunks(self, columns: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
        array = self._array()
        for index, start in enumerate(range(0, len(array), chunk_rows)):
            block = array[start:start + chunk_rows]  # a view of the map: read when it is scored or copied to a worker
            yield Chunk(index, start, len(block), "npy", block)


def parse_jsonl(data: bytes, columns: Sequence[str], passthrough: Sequence[str]) -> tuple[pa.Table, dict[int, str]]:
    """A JSON-lines chunk as a table, and the lines that are no JSON object (by index in the chunk).

    Arrow parses the whole chunk at once; only a chunk it refuses (a bad line, a value whose type
    changes between lines, a nested value) is parsed line by line, as text. Feature values come out
    equal either way (a float's text is its repr, which parses back to the same float), and
    passed-through columns are text on both paths, so every part of the output has one schema.
    """
    import pyarrow.json as pjson

    try:
        table = pjson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid:
        return _jsonl_by_line(data, columns)
    out: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name in columns:
        if name not in table.column_names:
            out[name] = pa.nulls(table.num_rows, pa.string())
            continue
        col = table.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_string(col.type)
                or pa.types.is_boolean(col.type) or pa.types.is_null(col.type)):
            return _jsonl_by_line(data, columns)  # lists and objects: judged line by line
        out[name] = _as_text(col) if name in passthrough else col
    return pa.table(out), {}


def _as_text(col: pa.ChunkedArray) -> pa.Array:
    """A passed-through JSON column as the text the line-by-line path gives it."""
    return pa.array([None if v is None else _text(v) for v in col.to_pylist()], pa.string())


def _jsonl_by_line(data: bytes, columns: Sequence[str]) -> tuple[pa.Table, dict[int, str]]:
    import orjson

    values: dict[str, list[str | None]] = {c: [] for c in columns}
    rejects: dict[int, str] = {}
    for i, line in enumerate(data.splitlines()):
        why: str | None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            obj, why = None, f"the line is not JSON: {exc}"
        else:
            why = None if isinstance(obj, dict) else f"the line is a JSON {type(obj).__name__}, not an object"
        for name in columns:
            value = obj.get(name) if isinstance(obj, dict) else None
            if isinstance(value, list | dict):
                why = why or f"column {name!r}: a JSON {type(value).__name__} is not a number"
                value = None
            values[name].append(None if value is None else _text(value))
        if why:
            rejects[i] = why
    return pa.table({c: pa.array(v, pa.string()) for c, v in values.items()}), rejects


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
