"""The registry's schema version, and the steps that upgrade an older registry in place.

Why: a registry outlives the mlc that created it (a team's PostgreSQL database, a SQLite file
in a project), so a release that adds a table or a column must upgrade what it finds rather than
fail on a missing table, and an older mlc must refuse a registry a newer one upgraded rather than
half-read it. The `schema_version` table holds one row per step applied (version, when, by which
mlc), so `max(version)` is the schema a registry has.

Opening a registry (`Registry.__init__` -> `ensure_schema`):
- the usual case reads `max(version)` without the write lock and returns: readers never wait;
- an empty database gets today's tables from `_schema.metadata` and is stamped at
  `SCHEMA_VERSION` (fresh registries never run the steps);
- an older one is upgraded under the write lock (`BEGIN IMMEDIATE` on SQLite, the advisory lock
  on PostgreSQL; both make DDL part of the transaction), the version re-read under the lock so
  that concurrent openers upgrade once; a failing step rolls the whole upgrade back;
- a registry without the `schema_version` table but with tables was written before versioning
  (mlc 0.1.0 and the development builds after it): it is version 1 and upgraded from there;
- a newer version than `SCHEMA_VERSION` is refused with `ConflictError` naming both.

Adding a table or a column (for example the events outbox or the alias history):
1. define it in `_schema.py` as today (a fresh registry gets it from `create_all`);
2. append a `Step` to `STEPS` below with the next number and a one-line reason, whose function
   creates it: `_create(s.my_table)` for a table, `_add_column("table", Column(...))` for a
   column (both skip what already exists: development registries may hold it unversioned);
3. nothing else: `SCHEMA_VERSION` is the last step's number, and `mlc registry migrate` copies
   every table in `_schema.metadata`. tests/registry/test_migrations.py opens the 0.1.0 registry
   and checks that every table of `_schema.metadata` exists after the upgrade, on both databases.
Never edit or reorder a released step: registries in the field have run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Column, Float, Integer, MetaData, String, Table
from sqlalchemy.engine import Connection, Engine

from mlc.errors import ConflictError
from mlc.registry import _schema as s

_meta = MetaData()

# One row per applied step (the row of the version a fresh registry was created at, for one).
schema_version = Table(
    "schema_version",
    _meta,
    Column("version", Integer, primary_key=True),
    Column("description", String(300), nullable=False),
    Column("applied_at", Float, nullable=False),  # unix time
    Column("mlc_version", String(64), nullable=False),
)


@dataclass(frozen=True)
class Step:
    """Upgrades a registry at version `to - 1` to version `to`, inside the writer's transaction."""

    to: int
    description: str
    apply: Callable[[Connection], None]


def _create(*tables: Table) -> Callable[[Connection], None]:
    """A step that creates tables of `_schema` (skipping any already there)."""

    def run(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return run


def _add_column(table: str, column: Column[object]) -> Callable[[Connection], None]:
    """A step that adds a nullable column (or one with a server default) unless it exists."""

    def run(conn: Connection) -> None:
        if column.name in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            return
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table)} ADD COLUMN {ddl}")

    return run


# Version 1 is mlc 0.1.0's schema: versions, tags, aliases, reports, deployments,
# deployment_versions (tests/registry/data/release-0.1 holds a registry it wrote).
STEPS: list[Step] = [
    Step(2, "alias history written by mlc promote", _create(s.alias_history)),
    Step(3, "event outbox, webhooks and their deliveries",
         _create(s.events, s.hooks, s.deliveries, s.delivery_attempts)),
]

SCHEMA_VERSION = STEPS[-1].to if STEPS else 1


def _check_steps() -> None:
    """Steps must number 2, 3, ... without a gap: a registry at N runs exactly the steps after N."""
    expected = list(range(2, len(STEPS) + 2))
    if [step.to for step in STEPS] != expected:
        raise RuntimeError(f"internal error: registry migration steps are numbered "
                           f"{[step.to for step in STEPS]}, not {expected}")


_check_steps()


def current_version(conn: Connection) -> int | None:
    """The registry's schema version; None for an empty database, 1 for one from before versioning."""
    names = set(sa.inspect(conn).get_table_names())
    if schema_version.name in names:
        found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
        if found is not None:
            return int(found)
    return 1 if s.versions.name in names else None


def ensure_schema(engine: Engine, begin_write: Callable[[], AbstractContextManager[Connection]],
                  where: str) -> list[Step]:
    """Bring the registry at `engine` to SCHEMA_VERSION; answer the steps it ran.

    begin_write() is the registry's write transaction (a context manager yielding a connection);
    `where` names the registry in errors.
    """
    with engine.connect() as conn:
        found = current_version(conn)
    if found == SCHEMA_VERSION:
        return []  # the usual case: opening a registry must not wait for a writer's lock
    _refuse_newer(found, where)
    with begin_write() as conn:
        found = current_version(conn)  # re-read under the lock: another opener may have upgraded
        _refuse_newer(found, where)
        if found is None:
            s.metadata.create_all(conn)
            _meta.create_all(conn)
            _stamp(conn, SCHEMA_VERSION, "created")
            return []
        _meta.create_all(conn)
        ran = [step for step in STEPS if step.to > found]
        if found == 1 and conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == 0:
            _stamp(conn, 1, "written before schema versioning (mlc 0.1.0)")
        for step in ran:
            step.apply(conn)
            _stamp(conn, step.to, step.description)
        return ran


def _refuse_newer(found: int | None, where: str) -> None:
    if found is not None and found > SCHEMA_VERSION:
        from mlc import __version__

        raise ConflictError(
            f"the registry at {where} has schema version {found}, newer than this mlc ({__version__}) "
            f"knows (up to {SCHEMA_VERSION}): a newer mlc has upgraded it",
            "upgrade mlc (pip install -U mlc) on this machine; mlc never downgrades a registry, "
            "and an older one would misread it",
        )


def _stamp(conn: Connection, version: int, description: str) -> None:
    from mlc import __version__

    conn.execute(schema_version.insert().values(
        version=version, description=description, applied_at=time.time(), mlc_version=str(__version__)))
