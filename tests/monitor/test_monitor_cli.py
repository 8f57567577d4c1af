"""`mlc monitor` end to end: collected Parquet written by the collector, the CLI's verdict and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlc.cli import cli
from mlc.cli.monitor import EXIT_DRIFT
from mlc.monitor.collect import CollectSettings, Counters, PartitionWriter, Sample
from mlc.monitor.summary import DataSummary

from ._data import FEATURES, draw, outputs

ROWS = 5000
NOW_NS = 1_700_000_000 * 10**9


def collect(root: Path, x: np.ndarray, *, start_ns: int = NOW_NS, exclude: tuple[str, ...] = ()) -> None:
    """Rows as `mlc serve --collect` writes them: 50-row requests through the real writer."""
    writer = PartitionWriter(CollectSettings(root, exclude=exclude), {("m", 1): FEATURES}, Counters(None, 0))
    for i in range(0, len(x), 50):
        chunk = x[i:i + 50]
        writer.add(Sample("m", 1, None, f"r{i}", start_ns + i * 10**9, chunk, outputs(chunk)))
    writer.flush()


@pytest.fixture()
def reference_file(tmp_path: Path) -> Path:
    x = draw(np.random.default_rng(0), ROWS)
    return DataSummary.from_rows(x, outputs(x), feature_names=FEATURES, meta={"ref": "m:1"}).save(tmp_path / "ref.json")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["monitor", *args])
    return result.exit_code, result.output


def test_no_drift_exits_0(tmp_path: Path, reference_file: Path) -> None:
    collect(tmp_path / "c", draw(np.random.default_rng(1), ROWS))
    code, out = run(str(reference_file), "--collected", str(tmp_path / "c"), "--json")
    report = json.loads(out)
    assert code == 0, out
    assert report["kind"] == "drift" and report["body"]["verdict"] == "no drift"
    assert report["body"]["rows_collected"] == ROWS


def test_drift_exits_4_names_the_feature_and_writes_reports(tmp_path: Path, reference_file: Path) -> None:
    x = draw(np.random.default_rng(2), ROWS)
    x[:, 3] += 1.2  # one sd of U(-2, 2)
    collect(tmp_path / "c", x, exclude=("f9",))
    md = tmp_path / "drift.json"
    code, out = run(str(reference_file), "--collected", str(tmp_path / "c"), "-o", str(md))
    assert code == EXIT_DRIFT, out
    assert "DRIFT" in out and "skipped f9: not collected" in out
    body = json.loads(md.read_text())["body"]
    assert [c["name"] for c in body["columns"] if c["role"] == "feature" and c["verdict"] == "drift"] == ["f3"]


def test_prints_and_writes_what_report_show_draws(tmp_path: Path, reference_file: Path) -> None:
    """The drift kind of the one renderer: stdout, the .md and the .html are `mlc report show` of the JSON."""
    from mlc.cli.report import report_group

    x = draw(np.random.default_rng(2), ROWS)
    x[:, 3] += 1.2
    collect(tmp_path / "c", x)
    files = [tmp_path / f"drift.{suffix}" for suffix in ("json", "md", "html")]
    flags = [a for f in files for a in ("-o", str(f))]
    code, out = run(str(reference_file), "--collected", str(tmp_path / "c"), *flags)
    assert code == EXIT_DRIFT

    def show(*flags: str) -> str:
        result = CliRunner().invoke(report_group, ["show", *flags, str(files[0])])
        assert result.exit_code == 0, result.output
        return result.output

    assert out == show()
    assert files[1].read_text() == show("--markdown")
    assert "f3 (feature): drift" not in files[1].read_text()  # plots only on the page
    assert files[2].read_text() == show("--html") and files[2].read_text().count("data:image/png") == 2


def test_since_and_baseline(tmp_path: Path, reference_file: Path) -> None:
    """Old rows drifted, recent ones not: --since looks only at the recent; --baseline needs no reference."""
    old = draw(np.random.default_rng(3), ROWS)
    old[:, 0] += 1.0
    collect(tmp_path / "c", old, start_ns=NOW_NS - 86400 * 10**9 * 3)
    collect(tmp_path / "c", draw(np.random.default_rng(4), ROWS))
    code, _ = run(str(reference_file), "--collected", str(tmp_path / "c"))
    assert code == EXIT_DRIFT
    from mlc.monitor.window import read_window

    recent = read_window(tmp_path / "c", DataSummary.load(reference_file), model="m", version=1,
                         since_seconds=2 * 86400, now=NOW_NS / 1e9 + ROWS)
    assert recent.collected.rows == ROWS
    code, out = run("m:1", "--collected", str(tmp_path / "c"), "--baseline", str(ROWS), "--json")
    body = json.loads(out)["body"]
    assert code == EXIT_DRIFT and body["rows_reference"] == ROWS and "f0" in body["drifted"]


def test_missing_reference_says_what_to_do(tmp_path: Path) -> None:
    collect(tmp_path / "c", draw(np.random.default_rng(5), 200))
    code, out = run("m:1", "--collected", str(tmp_path / "c"))
    assert code == 1 and "--baseline" in out


def test_reference_command(tmp_path: Path) -> None:
    import pandas as pd

    x = draw(np.random.default_rng(6), 1000)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame.to_parquet(tmp_path / "rows.parquet")
    code, out = run("reference", str(tmp_path / "rows.parquet"), "-o", str(tmp_path / "r.json"), "--ref", "m:1")
    assert code == 0, out
    summary = DataSummary.load(tmp_path / "r.json")
    assert list(summary.features) == FEATURES and summary.rows == 1000 and summary.meta["ref"] == "m:1"


def test_drift_of_a_registered_version_is_an_event(tmp_path: Path, reference_file: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mlc.events import outbox
    from mlc.registry import Registry
    from mlc.signature import tabular

    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLC_REGISTRY_URL", raising=False)
    registry = Registry(tmp_path / "home")
    registry.register("m", b"bytes", format="onnx", framework="onnx", signature=tabular(10, task="classification"))
    x = draw(np.random.default_rng(2), ROWS)
    x[:, 3] += 1.2
    collect(tmp_path / "c", x)
    code, _ = run(str(reference_file), "--collected", str(tmp_path / "c"))
    assert code == EXIT_DRIFT
    (event,) = outbox.read(registry.engine, types=["mlc.model.drift_detected"])
    assert event.subject == "m:1" and event.data["drifted"] == ["f3"]
