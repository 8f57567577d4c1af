"""`mlc promote`: the alias moves only when every criterion holds; each move is in the history; rollback."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mlc.cli import cli
from mlc.lifecycle.criteria import EXIT_REFUSED
from mlc.registry._history import history


def _mlc(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _promote(ref: str, rows_file, *flags: str):
    return _mlc("promote", ref, "--alias", "prod", "--data", str(rows_file), "--labels", "label", "--budget", "0.05",
                "--resamples", "100", *flags)


def test_a_refused_promotion_exits_5_naming_the_failing_criteria_and_leaves_the_alias(registry, rows_file):
    assert _mlc("promote", "clf:1", "--alias", "prod").exit_code == 0  # the first holder: nothing to compare
    result = _promote("clf:2", rows_file, "--require", "accuracy >= old.accuracy",
                      "--require", "auc >= old.auc + 0.5", "--message", "nightly retrain")
    assert result.exit_code == EXIT_REFUSED, result.output
    assert "auc >= old.auc + 0.5" in result.stderr and "accuracy >= old.accuracy" not in result.stderr
    assert "REFUSED: 1 of 2 criteria failed" in result.stdout
    assert registry.get("clf@prod").version == 1
    assert [m.version for m in history(registry, "clf")] == [1]  # a refusal moves nothing
    attached = [r for r in registry.get("clf:2").reports if r.startswith("compare-prod-2-vs-1")]
    assert len(attached) == 1  # but its comparison is kept with the version
    report = json.loads((registry.version_dir(registry.get("clf:2")) / attached[0]).read_text())
    assert [c["held"] for c in report["body"]["criteria"]] == [True, False]


def test_a_promotion_records_who_when_why_and_its_report_then_rolls_back(registry, rows_file):
    _mlc("promote", "clf:1", "--alias", "prod")
    result = _promote("clf:2", rows_file, "--require", "accuracy >= old.accuracy", "--message", "better data")
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("clf@prod -> clf:2 (was clf:1)")
    assert registry.get("clf@prod").version == 2
    move = history(registry, "clf", "prod")[-1]
    assert (move.version, move.previous, move.action, move.message) == (2, 1, "promote", "better data")
    assert move.creator and move.report in registry.get("clf:2").reports
    assert move.criteria[0]["text"] == "accuracy >= old.accuracy" and move.criteria[0]["held"]
    shown = _mlc("models", "history", "clf", "--json")
    assert [m["version"] for m in json.loads(shown.stdout)] == [1, 2]

    back = _mlc("promote", "clf", "--alias", "prod", "--rollback", "--message", "alerts")
    assert back.exit_code == 0 and "clf@prod -> clf:1 (rolled back from clf:2)" in back.stdout
    assert registry.get("clf@prod").version == 1
    last = history(registry, "clf", "prod")[-1]
    assert (last.action, last.version, last.previous, last.message) == ("rollback", 1, 2, "alerts")


def test_without_criteria_it_asks_and_a_no_moves_nothing(registry, rows_file):
    _mlc("promote", "clf:1", "--alias", "prod")
    declined = CliRunner().invoke(cli, ["promote", "clf:2", "--alias", "prod", "--data", str(rows_file),
                                        "--labels", "label", "--budget", "0.05"], input="n\n")
    assert "move clf@prod to clf:2?" in declined.stdout and registry.get("clf@prod").version == 1
    accepted = _promote("clf:2", rows_file, "--yes")
    assert accepted.exit_code == 0 and registry.get("clf@prod").version == 2


def test_criteria_without_a_holder_or_with_a_typo_are_refused_before_measuring(registry, rows_file):
    result = _promote("clf:2", rows_file, "--require", "accuracy >= old.accuracy")
    assert result.exit_code == 2 and "nothing to judge" in result.stderr
    _mlc("promote", "clf:1", "--alias", "prod")
    typo = _promote("clf:2", rows_file, "--require", "accuracy >=> 1")
    assert typo.exit_code == 2 and "criterion" in typo.stderr
    unknown = _promote("clf:2", rows_file, "--require", "acc >= 1")
    assert unknown.exit_code == 2 and "no figure 'acc'" in unknown.stderr
    assert registry.get("clf@prod").version == 1
