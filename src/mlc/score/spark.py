"""Batch scoring on Spark, for data that outgrows one machine: `score(df, "name:version")`.

Built on `DataFrame.mapInArrow`: Arrow record batches go to the Python workers without a pandas
round trip. The driver reads the version from the registry once (artifact bytes, digest-verified,
and its runtime plan) and broadcasts it; each Python worker builds its Scorer once, on the first
batch it sees, and keeps it for every later batch and task (Spark reuses Python workers), so the
executors never open the registry. Rows are judged by the code `mlc score` uses
(mlc.score.scoring), so a row is scored or rejected, with the same reason, by either engine:
here a rejected row keeps its place with null outputs and its reason in the error column.

pyspark is an extra (`pip install "mlc[spark]"`); executors need mlc installed too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlc.errors import MissingDependencyError, UsageError
from mlc.files import atomic_write
from mlc.score.columns import plan_columns
from mlc.score.model import ScoringModel
from mlc.score.scoring import output_columns, score_chunk

if TYPE_CHECKING:
    from pyspark.accumulators import Accumulator
    from pyspark.sql import DataFrame, SparkSession

    from mlc.registry import Registry
    from mlc.runtime.scorer import Scorer
    from mlc.score.run import ScoreOptions, ScoreSummary

ERROR_COLUMN = "mlc_error"
_CORRUPT = "_mlc_corrupt_record"
_UNSPLIT = "the line does not split into the header's fields"
_SCORERS: dict[tuple[str, int], Scorer] = {}  # per Python worker: (digest, threads) -> its Scorer


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingDependencyError("pyspark", "spark", "scoring on Spark") from None


def score(df: DataFrame, ref: str, *, registry: Registry | None = None, target: str | None = None,
          features: Sequence[str] | None = None, threads: int = 1, error_column: str = ERROR_COLUMN,
          builds: Accumulator[int] | None = None) -> DataFrame:
    """`df` with the model's output columns added (named as `mlc score` names them) and `error_column`:
    null for a scored row; for a rejected row, why, with null outputs.

    Columns are matched to the model's recorded feature names (or `features`, in the model's order);
    without names, every column of df is a feature, in order. `threads`: ONNX Runtime threads of each
    Python worker's Scorer (one per task slot is the usual setting). `builds`, an optional Spark
    accumulator, counts the Scorers built: one per Python worker, not one per batch.
    """
    require_pyspark()
    if threads < 1:
        raise UsageError(f"threads must be at least 1, not {threads}")
    model = ScoringModel.from_registry(ref, registry, target)
    plan = plan_columns(df.columns, source="the DataFrame", n_features=model.n_features,
                        feature_names=list(features) if features else model.feature_names)
    if error_column in df.columns:
        raise UsageError(f"the DataFrame already has a column {error_column!r}", "pass another error_column=")
    outputs = _output_schema(model)
    clash = [name for name, _ in outputs if name in df.columns]
    if clash:
        raise UsageError(f"the DataFrame already has a column {clash[0]!r}, which the model's outputs would add",
                         "rename or drop it first")
    schema = _spark_schema(df, outputs, error_column)
    shared = df.sparkSession.sparkContext.broadcast(model)
    feature_columns, classes = plan.features, model.signature.classes
    kinds = dict(outputs)

    def score_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        payload: ScoringModel = shared.value
        scorer = _scorer(payload, threads, builds)
        for batch in batches:
            yield _scored_batch(scorer, batch, feature_columns, classes, kinds, error_column)

    return df.mapInArrow(score_batches, schema)


def _scorer(model: ScoringModel, threads: int, builds: Accumulator[int] | None) -> Scorer:
    """This Python worker's Scorer for the model, built on first use."""
    key = (model.digest, threads)
    scorer = _SCORERS.get(key)
    if scorer is None:
        import onnxruntime

        onnxruntime.set_default_logger_severity(4)  # rows the model fails on are reported in the error column
        scorer = _SCORERS[key] = model.scorer(threads)
        if builds is not None:
            builds.add(1)
    return scorer


