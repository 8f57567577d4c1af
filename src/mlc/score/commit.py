"""Group commit of a run's finished parts, shared by the worker pool and the in-process runner."""

from __future__ import annotations

import queue
import threading

from mlc.score.inputs import Chunk
from mlc.score.manifest import FileRecord, Journal, PartRecord
from mlc.score.outputs import make_durable

# What a run's reader yields: a chunk (with its input file's index) to score, or an input file read through.
Item = tuple[int, Chunk] | FileRecord


class Committer:
    """A thread that makes finished parts durable and only then journals them (group commit).

    Workers write and rename their files without fsync. The committer takes every part finished
    since its last round, fsyncs their files and, once, their folders, writes their journal lines
    and fsyncs the journal once: two fsyncs per group instead of three per part, and none on a
    worker's or the dispatcher's time. Input files read through are journaled here too: one writer.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.error: BaseException | None = None
        self._queue: queue.Queue[PartRecord | FileRecord | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mlc-score-committer", daemon=True)
        self._thread.start()

    def put(self, record: PartRecord | FileRecord) -> None:
        self._queue.put(record)

    def close(self, raise_error: bool = True) -> None:
        """Commit what is queued, stop, and raise what went wrong in the thread."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None and raise_error:
            raise self.error

    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                group = [self._queue.get()]
                while True:
                    try:
                        group.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = None in group
                self._commit([r for r in group if r is not None])
        except BaseException as exc:  # raised again by close() in the main thread
            self.error = exc

    def _commit(self, group: list[PartRecord | FileRecord]) -> None:
        if not group:
            return
        written = [(r.part if r.rows_out else None, r.rejects) if isinstance(r, PartRecord) else (r.rejects,)
                   for r in group]
        make_durable(self.journal.path.parent, [name for names in written for name in names if name])
        for record in group:
            if isinstance(record, PartRecord):
                self.journal.record_part(record)
            elif record.file not in self.journal.files:
                self.journal.record_file(record)
        self.journal.sync()
