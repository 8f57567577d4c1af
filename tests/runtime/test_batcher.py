"""The dynamic batcher: Triton's batching rules, per-request results, isolation, shutdown."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError, Future

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlc.errors import InvalidInputError, MlcError, QueueFullError, UsageError
from mlc.runtime.batcher import DynamicBatcher
from mlc.runtime.scorer import Scorer
from mlc.runtime.session import SessionConfig

POISON = -1.0  # a batch holding this value makes Recorder raise
LONG = 30_000_000  # a queue delay (us) no test waits out: dispatch must come from another rule


class Recorder:
    """A batch function that echoes its rows, records each batch, and can be held or poisoned."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[np.ndarray] = []
        self.entered = threading.Event()  # set when a held call has started
        self.release = threading.Event()  # a held call returns once this is set
        self._hold = hold_first
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            self.batches.append(x.copy())
            hold, self._hold = self._hold, False
        if hold:
            self.entered.set()
            self.release.wait(10)
        if (x == POISON).any():
            raise RuntimeError("poisoned batch")
        return {"echo": x.copy(), "first": x.reshape(len(x), -1)[:, 0].copy()}


def rows(n: int, value: float, width: int = 3, dtype=np.float32) -> np.ndarray:
    return np.full((n, width), value, dtype=dtype)


class ManualClock:
    """Time that moves only when the test sets it; a batcher waiting on it wakes when it does.

    Deadlines are then judged on this clock alone: on a busy machine a wall-clock test of
    "runs once the delay has passed, not much later" measured the machine, not the batcher.
    """

    def __init__(self) -> None:
        self.t = 0.0
        self._waiting: set[threading.Condition] = set()
        self._sleeps = 0  # times a worker went to wait: each after looking at the queue
        self._slept = threading.Condition()

    def now(self) -> float:
        return self.t

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        self._waiting.add(condition)
        with self._slept:
            self._sleeps += 1
            self._slept.notify_all()
        condition.wait()  # only a submit, close() or set() wakes it: no wall-clock timeout

    def sleeps(self) -> int:
        with self._slept:
            return self._sleeps

    def until_asleep(self, after: int) -> None:
        """Block until a worker has gone to wait more than `after` times: it has seen the queue as it is."""
        with self._slept:
            assert self._slept.wait_for(lambda: self._sleeps > after, timeout=10)

    def set(self, t: float) -> None:
        """Move the time to `t` (no sums of steps: 0.099 + 0.001 is not 0.1 in floats) and wake the workers."""
        self.t = t
        for condition in list(self._waiting):
            with condition:
                condition.notify_all()


def still_waiting(clock: ManualClock, *futures: Future) -> bool:
    """None of the futures has run, once a worker has looked at the queue at the clock's time."""
    seen = clock.sleeps()
    clock.set(clock.t)  # wakes a waiting worker: it looks, finds nothing due, waits again
    clock.until_asleep(seen)
    return not any(f.done() for f in futures)


