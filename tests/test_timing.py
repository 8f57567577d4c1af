"""Timing helpers: what a timed call is fed."""

from __future__ import annotations

import numpy as np

from mlc.timing import DISTINCT_ROWS, cycling, cycling_calls, distinct_batches


def test_distinct_batches_span_distinct_rows_and_wrap_when_rows_run_out():
    rows = np.arange(300, dtype=np.float32).reshape(300, 1)
    ones = distinct_batches(rows, 1)
    assert len(ones) == DISTINCT_ROWS and len({float(b[0, 0]) for b in ones}) == DISTINCT_ROWS
    assert all(b.shape == (1, 1) and b.flags.c_contiguous for b in ones)
    thirty_twos = distinct_batches(rows, 32)
    assert len(thirty_twos) == DISTINCT_ROWS // 32
    assert len(np.unique(np.concatenate(thirty_twos))) == DISTINCT_ROWS  # no row twice
    (big,) = distinct_batches(rows, 1024)  # one batch, rows repeated to fill it
    assert big.shape == (1024, 1) and big[300, 0] == rows[0, 0]


def test_a_cycling_call_takes_each_batch_in_turn():
    batches = distinct_batches(np.arange(4, dtype=np.float32).reshape(4, 1), 1)
    seen: list[float] = []
    call = cycling(lambda x: seen.append(float(x[0, 0])), batches)
    for _ in range(6):
        call()
    assert seen == [0.0, 1.0, 2.0, 3.0, 0.0, 1.0]


def test_cycling_calls_makes_each_bound_call_in_turn():
    seen: list[int] = []
    call = cycling_calls([lambda k=k: seen.append(k) for k in range(3)])
    for _ in range(5):
        call()
    assert seen == [0, 1, 2, 0, 1]