def _output_schema(model: ScoringModel) -> list[tuple[str, np.dtype]]:
    """The flat output columns and their types, learnt by scoring one row of zeros on the driver."""
    scorer = model.scorer(1)
    tail = tuple(1 if d is None else int(d) for d in scorer.signature.inputs[0].shape[1:])
    row = np.zeros((1, *tail), dtype=scorer.input_dtype)
    return [(name, values.dtype) for name, values in
            output_columns(scorer.predict(row), scorer.output_names, model.signature.classes)]


def _spark_schema(df: DataFrame, outputs: Sequence[tuple[str, np.dtype]], error_column: str) -> Any:
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        FloatType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    types: dict[str, dict[int, Any]] = {"f": {4: FloatType(), 8: DoubleType()},
                                        "i": {4: IntegerType(), 8: LongType()}}
    fields = list(df.schema.fields)
    for name, dtype in outputs:
        if dtype.kind == "b":
            spark_type: Any = BooleanType()
        elif dtype.kind in "fi" and dtype.itemsize in types[dtype.kind]:
            spark_type = types[dtype.kind][dtype.itemsize]
        elif dtype.kind == "u" or dtype.kind in "fi":
            spark_type = DoubleType() if dtype.kind == "f" else LongType()
        else:
            spark_type = StringType()
        fields.append(StructField(name, spark_type, nullable=True))
    fields.append(StructField(error_column, StringType(), nullable=True))
    return StructType(fields)


