"""`mlc rollout`: change the traffic split of a name on running servers, and let a canary abort itself.

The split is recorded as the name's deployment (the registry is the one place servers read it
from); every `mlc serve NAME` / `--split` server picks it up at its next poll (serve/follow.py),
with no restart. With guards (`--abort-if "error_rate > 0.01"`, `"p99_ms > 50"`) the command
then watches the server's /metrics: each guard is judged on the canary versions only (those
whose share grew), over the requests they answered since the rollout, and only once they have
answered enough requests to judge (`min_requests`). A guard that holds returns all traffic to
the previous deployment and records an event saying which guard, on what figures.

Guards are `METRIC OP NUMBER` (no expressions: a canary's abort rule should be read at a glance):
  error_rate  requests the canary failed (4xx after it was chosen, 503, 500) / requests it got
  p99_ms      the 99th percentile of its request latency, from the server's histogram (the bucket
              bound the 99th percentile falls under: an upper bound, as Prometheus' le buckets give)
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mlc.errors import UsageError
from mlc.events.types import ROLLOUT_ABORTED
from mlc.registry import Registry
from mlc.serve.split import SplitSpec

METRICS = ("error_rate", "p99_ms")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_GUARD = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
_SAMPLE = re.compile(r'^(mlc_inference_requests_total|mlc_request_duration_seconds_bucket)\{([^}]*)\} (\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Guard:
    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_guard(text: str) -> Guard:
    """`error_rate > 0.01` or `p99_ms > 50`."""
    match = _GUARD.match(text)
    if not match or match[1] not in METRICS:
        raise UsageError(f"invalid --abort-if {text!r}",
                         f"write METRIC OP NUMBER with METRIC one of {', '.join(METRICS)}, e.g. \"error_rate > 0.01\"")
    return Guard(match[1], match[2], float(match[3]))


@dataclass
class Counts:
    """One version's counters as one scrape of /metrics shows them (summed over workers)."""

    requests: float = 0.0
    failed: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le bound (s) -> cumulative count

    def minus(self, before: Counts) -> Counts:
        return Counts(self.requests - before.requests, self.failed - before.failed,
                      {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()})

    def figure(self, metric: str) -> float:
        if metric == "error_rate":
            return self.failed / self.requests if self.requests else 0.0
        total = self.buckets.get(math.inf, 0.0)
        if not total:
            return 0.0
        for le in sorted(self.buckets):
            if self.buckets[le] >= 0.99 * total:
                return le * 1000.0
        return math.inf


def read_counts(text: str, name: str) -> dict[int, Counts]:
    """Each version of NAME's request outcomes and latency buckets from Prometheus text."""
    counts: dict[int, Counts] = {}
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if not sample:
            continue
        labels = dict(_LABEL.findall(sample[2]))
        if labels.get("model") != name or not labels.get("version", "").isdigit():
            continue
        entry = counts.setdefault(int(labels["version"]), Counts())
        value = float(sample[3])
        if sample[1] == "mlc_inference_requests_total":
            entry.requests += value
            if labels.get("outcome") != "success":
                entry.failed += value
        else:
            entry.buckets[float(labels["le"])] = value  # "+Inf" reads as inf
    return counts


@dataclass(frozen=True)
class Rollout:
    name: str
    shares: dict[int, float]
    previous: dict[int, float] | None  # the deployment before, if one was recorded
    deployment: int

    @property
    def canaries(self) -> list[int]:
        """Versions whose share grew: the ones the guards judge."""
        before = self.previous or {}
        return sorted(v for v, p in self.shares.items() if p > before.get(v, 0.0))

    def fallback(self) -> dict[int, float]:
        """Where an abort sends traffic: the previous deployment, else the split's other versions."""
        if self.previous:
            return dict(self.previous)
        others = {v: p for v, p in self.shares.items() if v not in self.canaries and p > 0}
        total = sum(others.values())
        return {v: 100.0 * p / total for v, p in others.items()}


def resolve_split(registry: Registry, spec: SplitSpec) -> dict[int, float]:
    """The served version and share of each REF of a --split (as mlc serve resolves them)."""
    shares: dict[int, float] = {}
    for ref, percent in spec.shares:
        mv = registry.get(ref)
        if mv.name != spec.name:
            raise UsageError(f"--split {spec.name}=...: {ref} is a version of {mv.name}, not of {spec.name}")
        version = registry.served(mv).version.version
        shares[version] = shares.get(version, 0.0) + percent
    return shares


def start(registry: Registry, spec: SplitSpec, *, guarded: bool = False) -> Rollout:
    """Record SPEC as its name's deployment; running servers follow it at their next poll."""
    shares = resolve_split(registry, spec)
    previous = registry.active_deployment(spec.name)
    rollout = Rollout(spec.name, shares, previous, 0)
    if guarded and not rollout.canaries:
        raise UsageError(f"--abort-if needs a canary: no version's share of {spec.name} grows in this split",
                         "give the new version a larger share than it has now")
    if guarded and not rollout.fallback():
        raise UsageError(f"--abort-if needs a version to fall back to: {spec.name} has no recorded deployment and "
                         "every version in the split is new",
                         f"record the current one first: mlc rollout --split {spec.name}=OLD_REF:100")
    deployment = registry.record_deployment(spec.name, shares)
    return Rollout(spec.name, shares, previous, deployment)


def tripped(rollout: Rollout, guards: list[Guard], before: dict[int, Counts], now: dict[int, Counts],
            min_requests: int) -> tuple[Guard, float, float] | None:
    """The first guard that holds on the canaries' requests between two scrapes: (guard, figure,
    requests judged); None while none holds or fewer than min_requests were answered."""
    since = Counts()
    buckets: dict[float, float] = {}
    for version in rollout.canaries:
        delta = now.get(version, Counts()).minus(before.get(version, Counts()))
        since.requests += delta.requests
        since.failed += delta.failed
        for le, n in delta.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + n
    since.buckets = buckets
    if since.requests < min_requests:
        return None
    for guard in guards:
        value = since.figure(guard.metric)
        if _OPS[guard.op](value, guard.bound):
            return guard, value, since.requests
    return None


def abort(registry: Registry, rollout: Rollout, guard: Guard, value: float, requests: float) -> dict[int, float]:
    """All traffic back to the fallback split, and an event saying why."""
    from mlc.events.outbox import publish

    back = rollout.fallback()
    deployment = registry.record_deployment(rollout.name, back)
    why = (f"{guard} held for canary {', '.join(f'{rollout.name}:{v}' for v in rollout.canaries)}: "
           f"{guard.metric} was {value:.4g} over {requests:.0f} requests")
    publish(registry, ROLLOUT_ABORTED, rollout.name, rollout.name, {
        "why": why, "guard": str(guard), "metric": guard.metric, "value": value, "requests": requests,
        "aborted_split": {str(v): p for v, p in rollout.shares.items()}, "aborted_deployment": rollout.deployment,
        "restored_split": {str(v): p for v, p in back.items()}, "deployment": deployment})
    return back
