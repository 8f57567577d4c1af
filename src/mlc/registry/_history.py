"""Alias history: each move of an alias by `mlc promote`, recorded with the move itself.

The alias row and its history row are written in one write transaction, so the history can
never miss a move made through mlc, nor name one that did not happen; under concurrent
promotions the registry's write lock orders them, and `previous` is read under that lock.
A rollback is a move like any other (to the holder before the last move), recorded too,
so a rollback of a rollback goes forward again, as `git revert` of a revert does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlc.errors import NotFoundError
from mlc.registry import _schema as s
from mlc.registry._provenance import creator

if TYPE_CHECKING:
    from mlc.registry._registry import Registry

PROMOTE, ROLLBACK = "promote", "rollback"
ANY_HOLDER = -1  # move_alias's expected_previous when any holder will do (versions start at 1)


@dataclass(frozen=True)
class AliasMove:
    """One row of an alias's history."""

    name: str
    alias: str
    version: int
    previous: int | None
    action: str
    creator: str
    created_at: float
    message: str
    report: str | None
    criteria: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "alias": self.alias, "version": self.version, "previous": self.previous,
                "action": self.action, "creator": self.creator,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
                "message": self.message, "report": self.report, "criteria": self.criteria}


def move_alias(registry: Registry, name: str, alias: str, version: int, *, action: str = PROMOTE,
               message: str = "", report: str | None = None, criteria: list[dict[str, Any]] | None = None,
               expected_previous: int | None = ANY_HOLDER) -> AliasMove:
    """Point NAME@ALIAS at VERSION and record the move. With `expected_previous` (an int, or None for
    "no holder"), refuse if another process moved the alias since the caller compared against it."""
    from mlc.errors import ConflictError

    registry._check_alias(alias)
    registry.get(f"{name}:{version}")  # exists, else NotFoundError
    with registry._tx() as conn:
        previous = conn.execute(sa.select(s.aliases.c.version).where(
            (s.aliases.c.name == name) & (s.aliases.c.alias == alias))).scalar()
        if expected_previous != ANY_HOLDER and previous != expected_previous:
            raise ConflictError(
                f"{name}@{alias} moved to {name}:{previous} while {name}:{version} was compared with "
                f"{name}:{expected_previous}", f"compare again: mlc promote {name}:{version} --alias {alias}")
        registry._set_alias(conn, name, alias, version)
        move = AliasMove(name=name, alias=alias, version=version, previous=previous, action=action,
                         creator=creator(), created_at=time.time(), message=message, report=report,
                         criteria=criteria or [])
        conn.execute(s.alias_history.insert().values(**asdict(move)))
    return move


def history(registry: Registry, name: str, alias: str | None = None) -> list[AliasMove]:
    """NAME's alias moves, oldest first (only one alias's with `alias`)."""
    query = sa.select(s.alias_history).where(s.alias_history.c.name == name).order_by(s.alias_history.c.id)
    if alias is not None:
        query = query.where(s.alias_history.c.alias == alias)
    with registry.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [AliasMove(name=r.name, alias=r.alias, version=r.version, previous=r.previous, action=r.action,
                      creator=r.creator, created_at=r.created_at, message=r.message or "", report=r.report,
                      criteria=list(r.criteria or [])) for r in rows]


def rollback(registry: Registry, name: str, alias: str, message: str = "") -> AliasMove:
    """Move NAME@ALIAS back to the version that held it before its last recorded move."""
    moves = history(registry, name, alias)
    if not moves:
        raise NotFoundError(f"{name}@{alias} has no recorded move to roll back",
                            f"see what was recorded with: mlc models history {name}")
    last = moves[-1]
    if last.previous is None:
        raise NotFoundError(f"{name}@{alias} had no holder before {name}:{last.version}: nothing to roll back to",
                            f"remove the alias instead: mlc models alias {name} {alias} --remove")
    return move_alias(registry, name, alias, last.previous, action=ROLLBACK,
                      message=message or f"rollback of {name}:{last.version}", expected_previous=last.version)