def test_concurrent_requests_each_get_exactly_their_rows(forest):
    scorer = Scorer(forest.onnx, runtime_plan={"session": SessionConfig(intra_op_threads=1).to_dict()})
    rng = np.random.default_rng(7)
    plan = [[(int(rng.integers(0, 52)), int(rng.integers(1, 9))) for _ in range(150)] for _ in range(16)]
    failures: list[str] = []
    with DynamicBatcher(scorer, max_batch_size=32, max_queue_delay_us=300, max_queue_rows=10_000,
                        instances=2) as batcher:

        def client(requests: list[tuple[int, int]]) -> None:
            try:
                check(requests)
            except Exception as exc:
                failures.append(repr(exc))

        def check(requests: list[tuple[int, int]]) -> None:
            futures = [batcher.submit(forest.X[s:s + n]) for s, n in requests[:75]]
            for s, n in requests[75:]:  # half pipelined, half one at a time
                futures.append(batcher.submit(forest.X[s:s + n]))
                futures[-1].result()
            for (s, n), future in zip(requests, futures, strict=True):
                got, want = future.result(), scorer.predict(forest.X[s:s + n])
                if not (np.array_equal(got["label"], want["label"])
                        and np.allclose(got["probabilities"], want["probabilities"], rtol=1e-6)):
                    failures.append(f"rows {s}:{s + n}")

        threads = [threading.Thread(target=client, args=(p,)) for p in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = batcher.stats()
    assert not failures
    assert stats.requests == 16 * 150 and stats.rows == sum(n for p in plan for _, n in p)
    assert max(stats.batch_rows) <= 32 and stats.batches < stats.requests  # it did batch


@settings(deadline=None, max_examples=40)
@given(counts=st.lists(st.integers(1, 6), min_size=1, max_size=40), max_batch=st.integers(6, 16))
def test_batches_keep_arrival_order_and_never_exceed_max(counts, max_batch):
    model = Recorder()
    requests = [rows(n, i) for i, n in enumerate(counts)]
    with DynamicBatcher(model, max_batch_size=max_batch, max_queue_delay_us=200) as batcher:
        futures = [batcher.submit(x) for x in requests]
        results = [f.result(timeout=10) for f in futures]
    for x, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["echo"], x)
        np.testing.assert_array_equal(result["first"], x[:, 0])
    np.testing.assert_array_equal(np.concatenate(model.batches), np.concatenate(requests))  # FIFO
    assert all(len(b) <= max_batch for b in model.batches)


def test_lone_request_waits_the_queue_delay_and_runs_when_it_has_passed():
    clock = ManualClock()
    with DynamicBatcher(Recorder(), max_queue_delay_us=100_000, clock=clock) as batcher:
        future = batcher.submit(rows(1, 0))
        clock.set(0.099)
        assert still_waiting(clock, future)
        clock.set(0.1)
        future.result(timeout=10)  # the deadline alone runs it: nothing else was submitted


def test_delay_runs_from_the_oldest_request():
    """MLServer #1936: the deadline is the oldest arrival + the delay, not restarted by later requests."""
    model = Recorder()
    clock = ManualClock()
    with DynamicBatcher(model, max_queue_delay_us=1_000_000, clock=clock) as batcher:
        first = batcher.submit(rows(1, 1))
        clock.set(0.2)
        second = batcher.submit(rows(1, 2))
        clock.set(0.999)
        assert still_waiting(clock, first, second)
        clock.set(1.0)  # the first's deadline; the second's is 0.2 s away
        first.result(timeout=10)
        second.result(timeout=10)
    assert len(model.batches) == 1  # the second joined the first's batch and did not move its deadline


def test_full_batch_runs_at_once():
    model = Recorder()
    with DynamicBatcher(model, max_batch_size=8, max_queue_delay_us=LONG) as batcher:
        futures = [batcher.submit(rows(2, i)) for i in range(4)]
        for f in futures:
            f.result(timeout=10)
        assert batcher.stats().batch_rows == {8: 1}


def test_batch_that_cannot_grow_runs_at_once():
    """6 of 8 rows queued and the next request has 3: the 6 go now, the 3 wait for company."""
    model = Recorder()
    with DynamicBatcher(model, max_batch_size=8, max_queue_delay_us=LONG) as batcher:
        futures = [batcher.submit(rows(n, i)) for i, n in enumerate((3, 3, 3))]
        futures[0].result(timeout=10)
        futures[1].result(timeout=10)
        assert not futures[2].done()
        batcher.close()
        futures[2].result(timeout=10)
    assert [len(b) for b in model.batches] == [6, 3]


def test_preferred_size_runs_at_once():
    model = Recorder()
    clock = ManualClock()
    with DynamicBatcher(model, max_batch_size=64, preferred_batch_sizes=(4, 16), max_queue_delay_us=LONG,
                        clock=clock) as batcher:
        futures = [batcher.submit(rows(1, i)) for i in range(4)]
        for f in futures:
            f.result(timeout=10)
        straggler = batcher.submit(rows(3, 9))
        assert still_waiting(clock, straggler)  # 3 rows: no preferred size, no full batch, delay not over
    assert straggler.result(timeout=10)["echo"].shape == (3, 3)  # close() ran it
    assert [len(b) for b in model.batches] == [4, 3]


