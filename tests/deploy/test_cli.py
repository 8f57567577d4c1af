"""`mlc package` from the command line: the thin layer over mlc.deploy.package."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlc.cli import cli
from mlc.deploy import formats, register_format
from mlc.deploy.triton import build
from mlc.errors import EXIT_USAGE, UsageError


def test_package_writes_a_triton_repository_and_reports_it_as_json(registry, tmp_path):
    result = CliRunner().invoke(cli, ["package", "iris:2", str(tmp_path / "repo"), "--format", "triton", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["ref"] == "iris:2" and "iris/config.pbtxt" in out["files"] and "mlc-trees" in out["notes"][0]


def test_an_unknown_version_or_a_used_folder_is_a_clear_error(registry, tmp_path):
    missing = CliRunner().invoke(cli, ["package", "iris:9", str(tmp_path / "a"), "--format", "kserve"])
    assert missing.exit_code == 1 and "no model iris:9" in missing.output
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    used = CliRunner().invoke(cli, ["package", "iris:1", str(tmp_path / "b"), "--format", "kserve"])
    assert used.exit_code == EXIT_USAGE and "not an empty folder" in used.output


def test_the_format_registry_refuses_to_overwrite_a_format():
    assert formats() == ("container", "kserve", "triton")
    with pytest.raises(UsageError, match="already registered"):
        register_format("triton", build)
    register_format("triton", build, replace=True)  # on purpose, it is allowed
