"""How chunks and results move: the shared slot, the journal's torn tail, and a worker's imports."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from mlc.registry import Registry
from mlc.score import ScoreOptions, score_files
from mlc.score.manifest import MANIFEST, Journal, PartRecord
from mlc.score.slot import Slot, copy_of
from tests.score.conftest import Models, read_parts


def _echo_digests(conn: Connection, slot: Slot) -> None:
    """A spawned child: the sha256 of each (size) the parent announces, read in place from the slot."""
    while (size := conn.recv()) is not None:
        with slot.read(size) as view:
            conn.send(hashlib.sha256(view).hexdigest())


def test_a_slot_reaches_a_spawned_child_and_grows_with_what_is_written() -> None:
    context = multiprocessing.get_context("spawn")
    slot = Slot()
    ours, theirs = context.Pipe()
    child = context.Process(target=_echo_digests, args=(theirs, slot), daemon=True)
    child.start()
    theirs.close()
    try:
        for size in (10, 5_000_000, 3, 12_000_000):  # grows, shrinks within its size, grows again
            data = bytes([size % 251]) * size
            slot.write(size, copy_of(data))
            ours.send(size)
            assert ours.recv() == hashlib.sha256(data).hexdigest()
        ours.send(None)
        child.join(timeout=30)
        assert child.exitcode == 0
    finally:
        slot.close()
        if child.is_alive():
            child.terminate()


def test_the_journal_is_cut_at_its_first_torn_line(tmp_path: Path) -> None:
    header = {"model": "m:1"}
    record = PartRecord(part="part-00000-000000.parquet", file=0, chunk=0, rows_in=3, rows_out=3, rejected=0,
                        rejects=None)
    with Journal(tmp_path, header) as journal:
        journal.record_part(record)
        journal.sync()
    path = tmp_path / MANIFEST
    whole = path.read_bytes()
    # A crash between two fsyncs can leave garbage, then more lines, at the end of a journal.
    path.write_bytes(whole + b'\x00\x00{"part":\n' + json.dumps({"file": 0}).encode() + b"\n")
    with Journal(tmp_path, header) as resumed:
        assert list(resumed.parts.values()) == [record] and not resumed.files
    assert path.read_bytes() == whole


def test_a_worker_scores_and_writes_a_chunk_without_importing_pandas(tmp_path: Path) -> None:
    """pyarrow's numpy conversions (pa.array, Array.to_numpy) import pandas where it is installed: a
    third of a second of every worker's start-up. A worker's path avoids them."""
    script = f"""
import sys
from pathlib import Path
import numpy as np
import pyarrow as pa
from mlc.score.features import to_features
from mlc.score.outputs import arrow, output_table, write_part

batch = pa.RecordBatch.from_arrays([arrow(np.arange(4, dtype=np.float32)), arrow(np.arange(4))], ["x", "id"])
sink = pa.BufferOutputStream()
with pa.ipc.new_stream(sink, batch.schema) as writer:
    writer.write_batch(batch)
table = pa.ipc.open_stream(sink.getvalue()).read_all()
x, rejects = to_features(table, ["x", "id"], np.dtype(np.float32))
assert x.shape == (4, 2) and not rejects
kept = table.select(["id"]).take(arrow(np.array([0, 2])))
out = output_table(kept, [("label", np.array([1, 0])), ("probabilities_1", np.array([0.5, 0.25], np.float32))])
for fmt in ("parquet", "csv"):
    write_part(Path(r"{tmp_path}") / ("part." + fmt), out, fmt)
print("pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_an_npy_input_in_fortran_order_scores_as_in_c_order(models: Models, registry: Registry,
                                                            tmp_path: Path) -> None:
    """Chunks of an .npy are copied into a worker's slot in C order whatever the file's order."""
    x = np.random.default_rng(5).normal(size=(90, 4)).astype(np.float32)
    np.save(tmp_path / "in.npy", np.asfortranarray(x))
    summary = score_files("logreg", [tmp_path / "in.npy"], tmp_path / "out", ScoreOptions(chunk_rows=40, workers=2),
                          registry=registry)
    assert summary.rows_out == 90
    np.testing.assert_array_equal(read_parts(tmp_path / "out")["label"], models.logreg.predict(x))