def test_full_queue_refuses_at_once_and_oversized_requests_are_invalid():
    model = Recorder(hold_first=True)
    batcher = DynamicBatcher(model, max_batch_size=2, max_queue_delay_us=0, max_queue_rows=4)
    try:
        running = batcher.submit(rows(1, 0))
        assert model.entered.wait(10)
        queued = [batcher.submit(rows(2, 1)), batcher.submit(rows(2, 2))]
        with pytest.raises(QueueFullError, match="4 of 4 rows"):
            batcher.submit(rows(1, 3))
        with pytest.raises(InvalidInputError, match="1 to 2 per request"):
            batcher.submit(rows(3, 4))
        assert batcher.stats().rejected == 1 and batcher.stats().queue_rows == 4
        model.release.set()
        for f in (running, *queued):
            f.result(timeout=10)
    finally:
        model.release.set()
        batcher.close()


def test_requests_of_different_shapes_or_dtypes_never_share_a_batch():
    model = Recorder()
    kinds = [(3, np.float32), (5, np.float32), (3, np.float64), (3, np.int64)]
    results: list[tuple[np.ndarray, dict]] = []
    with DynamicBatcher(model, max_batch_size=16, max_queue_delay_us=2000) as batcher:

        def client(width: int, dtype: type) -> None:
            for i in range(40):
                x = rows(1 + i % 3, i, width, dtype)
                results.append((x, batcher.submit(x).result(timeout=10)))

        threads = [threading.Thread(target=client, args=k) for k in kinds for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for x, result in results:
        assert result["echo"].dtype == x.dtype
        np.testing.assert_array_equal(result["echo"], x)
    assert len(results) == 8 * 40
    assert {(b.shape[1:], b.dtype) for b in model.batches} == {((w,), np.dtype(d)) for w, d in kinds}


def test_model_error_fails_only_its_batch():
    model = Recorder(hold_first=True)
    with DynamicBatcher(model, max_batch_size=2, max_queue_delay_us=LONG) as batcher:
        first = batcher.submit(rows(2, 0))
        assert model.entered.wait(10)
        doomed = [batcher.submit(rows(1, 1)), batcher.submit(rows(1, POISON))]
        fine = [batcher.submit(rows(1, 2)), batcher.submit(rows(1, 3))]
        model.release.set()
        first.result(timeout=10)
        for f in doomed:
            with pytest.raises(RuntimeError, match="poisoned"):
                f.result(timeout=10)
        for f in fine:
            f.result(timeout=10)
        after = batcher.submit(rows(2, 4))  # the batcher keeps going
        after.result(timeout=10)
        assert batcher.stats().failed_batches == 1


def test_output_without_one_row_per_input_row_fails_loudly():
    """MLServer #1306: a model returning other row counts must not hand out empty answers."""
    with DynamicBatcher(lambda x: {"y": x[:1]}, max_batch_size=3, max_queue_delay_us=LONG) as batcher:
        futures = [batcher.submit(rows(1, i)) for i in range(3)]
        for f in futures:
            with pytest.raises(MlcError, match="one output row per input row") as info:
                f.result(timeout=10)
            assert info.value.http_status == 500  # the model's fault: a server error, not the client's


def test_cancelled_request_never_runs():
    model = Recorder(hold_first=True)
    with DynamicBatcher(model, max_batch_size=4, max_queue_delay_us=0) as batcher:
        first = batcher.submit(rows(1, 0))
        assert model.entered.wait(10)
        cancelled, kept = batcher.submit(rows(1, 1)), batcher.submit(rows(1, 2))
        assert cancelled.cancel()
        model.release.set()
        np.testing.assert_array_equal(kept.result(timeout=10)["echo"], rows(1, 2))
        first.result(timeout=10)
        with pytest.raises(CancelledError):
            cancelled.result()
        assert batcher.stats().cancelled == 1
    assert not any((b == 1).any() for b in model.batches)


def test_close_drains_queued_work_then_refuses():
    model = Recorder()
    batcher = DynamicBatcher(model, max_queue_delay_us=LONG, instances=3)
    futures = [batcher.submit(rows(1, i)) for i in range(5)]
    batcher.close(timeout=10)
    assert all(f.done() and f.exception() is None for f in futures)
    assert not [t for t in threading.enumerate() if t.name.startswith("mlc-batcher")]
    with pytest.raises(QueueFullError, match="closed"):
        batcher.submit(rows(1, 0))


def test_slow_batch_does_not_stall_other_instances():
    model = Recorder(hold_first=True)
    with DynamicBatcher(model, max_batch_size=1, max_queue_delay_us=0, instances=2) as batcher:
        slow = batcher.submit(rows(1, 0))
        assert model.entered.wait(10)
        batcher.submit(rows(1, 1)).result(timeout=10)  # served by the other instance meanwhile
        assert not slow.done()
        model.release.set()
        slow.result(timeout=10)


def test_submit_async_and_task_cancellation():
    model = Recorder(hold_first=True)

    async def main(batcher: DynamicBatcher) -> list[dict]:
        blocker = batcher.submit_async(rows(1, 0))
        while not model.entered.is_set():
            await asyncio.sleep(0.001)
        doomed = batcher.submit_async(rows(1, 5))
        doomed.cancel()
        model.release.set()
        results = await asyncio.gather(*(batcher.submit_async(rows(1, i)) for i in range(20)))
        await blocker
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return results

    with DynamicBatcher(model, max_batch_size=8, max_queue_delay_us=500) as batcher:
        results = asyncio.run(main(batcher))
        assert batcher.stats().cancelled == 1
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["echo"], rows(1, i))


