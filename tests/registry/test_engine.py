"""Registry URLs: which driver each needs, and the error a user gets without it."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from mlc.cli import cli
from mlc.errors import EXIT_ERROR, MissingDependencyError, UsageError
from mlc.registry import Registry
from mlc.registry._engine import registry_url


@pytest.mark.parametrize("url", ["postgresql://u:p@db:5432/mlc", "postgres://u:p@db/mlc"])
def test_a_plain_postgresql_url_means_psycopg_3(url):
    parsed = registry_url(url)
    assert parsed.drivername == "postgresql+psycopg" and parsed.host == "db" and parsed.password == "p"


def test_an_explicit_driver_is_kept():
    assert registry_url("postgresql+psycopg2://db/mlc").drivername == "postgresql+psycopg2"
    assert registry_url("sqlite:////tmp/x.db").drivername == "sqlite"


@pytest.mark.parametrize("url", ["mysql://db/mlc", "not a url"])
def test_unsupported_or_malformed_urls_are_usage_errors(url, tmp_path):
    with pytest.raises(UsageError):
        Registry(tmp_path, url)


def test_without_psycopg_the_error_names_the_postgres_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"psycopg") as caught:
        Registry(tmp_path, "postgresql://mlc:secret@db.example:5432/mlc")
    assert "mlc[postgres]" in str(caught.value) and "secret" not in str(caught.value)

    monkeypatch.setenv("MLC_HOME", str(tmp_path))
    monkeypatch.setenv("MLC_REGISTRY_URL", "postgresql://mlc@db.example/mlc")
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == EXIT_ERROR, result.output
    assert "mlc[postgres]" in result.output and "internal error" not in result.output.lower()
