"""`mlc compare NEW OLD` on real registered versions: agreement, quality with intervals, interleaved latency."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from mlc.cli.lifecycle import compare_cmd
from mlc.cli.report import report_group
from mlc.errors import UsageError
from mlc.lifecycle.compare import compare_versions, metric_values
from mlc.lifecycle.rows import Rows, read_rows
from mlc.targets import get_target

TARGET = get_target("cpu-2")


def _rows(data, labels=True):
    return Rows(data.x[200:], data.y_class[200:] if labels else None, "held-out rows")


def test_a_version_against_itself_agrees_everywhere(registry, data):
    body = compare_versions(registry, "clf:2", "clf:2", _rows(data), TARGET, budget_s=0.05, resamples=50)
    assert body["agreement"]["label_agreement"] == 1.0
    assert body["agreement"]["max_abs_diff"] == 0.0 and body["agreement"]["rows_differing"] == 0
    counts = np.array(body["confusion"]["counts"])
    assert counts.sum() == 200 and np.trace(counts) == 200
    for name, est in body["quality"]["diff"].items():
        assert est == {"value": 0.0, "low": 0.0, "high": 0.0}, name


def test_the_better_classifier_is_found_better_with_its_interval(registry, data):
    body = compare_versions(registry, "clf:2", "clf:1", _rows(data), TARGET, budget_s=0.05, resamples=200)
    quality = body["quality"]
    assert quality["metrics"] == ["accuracy", "log_loss", "auc", "f1"]
    assert quality["new"]["accuracy"]["value"] > 0.8
    assert quality["diff"]["accuracy"]["low"] > 0  # the better model's gain is beyond the interval
    assert quality["diff"]["log_loss"]["high"] < 0
    counts = np.array(body["confusion"]["counts"])
    assert counts.sum() == 200
    disagree = 1 - body["agreement"]["label_agreement"]
    assert counts.sum() - np.trace(counts) == round(disagree * 200)
    latency = body["latency"]
    assert latency["batch_sizes"] == list(TARGET.batch_sizes) and latency["interleaved"]
    for side in ("new", "old"):
        for b in TARGET.batch_sizes:
            assert latency[side][str(b)]["samples"] >= 7
    figures = metric_values(body, "new")
    assert figures["accuracy"] == quality["new"]["accuracy"]["value"]
    assert figures["auc.low"] <= figures["auc"] <= figures["auc.high"]
    assert {"p99_us@1", "median_us@32", "agreement", "max_diff", "diff.accuracy.low"} <= set(figures)


def test_regressors_get_regression_metrics_and_no_confusion_table(registry, data):
    rows = Rows(data.x[200:], data.y_value[200:], "rows")
    body = compare_versions(registry, "reg:2", "reg:1", rows, TARGET, budget_s=0.05, resamples=100)
    assert body["task"] == "regression" and body["confusion"] is None
    assert body["agreement"]["label_agreement"] is None
    quality = body["quality"]
    assert quality["metrics"] == ["rmse", "mae", "r2"]
    assert quality["diff"]["rmse"]["high"] < 0 and quality["new"]["r2"]["value"] > 0.8


def test_without_labels_only_agreement_and_latency(registry, data):
    body = compare_versions(registry, "clf:2", "clf:1", _rows(data, labels=False), TARGET, budget_s=0.05)
    assert body["quality"] is None and body["labelled"] is False
    assert "accuracy" not in metric_values(body, "new")


def test_a_classifier_and_a_regressor_do_not_compare(registry, data):
    with pytest.raises(UsageError, match="regression"):
        compare_versions(registry, "clf:2", "reg:1", _rows(data), TARGET, budget_s=0.05)


def test_labels_from_a_column_or_from_a_file(rows_file, tmp_path, data):
    by_column = read_rows(rows_file, "label", 4)
    np.testing.assert_array_equal(by_column.y, data.y_class[200:])
    assert by_column.x.shape == (200, 4)
    labels = tmp_path / "labels.npy"
    np.save(labels, data.y_class[200:])
    by_file = read_rows(rows_file.with_name("rows.csv"), str(labels), None)
    assert by_file.x.shape == (200, 5)  # the label column stays a column when the labels come from a file
    with pytest.raises(UsageError, match="neither a file nor a column"):
        read_rows(rows_file, "target", 4)
    np.save(labels, data.y_class[:10])
    with pytest.raises(UsageError, match="10 labels for 200 rows"):
        read_rows(rows_file, str(labels), None)


def test_the_command_prints_what_report_show_prints_of_its_file(registry, rows_file, tmp_path):
    out = tmp_path / "cmp.json"
    md = tmp_path / "cmp.md"
    result = CliRunner().invoke(compare_cmd, ["clf:2", "clf:1", "--data", str(rows_file), "--labels", "label",
                                              "--budget", "0.1", "--resamples", "100", "-o", str(out), "-o", str(md)])
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(report_group, ["show", str(out)])
    assert shown.exit_code == 0 and result.stdout == shown.stdout
    assert "ROC AUC" in result.stdout and "label agreement" in result.stdout
    markdown = CliRunner().invoke(report_group, ["show", "--markdown", str(out)])
    assert md.read_text() == markdown.stdout
