"""Promotion criteria: the documented grammar parses and evaluates; anything else is refused, nothing is eval'ed."""

from __future__ import annotations

import math

import pytest

from mlc.errors import UsageError
from mlc.lifecycle.criteria import Binary, Name, Number, evaluate, parse

NEW = {"auc": 0.91, "auc.low": 0.89, "p99_us@1": 50.0, "accuracy": 0.8, "diff.log_loss.high": -0.01,
       "nan_metric": math.nan}
OLD = {"auc": 0.912, "p99_us@1": 48.0, "accuracy": 0.85, "nan_metric": 1.0}


def test_the_issue_examples_parse_into_their_tree():
    c = parse("auc >= old.auc - 0.002")
    assert c.op == ">=" and c.left == Name("new", "auc")
    assert c.right == Binary("-", Name("old", "auc"), Number(0.002))
    c = parse("p99_us@1 <= 1.10 * old.p99_us@1")
    assert c.right == Binary("*", Number(1.10), Name("old", "p99_us@1"))


@pytest.mark.parametrize(("text", "held"), [
    ("auc >= old.auc - 0.002", True),  # 0.91 >= 0.910
    ("auc >= old.auc - 0.001", False),
    ("p99_us@1 <= 1.10 * old.p99_us@1", True),  # 50 <= 52.8
    ("p99_us@1 <= 1.02 * old.p99_us@1", False),
    ("new.accuracy > old.accuracy", False),
    ("diff.log_loss.high < 0", True),
    ("auc.low >= 0.9 - (0.02 - 0.01)", True),
    ("abs(accuracy - old.accuracy) <= 0.05", True),
    ("max(accuracy, old.accuracy) == 0.85", True),
    ("-auc < 0", True),
    ("accuracy / 0 > 0", False),  # division by zero is NaN, which fails
    ("nan_metric >= old.nan_metric", False),  # an unmeasured figure fails its criterion
])
def test_criteria_evaluate_as_written(text, held):
    assert evaluate(parse(text), NEW, OLD).held is held


@pytest.mark.parametrize("text", [
    "auc", "auc >=", ">= 1", "auc >= old.auc extra", "auc = 1", "auc >= (1", "__import__('os') > 0",
    "auc >= old.auc; 1", "auc >= 1 >= 0",
])
def test_malformed_criteria_are_refused_with_an_example(text):
    with pytest.raises(UsageError) as info:
        parse(text)
    assert "criterion" in info.value.message and "auc >= old.auc - 0.002" in (info.value.hint or "")


def test_an_unknown_figure_is_refused_listing_the_known_ones():
    with pytest.raises(UsageError) as info:
        evaluate(parse("roc >= 0.9"), NEW, OLD)
    assert "'roc'" in info.value.message and "auc" in (info.value.hint or "")


def test_function_names_are_only_functions_when_called():
    assert parse("abs >= 1").left == Name("new", "abs")
