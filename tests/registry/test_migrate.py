"""`mlc registry migrate --to URL`: a SQLite registry copied into PostgreSQL (and into another
SQLite home, which copies the artifacts) answers every `mlc models` command as the old one did;
a non-empty target and a damaged artifact are refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from mlc.cli import cli
from mlc.registry import Registry
from mlc.registry import _schema as s
from mlc.registry._history import move_alias
from mlc.signature import tabular

SIG = tabular(4, task="classification", classes=[0, 1])


def _mlc(home: Path, url: str | None, *args: str) -> tuple[int, str]:
    """Run mlc against the registry (home, url); its exit code and stdout (stderr on failure)."""
    result = CliRunner().invoke(cli, list(args), env={"MLC_HOME": str(home), "MLC_REGISTRY_URL": url},
                                catch_exceptions=False)
    return result.exit_code, result.output


def _same(old: Path, old_url: str | None, new: Path, new_url: str | None, command: tuple[str, ...]) -> bool:
    """Both registries answer command alike (an error names its registry's home: read as HOME)."""
    code_old, out_old = _mlc(old, old_url, *command)
    code_new, out_new = _mlc(new, new_url, *command)
    return (code_old, out_old.replace(str(old), "HOME")) == (code_new, out_new.replace(str(new), "HOME"))


def _source(home: Path) -> Registry:
    """A SQLite registry with a row in every table: versions, tags, aliases and their history,
    reports, deployments (one ended, one active), events, a hook."""
    reg = Registry(home)
    for i in range(3):
        reg.register("iris", f"iris-{i}".encode(), format="onnx", framework="onnx", signature=SIG,
                     tags={"team": "risk", "n": str(i)}, description=f"v{i}",
                     source={"kind": "file", "path": f"/m{i}.onnx"}, metrics={"auc": 0.9 + i / 100})
    reg.register("reg", b"reg-bytes", format="onnx", framework="onnx", signature=tabular(2, task="regression"))
    reg.set_alias("iris:1", "candidate")
    move_alias(reg, "iris", "prod", 2, message="better", criteria=[{"text": "auc > 0.9", "held": True}])
    move_alias(reg, "iris", "prod", 3, message="even better")
    reg.attach_report("iris:2", "report.json", json.dumps({"kind": "optimize"}))
    reg.record_deployment("reg", {1: 100.0})
    reg.end_deployment("reg")
    reg.record_deployment("iris", {2: 90.0, 3: 10.0})
    assert _mlc(home, None, "hooks", "add", "http://127.0.0.1:9/hook", "--secret", "s")[0] == 0
    with reg.engine.connect() as conn:
        empty = [t.name for t in s.metadata.sorted_tables
                 if not conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()]
    assert set(empty) <= {"deliveries", "delivery_attempts"}  # filled only by a delivery
    return reg


READS = [
    ("models", "list", "--json"), ("models", "list", "--name", "iris", "--tag", "n=1", "--json"),
    ("models", "show", "iris:1", "--json"), ("models", "show", "iris@prod", "--json"),
    ("models", "show", "iris", "--json"), ("models", "show", "reg:1", "--json"),
    ("models", "show", "iris:9", "--json"), ("models", "history", "iris", "--json"),
    ("events", "--json"), ("hooks", "list", "--attempts", "--json"),
]
WRITES = [
    ("models", "tag", "iris:1", "owner=ana", "--remove", "n", "--json"),
    ("models", "alias", "iris:2", "candidate", "--json"), ("models", "alias", "iris", "candidate", "--remove"),
    ("models", "delete", "iris:2", "--yes", "--json"),  # refused: deployed
    ("models", "undeploy", "iris", "--json"), ("models", "delete", "iris:1", "--yes", "--json"),
    ("models", "list", "--json"),
]


@pytest.fixture(params=["postgresql-same-home", "sqlite-other-home"])
def target(request, tmp_path) -> tuple[str, Path | None]:
    """Where to migrate: PostgreSQL keeping the home (the shared path), or SQLite in a new home."""
    if request.param.startswith("postgresql"):
        return str(request.getfixturevalue("postgres_url")), None
    return f"sqlite:///{tmp_path / 'new' / 'registry.db'}", tmp_path / "new"


def test_the_migrated_registry_answers_every_models_command_as_the_old_one(tmp_path, target):
    home = tmp_path / "old"
    _source(home)
    url, new_home = target
    args = ["registry", "migrate", "--to", url, "--json"] + (["--home", str(new_home)] if new_home else [])
    code, out = _mlc(home, None, *args)
    assert code == 0, out
    summary = json.loads(out)
    assert summary["rows"]["versions"] == 4 and summary["rows"]["alias_history"] == 2
    assert summary["rows"]["events"] > 0 and summary["rows"]["hooks"] == 1
    assert summary["blobs_verified"] == 4 and summary["reports_verified"] == 1
    assert summary["blobs_copied"] == (4 if new_home else 0)
    new = new_home or home
    for command in READS:
        assert _same(home, None, new, url, command), command
    for fmt in ("old", "new"):  # the artifacts read back verified, byte for byte
        code, out = _mlc(home if fmt == "old" else new, None if fmt == "old" else url,
                         "models", "export", "iris:2", str(tmp_path / f"{fmt}.onnx"))
        assert code == 0, out
    assert (tmp_path / "old.onnx").read_bytes() == (tmp_path / "new.onnx").read_bytes() == b"iris-1"
    if new_home:  # with the home apart, the same writes give the same answers on both
        for command in WRITES:
            assert _same(home, None, new, url, command), command
    # Numbering continues where the source ended: versions, deployments, events.
    migrated = Registry(new, url)
    assert migrated.register("iris", b"next", format="onnx", framework="onnx", signature=SIG).version == 4
    assert migrated.record_deployment("iris", {4: 100.0}) == 3
    seqs = [json.loads(line)["id"] for line in _mlc(new, url, "events", "--json")[1].splitlines()]
    assert len(seqs) == len(set(seqs))


def test_a_target_that_is_not_empty_is_refused(tmp_path, target):
    home = tmp_path / "old"
    _source(home)
    url, new_home = target
    args = ["registry", "migrate", "--to", url] + (["--home", str(new_home)] if new_home else [])
    assert _mlc(home, None, *args)[0] == 0
    code, out = _mlc(home, None, *args)
    assert code == 1 and "is not empty: " in out and "versions (4 rows)" in out and "new, empty database" in out


def test_a_damaged_artifact_stops_the_migration_before_any_row(tmp_path, target):
    home = tmp_path / "old"
    reg = _source(home)
    reg.store.path_for(reg.get("iris:2").digest).write_bytes(b"tampered")  # type: ignore[attr-defined]
    url, new_home = target
    args = ["registry", "migrate", "--to", url] + (["--home", str(new_home)] if new_home else [])
    code, out = _mlc(home, None, *args)
    assert code == 1 and "corrupted" in out
    with Registry(new_home or tmp_path / "empty", url).engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(s.versions)).scalar() == 0


def test_migrating_onto_itself_is_a_usage_error(tmp_path):
    home = tmp_path / "old"
    Registry(home)
    code, out = _mlc(home, None, "registry", "migrate", "--to", f"sqlite:///{home / 'registry.db'}")
    assert code == 2 and "names the registry being migrated" in out
