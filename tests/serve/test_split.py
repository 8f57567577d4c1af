"""Traffic split: parsing, and shares that hold within statistical error."""

from __future__ import annotations

from collections import Counter

import pytest

from mlc.errors import UsageError
from mlc.serve.split import TrafficSplit, parse_split


def test_parse_split_accepts_refs_and_bare_versions():
    spec = parse_split("iris=iris:1:90,2:10")
    assert spec.name == "iris" and spec.shares == (("iris:1", 90.0), ("iris:2", 10.0))
    assert parse_split("iris=iris@prod:75,iris@candidate:25").shares[0] == ("iris@prod", 75.0)


@pytest.mark.parametrize("text", ["iris", "iris=", "iris=iris:1", "iris=iris:1:90,iris:2:20", "iris=iris:1:x",
                                  "=iris:1:100", "iris=iris:1:150,iris:2:-50"])
def test_parse_split_refuses_malformed_specs(text):
    with pytest.raises(UsageError):
        parse_split(text)


def chi_square(counts: Counter, shares: dict[int, float], n: int) -> float:
    total = sum(shares.values())
    return sum((counts[v] - n * p / total) ** 2 / (n * p / total) for v, p in shares.items())


def test_weighted_choice_holds_its_shares():
    shares = {1: 70.0, 2: 20.0, 3: 10.0}
    split = TrafficSplit(shares)
    n = 20_000
    counts = Counter(split.choose() for _ in range(n))
    # 2 degrees of freedom: P(chi2 > 18.4) = 1e-4, so this fails by chance once in 10,000 runs.
    assert chi_square(counts, shares, n) < 18.4, counts


def test_zero_share_versions_never_answer():
    split = TrafficSplit({1: 100.0, 2: 0.0})
    assert {split.choose() for _ in range(1000)} == {1}

