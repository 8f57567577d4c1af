"""mlc.runtime's public names: each one resolves, and nothing else pretends to."""

from __future__ import annotations

import pytest

import mlc.runtime


@pytest.mark.parametrize("name", mlc.runtime.__all__)
def test_every_public_name_resolves(name):
    assert getattr(mlc.runtime, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = mlc.runtime.no_such_thing


def test_public_names_and_lazy_table_agree():
    assert sorted(mlc.runtime.__all__) == sorted(mlc.runtime._HOMES)
