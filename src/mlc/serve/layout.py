"""How one version is served: worker processes, model instances, threads, and its batcher.

`mlc profile` measures layouts and `mlc serve` serves one, so both build this one type, and
the rules that make a layout consistent live here once: the queue that holds a whole largest
request, the preferred batch sizes that fit the largest batch, the share of cores each
instance gets, and what is out of range. It lives in `serve/` because a layout is a serving
notion (worker processes are the server's); the profiler already measures `mlc serve` itself.

Where the numbers come from (flags, a recorded profile, the target's defaults) is the serve
plan's business (plan.py); what makes them a layout is this module's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from mlc.config import DEFAULT_MAX_REQUEST_ROWS
from mlc.errors import UsageError

# The batcher's largest batch by device when neither a flag nor a recorded profile says otherwise:
# on a CPU small batches keep latency low; a GPU needs large ones to be worth a launch.
DEFAULT_MAX_BATCH = {"cpu": 64, "gpu": 1024}
# No added wait by default, as in Triton: a batch runs as soon as an instance is free, and the
# requests that arrive while it runs form the next one, so batches grow with load on their own
# while a lone request pays nothing (a fixed delay cost ~0.5 ms per request at low load here).
DEFAULT_DELAY_US = 0
MIN_QUEUE_ROWS = 4096
# The keys a layout is recorded under (profile reports, the registry's profile record).
# Threads keep the name profiles have always recorded them by.
_RECORDED = {"max_batch_size": "max_batch_size", "max_queue_delay_us": "max_queue_delay_us",
             "instances": "instances", "threads": "intra_op_threads", "workers": "workers"}


def queue_rows(max_batch_size: int, max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS) -> int:
    """Rows the queue holds: a whole largest request (a smaller queue would refuse it forever, as
    "full, retry later"), four full batches, and never fewer than MIN_QUEUE_ROWS."""
    return max(MIN_QUEUE_ROWS, max_request_rows, 4 * max_batch_size)


def share_of_cores(cores: int, workers: int, instances: int, at_most: int | None = None) -> int:
    """Threads for each instance when the target's cores are shared out among every instance of
    every worker (at least one), capped by `at_most` (what `mlc optimize` chose) when given."""
    share = max(1, cores // (workers * instances))
    return min(share, at_most) if at_most else share


class BatcherOptions(TypedDict):
    """The DynamicBatcher's settings, as both the server and the in-process profiler pass them."""

    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    max_queue_rows: int
    instances: int