def _scored_batch(scorer: Scorer, batch: pa.RecordBatch, features: Sequence[str], classes: Any,
                  kinds: dict[str, np.dtype], error_column: str) -> pa.RecordBatch:
    n = batch.num_rows
    arrays = list(batch.columns)
    names = list(batch.schema.names)
    if n == 0:
        arrays += [pa.array([], pa.from_numpy_dtype(d)) for d in kinds.values()] + [pa.array([], pa.string())]
        return pa.RecordBatch.from_arrays(arrays, names=[*names, *kinds, error_column])
    scored = score_chunk(scorer, batch, features, classes)
    got = dict(scored.outputs)
    missing = ~scored.scored
    for name, dtype in kinds.items():
        full = np.zeros(n, dtype=dtype)
        if name in got:
            full[scored.scored] = got[name]
        arrays.append(pa.array(full, mask=missing if missing.any() else None))
    arrays.append(pa.array([scored.rejects.get(i) for i in range(n)], pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=[*names, *kinds, error_column])


# ---- files: `mlc score --engine spark` ---------------------------------------------------------


def _session(master: str, name: str) -> Any:
    """A Spark session; on a local master its Python workers run this interpreter, the one mlc is
    installed in (PySpark starts `python3` from the PATH unless PYSPARK_PYTHON names another, and
    that one may lack mlc). A cluster's executors keep the Python their configuration names."""
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # read by SparkContext as it starts
    return SparkSession.builder.master(master).appName(name).getOrCreate()


def score_files_spark(ref: str, inputs: Sequence[str | Path], out: str | Path, options: ScoreOptions, *,
                      master: str | None = None, registry: Registry | None = None,
                      session: SparkSession | None = None) -> ScoreSummary:
    """`mlc score` with Spark doing the reading, scoring and writing: the same outputs and rejects,
    written by Spark's writers (a folder of parts; the rejects as a folder of JSON lines)."""
    require_pyspark()
    from pyspark.sql import functions as F

    from mlc.score.inputs import discover
    from mlc.score.run import SUMMARY, ScoreSummary, check_options

    check_options(options)
    started = time.monotonic()
    files = discover(inputs)
    formats = {f.format for f in files}
    if len(formats) != 1 or formats & {"npy"}:
        raise UsageError(f"--engine spark reads Parquet, CSV or JSON lines inputs of one format, not {sorted(formats)}",
                         "convert .npy inputs to Parquet, or score them with the local engine")
    fmt = formats.pop()
    model = ScoringModel.from_registry(ref, registry, options.target)
    spark = session or _session(master or "local[*]", f"mlc score {ref}")
    paths = [str(f.path) for f in files]
    df, corrupt = _read(spark, fmt, paths)
    passthrough = [c for c in ((options.id_column,) if options.id_column else ()) + tuple(options.keep)]
    plan = plan_columns([c for c in df.columns if c != corrupt], source=", ".join(paths),
                        n_features=model.n_features, feature_names=options.features or model.feature_names,
                        id_column=options.id_column, keep=options.keep)
    # With a corrupt-record column every column is kept: Spark prunes the CSV parse to the columns
    # selected, and a short line then no longer counts as malformed.
    keep = df.columns if corrupt else list(plan.read)
    scored = score(df.select(*keep), ref, registry=registry, target=options.target, features=plan.features)
    if corrupt:  # a line Spark could not split into the header's fields: rejected, as mlc score's unparsed lines
        scored = scored.withColumn(ERROR_COLUMN, F.when(F.col(corrupt).isNotNull(), F.lit(_UNSPLIT))
                                   .otherwise(F.col(ERROR_COLUMN)))
    scored = scored.persist()
    outputs = [name for name, _ in _output_schema(model)]
    folder = Path(out)
    good = scored.where(F.col(ERROR_COLUMN).isNull()).select(*passthrough, *outputs)
    writer = good.write.mode("overwrite")
    if options.format == "csv":
        writer.option("header", True).csv(str(folder))
    elif options.format == "jsonl":
        writer.json(str(folder))
    else:
        writer.parquet(str(folder))
    rejected_columns = [F.col(ERROR_COLUMN).alias("reason"),
                        F.struct(*[F.col(c) for c in plan.read]).alias("values")]
    if corrupt:
        rejected_columns.append(F.col(corrupt).alias("text"))
    rejects = scored.where(F.col(ERROR_COLUMN).isNotNull()).select(*rejected_columns)
    rows_rejected = rejects.count()
    rows_out = good.count()
    if rows_rejected:
        rejects.coalesce(1).write.mode("overwrite").json(str(folder / "_rejects"))
    scored.unpersist()
    seconds = time.monotonic() - started
    rows_in = rows_out + rows_rejected
    summary = ScoreSummary(
        ref=model.ref, inputs=paths, out=str(folder), format=options.format, rows_in=rows_in, rows_out=rows_out,
        rows_rejected=rows_rejected, parts=len(list(folder.glob("part-*"))), resumed_parts=0,
        workers=spark.sparkContext.defaultParallelism, threads=1, seconds=round(seconds, 3),
        rows_per_s=round(rows_in / seconds, 1), rejects=str(folder / "_rejects") if rows_rejected else None,
        note=f"scored on Spark ({spark.sparkContext.master}); {model.note}".rstrip("; "))
    atomic_write(folder / SUMMARY, json.dumps(summary.to_dict(), indent=2).encode())
    return summary


def _read(spark: SparkSession, fmt: str, paths: list[str]) -> tuple[DataFrame, str | None]:
    """The inputs as a DataFrame; text formats read every column as text, as `mlc score` does, with
    lines that do not parse kept in a corrupt-record column."""
    from pyspark.sql.types import StringType, StructField, StructType

    if fmt == "parquet":
        return spark.read.parquet(*paths), None
    if fmt == "jsonl":
        df = spark.read.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT) \
            .option("primitivesAsString", True).json(paths)
        return df, (_CORRUPT if _CORRUPT in df.columns else None)
    headers = {_header_line(Path(p)) for p in paths}
    if len(headers) != 1:
        raise UsageError("--engine spark reads CSV inputs with one header, and these differ",
                         "score them in separate runs, or with the local engine (it matches columns per file)")
    names = headers.pop().split(",")
    schema = StructType([StructField(n, StringType(), True) for n in names] + [StructField(_CORRUPT, StringType())])
    df = spark.read.option("header", True).option("mode", "PERMISSIVE").option("enforceSchema", True) \
        .option("columnNameOfCorruptRecord", _CORRUPT).schema(schema).csv(paths)
    return df, _CORRUPT


def _header_line(path: Path) -> str:
    with path.open() as handle:
        return handle.readline().strip()
