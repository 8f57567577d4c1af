"""Score a run's chunks in this process, with one Scorer given every core.

Worker processes pay, each, for the Python imports, the model's engines (a tree kernel's
numba start-up is over a second of CPU) and a copy of every chunk into shared memory. When
the engines use every core themselves (ONNX Runtime's intra-op threads, the tree kernel's
parallel loop over rows) and the input is parsed by Arrow's C++ readers, that work buys
nothing: one process holding one Scorer is as fast on the compute and skips it all (see
run.choose_workers for when a run takes this path).

Threads: a reader reads ahead (Arrow releases the GIL while it decodes) and holds at most
`READ_AHEAD` chunks; the calling thread scores each chunk; a writer writes the parts (Arrow's
writers release the GIL too), at most `WRITE_AHEAD` behind; the committer makes parts durable
and journals them, as for the pool. A part is journaled only once its file
is durable, so a run killed at any point resumes exactly as a pooled one does.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mlc.score.commit import Committer, Item
from mlc.score.manifest import FileRecord, Journal, PartRecord
from mlc.score.progress import Progress
from mlc.score.worker import WorkerSetup, scored_part

READ_AHEAD = 2  # chunks read while one is scored: enough to hide a read, few enough to bound memory
WRITE_AHEAD = 1  # scored chunks waiting for the writer besides the one it writes
_END = None  # the reader's last item


class InProcess:
    """The pool's interface (`run`, `rss`, `scored_rows`), without processes; a context manager."""

    def __init__(self, setup: WorkerSetup, journal: Journal, progress: Progress) -> None:
        import onnxruntime

        # A row the model fails on is rejected with ONNX Runtime's message; its log would say it again.
        onnxruntime.set_default_logger_severity(4)
        self.setup, self.journal, self.progress = setup, journal, progress
        self.scorer = setup.model.scorer(setup.threads)
        self.rss: dict[str, Any] = {"workers": []}  # no worker processes: the parent's peak is the run's
        self.scored_rows = 0

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run(self, items: Callable[[], Iterator[Item]]) -> None:
        """Score every chunk `items()` yields (read in a reader thread, written in a writer thread);
        journal parts and files as they end."""
        committer = Committer(self.journal)
        chunks: queue.Queue[Item | BaseException | None] = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()
        reader = threading.Thread(target=_read, args=(items, chunks, stop), name="mlc-score-reader", daemon=True)
        reader.start()
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="mlc-score-writer") as writer:
                writing: deque[Future[PartRecord]] = deque()
                while (item := chunks.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, FileRecord):
                        committer.put(item)
                        continue
                    writing.append(writer.submit(scored_part(self.setup, self.scorer, *item).write))
                    if len(writing) > WRITE_AHEAD:
                        self._written(writing.popleft().result(), committer)
                while writing:
                    self._written(writing.popleft().result(), committer)
        except BaseException:
            _stop_reader(reader, chunks, stop)
            committer.close(raise_error=False)  # what finished is journaled: a rerun resumes after it
            raise
        reader.join()
        committer.close()

    def _written(self, record: PartRecord, committer: Committer) -> None:
        committer.put(record)
        self.scored_rows += record.rows_in
        self.progress.advance(record.rows_in)
        if committer.error is not None:
            raise committer.error


def _read(items: Callable[[], Iterator[Item]], chunks: queue.Queue[Item | BaseException | None],
          stop: threading.Event) -> None:
    """The reader thread: every item into the bounded queue, then the end (or what went wrong)."""
    try:
        for item in items():
            chunks.put(item)
            if stop.is_set():
                return
    except BaseException as exc:  # raised again in the scoring thread
        chunks.put(exc)
        return
    chunks.put(_END)


def _stop_reader(reader: threading.Thread, chunks: queue.Queue[Any], stop: threading.Event) -> None:
    """Make a reader blocked on the full queue finish its put, see `stop`, and end."""
    stop.set()
    while reader.is_alive():
        with contextlib.suppress(queue.Empty):
            chunks.get(timeout=0.1)
    reader.join()
