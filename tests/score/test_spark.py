"""The Spark adapter in local mode (local[2]) against `mlc score` on the same input, bad rows included.

A separate tier (JVM start-up takes a while): excluded from the default run, run with
    python -m pytest -m spark tests/score -p no:randomly
It needs `pip install -e ".[spark]"` and Java 17.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mlc.registry import Registry
from mlc.score import ScoreOptions, score_files
from tests.score.conftest import Models, frame, read_parts

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark", reason='the spark tier needs pip install -e ".[spark]"')


@pytest.fixture(scope="module")
def spark(models: Models) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run the venv's Python, with mlc in it
    session = (SparkSession.builder.master("local[2]").appName("mlc-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")  # many batches per task
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.executorEnv.MLC_HOME", str(models.home))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _input(tmp_path: Path) -> Path:
    data = frame(600).astype({"b": str})
    data.loc[[5, 300], "b"] = ["oops", "1.2.3"]  # no numbers: rejected
    data.loc[7, "a"] = np.nan  # missing: scored
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), path)
    return path


def _rejects(folder: Path) -> dict[str, str]:
    files = [folder / "_rejects.jsonl"] if (folder / "_rejects.jsonl").exists() else sorted(
        (folder / "_rejects").glob("part-*.json"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    return {str(r["values"]["id"]): r["reason"] for r in records}


def test_spark_score_equals_mlc_score_and_builds_one_scorer_per_worker(spark: Any, registry: Registry,
                                                                       tmp_path: Path) -> None:
    source = _input(tmp_path)
    local = score_files("forest", [source], tmp_path / "local", ScoreOptions(id_column="id", workers=1),
                        registry=registry)
    builds = spark.sparkContext.accumulator(0)
    from mlc.score.spark import ERROR_COLUMN, score

    df = spark.read.parquet(str(source)).repartition(4)
    result = score(df, "forest", registry=registry, builds=builds).toPandas().sort_values("id")
    assert builds.value <= 2  # one Scorer per Python worker (local[2]), not one per batch or task
    expected = read_parts(tmp_path / "local").set_index("id")
    good = result[result[ERROR_COLUMN].isna()].set_index("id")
    assert len(good) == local.rows_out == 598
    np.testing.assert_array_equal(good.loc[expected.index, "label"], expected["label"])
    # Probabilities equal up to float32 rounding: ONNX Runtime sums a forest's trees in an order that
    # depends on the batch size and threads (Spark's batches are 64 rows here, mlc score's 600).
    probabilities = [c for c in expected.columns if c.startswith("probabilities_")]
    np.testing.assert_allclose(good.loc[expected.index, probabilities], expected[probabilities], rtol=0, atol=1e-6)
    bad = result[result[ERROR_COLUMN].notna()]
    assert dict(zip(bad["id"].astype(str), bad[ERROR_COLUMN], strict=True)) == _rejects(tmp_path / "local")
    assert bad["label"].isna().all()  # a rejected row keeps its place, with null outputs


def test_engine_spark_on_csv_equals_the_local_engine(spark: Any, models: Models, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["id,d,note,b,a,c"] + [f"{i},0.{i},n{i},1.5,-0.5,{i % 3}" for i in range(60)]
    lines[5] = "4,0.4,n4,oops,-0.5,1"
    lines[9] = "8,0.8,n8,1.5"  # wrong width
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MLC_HOME", str(models.home))
    from mlc.cli import cli

    for engine in ("local", "spark"):
        extra = ["--master", "local[2]"] if engine == "spark" else ["--workers", "1"]
        result = CliRunner().invoke(cli, ["score", "forest", str(tmp_path / "in.csv"), "--out",
                                          str(tmp_path / engine), "--id-column", "id", "--engine", engine,
                                          "--json", *extra])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output[result.output.index("{"):])
        assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (60, 58, 2)
    local, on_spark = read_parts(tmp_path / "local"), read_parts(tmp_path / "spark")
    on_spark = on_spark.astype({"id": str}).sort_values("id", key=lambda s: s.astype(int)).reset_index(drop=True)
    pd.testing.assert_frame_equal(on_spark, local.astype({"id": str}), check_dtype=False)
    spark_rejects = [json.loads(line) for f in sorted((tmp_path / "spark" / "_rejects").glob("part-*.json"))
                     for line in f.read_text().splitlines()]
    reasons = sorted(r["reason"] for r in spark_rejects)
    assert reasons == ["column 'b': 'oops' is not a number", "the line does not split into the header's fields"]
