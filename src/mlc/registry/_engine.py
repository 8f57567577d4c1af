"""The registry's database connection: which driver a URL needs and how a writer takes the lock.

The registry's consistency rules (one writer at a time picks the next version; a delete removes
an unused blob while no register can be naming it) need one write lock over the whole registry,
taken at a writer's BEGIN, while readers never wait. SQLite gives that with `BEGIN IMMEDIATE`
under WAL; PostgreSQL with a transaction-scoped advisory lock that only writers take (readers
run at READ COMMITTED and see the last commit). This module is the one place that knows the
difference, so the registry itself speaks SQLAlchemy Core only.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import ArgumentError

from mlc.errors import MissingDependencyError, UsageError

WRITE = "mlc_write"  # execution option of a connection that will write: its BEGIN takes the lock

# One key for the registry's write lock; any constant works, this one spells "mlc-reg" in ASCII.
_PG_WRITE_LOCK_KEY = 0x6D6C632D726567

# The drivers mlc knows, by the SQLAlchemy dialect name, with the pip extra that installs each.
_DRIVERS: dict[str, tuple[str, str, str]] = {
    # dialect: (driver name in the URL, module to import, pip extra)
    "postgresql": ("psycopg", "psycopg", "postgres"),
}


def registry_url(url: str) -> URL:
    """Parse a registry URL; `postgresql://` means psycopg 3 (SQLAlchemy's own default is psycopg2,
    which mlc does not install)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(
            f"MLC_REGISTRY_URL {url!r} is not a database URL",
            "write sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    dialect = parsed.get_backend_name()
    if dialect not in ("sqlite", "postgresql"):
        raise UsageError(
            f"the registry does not support {dialect!r} databases (URL {parsed.render_as_string(hide_password=True)})",
            "use SQLite (the default, sqlite:///PATH) or PostgreSQL (postgresql://...)",
        )
    return parsed


def _require_driver(url: URL) -> None:
    """A missing driver is the user's install, not mlc's bug: name the extra that brings it."""
    known = _DRIVERS.get(url.get_backend_name())
    if known is None:
        return
    driver, module, extra = known
    if url.get_driver_name() == driver and importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, extra, f"the registry at {url.render_as_string(hide_password=True)}")


def create_engine(url: str) -> Engine:
    """An engine for the registry at url, with the write lock wired as the registry expects."""
    parsed = registry_url(url)
    _require_driver(parsed)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
        _sqlite_immediate_transactions(engine)
    else:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
        _postgres_advisory_write_lock(engine)
    return engine


def _sqlite_immediate_transactions(engine: Engine) -> None:
    """Make SQLite take the write lock at a writer's BEGIN, so 'read max version, insert' cannot
    interleave; readers BEGIN deferred and, under WAL, read a snapshot without waiting for writers.

    pysqlite's own transaction handling defers BEGIN; this is SQLAlchemy's documented recipe.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


def _postgres_advisory_write_lock(engine: Engine) -> None:
    """A writer's transaction starts by taking one advisory lock, released at its commit or
    rollback (or when a killed writer's connection drops), so writers queue as on SQLite.

    The lock is taken before the transaction's first read, and at READ COMMITTED each statement
    sees the commits made before it, so a writer reads the version its predecessor committed.
    """

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK_KEY})")
