"""`mlc score` end to end: real worker processes, real files, results checked against the models' own predict."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlc.errors import UsageError
from mlc.registry import EngineChoice, Registry, RuntimeRecord
from mlc.score import ScoreOptions, score_files
from tests.score.conftest import FEATURES, Models, frame, read_parts


def _expected(models: Models, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x = data[list(FEATURES)].astype(np.float32)
    return models.forest.predict(x), models.forest.predict_proba(x)


def test_parquet_with_reordered_columns_scores_as_the_model_predicts(models: Models, registry: Registry,
                                                                   tmp_path: Path) -> None:
    data = frame(1000)
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), tmp_path / "in.parquet", row_group_size=300)
    summary = score_files("forest:1", [tmp_path / "in.parquet"], tmp_path / "out",
                          ScoreOptions(id_column="id", keep=("note",), chunk_rows=128, workers=2), registry=registry)
    assert summary.ref == "forest:2" and "optimized version forest:2" in summary.note  # forest:1 is the joblib
    assert (summary.rows_in, summary.rows_out, summary.rows_rejected) == (1000, 1000, 0)
    assert summary.parts == 8 and summary.workers * summary.threads >= summary.workers
    out = read_parts(tmp_path / "out")
    assert list(out.columns) == ["id", "note", "label", "probabilities_0", "probabilities_1", "probabilities_2"]
    assert out["id"].tolist() == list(range(1000))  # input order kept across parts and workers
    assert out["note"].tolist() == data["note"].tolist()
    labels, probabilities = _expected(models, data)
    np.testing.assert_array_equal(out["label"], labels)
    np.testing.assert_allclose(out[["probabilities_0", "probabilities_1", "probabilities_2"]], probabilities,
                               atol=1e-5)
    written = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert written["rows_in"] == written["rows_out"] + written["rows_rejected"] == 1000


def test_scored_in_process_by_default_and_equal_to_worker_processes(registry: Registry, tmp_path: Path) -> None:
    """A Parquet input of an ONNX version is scored in the command's own process unless asked
    otherwise (choose_workers); its parts are those of two worker processes, up to the float32
    rounding of ONNX Runtime summing the trees on 2 threads instead of 1."""
    pq.write_table(pa.Table.from_pandas(frame(700), preserve_index=False), tmp_path / "in.parquet")
    runs = {}
    for workers in (None, 2):
        out = tmp_path / f"out-{workers}"
        runs[workers] = score_files("forest:1", [tmp_path / "in.parquet"], out,
                                    ScoreOptions(id_column="id", chunk_rows=100, workers=workers), registry=registry)
    assert (runs[None].workers, runs[2].workers) == (0, 2)
    assert runs[None].peak_rss_bytes["workers"] == [] and len(runs[2].peak_rss_bytes["workers"]) == 2
    parts = {w: sorted(p.name for p in (tmp_path / f"out-{w}").glob("part-*")) for w in runs}
    assert len(parts[None]) == 7 and parts[None] == parts[2]
    in_process, pooled = read_parts(tmp_path / "out-None"), read_parts(tmp_path / "out-2")
    assert in_process["id"].tolist() == list(range(700)) and list(in_process.columns) == list(pooled.columns)
    np.testing.assert_array_equal(in_process["label"], pooled["label"])
    np.testing.assert_allclose(in_process.iloc[:, 2:], pooled.iloc[:, 2:], atol=1e-6, rtol=0)


def test_json_lines_and_native_plans_take_a_worker_per_core(registry: Registry, tmp_path: Path) -> None:
    from mlc.score.inputs import discover
    from mlc.score.model import ScoringModel
    from mlc.score.run import choose_workers

    (tmp_path / "a.jsonl").write_text('{"a": 1}\n')
    pq.write_table(pa.table({"a": [1.0]}), tmp_path / "b.parquet")
    jsonl, parquet = discover([tmp_path / "a.jsonl"]), discover([tmp_path / "b.parquet"])
    model = ScoringModel.from_registry("forest:1", registry)
    assert choose_workers(None, model, parquet, 4) == 0
    assert choose_workers(None, model, parquet + jsonl, 4) == 4  # Python parses JSON: one core per worker
    assert choose_workers(None, model, jsonl, 1) == 0  # one core: a worker would only add its start-up
    assert choose_workers(3, model, jsonl, 4) == 3 and choose_workers(0, model, jsonl, 4) == 0
    native = replace(model, runtime=RuntimeRecord(session={}, engines=(EngineChoice("native"),), native="forest:1"))
    assert choose_workers(None, native, parquet, 2) == 2


def test_the_runtime_plan_is_the_one_recorded(registry: Registry, tmp_path: Path) -> None:
    """forest-kernel's plan sends batches of up to 64 rows to mlc's tree kernel: 50-row chunks run there,
    and score as ONNX Runtime does."""
    data = frame(400)
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), tmp_path / "in.parquet")
    for name in ("forest", "forest-kernel"):
        score_files(name, [tmp_path / "in.parquet"], tmp_path / name, ScoreOptions(chunk_rows=50, workers=1),
                    registry=registry)
    ort, kernel = read_parts(tmp_path / "forest"), read_parts(tmp_path / "forest-kernel")
    np.testing.assert_array_equal(kernel["label"], ort["label"])
    np.testing.assert_allclose(kernel.drop(columns="label"), ort.drop(columns="label"), atol=1e-6)
    from mlc.score.model import ScoringModel

    assert ScoringModel.from_registry("forest-kernel", registry).scorer(1).engine_for(50) == "mlc-trees"


def test_bad_rows_go_to_the_rejects_file_with_reasons_and_the_counts_add_up(models: Models, registry: Registry,
                                                                         tmp_path: Path) -> None:
    lines = ["id,d,note,b,a,c"] + [f"{i},0.{i},n{i},1.5,-0.5,{i % 3}" for i in range(40)]
    lines[5] = "4,0.4,n4,oops,-0.5,1"  # a string in a numeric column
    lines[9] = "8,0.8,n8,1.5"  # wrong width
    lines[12] = "11,NA,n11,1.5,-0.5,"  # missing values: NaN, scored
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    summary = score_files("forest", [tmp_path / "in.csv"], tmp_path / "out",
                          ScoreOptions(id_column="id", chunk_rows=16, workers=1, format="csv"), registry=registry)
    assert (summary.rows_in, summary.rows_out, summary.rows_rejected) == (40, 38, 2)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "_rejects.jsonl").read_text().splitlines()]
    assert rejects[0]["reason"] == "column 'b': 'oops' is not a number" and rejects[0]["values"]["id"] == "4"
    assert rejects[1]["line"] == 10 and "has 4 fields, the header 6" in rejects[1]["reason"]
    assert rejects[1]["text"] == "8,0.8,n8,1.5"
    out = read_parts(tmp_path / "out")
    assert out["id"].tolist() == [i for i in range(40) if i not in (4, 8)]
    x = np.array([[-0.5, 1.5, i % 3, float(f"0.{i}")] for i in range(40) if i not in (4, 8)], dtype=np.float32)
    x[out["id"].tolist().index(11), [2, 3]] = np.nan
    np.testing.assert_array_equal(out["label"], models.forest.predict(pd.DataFrame(x, columns=list(FEATURES))))


def test_rows_the_model_fails_on_are_rejected_with_its_message(registry: Registry, tmp_path: Path) -> None:
    x = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (50, 1))
    x[:, 0] = np.arange(50) % 10
    x[[7, 31], 0] = 42  # out of the model's table: ONNX Runtime fails the whole call
    np.save(tmp_path / "in.npy", x)
    summary = score_files("fails", [tmp_path / "in.npy"], tmp_path / "out", ScoreOptions(chunk_rows=20, workers=1),
                          registry=registry)
    assert (summary.rows_out, summary.rows_rejected) == (48, 2)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "_rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [7, 31] and all("the model failed on this row" in r["reason"]
                                                          for r in rejects)
    assert rejects[0]["values"] == [42.0, 0.0]
    np.testing.assert_array_equal(read_parts(tmp_path / "out")["y"], np.delete(x[:, 0], [7, 31]))


def test_json_lines_folders_and_several_files_keep_their_order(models: Models, registry: Registry,
                                                            tmp_path: Path) -> None:
    data = frame(30)
    folder = tmp_path / "inputs"
    folder.mkdir()
    for k, part in enumerate((data[:10], data[10:30])):
        part.to_json(folder / f"p{k}.jsonl", orient="records", lines=True)
    with (folder / "p0.jsonl").open("a") as handle:
        handle.write("{broken\n")
    (folder / "_ignored.csv").write_text("x\n1\n")
    summary = score_files("forest", [folder], tmp_path / "out", ScoreOptions(id_column="id", chunk_rows=7,
                                                                              workers=2, format="jsonl"),
                          registry=registry)
    assert (summary.rows_in, summary.rows_out, summary.rows_rejected) == (31, 30, 1)
    out = read_parts(tmp_path / "out")
    assert out["id"].tolist() == list(range(30))
    np.testing.assert_array_equal(out["label"], _expected(models, data)[0])


def test_a_model_without_feature_names_takes_columns_in_order(models: Models, registry: Registry,
                                                             tmp_path: Path) -> None:
    x = np.random.default_rng(3).normal(size=(100, 4)).astype(np.float32)
    table = pa.table({"key": np.arange(100), **{f"x{j}": x[:, j] for j in range(4)}})
    pq.write_table(table, tmp_path / "in.parquet")
    score_files("logreg", [tmp_path / "in.parquet"], tmp_path / "out",
                ScoreOptions(id_column="key", workers=1), registry=registry)
    out = read_parts(tmp_path / "out")
    np.testing.assert_array_equal(out["label"], models.logreg.predict(x))
    with pytest.raises(UsageError, match=r"takes 4 features but .* has 5 columns"):
        score_files("logreg", [tmp_path / "in.parquet"], tmp_path / "out2", registry=registry)
    assert not (tmp_path / "out2").exists()  # refused before any work


def test_a_missing_column_is_an_error_before_any_work(registry: Registry, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame(10).drop(columns=["c"]), preserve_index=False), tmp_path / "in.parquet")
    with pytest.raises(UsageError, match="lacks 1 of the model's 4 feature columns: 'c'"):
        score_files("forest", [tmp_path / "in.parquet"], tmp_path / "out", registry=registry)
    assert not (tmp_path / "out").exists()


def test_a_folder_of_another_run_is_not_overwritten(registry: Registry, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame(10), preserve_index=False), tmp_path / "in.parquet")
    score_files("forest", [tmp_path / "in.parquet"], tmp_path / "out", ScoreOptions(workers=1), registry=registry)
    with pytest.raises(UsageError, match=r"holds the output of another run .*format"):
        score_files("forest", [tmp_path / "in.parquet"], tmp_path / "out", ScoreOptions(workers=1, format="csv"),
                    registry=registry)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty and holds no mlc score run"):
        score_files("forest", [tmp_path / "in.parquet"], tmp_path / "other", registry=registry)


def test_cli_prints_the_counts_progress_lines_and_json(mlc_env: dict[str, str], tmp_path: Path) -> None:
    data = frame(200)
    data.loc[3, "a"] = np.nan
    data = data.astype({"b": str})
    data.loc[5, "b"] = "n/a?"
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), tmp_path / "in.parquet")
    args = [sys.executable, "-m", "mlc", "score", "forest", str(tmp_path / "in.parquet"), "--id-column", "id",
            "--keep", "note", "--chunk-rows", "64", "--workers", "2"]
    text = subprocess.run([*args, "--out", str(tmp_path / "a")], env=mlc_env, capture_output=True, text=True,
                          timeout=120)
    assert text.returncode == 0, text.stderr
    assert "200 rows in = 199 scored + 1 rejected" in text.stdout and "_rejects.jsonl" in text.stdout
    assert "mlc score: scored 200 / 200 rows (100%)" in text.stderr  # plain progress lines: stderr is no TTY
    as_json = subprocess.run([*args, "--out", str(tmp_path / "b"), "--json"], env=mlc_env, capture_output=True,
                             text=True, timeout=120)
    summary = json.loads(as_json.stdout)
    assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (200, 199, 1)
    assert summary["workers"] == 2 and len(summary["peak_rss_bytes"]["workers"]) == 2


def test_cli_errors_are_clear(mlc_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("1,2\n")
    result = subprocess.run([sys.executable, "-m", "mlc", "score", "forest", str(tmp_path / "in.txt"), "--out",
                             str(tmp_path / "o")], env=mlc_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown file type .txt" in result.stderr and "hint:" in result.stderr
    result = subprocess.run([sys.executable, "-m", "mlc", "score", "nosuch", str(tmp_path / "in.txt"), "--out",
                             str(tmp_path / "o")], env=mlc_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no model nosuch" in result.stderr
