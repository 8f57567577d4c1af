"""`mlc run`: the pipeline file's steps, cached by their inputs; and the examples/ pipeline and CI workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from mlc.cli import cli
from mlc.errors import UsageError
from mlc.lifecycle.criteria import EXIT_REFUSED
from mlc.lifecycle.pipeline import load_pipeline
from tests.lifecycle.conftest import make_data

EXAMPLES = Path(__file__).parents[2] / "examples" / "retrain"

PIPELINE = """
target = "cpu-2"

[[models]]
name = "clf"
file = "clf.joblib"
data = "rows.csv"
labels = "label"
alias = "prod"
require = ["accuracy >= old.accuracy"]

[models.optimize]
batch_sizes = [1]

[models.compare]
budget = 0.05
resamples = 50
"""


def _fit(path: Path, c: float) -> None:
    data = make_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joblib.dump(LogisticRegression(C=c).fit(data.x[:200], data.y_class[:200]), path)


def _run(*args: str):
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


def _steps(output: str) -> list[tuple[str, str]]:
    """(step, status) of each step line the run printed."""
    out = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "clf":
            status = " ".join(parts[2:4]) if parts[2] in ("would", "nothing") else parts[2]
            out.append((parts[1], status))
    return out


def test_a_rerun_with_nothing_changed_does_no_work_and_a_refusal_fails_each_time(home, tmp_path, rows_file):
    folder = tmp_path / "pipe"
    folder.mkdir()
    shutil.copy(rows_file, folder / "rows.csv")
    (folder / "mlc.toml").write_text(PIPELINE)
    _fit(folder / "clf.joblib", 10.0)
    plan = _run(str(folder / "mlc.toml"), "--dry-run")
    assert _steps(plan.stdout) == [("register", "would run"), ("optimize", "would run"), ("promote", "would run")]
    first = _run(str(folder / "mlc.toml"))
    assert first.exit_code == 0, first.output
    assert _steps(first.stdout) == [("register", "ran"), ("optimize", "ran"), ("promote", "ran")]
    assert "clf@prod -> clf:2" in first.stdout
    second = _run(str(folder / "mlc.toml"))
    assert second.exit_code == 0
    assert _steps(second.stdout) == [("register", "cached"), ("optimize", "cached"), ("promote", "nothing to")]
    assert "nothing changed since the last run: no step ran" in second.stdout

    _fit(folder / "clf.joblib", 0.001)  # a retrain that is worse: refused, and again on a rerun without measuring
    third = _run(str(folder / "mlc.toml"))
    assert third.exit_code == EXIT_REFUSED and "accuracy >= old.accuracy" in third.stderr
    assert _steps(third.stdout) == [("register", "ran"), ("optimize", "ran"), ("promote", "ran")]
    fourth = _run(str(folder / "mlc.toml"))
    assert fourth.exit_code == EXIT_REFUSED and "(cached)" in fourth.stderr
    assert all(status == "cached" for _, status in _steps(fourth.stdout))

    rows = (folder / "rows.csv").read_text().splitlines()
    (folder / "rows.csv").write_text("\n".join(rows[:150]) + "\n")  # new data: optimize and compare again
    fifth = _run(str(folder / "mlc.toml"))
    assert _steps(fifth.stdout) == [("register", "cached"), ("optimize", "ran"), ("promote", "ran")]


@pytest.mark.parametrize(("text", "message"), [
    ('[[models]]\nname = "m"\nfile = "a"\nref = "m:1"\ndata = "d"\n', "exactly one of file and ref"),
    ('[[models]]\nname = "m"\nfile = "a"\ndata = "d"\nrequire = ["x > 1"]\n', "no alias"),
    ('[[models]]\nname = "m"\nfile = "a"\ndata = "d"\nrequires = ["x > 1"]\n', "unknown key 'requires'"),
    ('[[models]]\nname = "m"\nfile = "a"\ndata = "d"\n[models.compare]\nbudget = "1s"\n', "wrong type"),
    ('target = "cpu"\n', "declares no model"),
])
def test_a_malformed_pipeline_is_refused_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "mlc.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_pipeline(path)


def test_the_example_pipeline_reads():
    pipeline = load_pipeline(EXAMPLES / "mlc.toml")
    (model,) = pipeline.models
    assert model.alias == "prod" and model.require and model.data == EXAMPLES / "work" / "holdout.csv"


def test_the_example_workflow_is_a_valid_github_workflow():
    """Checked offline against the GitHub-workflow schema check-jsonschema bundles."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
         str(EXAMPLES / "retrain-workflow.yml")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout
