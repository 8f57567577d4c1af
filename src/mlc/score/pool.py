"""The worker processes of a run and the parent's side of their protocol.

Start-up: each worker is spawned with nothing but its pipe and two shared files: its slot, and
the run's setup (the model's bytes among it), written once for every worker. A large pickled
argument would make each spawn wait until the previous child had imported everything, one after
the other; this way the workers import and build their Scorers side by side, while the reader
thread reads the first chunks.

Chunks: each worker has a slot (mlc.score.slot), memory the parent and the worker share. The
parent writes a chunk into an idle worker's slot (an Arrow IPC stream: the one copy a chunk
costs) and sends a small header over the pipe; the worker reads the table in place, without
the two copies into and out of a pipe and the buffer growth of reading one.

Threads of the parent: the reader reads chunks (Arrow's readers release the GIL) and hands
each to an idle worker as soon as there is one, holding at most one chunk while it waits; the
main thread sleeps in connection.wait on the workers' pipes and the reader's bell, and is woken
by what happens, never by a timer; the committer makes finished parts durable and journals them
(see Committer). At most `workers + 1` chunks exist at once, whatever the input's size.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
import pyarrow as pa

from mlc.errors import MlcError
from mlc.score.commit import Committer, Item
from mlc.score.inputs import Chunk
from mlc.score.manifest import FileRecord, Journal, PartRecord
from mlc.score.progress import Progress
from mlc.score.slot import Slot, copy_of
from mlc.score.worker import WorkerSetup, run_worker

_STOP = -1  # handed to the reader in place of an idle worker: the run is over


class Pool:
    """Spawned worker processes; use as a context manager (they are stopped on the way out)."""

    def __init__(self, setup: WorkerSetup, workers: int, journal: Journal, progress: Progress) -> None:
        self.journal, self.progress = journal, progress
        context = multiprocessing.get_context("spawn")
        pickled = pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL)
        self._setup = Slot()  # read once by every worker, freed when the last one has
        self._setup.write(len(pickled), copy_of(pickled))
        self.conns: list[Connection] = []  # the parent's end of each worker's pipe
        self.slots: list[Slot] = []
        self.processes = []
        self._theirs: list[Connection] = []  # the workers' ends, closed here once they are started
        for i in range(workers):
            slot = Slot()
            ours, theirs = context.Pipe(duplex=True)
            self.conns.append(ours)
            self._theirs.append(theirs)
            self.slots.append(slot)
            self.processes.append(context.Process(target=run_worker,
                                                  args=(i, theirs, slot, self._setup, len(pickled)),
                                                  daemon=True, name=f"mlc-score-{i}"))
        self.idle: queue.Queue[int] = queue.Queue()  # workers waiting for a chunk, by index
        self.rss: dict[str, Any] = {"workers": []}  # peak resident bytes of each worker, as it reported
        self.scored_rows = 0
        self._bell, self._ring = multiprocessing.Pipe(duplex=False)  # the reader wakes the main thread
        self._sent = 0  # chunks the reader handed out (written by the reader thread only)
        self._read_error: BaseException | None = None
        self._stop = threading.Event()

    def __enter__(self) -> Pool:
        with _bare_main():
            for process in self.processes:
                process.start()
        for conn in self._theirs:  # each child holds its own end now; ours would hide its death
            conn.close()
        self._setup.close()
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=10)
        for conn in (*self.conns, self._bell, self._ring):
            conn.close()
        for slot in self.slots:
            slot.close()

    def run(self, items: Callable[[], Iterator[Item]]) -> None:
        """Score every chunk `items()` yields (in a reader thread); journal parts and files as they end."""
        committer = Committer(self.journal)
        reader = threading.Thread(target=self._read, args=(items, committer), name="mlc-score-reader", daemon=True)
        reader.start()
        try:
            self._serve(committer)
        except BaseException:
            self._stop_reader(reader)
            committer.close(raise_error=False)  # what finished is journaled: a rerun resumes after it
            raise
        self._stop_reader(reader)
        committer.close()

    def _serve(self, committer: Committer) -> None:
        """The main thread: answer the workers until the reader is done and every chunk is back."""
        reading, finished = True, 0
        while reading or finished < self._sent:
            for ready in wait([self._bell, *self.conns], timeout=1.0):
                if ready is self._bell:
                    self._bell.recv_bytes()
                    if self._read_error is not None:
                        raise self._read_error
                    reading = False
                    continue
                worker = self.conns.index(ready)  # type: ignore[arg-type]
                message = self._receive(worker)
                if message[0] == "done":
                    record: PartRecord = message[2]
                    committer.put(record)
                    finished += 1
                    self.scored_rows += record.rows_in
                    self.progress.advance(record.rows_in)
                self.idle.put(worker)  # after "ready" or "done"
            self._check_alive()
            if committer.error is not None:
                raise committer.error
        for conn in self.conns:
            conn.send(None)
        for worker in range(len(self.conns)):
            while (message := self._receive(worker))[0] != "exit":
                pass  # a "ready" of a worker that got no chunk
            self.rss["workers"].append(message[1])

    def _stop_reader(self, reader: threading.Thread) -> None:
        self._stop.set()
        self.idle.put(_STOP)  # a reader waiting for a worker gives up
        reader.join()

    def _receive(self, worker: int) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = self.conns[worker].recv()
        except (EOFError, OSError):
            self.processes[worker].join(timeout=5.0)
            self._check_alive()
            raise MlcError(f"scoring worker {self.processes[worker].name} stopped answering",
                           "finished parts are kept: rerun the same command to resume") from None
        if message[0] == "failed":
            where = f" on {message[1]}" if message[1] else " while loading the model"
            raise MlcError(f"a scoring worker failed{where}: {message[2]}",
                           "finished parts are kept: rerun the same command to resume (MLC_DEBUG=1 shows "
                           "the worker's traceback)")
        return message

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.exitcode not in (None, 0):
                raise MlcError(f"scoring worker {process.name} died (exit code {process.exitcode})",
                               "finished parts are kept: rerun the same command to resume; a worker killed "
                               "by the system (exit -9) may have run out of memory: use fewer --workers "
                               "or a smaller --chunk-rows")

    def _read(self, items: Callable[[], Iterator[Item]], committer: Committer) -> None:
        """The reader thread: each chunk into the slot of the next idle worker; ring the bell at the end."""
        try:
            for item in items():
                if self._stop.is_set():
                    return
                if isinstance(item, FileRecord):
                    committer.put(item)
                    continue
                worker = self.idle.get()
                if worker == _STOP:
                    return
                self._send(worker, *item)
        except BaseException as exc:  # raised again in the main thread
            self._read_error = exc
        self._ring.send_bytes(b"")

    def _send(self, worker: int, file_index: int, chunk: Chunk) -> None:
        """Write the chunk into the worker's slot and tell the worker what is there."""
        payload = chunk.payload
        layout = None
        if isinstance(payload, pa.Table):
            size = _ipc_size(payload)
            self.slots[worker].write(size, lambda view: _write_ipc(payload, view))
        elif isinstance(payload, np.ndarray):
            layout, size = (payload.dtype.str, payload.shape), payload.nbytes
            self.slots[worker].write(size, lambda view: np.copyto(
                np.frombuffer(view, dtype=payload.dtype).reshape(payload.shape), payload))
        else:
            size = len(payload)
            self.slots[worker].write(size, copy_of(payload))
        self._sent += 1
        self.conns[worker].send((file_index, chunk.index, chunk.first_row, chunk.rows, chunk.kind, layout, size))


def _ipc_size(table: pa.Table) -> int:
    sink = pa.MockOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return int(sink.size())


def _write_ipc(table: pa.Table, view: memoryview) -> None:
    sink = pa.FixedSizeBufferWriter(pa.py_buffer(view))
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    sink.close()


@contextmanager
def _bare_main() -> Iterator[None]:
    """Start spawned workers without importing this process's __main__ (the `mlc` command pulls in
    every CLI module): run_worker lives in an importable module, and a worker needs only its own
    imports. multiprocessing imports __main__ in the child only when it has a __spec__ or __file__."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main
