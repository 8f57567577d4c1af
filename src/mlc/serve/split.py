"""Traffic split for a controlled rollout: which version of a model answers an unversioned request.

Each request draws a version independently, weighted by its share, so over many requests the
shares hold within binomial error whatever the arrival pattern, in every worker process
alike, with no coordination between them.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from mlc.errors import UsageError


@dataclass(frozen=True)
class SplitSpec:
    """`NAME=REF:PCT,REF:PCT` as the user typed it, before the registry resolves the refs."""

    name: str
    shares: tuple[tuple[str, float], ...]  # (ref as typed, percent)


def parse_split(text: str) -> SplitSpec:
    """Parse `NAME=REF:PCT,REF:PCT`; a REF is NAME:VERSION, NAME@ALIAS or a bare version number."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise UsageError(f"invalid --split {text!r}",
                         "write --split NAME=REF:PCT,REF:PCT, e.g. iris=iris:1:90,iris:2:10")
    shares = []
    for part in rest.split(","):
        ref, colon, pct = part.strip().rpartition(":")
        try:
            percent = float(pct)
        except ValueError:
            percent = -1.0
        if not colon or not ref or not 0 <= percent <= 100:
            raise UsageError(f"invalid share {part!r} in --split {text!r}",
                             "each share is REF:PERCENT with a percent between 0 and 100, e.g. iris:2:10")
        shares.append((ref if not ref.isdigit() else f"{name}:{ref}", percent))
    total = sum(p for _, p in shares)
    if abs(total - 100.0) > 1e-6:
        raise UsageError(f"the shares in --split {text!r} add up to {total:g}%, not 100%")
    return SplitSpec(name=name, shares=tuple(shares))


class TrafficSplit:
    """A weighted random choice among versions; each process gets its own independently seeded generator."""

    def __init__(self, shares: dict[int, float]) -> None:
        if not shares or sum(shares.values()) <= 0:
            raise UsageError("a traffic split needs at least one version with a positive share")
        self.shares = dict(shares)
        self._versions = [v for v, p in shares.items() if p > 0]
        total = sum(shares[v] for v in self._versions)
        running = 0.0
        self._cumulative = []
        for version in self._versions:
            running += shares[version] / total
            self._cumulative.append(running)
        self._cumulative[-1] = 1.0  # no gap from float rounding
        self._random = random.Random()

    def choose(self) -> int:
        return self._versions[bisect.bisect_right(self._cumulative, self._random.random())]
