"""A scoring worker process: builds its Scorer once, then turns chunks into part files.

Workers are spawned, not forked (ONNX Runtime's and Arrow's thread pools do not survive a
fork). Each reads its chunks in place from its slot (mlc.score.slot, memory shared with the
parent), writes its own parts and rejects, and tells the parent what it wrote; the heavy
bytes never travel through a pipe. A worker whose parent died (killed with -9) notices within
a second and exits instead of lingering.
"""

from __future__ import annotations

import os
import pickle
import resource
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlc.score.columns import ColumnPlan
from mlc.score.inputs import Chunk, parse_jsonl
from mlc.score.manifest import PartRecord
from mlc.score.model import ScoringModel
from mlc.score.outputs import arrow, json_lines, output_table, part_name, write_bytes, write_part
from mlc.score.scoring import score_chunk

if TYPE_CHECKING:
    from mlc.runtime.scorer import Scorer
    from mlc.score.slot import Slot

REJECTS_DIR = "_rejects"


@dataclass(frozen=True)
class WorkerSetup:
    model: ScoringModel
    threads: int
    out: Path
    format: str
    columns: tuple[ColumnPlan, ...]  # per input file
    labels: tuple[str, ...]  # per input file, as rejects name it
    parent: int  # the parent's pid: a worker outliving it exits


def run_worker(index: int, conn: Connection, slot: Slot, shared_setup: Slot, setup_size: int) -> None:
    """Entry point of a spawned worker. Its setup (a pickled WorkerSetup) waits in `shared_setup`, so
    that spawning sends almost nothing and the workers start side by side. Then on `conn`: ("ready",
    index), a ("done", index, record) per chunk, ("exit", peak rss); a chunk arrives as a header
    naming what `slot` holds, None ends."""
    import onnxruntime

    # A row the model fails on is rejected with ONNX Runtime's message; its log would say it again.
    onnxruntime.set_default_logger_severity(4)
    try:
        with shared_setup.read(setup_size) as pickled:
            setup: WorkerSetup = pickle.loads(pickled)
        shared_setup.close()
        scorer = setup.model.scorer(setup.threads)
    except Exception as exc:
        conn.send(("failed", None, _describe(exc)))
        return
    conn.send(("ready", index))
    pool = pa.default_memory_pool()
    while True:
        try:
            if not conn.poll(1.0):
                if os.getppid() != setup.parent:
                    return  # orphaned: the parent was killed
                continue
            header = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if header is None:
            break
        file_index, chunk_index, first_row, rows, kind, layout, size = header
        chunk = Chunk(chunk_index, first_row, rows, kind, _payload(slot, kind, layout, size))
        try:
            record = score_part(setup, scorer, file_index, chunk)
        except Exception as exc:
            conn.send(("failed", part_name(file_index, chunk.index, setup.format), _describe(exc)))
            return
        del chunk  # nothing may read the slot once the parent hears "done": it writes the next chunk there
        conn.send(("done", index, record))
        pool.release_unused()  # the chunk's Arrow buffers back to the system: memory stays flat over many chunks
    conn.send(("exit", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def _payload(slot: Slot, kind: str, layout: Any, size: int) -> pa.Table | bytes | np.ndarray:
    """What the parent wrote in the slot: a table read in place (no copy), the lines, or the array."""
    view = slot.read(size)
    if kind == "arrow":
        return pa.ipc.open_stream(pa.py_buffer(view)).read_all()
    if kind == "npy":  # the bytes of a C-contiguous array
        dtype, shape = layout
        return np.frombuffer(view, dtype=np.dtype(dtype)).reshape(shape)
    return bytes(view)


def _describe(exc: Exception) -> str:
    if os.environ.get("MLC_DEBUG"):
        return "".join(traceback.format_exception(exc))
    return f"{type(exc).__name__}: {exc}"


def score_part(setup: WorkerSetup, scorer: Scorer, file_index: int, chunk: Chunk) -> PartRecord:
    """Score one chunk and write its part (and rejects, if any); the journal line it earns."""
    return scored_part(setup, scorer, file_index, chunk).write()


@dataclass
class ScoredPart:
    """A chunk scored and its files not yet written: the in-process runner writes them in another thread."""

    setup: WorkerSetup
    record: PartRecord  # the journal line, once written
    table: pa.Table | None  # the part's rows; None when every row was rejected
    rejects: list[dict[str, Any]]

    def write(self) -> PartRecord:
        if self.rejects:
            assert self.record.rejects is not None
            write_bytes(self.setup.out / self.record.rejects, json_lines(self.rejects))
        if self.table is not None:
            write_part(self.setup.out / self.record.part, self.table, self.setup.format)
        return self.record


def scored_part(setup: WorkerSetup, scorer: Scorer, file_index: int, chunk: Chunk) -> ScoredPart:
    """Score one chunk: its part's table, its rejects and its journal line, nothing written yet."""
    plan = setup.columns[file_index]
    data: pa.Table | np.ndarray
    line_rejects: dict[int, str] = {}
    if isinstance(chunk.payload, bytes):  # JSON lines
        data, line_rejects = parse_jsonl(chunk.payload, plan.read, plan.passthrough)
    else:
        data = chunk.payload
    scored = score_chunk(scorer, data, plan.features, setup.model.signature.classes, rejected=line_rejects)
    name = part_name(file_index, chunk.index, setup.format)
    rejects_name, rejects = None, []
    if scored.rejects:
        rejects_name = f"{REJECTS_DIR}/{Path(name).stem}.jsonl"
        rejects = _rejects(setup.labels[file_index], chunk, data, scored.rejects)
    rows_out = int(scored.scored.sum())
    table = None
    if rows_out:
        passthrough = None
        if plan.passthrough and isinstance(data, pa.Table):
            passthrough = data.select(list(plan.passthrough))
            if rows_out < chunk.rows:
                passthrough = passthrough.take(arrow(np.flatnonzero(scored.scored)))
        table = output_table(passthrough, scored.outputs)
    record = PartRecord(part=name, file=file_index, chunk=chunk.index, rows_in=chunk.rows, rows_out=rows_out,
                        rejected=len(scored.rejects), rejects=rejects_name)
    return ScoredPart(setup, record, table, rejects)


def _rejects(label: str, chunk: Chunk, data: pa.Table | np.ndarray, reasons: dict[int, str]) -> list[dict[str, Any]]:
    """One record per rejected row: where it came from, why, and what it held."""
    lines = chunk.payload.splitlines() if isinstance(chunk.payload, bytes) else None
    records = []
    for i in sorted(reasons):
        record: dict[str, Any] = {"file": label, "row": chunk.first_row + i, "reason": reasons[i]}
        if lines is not None:
            record["text"] = lines[i].decode("utf-8", "replace")
        elif isinstance(data, np.ndarray):
            record["values"] = data[i].tolist()
        else:
            record["values"] = data.slice(i, 1).to_pylist()[0]
        records.append(record)
    return records