@dataclass(frozen=True, kw_only=True)
class ServingLayout:
    """How one replica serves one version; build it with `ServingLayout.of`, which applies the rules.

    Every field is concrete, so two layouts are equal exactly when they serve alike.
    """

    max_batch_size: int
    max_queue_delay_us: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_rows: int  # rows waiting per version (and worker) before requests are refused
    instances: int  # batcher workers (model instances) per process, running whole batches side by side
    threads: int  # ONNX Runtime intra-op (and tree kernel) threads per instance
    workers: int  # server processes sharing the port; 1 in-process

    def __post_init__(self) -> None:
        problems = [f"{name}={value} (at least {low})" for name, value, low in (
            ("max_batch_size", self.max_batch_size, 1), ("max_queue_delay_us", self.max_queue_delay_us, 0),
            ("instances", self.instances, 1), ("threads", self.threads, 1), ("workers", self.workers, 1),
            ("max_queue_rows", self.max_queue_rows, self.max_batch_size)) if value < low]
        problems += [f"preferred batch size {p} (1..max_batch_size)" for p in self.preferred_batch_sizes
                     if not 1 <= p <= self.max_batch_size]
        if problems:
            raise UsageError(f"serving layout out of range: {', '.join(problems)}",
                             "the queue must hold at least one full batch (max_queue_rows >= max_batch_size)")

    @classmethod
    def of(cls, *, max_batch_size: int = 1, max_queue_delay_us: int = 0, instances: int = 1, threads: int = 1,
           workers: int = 1, preferred_batch_sizes: Iterable[int] = (), max_queue_rows: int | None = None,
           max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS) -> ServingLayout:
        """A layout with the rules applied: the queue sized by `queue_rows` unless given, and the
        preferred batch sizes sorted, without repeats and without any above max_batch_size."""
        preferred = tuple(sorted({int(b) for b in preferred_batch_sizes if int(b) <= max_batch_size}))
        rows = queue_rows(max_batch_size, max_request_rows) if max_queue_rows is None else max_queue_rows
        return cls(max_batch_size=int(max_batch_size), max_queue_delay_us=int(max_queue_delay_us),
                   preferred_batch_sizes=preferred, max_queue_rows=int(rows), instances=int(instances),
                   threads=int(threads), workers=int(workers))

    def batching(self, max_batch_size: int, max_queue_delay_us: int,
                 max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS) -> ServingLayout:
        """The same processes, instances and threads with other batcher settings (queue by the rule)."""
        return ServingLayout.of(max_batch_size=max_batch_size, max_queue_delay_us=max_queue_delay_us,
                                instances=self.instances, threads=self.threads, workers=self.workers,
                                preferred_batch_sizes=self.preferred_batch_sizes, max_request_rows=max_request_rows)

    @property
    def cores(self) -> int:
        """Cores the layout is laid out for: every thread of every instance of every worker."""
        return self.workers * self.instances * self.threads

    @property
    def label(self) -> str:
        return (f"b{self.max_batch_size}/d{self.max_queue_delay_us}us/"
                f"w{self.workers}xi{self.instances}xt{self.threads}")

    def contention(self, target_name: str, target_cores: int) -> str:
        """A note when the layout runs more threads than the target has cores, else ''."""
        if self.cores <= target_cores:
            return ""
        return (f"{self.workers} worker(s) x {self.instances} instance(s) x {self.threads} thread(s) is more "
                f"threads than target {target_name}'s {target_cores} cores: they will contend")

    def batcher_options(self) -> BatcherOptions:
        """What DynamicBatcher takes from the layout: `DynamicBatcher(model, **layout.batcher_options())`."""
        return BatcherOptions(max_batch_size=self.max_batch_size, preferred_batch_sizes=self.preferred_batch_sizes,
                              max_queue_delay_us=self.max_queue_delay_us, max_queue_rows=self.max_queue_rows,
                              instances=self.instances)

    def serve_flags(self) -> list[str]:
        """The `mlc serve` flags that serve exactly this layout (the queue's only when not the rule's)."""
        flags = ["--workers", str(self.workers), "--instances", str(self.instances), "--threads", str(self.threads),
                 "--max-batch-size", str(self.max_batch_size), "--max-queue-delay-us", str(self.max_queue_delay_us)]
        if self.max_queue_rows != queue_rows(self.max_batch_size):
            flags += ["--max-queue-rows", str(self.max_queue_rows)]
        if self.preferred_batch_sizes:  # the profiler never sets them; a caller that does must not lose them
            raise ValueError(f"mlc serve has no flag for preferred batch sizes {self.preferred_batch_sizes}")
        return flags

    def to_dict(self) -> dict[str, Any]:
        """The layout as profiles record it: the five settings a sweep varies, and the queue and
        preferred batch sizes only where they are not what `from_dict` would derive."""
        data: dict[str, Any] = {key: getattr(self, name) for name, key in _RECORDED.items()}
        if self.max_queue_rows != queue_rows(self.max_batch_size):
            data["max_queue_rows"] = self.max_queue_rows
        if self.preferred_batch_sizes:
            data["preferred_batch_sizes"] = list(self.preferred_batch_sizes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServingLayout:
        """Reads what to_dict writes, and every profile recorded before this type (the same keys)."""
        def read(name: str, default: int) -> int:
            value = data.get(_RECORDED[name])
            return default if value is None else int(value)

        queue = data.get("max_queue_rows")
        return cls.of(max_batch_size=read("max_batch_size", 1), max_queue_delay_us=read("max_queue_delay_us", 0),
                      instances=read("instances", 1), threads=read("threads", 1), workers=read("workers", 1),
                      preferred_batch_sizes=data.get("preferred_batch_sizes") or (),
                      max_queue_rows=None if queue is None else int(queue))
