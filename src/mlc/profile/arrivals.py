"""Open-loop arrival schedules: when each request is due, decided before any is sent.

A closed-loop client sends the next request only when the previous one returned, so a slow
server slows its own load and hides its queueing (coordinated omission). Here the send times
are fixed in advance at the asked rate, and latency is counted from each scheduled time, so a
request delayed by a busy server, or by a load generator that fell behind, shows the delay.
This module is shared by the in-process scheduler thread and the locust load processes.
"""

from __future__ import annotations

import numpy as np

ARRIVALS = ("poisson", "constant")


def arrival_offsets(rate: float, duration_s: float, *, poisson: bool, seed: int) -> np.ndarray:
    """Send times in seconds from the start, for `rate` requests per second over `duration_s`.

    Poisson arrivals (exponential gaps) are what independent users produce and what queueing
    theory sizes for; constant gaps are kinder and show the best case.
    """
    if rate <= 0 or duration_s <= 0:
        return np.empty(0)
    expected = rate * duration_s
    if not poisson:
        return np.arange(int(expected)) / rate
    rng = np.random.default_rng(seed)
    draw = int(expected + 6 * np.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate, size=draw))
    return times[times < duration_s]


def ladder_offsets(stages: list[tuple[float, float]], *, poisson: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The send times of consecutive (rate, duration) stages, and the stage index of each."""
    parts, index = [], []
    start = 0.0
    for i, (rate, duration) in enumerate(stages):
        times = arrival_offsets(rate, duration, poisson=poisson, seed=seed + i) + start
        parts.append(times)
        index.append(np.full(times.size, i, dtype=np.int32))
        start += duration
    if not parts:
        return np.empty(0), np.empty(0, dtype=np.int32)
    return np.concatenate(parts), np.concatenate(index)
