"""`mlc monitor labels`: late labels joined to collected rows by request id, live quality beside drift.

The collected rows are written by the real collector's writer; the expected figures come from
scikit-learn's metrics on the same predictions and labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error

from mlc.cli import cli
from mlc.errors import UsageError
from mlc.monitor.collect import CollectSettings, Counters, PartitionWriter, Sample
from mlc.monitor.quality import join, measure, read_labels
from mlc.monitor.summary import DataSummary

from ._data import FEATURES, draw

ROWS = 2000
NOW_NS = 1_700_000_000 * 10**9


def classifier(x: np.ndarray) -> dict[str, np.ndarray]:
    """A fixed 3-class model: probabilities from a softmax of three linear scores, the label their argmax."""
    scores = np.nan_to_num(x[:, :3]) @ np.array([[1.0, -0.5, 0.2], [0.1, 0.3, -0.4], [-0.3, 0.2, 0.6]])
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return {"label": p.argmax(axis=1).astype(np.int64), "probabilities": p.astype(np.float32)}


def collect(root: Path, x: np.ndarray, model, rows_per_request: int = 1) -> list[str]:
    """Requests of `rows_per_request` rows as mlc serve --collect writes them; their ids."""
    writer = PartitionWriter(CollectSettings(root), {("m", 1): FEATURES}, Counters(None, 0))
    ids = []
    for i in range(0, len(x), rows_per_request):
        chunk = x[i:i + rows_per_request]
        ids.append(f"req-{i}")
        writer.add(Sample("m", 1, None, ids[-1], NOW_NS + i * 10**6, chunk, model(chunk)))
    writer.flush()
    return ids


def true_classes(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The model's label, wrong for about a fifth of the rows."""
    label = classifier(x)["label"]
    wrong = rng.random(len(label)) < 0.2
    return np.where(wrong, (label + 1) % 3, label)


def test_classifier_accuracy_and_log_loss_match_scikit_learn(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = draw(rng, ROWS)
    ids = collect(tmp_path / "c", x, classifier)
    truth = true_classes(x, rng)
    labelled = rng.permutation(ROWS)[: ROWS // 2]  # half the requests got a label, in any order
    pd.DataFrame({"request_id": [ids[i] for i in labelled], "label": truth[labelled]}).to_csv(
        tmp_path / "labels.csv", index=False)
    labels = read_labels(tmp_path / "labels.csv")
    quality = measure(join(tmp_path / "c", labels, model="m", version=1), len(labels), classes=[0, 1, 2])
    p = classifier(x[labelled])["probabilities"].astype(np.float64)
    p /= p.sum(axis=1, keepdims=True)  # float32 rows sum to 1 within 1e-7; scikit-learn warns otherwise
    assert quality.task == "classification" and quality.rows == quality.labels == ROWS // 2
    assert quality.metrics["accuracy"] == pytest.approx(accuracy_score(truth[labelled], p.argmax(axis=1)))
    assert quality.metrics["log_loss"] == pytest.approx(log_loss(truth[labelled], p, labels=[0, 1, 2]), rel=1e-6)
    assert 0.75 < quality.metrics["accuracy"] < 0.85


def test_regressor_rmse_and_mae_with_rows_of_multi_row_requests(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = draw(rng, ROWS)

    def regressor(chunk: np.ndarray) -> dict[str, np.ndarray]:
        return {"variable": (np.nan_to_num(chunk[:, :2]) @ np.array([2.0, -1.0])).astype(np.float32)}

    ids = collect(tmp_path / "c", x, regressor, rows_per_request=4)
    truth = regressor(x)["variable"].astype(np.float64) + rng.normal(0, 0.5, ROWS)
    labels = pd.DataFrame({"request_id": np.repeat(ids, 4), "row": np.tile(np.arange(4), len(ids)), "y": truth})
    labels.to_parquet(tmp_path / "labels.parquet")
    frame = read_labels(tmp_path / "labels.parquet", label_column="y")
    quality = measure(join(tmp_path / "c", frame, model="m", version=1), len(frame))
    predicted = regressor(x)["variable"].astype(np.float64)
    assert quality.task == "regression" and quality.rows == ROWS
    assert quality.metrics["rmse"] == pytest.approx(mean_squared_error(truth, predicted) ** 0.5, rel=1e-6)
    assert quality.metrics["mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-6)
    # Without the row column the join cannot say which of a request's rows a label is for.
    with pytest.raises(UsageError, match="'row' column"):
        join(tmp_path / "c", frame.drop(columns="row"), model="m", version=1)


def test_labels_of_requests_never_collected_are_counted_not_guessed(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = draw(rng, 300)
    ids = collect(tmp_path / "c", x, classifier)
    lines = [{"request_id": i, "label": int(v)} for i, v in zip(ids, classifier(x)["label"], strict=True)]
    lines += [{"request_id": f"lost-{k}", "label": 0} for k in range(50)]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    labels = read_labels(tmp_path / "labels.jsonl")
    quality = measure(join(tmp_path / "c", labels, model="m", version=1), len(labels))
    assert (quality.labels, quality.rows, quality.unmatched) == (350, 300, 50)
    assert quality.metrics["accuracy"] == 1.0
    assert any("probability column k is read as class k" in n for n in quality.notes)


def test_missing_label_column_names_the_flags(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "label": [1]}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(UsageError, match="--id-column"):
        read_labels(tmp_path / "l.csv")


def test_cli_reports_quality_beside_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(3)
    ref = draw(rng, ROWS)
    reference = DataSummary.from_rows(ref, classifier(ref), feature_names=FEATURES,
                                      meta={"ref": "m:1", "task": "classification", "classes": [0, 1, 2]})
    reference.save(tmp_path / "ref.json")
    x = draw(rng, ROWS)
    x[:, 3] += 1.2
    ids = collect(tmp_path / "c", x, classifier)
    pd.DataFrame({"request_id": ids, "label": true_classes(x, rng)}).to_csv(tmp_path / "labels.csv", index=False)
    args = ["monitor", "labels", str(tmp_path / "ref.json"), str(tmp_path / "labels.csv"),
            "--collected", str(tmp_path / "c")]
    result = CliRunner().invoke(cli, [*args, "--json", "-o", str(tmp_path / "r.md")])
    assert result.exit_code == 4, result.output
    body = json.loads(result.output)["body"]
    assert body["drifted"] == ["f3"] and body["quality"]["rows"] == ROWS
    assert set(body["quality"]["metrics"]) == {"accuracy", "log_loss"} and not body["quality"]["notes"]
    page = (tmp_path / "r.md").read_text()
    assert "Live quality" in page and "log-loss" in page and "DRIFT" in page
    # A version with no reference: quality alone, drift said to be unchecked, exit 0.
    result = CliRunner().invoke(cli, ["monitor", "labels", "m:1", str(tmp_path / "labels.csv"),
                                      "--collected", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "Drift not checked" in result.output and "accuracy" in result.output
