"""Writing a run's parts and rejects: one file per chunk, each written whole or not at all.

Parts are named by input file and chunk (part-FFFFF-CCCCCC.EXT), so their name order is the
input's row order and a reader of the folder (pyarrow.dataset, Spark, pandas) sees the rows in
order; files starting with "_" (manifest, summary, rejects) are skipped by those readers.

Whoever writes a part (a worker process, or the in-process runner's writer thread) writes it
under a temporary name and renames it (`publish`), so a reader, or a run killed with -9, never
sees half a file. It does not fsync: the committer makes a group of finished files durable at
once (`make_durable`: each file, then their folders) before it journals them, which keeps the
scoring cores scoring instead of waiting on the disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlc.files import fsync_path
from mlc.score.formats import OUTPUT_FORMATS

_EXTENSIONS = {fmt: fmt for fmt in OUTPUT_FORMATS}
TMP_PREFIX = ".tmp-"  # files being written; a new run removes those a killed one left


def part_name(file_index: int, chunk_index: int, fmt: str) -> str:
    return f"part-{file_index:05d}-{chunk_index:06d}.{_EXTENSIONS[fmt]}"


def output_table(passthrough: pa.Table | pa.RecordBatch | None, columns: list[tuple[str, np.ndarray]]) -> pa.Table:
    """The passed-through columns (already cut to the scored rows) followed by the model's outputs."""
    arrays: dict[str, Any] = {}
    if passthrough is not None:
        for name in passthrough.column_names:
            arrays[name] = passthrough.column(name)
    for name, values in columns:
        arrays[name] = arrow(values)
    return pa.table(arrays)


def arrow(values: np.ndarray) -> pa.Array:
    """A 1-D numpy array as an Arrow array: numbers without a copy, read from their buffer (pa.array
    imports pandas, a third of a second of every worker's start-up); anything else through pa.array."""
    if values.ndim == 1 and values.dtype.kind in "iuf" and values.dtype.isnative:
        values = np.ascontiguousarray(values)
        return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])
    return pa.array(values)


def write_part(path: Path, table: pa.Table, fmt: str) -> None:
    """A table as one output file, streamed to disk (never held whole as bytes), published at `path`."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # Dictionaries pay for labels, ids and text; for floating-point scores, which hardly
        # repeat, they cost most of the encoding time and make the file larger.
        dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
        publish(path, lambda tmp: pq.write_table(table, str(tmp), use_dictionary=dictionary))
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        publish(path, lambda tmp: pcsv.write_csv(table, str(tmp)))
    else:
        data = json_lines(table.to_pylist())
        publish(path, lambda tmp: tmp.write_bytes(data))


def json_lines(records: Sequence[dict[str, Any]]) -> bytes:
    import orjson

    return b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE) for r in records)


def write_bytes(path: Path, data: bytes) -> None:
    publish(path, lambda tmp: tmp.write_bytes(data))


def publish(path: Path, write: Callable[[Path], object]) -> None:
    """`write` fills a temporary file beside `path`, which is then renamed to it: `path` is absent,
    old or complete. Not fsynced (see make_durable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_durable(folder: Path, names: Iterable[str]) -> None:
    """fsync each file (a name relative to `folder`), then once each folder holding them and
    `folder` itself (their renames, and a subfolder's entry): what a journal line may promise.
    A file the kernel already wrote back costs little."""
    folders: dict[Path, None] = {}
    for name in names:
        path = folder / name
        fsync_path(path)
        folders[path.parent] = None
    folders[folder] = None
    for path in folders:
        fsync_path(path)
