"""How fast does `mlc score` go through a 1M-row Parquet file, against what a user would write instead?

    python benchmarks/bench_score.py            # 1M rows, 3 repeats -> results/score.json, results/score.md
    python benchmarks/bench_score.py --quick    # 200k rows, 1 repeat (a smoke run; no results written)
    python benchmarks/bench_score.py --spark    # also `mlc score --engine spark` in local mode, once

Models: the optimize suite's forest-100 (RandomForestClassifier, 100 trees of depth 10, 30 features)
and logreg-50 (LogisticRegression, 50 features), trained with fixed seeds (mlc.bench.suite.FULL) and
optimized by `mlc optimize` for the cpu-2 target into a scratch registry. Input: Parquet, an int64
id and float32 features drawn from the training distribution, row groups of 131,072 rows.
Every variant reads and writes in chunks of 65,536 rows; outputs are Parquet (id, label, one
probability column per class):
- io_floor: pyarrow reads the input and writes an output of the same shape, nothing scored;
- native: the model's own predict and predict_proba over the chunks, in one process (defaults);
- plain_ort: mlc's conversion (before any pass) in an ONNX Runtime session with default options
  (every core), over the chunks, in one process;
- native_script, plain_ort_script: the same two loops as a user runs them, `python score.py` in a
  fresh interpreter: its imports and the model's loading count, as the mlc command's do;
- ceiling: mlc's Scorer as `mlc score` builds it (the version's runtime plan, given every core) on
  the features already in memory, chunk by chunk: compute only, no I/O;
- mlc_score: the `mlc score` command, end to end (process start, the run; with its default
  layout: scored in its own process for these models, see mlc.score.run.choose_workers);
- with --spark, once: `mlc score --engine spark --master local[cores]` end to end (JVM start-up
  included), for the local-mode throughput beside mlc score's.
Every variant's labels are compared with native's (agreement) and probabilities (max abs error):
a fast wrong answer is not a result. Wall times are medians over the repeats. Targets: mlc_score
ahead of native and plain_ort for both models (judged against the in-process loops and, like for
like, against the scripts); mlc_score wall <= 1.25 x (io_floor + ceiling).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("forest-100", "logreg-50")
CHUNK = 65_536
ROW_GROUP = 131_072
TARGET_RATIO = 1.25


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _chunks(path: Path, columns: list[str]) -> Any:
    return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False).iter_batches(batch_size=CHUNK, columns=columns)


def _write_outputs(folder: Path, index: int, ids: pa.Array, label: np.ndarray, probabilities: np.ndarray) -> None:
    columns = {"id": ids, "label": pa.array(label)}
    for j in range(probabilities.shape[1]):
        columns[f"probabilities_{j}"] = pa.array(np.ascontiguousarray(probabilities[:, j], dtype=np.float32))
    pq.write_table(pa.table(columns), folder / f"part-{index:06d}.parquet")


def _read_labels(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.dataset as ds

    table = ds.dataset(sorted(str(p) for p in folder.glob("part-*.parquet")), format="parquet").to_table()
    probs = [c for c in table.column_names if c.startswith("probabilities_")]
    return table.column("label").to_numpy(), np.column_stack([table.column(c).to_numpy() for c in probs])


def _features(batch: pa.RecordBatch, names: list[str]) -> np.ndarray:
    return np.column_stack([batch.column(n).to_numpy() for n in names]).astype(np.float32, copy=False)


# ---- the variants -------------------------------------------------------------------------------


def io_floor(source: Path, out: Path, names: list[str], n_classes: int) -> None:
    for i, batch in enumerate(_chunks(source, ["id", *names])):
        _features(batch, names)
        n = batch.num_rows
        _write_outputs(out, i, batch.column(0), np.zeros(n, np.int64), np.zeros((n, n_classes), np.float32))


def chunked(predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> Callable[..., None]:
    def run(source: Path, out: Path, names: list[str], n_classes: int) -> None:
        for i, batch in enumerate(_chunks(source, ["id", *names])):
            label, probabilities = predict(_features(batch, names))
            _write_outputs(out, i, batch.column(0), label, probabilities)
    return run


def native_predict(estimator: Any) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = estimator.predict_proba(x)
        return estimator.classes_[probabilities.argmax(axis=1)], probabilities
    return predict


def ort_predict(onnx_bytes: bytes) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        label, probabilities = session.run(None, {feed: x})
        return label, probabilities
    return predict


def as_script(baseline: str, artifact: Path) -> Callable[..., None]:
    """A baseline as a user runs it: `python score.py` in a fresh interpreter (its imports and the
    model's loading included, as the mlc command's are), running the same chunked loop."""
    def run(source: Path, out: Path, names: list[str], n_classes: int) -> None:
        subprocess.run([sys.executable, __file__, "--run-baseline", baseline, "--artifact", str(artifact),
                        "--source", str(source), "--out", str(out), "--names", ",".join(names)], check=True)
    return run


def run_baseline(baseline: str, artifact: Path, source: Path, out: Path, names: list[str]) -> None:
    """The body of `python score.py` for a baseline (see as_script)."""
    if baseline == "native":
        import joblib

        predict = native_predict(joblib.load(artifact))
    else:
        predict = ort_predict(artifact.read_bytes())
    chunked(predict)(source, out, names, 0)


def mlc_score_cli(ref: str, env: dict[str, str], inner: list[float], *extra: str) -> Callable[..., None]:
    """The command as a user runs it; `inner` collects the run's own seconds (from its summary)."""
    def run(source: Path, out: Path, names: list[str], n_classes: int) -> None:
        shutil.rmtree(out)
        done = subprocess.run([sys.executable, "-m", "mlc", "score", ref, str(source), "--out", str(out),
                               "--id-column", "id", "--chunk-rows", str(CHUNK), "--json", *extra], env=env,
                              check=True, capture_output=True, text=True)
        inner.append(json.loads(done.stdout[done.stdout.index("{"):])["seconds"])
    return run


