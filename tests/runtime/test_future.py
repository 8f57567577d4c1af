"""BatchFuture keeps every promise of concurrent.futures.Future that callers rely on."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from collections.abc import Callable

import pytest

from mlc.runtime.future import BatchFuture, settle_batch


@pytest.fixture
def make() -> Callable[[], BatchFuture]:
    condition = threading.Condition()
    return lambda: BatchFuture(condition)


def _later(fn, delay: float = 0.05) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), fn()))
    thread.start()
    return thread


def test_result_waits_for_another_thread(make) -> None:
    future = make()
    assert isinstance(future, cf.Future) and not future.done()
    assert future.set_running_or_notify_cancel()
    thread = _later(lambda: future.set_result(42))
    assert future.result(timeout=10) == 42
    thread.join()
    assert future.done() and not future.cancelled() and future.exception() is None


def test_every_waiting_thread_wakes(make) -> None:
    future = make()
    got: list = []
    waiters = [threading.Thread(target=lambda: got.append(future.result(timeout=10))) for _ in range(5)]
    for w in waiters:
        w.start()
    time.sleep(0.05)
    future.set_result("x")
    for w in waiters:
        w.join(10)
    assert got == ["x"] * 5


def test_timeout_and_exceptions(make) -> None:
    future = make()
    started = time.perf_counter()
    with pytest.raises(cf.TimeoutError):
        future.result(timeout=0.05)
    assert time.perf_counter() - started >= 0.04
    with pytest.raises(cf.TimeoutError):
        future.exception(timeout=0)
    error = ValueError("boom")
    future.set_exception(error)
    with pytest.raises(ValueError, match="boom"):
        future.result()
    assert future.exception() is error
    with pytest.raises(cf.InvalidStateError):
        future.set_result(1)


def test_cancel_wakes_waiters_and_is_final(make) -> None:
    future = make()
    outcome: list = []

    def wait() -> None:
        try:
            future.result(timeout=10)
        except cf.CancelledError:
            outcome.append("cancelled")

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    assert future.cancel() and future.cancel()  # cancelling twice is still True
    waiter.join(10)
    assert outcome == ["cancelled"]
    assert not future.set_running_or_notify_cancel()
    with pytest.raises(cf.InvalidStateError):
        future.set_result(1)
    running = make()
    assert running.set_running_or_notify_cancel()
    assert not running.cancel()


def test_callbacks_run_once_whenever_added(make) -> None:
    future = make()
    calls: list = []
    future.add_done_callback(lambda f: calls.append(("before", f.result())))
    future.set_result(7)
    future.add_done_callback(lambda f: calls.append(("after", f.result())))
    assert calls == [("before", 7), ("after", 7)]


def test_wait_and_as_completed(make) -> None:
    futures = [make() for _ in range(20)]
    threads = [_later(lambda f=f, i=i: f.set_result(i), delay=0.001 * i) for i, f in enumerate(futures)]
    first, _ = cf.wait(futures, timeout=10, return_when=cf.FIRST_COMPLETED)
    assert first
    done, pending = cf.wait(futures, timeout=10)
    assert len(done) == 20 and not pending
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=10)) == list(range(20))
    errors = [make() for _ in range(3)]
    errors[1].set_exception(RuntimeError("x"))
    done, _ = cf.wait(errors, timeout=10, return_when=cf.FIRST_EXCEPTION)
    assert done == {errors[1]}
    for t in threads:
        t.join()


def test_asyncio_wrap_future(make) -> None:
    future = make()

    async def main() -> int:
        _later(lambda: future.set_result(3))
        return await asyncio.wrap_future(future)

    assert asyncio.run(main()) == 3


def test_batch_state_changes_keep_the_future_contract() -> None:
    condition = threading.Condition()
    futures = [BatchFuture(condition) for _ in range(6)]
    calls: list = []
    futures[0].add_done_callback(lambda f: calls.append(f.result()))
    assert futures[5].cancel()
    watched: list = []
    watcher = threading.Thread(target=lambda: watched.append(cf.wait(futures, timeout=10)))
    waiter = threading.Thread(target=lambda: watched.append(futures[1].result(timeout=10)))
    watcher.start()
    waiter.start()
    time.sleep(0.05)
    with condition:
        started = [f.start_held() for f in futures]
    assert started == [True] * 5 + [False]
    assert all(f.running() for f in futures[:5]) and not futures[0].cancel()
    with condition, pytest.raises(RuntimeError):
        futures[0].start_held()
    error = ValueError("boom")
    settle_batch(condition, futures[:3], ["a", "b", "c"], None)
    settle_batch(condition, futures[3:5], [None, None], error)
    watcher.join(10)
    waiter.join(10)
    assert [f.result() for f in futures[:3]] == ["a", "b", "c"] and calls == ["a"]
    assert futures[3].exception() is error and futures[4].exception() is error
    with pytest.raises(cf.CancelledError):
        futures[5].result()
    done, pending = watched[0] if isinstance(watched[0], tuple) else watched[1]
    assert len(done) == 6 and not pending
    assert "b" in watched
    late = BatchFuture(condition)
    with pytest.raises(cf.InvalidStateError):  # a settled future refuses; the one before it still wakes
        settle_batch(condition, [late, futures[0]], ["late", "again"], None)
    assert late.result(timeout=1) == "late" and futures[0].result() == "a"
