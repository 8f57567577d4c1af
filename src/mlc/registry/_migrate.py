"""`mlc registry migrate --to URL`: move a registry's metadata to another database (SQLite to
PostgreSQL) without losing history.

Why a copy and not a dump: the target is created by today's code (`Registry(home, url)`, so at
the current schema version, see _migrations), then every table of `_schema.metadata` is copied
row for row with its keys, in one write transaction on the target, so a failure leaves it empty.
Identity columns (versions.id, events.seq, ...) keep their numbers and PostgreSQL's sequences are
moved past them, so the next registration, deployment or event continues where the source ended.

Artifacts are checked before any row is written: every version's blob is re-hashed against its
recorded digest, and every report file against its row's digest. With the same home (the usual
case: the home is the shared filesystem path every machine mounts) the blobs stay where they
are; with another home they are copied through the target's ArtifactStore and re-hashed there.
A target with any row in any registry table is refused: merging two registries would renumber
versions that deployments and aliases already name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlc.errors import ConflictError, IntegrityError, NotFoundError, UsageError
from mlc.files import atomic_write
from mlc.registry import _schema as s
from mlc.registry._engine import registry_url
from mlc.registry._registry import Registry

_BATCH = 500


@dataclass
class MigrationResult:
    """What was copied, for the CLI's summary and --json."""

    source: str
    target: str
    target_home: str
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    blobs_verified: int = 0
    blobs_copied: int = 0
    reports_verified: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "target_home": self.target_home, "rows": self.rows,
                "blobs_verified": self.blobs_verified, "blobs_copied": self.blobs_copied,
                "reports_verified": self.reports_verified}


def _shown(url: str) -> str:
    return registry_url(url).render_as_string(hide_password=True)


def migrate(source: Registry, to_url: str, to_home: Path | None = None) -> MigrationResult:
    """Copy `source` into the empty registry at to_url (artifacts and reports in to_home, default
    the source's home); raises before writing anything if an artifact or report fails its digest."""
    if registry_url(to_url) == registry_url(source.url):
        raise UsageError(f"--to names the registry being migrated ({_shown(to_url)})",
                         "give the URL of the new, empty database")
    home = Path(to_home) if to_home is not None else source.home
    same_home = home.resolve() == source.home.resolve()
    target = Registry(home, to_url)
    result = MigrationResult(_shown(source.url), _shown(to_url), str(home))
    try:
        _refuse_nonempty(target)
        with source.engine.connect() as src:
            tables = {t.name: [dict(r._mapping) for r in src.execute(sa.select(t))] for t in s.metadata.sorted_tables
                      if sa.inspect(src).has_table(t.name)}
        _check_and_copy_blobs(source, target, tables.get("versions", []), same_home, result)
        _check_and_copy_reports(source, target, tables.get("reports", []), same_home, result)
        with target._tx() as dst:
            _refuse_nonempty_in(dst, target)  # again under the lock: another migrate may have started
            for table in s.metadata.sorted_tables:
                rows = tables.get(table.name, [])
                for start in range(0, len(rows), _BATCH):
                    dst.execute(table.insert(), rows[start:start + _BATCH])
                result.rows[table.name] = len(rows)
            _continue_identities(dst)
    finally:
        target.engine.dispose()
    return result


def _refuse_nonempty(target: Registry) -> None:
    with target.engine.connect() as conn:
        _refuse_nonempty_in(conn, target)


def _refuse_nonempty_in(conn: Connection, target: Registry) -> None:
    filled = {t.name: n for t in s.metadata.sorted_tables
              if (n := conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)}
    if filled:
        listed = ", ".join(f"{name} ({n} rows)" for name, n in sorted(filled.items()))
        raise ConflictError(
            f"the target registry at {_shown(target.url)} is not empty: {listed}",
            "migrate into a new, empty database (createdb NAME); mlc does not merge registries, "
            "whose version numbers would collide",
        )


def _check_and_copy_blobs(source: Registry, target: Registry, versions: list[dict[str, Any]], same_home: bool,
                          result: MigrationResult) -> None:
    for digest in sorted({row["digest"] for row in versions}):
        path = source.store.verified_path(digest)  # NotFoundError / IntegrityError name the blob
        result.blobs_verified += 1
        if not same_home:
            target.store.put(path.read_bytes(), digest)
            target.store.verified_path(digest)
            result.blobs_copied += 1


def _check_and_copy_reports(source: Registry, target: Registry, reports: list[dict[str, Any]], same_home: bool,
                            result: MigrationResult) -> None:
    for row in reports:
        where = Path("models") / row["name"] / str(row["version"]) / row["filename"]
        path = source.home / where
        if not path.is_file():
            raise NotFoundError(f"report {where} of {row['name']}:{row['version']} is missing from {source.home}",
                                "restore it from a backup, or delete the version's report row before migrating")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != row["digest"]:
            raise IntegrityError(f"report {path} does not match the digest its row recorded",
                                 "restore it from a backup; mlc will not copy a changed report")
        if not same_home:
            atomic_write(target.home / where, data)
        result.reports_verified += 1


def _continue_identities(conn: Connection) -> None:
    """Move PostgreSQL's identity sequences past the copied keys (SQLite continues from max by itself)."""
    if conn.dialect.name != "postgresql":
        return
    for table in s.metadata.sorted_tables:
        column = table.autoincrement_column
        if column is None:
            continue
        conn.execute(sa.text(
            f"SELECT setval(pg_get_serial_sequence(:table, :column), "
            f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"),
            {"table": table.name, "column": column.name})