# ---- one model ----------------------------------------------------------------------------------


def bench_model(suite_model: Any, rows: int, repeats: int, workdir: Path, say: Callable[[str], None],
                with_spark: bool = False) -> dict[str, Any]:
    import joblib

    from mlc.bench.suite import _data, converted_onnx
    from mlc.optimize import optimize
    from mlc.registry import Registry
    from mlc.score.model import ScoringModel

    say(f"{suite_model.name}: training and optimizing for cpu-2")
    estimator, eval_rows = suite_model.train()
    model_path = workdir / f"{suite_model.name}.joblib"
    joblib.dump(estimator, model_path)
    home = workdir / "registry"
    registry = Registry(home)
    result = optimize(model_path, name=suite_model.name, target="cpu-2", data=eval_rows,
                      batch_sizes=(1, 32, 1024), registry=registry)
    ref = str(result.winner)
    names = [f"f{j}" for j in range(suite_model.n_features)]
    x, _ = _data(suite_model.n_features, suite_model.n_classes, rows)
    source = workdir / f"{suite_model.name}.parquet"
    table = pa.table({"id": np.arange(rows, dtype=np.int64), **{n: x[:, j] for j, n in enumerate(names)}})
    pq.write_table(table, source, row_group_size=ROW_GROUP)
    del table
    # The Scorer as `mlc score` builds it (the version's plan), given every core of this machine.
    scorer = ScoringModel.from_registry(ref, registry).scorer(_cores())
    native_labels, native_probabilities = native_predict(estimator)(x)

    def ceiling() -> float:
        started = time.perf_counter()
        for start in range(0, rows, CHUNK):
            scorer.predict(x[start:start + CHUNK])
        return time.perf_counter() - started

    env = {**os.environ, "MLC_HOME": str(home)}
    env.pop("MLC_REGISTRY_URL", None)
    inner: list[float] = []
    plain_onnx = workdir / f"{suite_model.name}.onnx"
    plain_onnx.write_bytes(converted_onnx(estimator))
    variants: dict[str, Callable[..., None]] = {
        "io_floor": io_floor,
        "native": chunked(native_predict(estimator)),
        "plain_ort": chunked(ort_predict(plain_onnx.read_bytes())),
        "native_script": as_script("native", model_path),
        "plain_ort_script": as_script("plain_ort", plain_onnx),
        "mlc_score": mlc_score_cli(ref, env, inner),
    }
    walls: dict[str, list[float]] = {name: [] for name in [*variants, "ceiling"]}
    checks: dict[str, dict[str, Any]] = {}
    n_classes = native_probabilities.shape[1]
    for repeat in range(repeats):
        for name, run in variants.items():  # interleaved, so load on the shared machine hits all alike
            out = workdir / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            started = time.perf_counter()
            run(source, out, names, n_classes)
            walls[name].append(time.perf_counter() - started)
            if repeat == 0 and name != "io_floor":
                label, probabilities = _read_labels(out)
                checks[name] = {"label_agreement": float(np.mean(label == native_labels)),
                                "max_abs_probability_error": float(np.max(np.abs(probabilities
                                                                                 - native_probabilities)))}
        walls["ceiling"].append(ceiling())
        say(f"  repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in walls.items()))
    spark: dict[str, Any] | None = None
    if with_spark:  # once: a JVM start-up per run, and local mode is for comparison, not production
        spark_inner: list[float] = []
        out = workdir / "out-spark"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        started = time.perf_counter()
        mlc_score_cli(ref, env, spark_inner, "--engine", "spark", "--master", f"local[{_cores()}]")(
            source, out, names, n_classes)
        wall = time.perf_counter() - started
        spark = {"wall_s": round(wall, 3), "run_s": spark_inner[0], "rows_per_s": round(rows / wall),
                 "master": f"local[{_cores()}]"}
        say(f"  spark local: {wall:.2f}s")
    median = {k: statistics.median(v) for k, v in walls.items()}
    bound = TARGET_RATIO * (median["io_floor"] + median["ceiling"])
    return {
        "model": suite_model.name, "description": suite_model.description, "ref": ref,
        "plan": result.plan.describe(), "ceiling_engine": scorer.engine_for(CHUNK), "rows": rows,
        "wall_s": {k: round(v, 3) for k, v in median.items()},
        "rows_per_s": {k: round(rows / v) for k, v in median.items()},
        "all_walls_s": {k: [round(t, 3) for t in v] for k, v in walls.items()},
        "checks": checks,
        "mlc_score_run_s": round(statistics.median(inner), 3),  # the run inside the command (summary's seconds)
        "spark_local": spark,
        "targets": {"ahead_of_native": median["mlc_score"] < median["native"],
                    "ahead_of_plain_ort": median["mlc_score"] < median["plain_ort"],
                    "ahead_of_native_script": median["mlc_score"] < median["native_script"],
                    "ahead_of_plain_ort_script": median["mlc_score"] < median["plain_ort_script"],
                    f"wall<={TARGET_RATIO}x(io_floor+ceiling)": median["mlc_score"] <= bound},
        "bound_s": round(bound, 3),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# mlc score benchmark", "",
        f"{report['machine']}; {report['rows']:,} rows of Parquet per model, chunks of {CHUNK:,} rows, "
        f"medians of {report['repeats']} interleaved repeats. The machine is shared with other work "
        "(2 cores), so absolute times move between runs; the variants ran interleaved to share that load.", "",
        "| model | variant | wall s | rows/s | label agreement vs native | max abs prob. error |",
        "|---|---|---|---|---|---|",
    ]
    for m in report["models"]:
        for name in ("io_floor", "ceiling", "native", "plain_ort", "native_script", "plain_ort_script", "mlc_score"):
            check = m["checks"].get(name, {})
            agreement = f"{check['label_agreement']:.4%}" if check else "–"
            error = f"{check['max_abs_probability_error']:.2e}" if check else "–"
            lines.append(f"| {m['model']} | {name} | {m['wall_s'][name]:.2f} | {m['rows_per_s'][name]:,} | "
                         f"{agreement} | {error} |")
    lines += ["", "| model | mlc plan | ahead of native (in process / script) | ahead of plain ORT (in process / "
              "script) | wall ≤ 1.25 × (I/O floor + ceiling) |", "|---|---|---|---|---|"]
    for m in report["models"]:
        t = m["targets"]
        lines.append(f"| {m['model']} | {m['plan']} | {t['ahead_of_native']} / {t['ahead_of_native_script']} | "
                     f"{t['ahead_of_plain_ort']} / {t['ahead_of_plain_ort_script']} | "
                     f"{t[f'wall<={TARGET_RATIO}x(io_floor+ceiling)']} ({m['wall_s']['mlc_score']:.2f} s against "
                     f"{m['bound_s']:.2f} s) |")
    lines += ["", "| model | mlc score: command wall s | of which the run (summary) s | Spark local mode wall s | "
              "Spark rows/s |", "|---|---|---|---|---|"]
    for m in report["models"]:
        spark = m.get("spark_local")
        spark_cells = (f"{spark['wall_s']:.2f} ({spark['master']}) | {spark['rows_per_s']:,}" if spark
                       else "not run | –")
        lines.append(f"| {m['model']} | {m['wall_s']['mlc_score']:.2f} | {m['mlc_score_run_s']:.2f} | {spark_cells} |")
    lines += ["", "ceiling: compute only, on arrays in memory (no reading, no writing); native and plain_ort: the loop "
              "inside the benchmark's process, model loaded and modules imported; *_script: the same loop as "
              "`python score.py` in a fresh interpreter (imports and model loading included); mlc_score: the whole "
              "command, process start (and any worker spawn) included."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows, 1 repeat, nothing written")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--spark", action="store_true",
                        help="also time `mlc score --engine spark` in local mode, once (needs mlc[spark], Java 17)")
    # The script form of a baseline (as_script runs the benchmark again with these).
    parser.add_argument("--run-baseline", choices=("native", "plain_ort"), help=argparse.SUPPRESS)
    parser.add_argument("--artifact", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_baseline:
        run_baseline(args.run_baseline, args.artifact, args.source, args.out, args.names.split(","))
        return
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    repeats = args.repeats or (1 if args.quick else 3)
    from mlc.bench.suite import FULL

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    chosen = [m for m in FULL if m.name in MODELS]
    with tempfile.TemporaryDirectory(prefix="mlc-bench-score-") as tmp:
        results = []
        for suite_model in chosen:
            workdir = Path(tmp) / suite_model.name
            workdir.mkdir()
            results.append(bench_model(suite_model, rows, repeats, workdir, say, with_spark=args.spark))
    report = {"machine": f"{platform.processor() or platform.machine()}, {_cores()} usable cores",
              "rows": rows, "repeats": repeats, "chunk_rows": CHUNK, "models": results}
    text = markdown(report)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "score.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "score.md").write_text(text)


if __name__ == "__main__":
    main()
