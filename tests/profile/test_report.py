"""Rendering replays a recorded profiling run against a golden Markdown: no load is run here.

The recording (data/profile_run.json) is a real run, `mlc profile tiny --target cpu-8 --quick
--duration 1s --rate 5000` of the conftest's tiny forest on a 2-core machine, cut to three
configurations and 30 resource samples. To accept an intended change of the rendering,
regenerate the golden file with MLC_UPDATE_GOLDEN=1 pytest tests/profile/test_report.py, and
review its diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlc.errors import UsageError
from mlc.profile.report import to_html, to_markdown
from mlc.profile.results import ProfileResult

DATA = Path(__file__).with_name("data")


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads((DATA / "profile_run.json").read_text())


def test_markdown_matches_the_golden_report(recorded):
    rendered = to_markdown(recorded)
    golden = DATA / "profile_run.md"
    if os.environ.get("MLC_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_the_recorded_run_round_trips_through_the_result_types(recorded):
    body = recorded["body"]
    assert ProfileResult.from_dict(body).to_dict() == body


def test_html_embeds_every_plot_and_escapes_text(recorded):
    pytest.importorskip("matplotlib")
    from mlc.profile.plots import figures, grid_png

    pngs = figures(recorded)
    assert [title for title, _ in pngs] == ["Latency vs throughput", "Latency histogram (recommended configuration)",
                                            "CPU over time", "Memory over time"]
    assert all(png.startswith(b"\x89PNG") for _, png in pngs)
    page = to_html(recorded, pngs, hot_path="x<y>.html")
    assert page.count("data:image/png;base64,") == 4 and "x&lt;y&gt;.html" in page
    assert "<code>mlc serve tiny:1" in page
    assert grid_png(recorded).startswith(b"\x89PNG")


def test_a_report_of_another_schema_is_refused(recorded):
    with pytest.raises(UsageError):
        to_markdown({**recorded, "schema": "mlc.report/2"})
