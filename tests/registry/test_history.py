"""Alias history on SQLite and on a real PostgreSQL: each move recorded with it, in order, rollback included."""

from __future__ import annotations

import pytest

from mlc.errors import ConflictError, NotFoundError
from mlc.registry import Registry
from mlc.registry._history import history, move_alias, rollback
from mlc.signature import tabular


@pytest.fixture()
def reg(tmp_path, registry_url) -> Registry:
    registry = Registry(tmp_path / "home", registry_url)
    for i in range(3):
        registry.register("m", f"model {i}".encode(), format="onnx", framework="onnx",
                          signature=tabular(2, task="regression"))
    return registry


def test_moves_are_recorded_in_order_and_rollback_goes_to_the_previous_holder(reg):
    first = move_alias(reg, "m", "prod", 1, message="first")
    assert first.previous is None
    move_alias(reg, "m", "prod", 3, message="retrained", report="r.json", criteria=[{"text": "x", "held": True}])
    move_alias(reg, "m", "staging", 2)
    moves = history(reg, "m", "prod")
    assert [(m.version, m.previous, m.message) for m in moves] == [(1, None, "first"), (3, 1, "retrained")]
    assert moves[1].report == "r.json" and moves[1].criteria == [{"text": "x", "held": True}]
    assert len(history(reg, "m")) == 3
    back = rollback(reg, "m", "prod")
    assert (back.version, back.previous, back.action) == (1, 3, "rollback")
    assert reg.get("m@prod").version == 1
    assert rollback(reg, "m", "prod").version == 3  # a rollback of a rollback goes forward again


def test_a_move_judged_against_a_holder_that_has_since_changed_is_refused(reg):
    move_alias(reg, "m", "prod", 1)
    move_alias(reg, "m", "prod", 2)  # another promotion landed meanwhile
    with pytest.raises(ConflictError, match="moved to m:2"):
        move_alias(reg, "m", "prod", 3, expected_previous=1)
    assert reg.get("m@prod").version == 2


def test_nothing_to_roll_back(reg):
    with pytest.raises(NotFoundError, match="no recorded move"):
        rollback(reg, "m", "prod")
    move_alias(reg, "m", "prod", 1)
    with pytest.raises(NotFoundError, match="no holder before"):
        rollback(reg, "m", "prod")
