"""A test-only slower engine, so the regression gate is proven on real measurements.

`MLC_TEST_ENGINE_SLOWDOWN=F` (a fraction, e.g. 0.5) makes every engine call of the Scorer
busy-wait F times as long as the call itself took, after it: mlc becomes (1 + F) times slower
on this machine, by real work on the same cores, at every batch size and whatever the load.
The gate's test sets it for one quick-suite run and checks that `mlc report compare` fails
against the committed baseline; nothing else may set it. Unset, the Scorer's engines are the
plain callables (read once, when the Scorer is built; nothing is added to the hot path).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from mlc.errors import UsageError

SLOWDOWN_ENV = "MLC_TEST_ENGINE_SLOWDOWN"

F = TypeVar("F", bound=Callable[..., object])


def requested_slowdown() -> float:
    """The fraction of extra work asked for by the environment (0 when unset)."""
    raw = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{SLOWDOWN_ENV}={raw!r} is not a number",
                         f"unset it, or give the extra work as a fraction ({SLOWDOWN_ENV}=0.5)") from None
    if not 0 <= value <= 100:
        raise UsageError(f"{SLOWDOWN_ENV}={raw!r} is out of range", "give a fraction between 0 and 100")
    return value


def slowed(engine: F, fraction: float) -> F:
    """engine, followed on each call by a busy wait of `fraction` times the call's own duration."""
    clock = time.perf_counter_ns

    def call(*args: object, **kwargs: object) -> object:
        start = clock()
        out = engine(*args, **kwargs)
        until = clock() + int((clock() - start) * fraction)
        while clock() < until:
            pass
        return out

    return call  # type: ignore[return-value]
