"""The CI gate on real measurements: a deliberately slowed mlc fails it in one quick-suite run here.

The slowdown is real work in mlc's engine (MLC_TEST_ENGINE_SLOWDOWN, see mlc/runtime/_slowdown.py),
not a scaled copy of a report: the engine busy-waits three times as long as each of its calls took,
so mlc is four times as slow on this machine whatever its load, and the quick suite is compared
with the committed baseline exactly as CI does (`mlc bench --suite quick`, then `mlc report compare`).

Four times, not twice: this test runs beside the rest of the suite, whose other worker loads the
cores and whose thread settings move every reference's own time (in one CI run the mlp's references
ran 56-66% faster than in the baseline). On such a host the gate asks a regression to pass +50% both
against the run-wide machine factor and against the least moved reference, and a doubling of mlp
stayed unclear there at all three batch sizes: mlc/ort-default read +103% to +109%, but against the
machine mlc moved -30%, -22% and +62% (that interval's low end +48%). Four times clears both judges
there. How finely the gate judges is the subject of tests/report/test_compare.py; this test asks
whether a plain slowdown fails CI's gate as CI runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlc.cli.bench import bench_cmd
from mlc.cli.report import report_group
from mlc.runtime._slowdown import SLOWDOWN_ENV

BASELINE = Path(__file__).parents[2] / "benchmarks" / "baseline" / "report.json"


@pytest.mark.slow
def test_a_slowed_engine_fails_the_gate_against_the_committed_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv(SLOWDOWN_ENV, "3.0")
    out = tmp_path / "bench-out"
    bench = CliRunner().invoke(bench_cmd, ["--suite", "quick", "--out", str(out)])
    assert bench.exit_code == 0, bench.stderr
    gate = CliRunner().invoke(report_group, ["compare", str(BASELINE), str(out / "report.json"), "--json"])
    assert gate.exit_code == 1, gate.stdout
    result = json.loads(gate.stdout)
    regressions = [c for c in result["changes"] if c["gated"] and c["verdict"] == "regression"]
    assert regressions and all(c["metric"].startswith("mlc/") for c in regressions)
    # Judged by a named reference on the baseline's host; on another, beyond +50% against every reference.
    assert all(c["note"].startswith(("judged by ", "another host")) for c in regressions if c["kind"] == "ratio")
    # Every model of the suite was caught somewhere, not one lucky line.
    assert {c["model"] for c in regressions} == {"logreg", "forest", "mlp"}


def test_the_slowdown_setting_is_refused_when_it_is_not_a_fraction(monkeypatch):
    from mlc.errors import UsageError
    from mlc.runtime._slowdown import requested_slowdown

    monkeypatch.setenv(SLOWDOWN_ENV, "twice")
    with pytest.raises(UsageError, match=SLOWDOWN_ENV):
        requested_slowdown()
    monkeypatch.delenv(SLOWDOWN_ENV)
    assert requested_slowdown() == 0.0
