"""Every report kind replays a recorded report against its golden Markdown, HTML and terminal text.

The recordings in data/<kind>.json are real runs, not synthesized: bench.json is the CI
baseline (`mlc bench --suite quick`, benchmarks/baseline/report.json); profile.json is `mlc
profile tiny --target cpu-8 --quick --duration 1s --rate 5000` of a tiny forest on a 2-core
machine, cut to three configurations and 30 resource samples; optimize.json is `mlc optimize`
of a 20-tree RandomForestClassifier with --data on cpu-2 (the report.json it attached to the
version); compare.json is `mlc report compare` of the CI baseline at d0c9c63 against today's,
written with --out; drift.json is `mlc monitor ref.json --collected c -o drift.json` of the
controlled data in tests/monitor/_data.py (f3 shifted by 1.2, a fifth of f5 missing, f9 excluded);
model-comparison.json is the report `mlc promote clf:2 --alias prod --require ...` attached when it
refused two criteria (two logistic regressions of tests/lifecycle/conftest.py, 200 labelled rows).

Goldens: data/<kind>.md, data/<kind>.html (each embedded PNG replaced by "PNG", since image
bytes follow the matplotlib version; the images are checked to be PNGs instead) and
data/<kind>.txt (the terminal form). To accept an intended change of the rendering, run
    MLC_UPDATE_GOLDEN=1 python -m pytest -q tests/report/test_golden.py -p no:randomly
and review the diff of tests/report/data/ before committing it.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
from pathlib import Path

import pytest

from mlc.report._registry import registered
from mlc.report.blocks import Figure, Table, walk
from mlc.report.render import document, to_html, to_markdown, to_text
from mlc.report.terminal import WIDTH, table_width

DATA = Path(__file__).with_name("data")
KINDS = sorted(registered())
_PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def recorded(kind: str) -> dict:
    return json.loads((DATA / f"{kind}.json").read_text())


@functools.cache
def page(kind: str) -> str:
    """The kind's HTML page, drawn once per session: plotting takes a while."""
    return to_html(recorded(kind))


def _matches_golden(rendered: str, name: str) -> None:
    golden = DATA / name
    if os.environ.get("MLC_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"{name} changed; see this module's docstring to accept the change"


def test_every_registered_kind_has_a_recorded_report():
    """A kind added without its recording and goldens fails here, not in a user's hands."""
    assert {"bench", "compare", "optimize", "profile"} <= set(KINDS)
    missing = [kind for kind in KINDS if not (DATA / f"{kind}.json").is_file()]
    assert not missing, f"record a real report of each kind as tests/report/data/<kind>.json: {missing}"
    assert all(recorded(kind)["kind"] == kind for kind in KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_markdown_matches_the_golden(kind):
    _matches_golden(to_markdown(recorded(kind)), f"{kind}.md")


@pytest.mark.parametrize("kind", KINDS)
def test_terminal_matches_the_golden(kind):
    _matches_golden(to_text(recorded(kind)), f"{kind}.txt")


@pytest.mark.parametrize("kind", KINDS)
def test_html_matches_the_golden_with_every_plot_embedded(kind):
    html = page(kind)
    images = _PNG.findall(html)
    figures = [b for b in walk(document(recorded(kind)).blocks) if isinstance(b, Figure)]
    assert len(images) == len(figures) >= 1
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    _matches_golden(_PNG.sub("data:image/png;base64,PNG", html), f"{kind}.html")


@pytest.mark.parametrize("kind", KINDS)
def test_terminal_fits_100_columns_without_squeezing_a_table(kind):
    report = recorded(kind)
    lines = to_text(report, width=400).splitlines()
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert not too_wide, f"{len(too_wide)} line(s) wider than {WIDTH} columns, e.g. {too_wide[0]!r}"
    # Rich would fold a wider table's cells to fit; the terminal tables must fit as they are.
    tables = [b for b in document(report, "terminal").blocks if isinstance(b, Table)]
    assert tables and all(table_width(t) <= WIDTH for t in tables)


@pytest.mark.parametrize("kind", KINDS)
def test_the_page_leads_with_the_verdict_and_its_plots(kind):
    """Title, the verdict box, then (before any table) the plots: what a reader came for comes first."""
    html = page(kind)
    verdict = html.index('class="verdict')
    first_table = html.index("<table")
    assert html.index("<h1>") < verdict < first_table
    if "<img" in html:
        assert html.index("<img") < first_table
