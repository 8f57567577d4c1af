"""The future that DynamicBatcher.submit returns: a concurrent.futures.Future with less Python.

With many threads submitting one-row requests, the standard Future is most of the batcher's
cost: each one builds a threading.Condition (an RLock and two lists), and result() waits through
Condition.wait, which allocates a lock per call and runs a page of Python while the waiting
thread holds the GIL; about 5 µs per request before the model runs. Here the futures of one
batcher share one condition, which is only ever held (for the state changes that
concurrent.futures.wait and add_done_callback expect to be atomic), never waited on, and each
future waits on a plain lock, taken at creation and released once it is done; a released lock
wakes exactly the waiting thread.

A batcher worker changes the state of a whole batch of futures under one hold of the shared
condition (start_held in its loop, then settle_batch) instead of one hold per future and per
change; with 64 threads contending for the GIL that is a visible part of each request.

It is a real Future: isinstance checks, add_done_callback, asyncio.wrap_future,
concurrent.futures.wait and as_completed, cancel() and set_running_or_notify_cancel() behave
as documented for concurrent.futures.Future.
"""

from __future__ import annotations

import _thread
import threading
from concurrent.futures import CancelledError, Future, InvalidStateError, TimeoutError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any


class BatchFuture(Future):
    """A Future completed by a DynamicBatcher worker (see the module docstring)."""

    def __init__(self, condition: threading.Condition) -> None:
        # Future.__init__ is skipped on purpose: it builds the per-future Condition avoided here.
        self._condition = condition  # shared by the batcher's futures: held, never waited on
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []
        self._done = _thread.allocate_lock()  # held until the future is done
        self._done.acquire()

    def _wait(self, timeout: float | None) -> None:
        """Block until done; a woken waiter releases the lock again for the next one."""
        if self._done.acquire(True, -1 if timeout is None else max(timeout, 0.0)):
            self._done.release()

    def result(self, timeout: float | None = None) -> Any:
        if self._state != FINISHED:
            self._wait(timeout)
        state = self._state
        if state == FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result
        if state in (CANCELLED, CANCELLED_AND_NOTIFIED):
            raise CancelledError()
        raise TimeoutError()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state != FINISHED:
            self._wait(timeout)
        state = self._state
        if state == FINISHED:
            return self._exception
        if state in (CANCELLED, CANCELLED_AND_NOTIFIED):
            raise CancelledError()
        raise TimeoutError()

    def set_result(self, result: Any) -> None:
        self._finish(result, None)

    def set_exception(self, exception: BaseException | None) -> None:
        self._finish(None, exception)

    def _finish(self, result: Any, exception: BaseException | None) -> None:
        with self._condition:
            self._finish_held(result, exception)
        self._wake()

    def _finish_held(self, result: Any, exception: BaseException | None) -> None:
        """The state change of set_result / set_exception; the caller holds the condition."""
        if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED):
            raise InvalidStateError(f"{self._state}: {self!r}")
        self._result, self._exception = result, exception
        self._state = FINISHED
        for waiter in self._waiters:
            if exception is None:
                waiter.add_result(self)
            else:
                waiter.add_exception(self)

    def _wake(self) -> None:
        """After _finish_held, outside the condition: wake the waiting thread, run callbacks."""
        self._done.release()
        if self._done_callbacks:  # no callback can be added once the state is FINISHED
            self._invoke_callbacks()  # type: ignore[attr-defined]  # Future's own; typeshed omits private methods

    def start_held(self) -> bool:
        """set_running_or_notify_cancel for a caller that holds the condition already."""
        if self._state == PENDING:
            self._state = RUNNING
            return True
        if self._state == CANCELLED:
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            return False
        raise RuntimeError(f"Future in unexpected state: {self._state}")

    def cancel(self) -> bool:
        with self._condition:
            if self._state in (RUNNING, FINISHED):
                return False
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                return True
            self._state = CANCELLED
        self._done.release()
        self._invoke_callbacks()  # type: ignore[attr-defined]  # as in _wake
        return True


def settle_batch(condition: threading.Condition, futures: list[BatchFuture], results: list[Any],
                 error: BaseException | None) -> None:
    """set_result (or set_exception(error) for all) on futures that share `condition`, holding
    it once; then wake each waiting thread, also those settled before one that raised."""
    settled: list[BatchFuture] = []
    try:
        with condition:
            for future, result in zip(futures, results, strict=True):
                future._finish_held(result if error is None else None, error)
                settled.append(future)
    finally:
        for future in settled:
            future._wake()
