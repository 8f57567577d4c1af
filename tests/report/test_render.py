"""Rendering any report kind to Markdown, the terminal and HTML, without running a benchmark."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from rich.console import Console

from mlc.cli.report import report_group
from mlc.report.compare import compare_reports
from mlc.report.envelope import SCHEMA
from mlc.report.render import comparison_blocks, markdown, show, to_html, to_markdown, write_report_files


def _optimize_like() -> dict:
    return {
        "schema": SCHEMA, "kind": "optimize", "created_at": "2024-01-01T00:00:00Z", "hardware": {},
        "packages": {}, "git_commit": None, "target": {"name": "cpu-2"},
        "body": {"source": "churn:1", "winner": "churn:2", "batch_sizes": [1, 32],
                 "plan": {"description": "ort-graph-opt", "latency_us": {"1": 5.0}},
                 "candidates": [{"id": "c01", "chain": ["ort-graph-opt"], "status": "passed", "winner": True},
                                {"id": "c02", "chain": ["quantize"], "status": "failed parity", "winner": False}]},
    }


def test_bench_markdown_has_one_row_per_model_and_batch(baseline):
    md = to_markdown(baseline)
    assert "| model | batch | native µs | mlc µs | mlc/native | parity |" in md
    rows = [line for line in md.splitlines() if line.startswith("| m |")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "32", "1024"]
    assert all("0.5" in r and "ok (max abs err" in r for r in rows)
    assert "mlc speed-up over native (geometric mean over models): 2× at b1" in md


def test_bench_markdown_flags_mismatch_and_lists_skipped(baseline):
    report = json.loads(json.dumps(baseline))
    timing = report["body"]["models"]["m"]["timings"][1]
    timing["parity"].update(match=False, reason="labels differ on 9 of 1024 rows")
    report["body"]["models"]["x"] = {"status": "skipped", "reason": "xgboost is not installed"}
    report["body"]["notes"] = ["x skipped: xgboost is not installed"]
    md = to_markdown(report)
    assert "MISMATCH mlc: labels differ on 9 of 1024 rows" in md
    assert "x skipped: xgboost is not installed" in md


def test_unknown_and_optimize_kinds_render_generically():
    md = to_markdown(_optimize_like())
    assert "# mlc optimize report" in md
    assert "- **winner**: churn:2" in md
    assert "- **plan.latency_us.1**: 5" in md
    assert "| id | chain | status | winner |" in md and "failed parity" in md
    strange = {**_optimize_like(), "kind": "something-new", "body": {"answer": 42, "nested": {"deep": [1, 2]}}}
    md = to_markdown(strange)
    assert "- **answer**: 42" in md and "- **nested.deep**: 1, 2" in md


def test_terminal_rendering_survives_brackets_and_markup(baseline):
    report = json.loads(json.dumps(baseline))
    report["body"]["models"]["m"]["description"] = "[bold]not markup[/] [1, 2]"
    console = Console(record=True, width=200)
    show(report, console)
    show(_optimize_like(), console)
    text = console.export_text()
    assert "[bold]not markup[/] [1, 2]" in text and "mlc/native" in text and "failed parity" in text


def test_report_files_and_html_plots(baseline, tmp_path):
    pytest.importorskip("matplotlib")
    paths = write_report_files(baseline, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.md"]
    assert json.loads(paths["json"].read_text()) == baseline
    page = paths["html"].read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert page.count("data:image/png;base64,") == 2


def test_html_without_matplotlib_is_tables_only_and_says_so(baseline, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    page = write_report_files(baseline, tmp_path / "bare")["html"].read_text()
    assert "matplotlib is not installed" in page and "data:image/png" not in page and "<table>" in page


def test_generic_html_escapes_content():
    report = {**_optimize_like(), "body": {"note": "<script>alert(1)</script>"}}
    page = to_html(report, [])
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_comparison_markdown_lists_regressions_first(baseline, variant_of):
    md = markdown(comparison_blocks(compare_reports(baseline, variant_of(baseline, mlc_ratio=0.65, seed=2))))
    lines = [line for line in md.splitlines() if line.startswith("| m |")]
    assert lines and all("REGRESSION" in line for line in lines[:3])
    assert md.rstrip().endswith("FAIL: 3 regression(s) beyond the thresholds")


def test_report_show_cli(baseline, write):
    runner = CliRunner()
    out = runner.invoke(report_group, ["show", str(write("r.json", baseline))])
    assert out.exit_code == 0 and "mlc/native" in out.stdout
    out = runner.invoke(report_group, ["show", "--markdown", str(write("o.json", _optimize_like()))])
    assert out.exit_code == 0 and out.stdout.startswith("# mlc optimize report")
    out = runner.invoke(report_group, ["show", str(write("bad.json", '{"kind": "bench"}'))])
    assert out.exit_code == 2 and "not an mlc report" in " ".join(out.stderr.split())


def test_a_run_that_fails_while_rendering_leaves_the_previous_report_whole(baseline, tmp_path, monkeypatch):
    import mlc.report.render as render

    paths = write_report_files(baseline, tmp_path / "out")
    before = {kind: path.read_bytes() for kind, path in paths.items()}
    newer = json.loads(json.dumps(baseline))
    newer["created_at"] = "2030-01-01T00:00:00Z"

    def broken_plots(_report):
        raise RuntimeError("matplotlib fell over")

    monkeypatch.setattr(render, "figures_for", broken_plots)
    with pytest.raises(RuntimeError):
        write_report_files(newer, tmp_path / "out")
    assert {kind: path.read_bytes() for kind, path in paths.items()} == before  # not json/md new, html old
    assert not list((tmp_path / "out").glob(".tmp-*"))
