"""Drawing reports: what each kind says in edge cases, the files written whole, the registry, the CLI.

The goldens (test_golden.py) pin whole renderings of real runs; these tests pin behaviour a
golden would hide in a large diff: a mismatch is flagged, text is escaped and never markup,
a missing matplotlib is said once, a failed rendering leaves the previous files whole.
"""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from mlc.cli.report import report_group
from mlc.errors import ConflictError, UsageError
from mlc.report import figures
from mlc.report._registry import ReportKind, get_kind, register_kind
from mlc.report.blocks import Document, Figure, Heading, Paragraph
from mlc.report.compare import compare_reports
from mlc.report.envelope import SCHEMA
from mlc.report.kinds.compare import body as compare_body
from mlc.report.render import show, to_html, to_markdown, to_text, write_report_files

DATA = Path(__file__).with_name("data")


def _recorded(kind: str) -> dict:
    return json.loads((DATA / f"{kind}.json").read_text())


def _envelope(kind: str, body: dict) -> dict:
    return {"schema": SCHEMA, "kind": kind, "created_at": "2024-01-01T00:00:00Z", "hardware": {}, "packages": {},
            "git_commit": None, "target": {"name": "cpu-2"}, "body": body}


def test_bench_table_has_one_row_per_model_and_batch_and_the_speedups(baseline):
    md = to_markdown(baseline)
    assert "| model | batch | native µs | mlc µs | mlc/native | parity |" in md
    rows = [line for line in md.splitlines() if line.startswith("| m |")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "32", "1024"]
    assert all("0.5" in r and "ok (max abs err" in r for r in rows)
    assert "> mlc speed-up over native (geometric mean over models): 2× at b1" in md
    assert "Every output matched the reference" in md


def test_bench_flags_a_mismatch_in_the_verdict_and_lists_skipped_models(baseline):
    report = copy.deepcopy(baseline)
    report["body"]["models"]["m"]["timings"][1]["parity"].update(match=False, reason="labels differ on 9 of 1024")
    report["body"]["models"]["x"] = {"status": "skipped", "reason": "xgboost is not installed"}
    report["body"]["notes"] = ["x skipped: xgboost is not installed"]
    md = to_markdown(report)
    assert "MISMATCH mlc: labels differ on 9 of 1024" in md
    assert "**Outputs differ from the reference:** m mlc @b1" in md
    assert "- x skipped: xgboost is not installed" in md
    assert 'class="verdict fail"' in to_html(report)
    assert "MISMATCH mlc" in to_text(report)


def test_optimize_without_a_winner_says_so_first():
    report = _recorded("optimize")
    report["body"].update(winner=None, plan=None)
    for c in report["body"]["candidates"]:
        c["winner"] = False
    md = to_markdown(report)
    assert md.splitlines()[2].startswith("> **No candidate reproduced the original model within tolerance**")
    text = to_text(report)
    assert "No candidate reproduced" in text
    assert not [line for line in text.splitlines() if line.rstrip().endswith("  winner")]


def test_optimize_terminal_lists_the_winner_first_and_why_each_other_lost():
    text = to_text(_recorded("optimize"))
    rows = text.split("Candidates")[1].splitlines()
    first = next(line for line in rows if line.startswith("c"))
    assert first.startswith("c09  mlc-trees kernel") and first.rstrip().endswith("winner")
    assert "n/a: no MatMul, Gemm or linear model" in text  # the pass's name is not repeated
    assert "slower than the winner (c09) by 252%" in text


def test_optimize_shows_a_split_runtime_plan():
    report = _recorded("optimize")
    report["body"]["plan"]["runtime"]["engines"] = [{"engine": "mlc-trees", "max_rows": 32, "n_threads": 1},
                                                    {"engine": "ort", "max_rows": None}]
    assert "runtime plan: mlc-trees up to 32 rows, ort up to any rows" in to_markdown(report)


def test_profile_without_a_recommendation_fails_its_verdict():
    report = _recorded("profile")
    report["body"]["recommendation"] = None
    md = to_markdown(report)
    assert "> **No configuration met p99 ≤ 20 ms**: nothing to recommend." in md
    assert "## Recommendation" not in md


def test_profile_page_links_the_hot_path_beside_it_escaped():
    report = _recorded("profile")
    report["body"]["files"]["pyinstrument"] = "x<y>.html"
    page = to_html(report)
    assert '<a href="x&lt;y&gt;.html">' in page and "<code>mlc serve tiny:1" in page
    assert "Scoring hot path (pyinstrument): x<y>.html" in to_text(report)


def test_an_unknown_kind_is_drawn_from_its_body():
    report = _envelope("something-new", {"answer": 42, "nested": {"deep": [1, 2]},
                                         "rows": [{"id": "a", "v": 1.5}, {"id": "b", "v": None}]})
    md = to_markdown(report)
    assert "no renderer for 'something-new' reports" in md
    assert "- **answer**: 42" in md and "- **nested.deep**: 1, 2" in md and "| id | v |" in md
    assert "answer" in to_text(report)