def test_scorer_checks_requests_at_submit(forest):
    with DynamicBatcher(Scorer(forest.onnx)) as batcher:
        with pytest.raises(InvalidInputError, match=r"\(rows, 4\)"):
            batcher.submit(np.zeros((1, 3), np.float32))
        doubled = batcher.submit(forest.X[:2].astype(np.float64)).result(timeout=10)  # cast, then batched
        np.testing.assert_array_equal(doubled["label"], forest.estimator.predict(forest.X[:2]))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"model": 42}, "callable"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"preferred_batch_sizes": (8, 128)}, "preferred_batch_sizes"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us"),
        ({"max_queue_rows": 10}, "max_queue_rows"),
        ({"instances": 0}, "instances"),
    ],
)
def test_bad_settings_are_usage_errors(kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        DynamicBatcher(**{"model": Recorder(), **kwargs})


def test_malformed_requests_to_a_plain_callable():
    with DynamicBatcher(Recorder()) as batcher:
        for bad in (np.float32(1.0), np.array([["a"]], dtype=object), np.zeros((0, 3))):
            with pytest.raises(InvalidInputError):
                batcher.submit(bad)


def test_submit_async_delivers_model_errors_and_refuses_at_once():
    def model(x: np.ndarray) -> dict[str, np.ndarray]:
        if (x == POISON).any():
            raise StopIteration  # asyncio futures refuse StopIteration: it must arrive as an error
        return {"echo": x}

    async def main(batcher: DynamicBatcher) -> None:
        with pytest.raises(RuntimeError, match="StopIteration"):
            await batcher.submit_async(rows(1, POISON))
        np.testing.assert_array_equal((await batcher.submit_async(rows(2, 1)))["echo"], rows(2, 1))
        with pytest.raises(InvalidInputError):
            batcher.submit_async(rows(3, 1))  # raised by the call itself, not by awaiting

    with DynamicBatcher(model, max_batch_size=2, max_queue_delay_us=0) as batcher:
        asyncio.run(main(batcher))
        assert batcher.stats().failed_batches == 1
