"""`mlc registry ...`: the registry database itself (moving it to PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import click

from mlc.cli._common import handle_errors, json_option, print_json
from mlc.registry import Registry


@click.group("registry")
def registry_group() -> None:
    """The registry's database: move it to PostgreSQL when a team shares it."""


@registry_group.command("migrate")
@click.option("--to", "to_url", required=True, metavar="URL",
              help="The new, empty database, e.g. postgresql://USER:PASSWORD@HOST:5432/mlc.")
@click.option("--home", "to_home", type=click.Path(path_type=Path, file_okay=False),
              help="Where the migrated registry keeps artifacts and reports (default: this registry's home, "
                   "left in place; give the shared filesystem path every machine mounts).")
@json_option
@handle_errors
def migrate_cmd(to_url: str, to_home: Path | None, as_json: bool) -> None:
    """Copy this registry ($MLC_HOME / $MLC_REGISTRY_URL) into the empty database at --to.

    Every table is copied with its numbers (versions, tags, aliases, reports, deployments, alias
    history, events, hooks and deliveries); every artifact and report is re-hashed against its
    recorded digest first, and nothing is written if one fails. Afterwards point mlc at the new
    database: export MLC_REGISTRY_URL=URL (and MLC_HOME=--home if given).
    """
    from mlc.registry._migrate import migrate

    result = migrate(Registry.open(), to_url, to_home)
    if as_json:
        print_json(result.to_dict())
        return
    rows = sum(result.rows.values())
    click.echo(f"copied {rows} rows ({', '.join(f'{t} {n}' for t, n in result.rows.items() if n)}) "
               f"from {result.source} to {result.target}")
    click.echo(f"verified {result.blobs_verified} artifacts and {result.reports_verified} reports by digest"
               + (f"; copied {result.blobs_copied} artifacts to {result.target_home}" if result.blobs_copied else
                  f"; artifacts stay in {result.target_home}"))
    click.echo(f"use it with: MLC_REGISTRY_URL=<the --to URL> MLC_HOME={result.target_home}")