def test_text_is_escaped_on_the_page_and_not_markup_on_the_terminal(baseline):
    report = copy.deepcopy(baseline)
    report["body"]["models"]["m"]["description"] = "[bold]not markup[/] <script>alert(1)</script>"
    console = Console(record=True, width=100)
    show(report, console)
    assert "[bold]not markup[/] <script>" in console.export_text()
    page = to_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_report_of_another_schema_is_refused():
    with pytest.raises(UsageError, match="schema"):
        to_markdown({**_recorded("profile"), "schema": "mlc.report/2"})


def test_comparison_lists_regressions_first_and_fails(baseline, variant_of):
    result = compare_reports(baseline, variant_of(baseline, mlc_ratio=0.65, seed=2))
    report = _envelope("compare", compare_body(result, False))
    md = to_markdown(report)
    assert md.splitlines()[2] == "> FAIL: 3 regression(s) beyond the thresholds"
    lines = [line for line in md.splitlines() if line.startswith("| m |")]
    assert lines and all("REGRESSION" in line for line in lines[:3])
    assert to_text(report).rstrip().endswith("FAIL: 3 regression(s) beyond the thresholds")  # a CI log's last line


def test_report_files_are_json_markdown_and_a_page_with_plots(baseline, tmp_path):
    paths = write_report_files(baseline, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.md"]
    assert json.loads(paths["json"].read_text()) == baseline
    assert paths["markdown"].read_text() == to_markdown(baseline)
    page = paths["html"].read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert page.count("data:image/png;base64,") == 2


def test_without_matplotlib_the_page_has_its_tables_and_says_once_how_to_get_plots(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    page = to_html(_recorded("profile"))  # four plots
    assert page.count("matplotlib is not installed") == 1 and "pip install &quot;mlc[plots]&quot;" in page
    assert "data:image/png" not in page and "<table>" in page


def test_a_run_that_fails_while_rendering_leaves_the_previous_report_whole(baseline, tmp_path):
    paths = write_report_files(baseline, tmp_path / "out")
    before = {kind: path.read_bytes() for kind, path in paths.items()}

    def broken(_fig: object) -> None:
        raise RuntimeError("matplotlib fell over")

    kind = ReportKind("broken-plot", lambda r: Document("x", (Heading("x", 1), Figure("plot", broken))),
                      lambda r: Document("x", (Paragraph("x"),)))
    register_kind(kind)
    with pytest.raises(RuntimeError, match="fell over"):
        write_report_files({**baseline, "kind": "broken-plot", "created_at": "2030-01-01T00:00:00Z"},
                           tmp_path / "out")
    assert {kind: path.read_bytes() for kind, path in paths.items()} == before  # not json/md new, html old
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_the_kind_registry_refuses_to_replace_a_kind_unless_asked():
    bench = get_kind("bench")
    impostor = ReportKind("bench", lambda r: Document("", ()), lambda r: Document("", ()))
    with pytest.raises(ConflictError, match="already registered"):
        register_kind(impostor)
    try:
        assert register_kind(impostor, overwrite=True) is get_kind("bench")
    finally:
        register_kind(bench, overwrite=True)
    assert get_kind("bench") is bench


def test_figures_are_the_same_bytes_each_time():
    figure = Figure("t", lambda fig: fig.subplots().plot([1, 2], [3, 4]), 3, 2)
    assert figures.png(figure) == figures.png(figure)


@pytest.mark.parametrize("kind", ["bench", "compare", "optimize", "profile"])
def test_report_show_prints_each_form_as_the_files_hold_it(kind):
    path = str(DATA / f"{kind}.json")
    runner = CliRunner()
    report = _recorded(kind)
    terminal = runner.invoke(report_group, ["show", path])
    assert terminal.exit_code == 0, terminal.output
    console = Console(record=True, width=160, file=io.StringIO())
    show(report, console)
    assert terminal.stdout == console.export_text()
    markdown = runner.invoke(report_group, ["show", "--markdown", path])
    assert markdown.exit_code == 0 and markdown.stdout == (DATA / f"{kind}.md").read_text()
    if kind == "bench":  # one page through the CLI is enough: plotting is slow, test_golden covers the rest
        page = runner.invoke(report_group, ["show", "--html", path])
        assert page.exit_code == 0 and page.stdout == to_html(report)


def test_report_show_refuses_what_is_not_a_report_and_two_forms_at_once(write):
    runner = CliRunner()
    out = runner.invoke(report_group, ["show", str(write("bad.json", '{"kind": "bench"}'))])
    assert out.exit_code == 2 and "not an mlc report" in " ".join(out.stderr.split())
    out = runner.invoke(report_group, ["show", "--markdown", "--html", str(DATA / "bench.json")])
    assert out.exit_code == 2 and "choose one" in out.stderr
