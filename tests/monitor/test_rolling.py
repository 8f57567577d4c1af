"""The rolling drift score behind `mlc serve --drift-metrics`: windows roll, workers merge, a clock decides when."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mlc.monitor.collect import Collector, CollectSettings
from mlc.monitor.rolling import PROM_FILE, RollingDrift, RollingSettings, read_gauges
from mlc.monitor.summary import DataSummary

from ._data import FEATURES, draw, outputs

KEY = ("m", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def reference() -> DataSummary:
    x = draw(np.random.default_rng(0), 5000)
    return DataSummary.from_rows(x, outputs(x), feature_names=FEATURES)


def gauge(text: str, name: str, column: str | None = None) -> float:
    where = 'model="m",version="1"' + (f',column="{column}",role="feature"' if column else "")
    found = re.search(rf"^{name}\{{{re.escape(where)}\}} (\S+)$", text, re.M)
    assert found, f"no {name} for {column} in\n{text}"
    return float(found.group(1))


def feed(drift: RollingDrift, x: np.ndarray) -> None:
    for i in range(0, len(x), 50):
        drift.add(*KEY, x[i:i + 50], outputs(x[i:i + 50]))


def test_scores_on_the_clock_and_the_window_rolls_over(reference: DataSummary, tmp_path: Path) -> None:
    clock = Clock()
    drift = RollingDrift({KEY: reference}, RollingSettings(window_rows=4000, interval_s=30), tmp_path, clock)
    feed(drift, draw(np.random.default_rng(1), 4000))
    assert not drift.tick()  # the interval has not passed: nothing computed
    clock.now += 30
    assert drift.tick()
    text = read_gauges(tmp_path)
    assert text == drift.text and gauge(text, "mlc_drift_window_rows") == 4000
    assert all(gauge(text, "mlc_drift_flagged", f) == 0 for f in FEATURES)
    assert gauge(text, "mlc_drift_psi", "f3") < 0.05
    # Shifted traffic replaces the window (it keeps the last 4,000 rows): f3 and only f3 flagged.
    shifted = draw(np.random.default_rng(2), 4000)
    shifted[:, 3] += 1.2
    feed(drift, shifted)
    clock.now += 30
    assert drift.tick()
    text = read_gauges(tmp_path)
    assert gauge(text, "mlc_drift_window_rows") == 4000
    assert [f for f in FEATURES if gauge(text, "mlc_drift_flagged", f)] == ["f3"]
    assert gauge(text, "mlc_drift_psi", "f3") > 0.5


def test_workers_windows_merge(reference: DataSummary, tmp_path: Path) -> None:
    """Two workers each see half the traffic; the score covers both halves."""
    one = RollingDrift({KEY: reference}, RollingSettings(10_000, 30), tmp_path, Clock(), worker=1)
    two = RollingDrift({KEY: reference}, RollingSettings(10_000, 30), tmp_path, Clock(), worker=2)
    x = draw(np.random.default_rng(3), 3000)
    feed(one, x[:1000])
    feed(two, x[1000:])
    one.update()
    text = two.update()
    assert gauge(text, "mlc_drift_window_rows") == 3000
    assert (tmp_path / PROM_FILE).read_text() == text


def test_collector_without_a_folder_only_scores(reference: DataSummary, tmp_path: Path) -> None:
    """--drift-metrics without --collect: the collector's thread feeds the window and writes no Parquet."""
    drift = RollingDrift({KEY: reference}, RollingSettings(10_000, 30), tmp_path / "metrics", Clock())
    (tmp_path / "metrics").mkdir()
    collector = Collector(CollectSettings(None), {KEY: FEATURES}, start=False, drift=drift)
    x = draw(np.random.default_rng(4), 500)
    for i in range(0, 500, 50):
        collector.offer(*KEY, None, f"r{i}", x[i:i + 50], outputs(x[i:i + 50]))
    collector.drain()
    drift.update()
    assert gauge(collector.prometheus(), "mlc_drift_window_rows") == 500
    assert "mlc_collect_requests_sampled_total 10" in collector.prometheus()
    assert not list(tmp_path.rglob("*.parquet"))
