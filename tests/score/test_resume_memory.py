"""A run killed with -9 resumes to the output an uninterrupted run writes; memory does not grow with the input.

The kill is driven from inside the run, at a known point: a launcher wraps the journal so that
right after its K-th part is recorded the whole process group (parent and workers, some of them
mid-chunk) gets SIGKILL. No sleep decides when.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.score.conftest import frame

_LAUNCHER = """
import os, signal, sys
from mlc.score import manifest

kill_after = int(sys.argv[1])
record_part = manifest.Journal.record_part
recorded = []

def record_and_maybe_die(self, record):
    record_part(self, record)
    recorded.append(record.part)
    if len(recorded) == kill_after:
        os.killpg(0, signal.SIGKILL)  # the parent and every worker, at once

manifest.Journal.record_part = record_and_maybe_die
from mlc.cli import cli
cli(sys.argv[2:], prog_name="mlc")
"""


def _input(tmp_path: Path) -> Path:
    data = frame(3000)
    data = data.astype({"b": str})
    data.loc[[10, 1500, 2999], "b"] = ["bad", "worse", "?"]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), path, row_group_size=700)
    return path


def _score(env: dict[str, str], source: Path, out: Path, workers: str, launcher: list[str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    args = ["score", "forest", str(source), "--out", str(out), "--id-column", "id", "--chunk-rows", "100",
            "--workers", workers, "--json"]
    command = [*launcher, *args] if launcher else [sys.executable, "-m", "mlc", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, start_new_session=True)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("part-")}


# 2 worker processes, or scored in the command's own process (0)
@pytest.mark.parametrize("workers", ["2", "0"])
def test_killed_with_sigkill_and_rerun_equals_an_uninterrupted_run(mlc_env: dict[str, str], tmp_path: Path,
                                                                   workers: str) -> None:
    source = _input(tmp_path)
    whole = _score(mlc_env, source, tmp_path / "whole", workers)
    assert whole.returncode == 0, whole.stderr

    launcher = [sys.executable, "-c", _LAUNCHER, "7"]
    killed = _score(mlc_env, source, tmp_path / "resumed", workers, launcher=launcher)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    journal = (tmp_path / "resumed" / "_manifest.jsonl").read_text().splitlines()
    assert sum('"part"' in line for line in journal) == 7  # killed right after the 7th part
    assert not (tmp_path / "resumed" / "_summary.json").exists()

    rerun = _score(mlc_env, source, tmp_path / "resumed", workers)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["resumed_parts"] == 7
    assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (3000, 2997, 3)
    assert _files(tmp_path / "resumed") == _files(tmp_path / "whole")  # byte for byte
    rejects = [(tmp_path / run / "_rejects.jsonl").read_bytes() for run in ("resumed", "whole")]
    assert rejects[0] == rejects[1] and rejects[0].count(b"\n") == 3
    assert not list((tmp_path / "resumed").glob(".tmp-*")) and not (tmp_path / "resumed" / "_rejects").exists()

    again = _score(mlc_env, source, tmp_path / "resumed", workers)  # a finished run: nothing to do, same answer
    assert json.loads(again.stdout)["rows_out"] == 2997


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["2", "0"])
def test_peak_memory_does_not_grow_with_the_input(mlc_env: dict[str, str], tmp_path: Path, workers: str) -> None:
    """Scoring an input 4x larger: the workers' peak RSS, summed, grows by less than one chunk.

    Both inputs are longer than the pipeline (a chunk per worker and two read ahead), so the smaller
    one already shows the steady state. The parent, which reads and hands out chunks, is held to the
    same bound with one chunk of slack for its allocator (its peak moves by about a chunk between
    runs of the same input): were the input read whole, the larger run would need 36 chunks more.
    Scored in the command's own process (--workers 0), the parent holds the same pipeline and
    bound alone.
    """
    chunk_rows, columns = 25_000, 48
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d"] + [f"extra{j}" for j in range(columns - 4)]
    block = pa.table({n: rng.normal(size=chunk_rows) for n in names})  # float64: 9.6 MB per chunk
    chunk_bytes = block.nbytes
    peaks = []
    for n_chunks in (12, 48):
        path = tmp_path / f"in-{n_chunks}.parquet"
        with pq.ParquetWriter(path, block.schema) as writer:
            for _ in range(n_chunks):
                writer.write_table(block, row_group_size=4 * chunk_rows)
        result = subprocess.run([sys.executable, "-m", "mlc", "score", "forest", str(path), "--out",
                                 str(tmp_path / f"out-{n_chunks}"), "--keep", ",".join(names[4:]), "--chunk-rows",
                                 str(chunk_rows), "--workers", workers, "--json"], env=mlc_env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["rows_out"] == n_chunks * chunk_rows
        assert summary["workers"] == int(workers)
        peaks.append(summary["peak_rss_bytes"])
    small, large = peaks
    assert sum(large["workers"]) - sum(small["workers"]) < chunk_bytes, (peaks, chunk_bytes)
    assert large["parent"] - small["parent"] < 2 * chunk_bytes, (peaks, chunk_bytes)
