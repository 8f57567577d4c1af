"""The collector: sampled requests to Parquet partitions, without waiting or failing requests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from mlc.errors import UsageError
from mlc.monitor.collect import Collector, CollectSettings, Counters, PartitionWriter, Sample, hashed

FEATURES = {("iris", 3): ["a", "b", "c", "d"]}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sample(rows: int = 2, rid: str | None = "r1", t_ns: int = 1_700_000_000 * 10**9, arm: int | None = None) -> Sample:
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    return Sample("iris", 3, arm, rid, t_ns, x, {"label": np.arange(rows), "probabilities": np.full((rows, 2), 0.5)})


def files(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def read(root: Path) -> dict[str, list]:
    return ds.dataset(root, format="parquet", partitioning="hive").to_table().to_pydict()


def test_rows_written_whole_partitioned_and_readable(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = PartitionWriter(CollectSettings(tmp_path, rotate_rows=5), FEATURES, Counters(None, 0), clock)
    writer.add(sample(2, "r1", arm=3))
    writer.add(sample(2, "r2"))
    assert files(tmp_path) == []  # 4 rows < rotate_rows
    writer.add(sample(1, "r3"))  # 5 rows: rotated
    [only] = files(tmp_path)
    assert only.parent.relative_to(tmp_path).as_posix() == "model=iris/version=3/date=2023-11-14"
    table = read(tmp_path)
    assert table["request_id"] == ["r1", "r1", "r2", "r2", "r3"]
    assert table["row"] == [0, 1, 0, 1, 0]
    assert table["arm"] == [3, 3, None, None, None]
    assert table["a"] == [0.0, 4.0, 0.0, 4.0, 0.0]
    assert table["output:label"] == [0, 1, 0, 1, 0]
    assert table["output:probabilities[1]"] == [0.5] * 5
    assert table["model"] == ["iris"] * 5 and table["version"] == [3] * 5
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


def test_a_file_of_many_chunks_is_one_table_in_arrival_order(tmp_path: Path) -> None:
    """Requests are turned into Arrow a chunk at a time, off the rotation; the file reads as if written at once."""
    from mlc.monitor.collect import _CHUNK_REQUESTS

    requests = 2 * _CHUNK_REQUESTS + 7
    counts = [1 + i % 3 for i in range(requests)]
    settings = CollectSettings(tmp_path, rotate_rows=sum(counts))
    writer = PartitionWriter(settings, FEATURES, Counters(None, 0), FakeClock())
    for i, rows in enumerate(counts):
        writer.add(sample(rows, f"r{i}"))
    assert len(files(tmp_path)) == 1
    table = read(tmp_path)
    assert table["request_id"] == [f"r{i}" for i, rows in enumerate(counts) for _ in range(rows)]
    assert table["row"] == [j for rows in counts for j in range(rows)]
    assert table["a"] == [4.0 * j for rows in counts for j in range(rows)]
    assert table["output:label"] == table["row"]


def test_rotation_by_time_reads_the_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = PartitionWriter(CollectSettings(tmp_path, rotate_seconds=60), FEATURES, Counters(None, 0), clock)
    writer.add(sample())
    clock.now += 59
    writer.rotate_due()
    assert files(tmp_path) == [] and writer.next_due() == pytest.approx(1.0)
    clock.now += 1
    writer.rotate_due()
    assert len(files(tmp_path)) == 1


def test_retention_and_disk_cap_remove_oldest_first(tmp_path: Path) -> None:
    clock = FakeClock()
    counters = Counters(None, 0)
    writer = PartitionWriter(CollectSettings(tmp_path, rotate_rows=1, retention_days=1), FEATURES, counters, clock)
    for _ in range(3):
        writer.add(sample(1))
        clock.now += 3600
    assert len(files(tmp_path)) == 3
    clock.now += 86400 - 2 * 3600  # the first file is now a day old; the others are not
    writer.enforce_limits()
    assert len(files(tmp_path)) == 2 and counters.get("files_removed") == 1
    size = files(tmp_path)[0].stat().st_size
    capped = PartitionWriter(CollectSettings(tmp_path, rotate_rows=1, max_bytes=int(size * 2.5)), FEATURES,
                             counters, clock)
    newest = files(tmp_path)[-1].name
    capped.add(sample(1))  # a third file over the cap: the oldest goes
    names = [p.name for p in files(tmp_path)]
    assert len(names) == 2 and newest in names


def test_exclude_and_hash(tmp_path: Path) -> None:
    settings = CollectSettings(tmp_path, exclude=("b",), hash=("c",), rotate_rows=1)
    PartitionWriter(settings, FEATURES, Counters(None, 0), FakeClock()).add(sample(1))
    table = read(tmp_path)
    assert "b" not in table and table["c"] == [hashed(2.0)] and len(table["c"][0]) == 16
    with pytest.raises(UsageError, match="no feature named zz"):
        Collector(CollectSettings(tmp_path, exclude=("zz",)), FEATURES, start=False)
    with pytest.raises(UsageError, match="sample"):
        CollectSettings(tmp_path, sample=0.0)


def test_full_queue_drops_and_counts_never_blocks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With the writer stopped the queue fills; further samples are dropped, logged once a minute."""
    clock = FakeClock()
    collector = Collector(CollectSettings(tmp_path, queue_requests=3), FEATURES, clock=clock, start=False)
    x = np.zeros((1, 4), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="mlc.collect"):
        for i in range(10):
            collector.offer("iris", 3, None, f"r{i}", x, {"label": np.zeros(1)})
        clock.now += 61
        collector.offer("iris", 3, None, "late", x, {"label": np.zeros(1)})
    assert collector.counters.get("requests_dropped") == 8
    assert collector.counters.get("requests_sampled") == 11
    notices = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(notices) == 2 and "dropped 1 " in notices[0].getMessage()
    assert "dropped 7 " in notices[1].getMessage()
    collector.close()  # writes what the queue held
    assert read(tmp_path)["request_id"] == ["r0", "r1", "r2"]


def test_sample_share(tmp_path: Path) -> None:
    collector = Collector(CollectSettings(tmp_path, sample=0.1, queue_requests=100_000), FEATURES,
                          start=False, seed=1)
    x = np.zeros((1, 4), dtype=np.float32)
    for i in range(5000):
        collector.offer("iris", 3, None, str(i), x, {})
    assert 400 < collector.counters.get("requests_sampled") < 600


def test_thread_writes_on_close_and_counts_are_shared(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    collector = Collector(CollectSettings(tmp_path / "data"), FEATURES, counters=Counters(metrics, 0))
    other = Counters(metrics, 1)
    other.add("rows_written", 5)
    for i in range(20):
        collector.offer("iris", 3, None, str(i), np.ones((2, 4), dtype=np.float32), {"label": np.ones(2)})
    collector.close()
    assert len(read(tmp_path / "data")["request_id"]) == 40
    assert collector.counters.total()["rows_written"] == 45
    text = collector.counters.prometheus()
    assert "mlc_collect_rows_written_total 45" in text and "mlc_collect_requests_dropped_total 0" in text
