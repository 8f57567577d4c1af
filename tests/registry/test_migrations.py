"""Schema upgrades in place: a registry mlc 0.1.0 wrote opens upgraded, on SQLite and on
PostgreSQL; concurrent openers upgrade once; a failing step leaves the old schema; a registry
newer than this mlc is refused by name."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlc.errors import ConflictError
from mlc.registry import Registry
from mlc.registry import _migrations as m
from mlc.registry import _schema as s
from mlc.registry._engine import create_engine
from mlc.signature import tabular

RELEASE_0_1 = Path(__file__).parent / "data" / "release-0.1"
TABLES_0_1 = ("versions", "tags", "aliases", "reports", "deployments", "deployment_versions")


def _old_registry(tmp_path: Path, url: str | None) -> tuple[Path, str | None]:
    """A copy of the 0.1.0 registry: the SQLite file itself, or its tables and rows loaded into
    the PostgreSQL database at url as 0.1.0 would have created them (no version table)."""
    home = tmp_path / "home"
    shutil.copytree(RELEASE_0_1, home)
    if url is None:
        return home, None
    source = sa.create_engine(f"sqlite:///{home / 'registry.db'}")
    target = create_engine(url)
    old = [s.metadata.tables[name] for name in TABLES_0_1]
    with source.connect() as src, target.begin() as dst:
        s.metadata.create_all(dst, tables=old)
        for table in old:
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            if rows:
                dst.execute(table.insert(), rows)
        dst.exec_driver_sql("SELECT setval(pg_get_serial_sequence('versions', 'id'), (SELECT max(id) FROM versions))")
        dst.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('deployments', 'id'), (SELECT max(id) FROM deployments))")
    (home / "registry.db").unlink()
    return home, url


def _applied(reg: Registry) -> list[int]:
    with reg.engine.connect() as conn:
        return list(conn.execute(sa.select(m.schema_version.c.version).order_by(m.schema_version.c.version)).scalars())


def test_the_0_1_registry_is_unversioned_and_lacks_todays_tables():
    """The premise of the upgrade tests: the committed file is what 0.1.0 wrote."""
    with sqlite3.connect(RELEASE_0_1 / "registry.db") as conn:
        names = {row[0] for row in conn.execute("select name from sqlite_master where type='table'")}
    assert names == set(TABLES_0_1)


def test_a_0_1_registry_upgrades_in_place_and_keeps_its_rows(tmp_path, registry_url):
    home, url = _old_registry(tmp_path, registry_url)
    reg = Registry(home, url)
    assert _applied(reg) == list(range(1, m.SCHEMA_VERSION + 1))
    assert set(s.metadata.tables) <= set(sa.inspect(reg.engine).get_table_names())  # every table has a step
    assert [mv.ref for mv in reg.list()] == ["iris:1", "iris:2", "raw:1", "reg:1"]
    assert reg.get("iris@prod").version == 2 and reg.active_deployment("iris") is not None
    # Today's writes work on the upgraded schema (the register writes an event row).
    mv = reg.register("iris", b"new", format="onnx", framework="onnx", signature=tabular(4, task="regression"))
    assert mv.version == 3
    from mlc.events import outbox

    assert [e.subject for e in outbox.read(reg.engine)] == ["iris:3"]
    # Opening again runs nothing.
    assert m.ensure_schema(reg.engine, reg._tx, "again") == []
    assert _applied(Registry(home, url)) == list(range(1, m.SCHEMA_VERSION + 1))


def test_a_fresh_registry_is_created_at_the_current_version_without_steps(tmp_path, registry_url):
    reg = Registry(tmp_path / "home", registry_url)
    assert _applied(reg) == [m.SCHEMA_VERSION]


def test_a_registry_newer_than_this_mlc_is_refused_by_name(tmp_path, registry_url):
    reg = Registry(tmp_path / "home", registry_url)
    with reg.engine.begin() as conn:
        conn.execute(m.schema_version.insert().values(
            version=m.SCHEMA_VERSION + 1, description="from the future", applied_at=0.0, mlc_version="9.9"))
    with pytest.raises(ConflictError) as caught:
        Registry(tmp_path / "home", registry_url)
    text = str(caught.value)
    assert f"schema version {m.SCHEMA_VERSION + 1}" in text and f"up to {m.SCHEMA_VERSION}" in text
    assert "upgrade mlc" in text


def test_a_failing_step_rolls_the_whole_upgrade_back(tmp_path, registry_url, monkeypatch):
    home, url = _old_registry(tmp_path, registry_url)

    def boom(conn):
        raise RuntimeError("step failed")

    monkeypatch.setattr(m, "STEPS", [*m.STEPS, m.Step(m.SCHEMA_VERSION + 1, "breaks", boom)])
    monkeypatch.setattr(m, "SCHEMA_VERSION", m.SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match="step failed"):
        Registry(home, url)
    engine = create_engine(url or f"sqlite:///{home / 'registry.db'}")
    assert set(sa.inspect(engine).get_table_names()) == set(TABLES_0_1)  # not even the version table
    monkeypatch.undo()
    assert _applied(Registry(home, url)) == list(range(1, m.SCHEMA_VERSION + 1))


def _open(home: str, url: str | None) -> int:
    reg = Registry(Path(home), url)
    return len(reg.list())


def test_concurrent_openers_of_an_old_registry_upgrade_it_once(tmp_path, registry_url):
    home, url = _old_registry(tmp_path, registry_url)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        counts = pool.starmap(_open, [(str(home), url)] * 8)
    assert counts == [4] * 8
    assert _applied(Registry(home, url)) == list(range(1, m.SCHEMA_VERSION + 1))  # each step stamped once
