"""`mlc register` and `mlc models ...`: the registry from the command line."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from mlc.cli._common import console, handle_errors, json_option, parse_pairs, print_json
from mlc.errors import NotFoundError, UsageError
from mlc.registry import ModelVersion, Registry


@click.command("register")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", help="Model name (default: the file name without extension).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the version; repeatable.")
@click.option("--description", default="", help="Free text stored with the version.")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Point ALIAS (e.g. prod) at it.")
@click.option("--trust", is_flag=True, help="Load a pickle even if it imports globals outside the allowlist.")
@click.option("--data", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Rows the model was built on (.npy, .csv, .parquet; feature columns only): stored with the "
                   "version as its reference for mlc monitor.")
@json_option
@handle_errors
def register_cmd(path: Path, name: str | None, tags: tuple[str, ...], description: str,
                 aliases: tuple[str, ...], trust: bool, data: Path | None, as_json: bool) -> None:
    """Register a model file and print NAME:VERSION.

    PATH is a scikit-learn / XGBoost / LightGBM model (pickle, joblib, skops, XGBoost JSON/UBJ,
    LightGBM text) or an ONNX file. Pickles are scanned before loading; see `mlc --help`.
    """
    registry = Registry.open()
    mv = registry.register_file(path, name, trust=trust, tags=parse_pairs(tags), description=description,
                                aliases=aliases)
    if data is not None:
        from mlc.monitor.store import store_data_reference

        store_data_reference(registry, mv, data, trust=trust)
    if as_json:
        print_json(mv.to_dict())
    else:
        click.echo(mv.ref)


@click.group("models")
def models_group() -> None:
    """List, inspect, tag, alias, export and delete registered models."""


def _versions_table(versions: list[ModelVersion]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("ref", "format", "framework", "features", "task", "aliases", "tags", "created", "parent"):
        table.add_column(col)
    for mv in versions:
        d = mv.to_dict()
        table.add_row(
            mv.ref, mv.format, mv.framework, str(mv.signature.n_features or "-"), mv.signature.task or "-",
            ",".join(mv.aliases) or "-", ",".join(f"{k}={v}" for k, v in mv.tags.items()) or "-",
            d["created_at"], mv.source.parent or "-",
        )
    return table


@models_group.command("list")
@click.option("--name", help="Only versions of this model.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only versions with this tag.")
@json_option
@handle_errors
def list_cmd(name: str | None, tags: tuple[str, ...], as_json: bool) -> None:
    """List registered versions."""
    versions = Registry.open().list(name=name, tags=parse_pairs(tags))
    if as_json:
        print_json([mv.to_dict() for mv in versions])
    elif not versions:
        click.echo("no models registered yet (mlc register PATH --name NAME)")
    else:
        console.print(_versions_table(versions))


@models_group.command("show")
@click.argument("ref")
@json_option
@handle_errors
def show_cmd(ref: str, as_json: bool) -> None:
    """Show everything recorded for REF (NAME, NAME:VERSION or NAME@ALIAS)."""
    mv = Registry.open().get(ref)
    data = mv.to_dict()
    if as_json:
        print_json(data)
        return
    sig = mv.signature
    console.print(f"[bold]{mv.ref}[/]  {mv.framework} / {mv.format}  {mv.size_bytes:,} bytes")
    for key in ("digest", "description", "creator", "created_at", "git_commit"):
        console.print(f"  {key:12} {data[key]}", highlight=False)
    console.print(f"  {'aliases':12} {', '.join(mv.aliases) or '-'}")
    console.print(f"  {'tags':12} {', '.join(f'{k}={v}' for k, v in mv.tags.items()) or '-'}")
    console.print(f"  {'task':12} {sig.task or '-'}   classes: {list(sig.classes) if sig.classes else '-'}")
    for spec in sig.inputs:
        console.print(f"  input        {spec.name} {spec.dtype} {list(spec.shape)}", highlight=False)
    for spec in sig.outputs:
        console.print(f"  output       {spec.name} {spec.dtype} {list(spec.shape)}", highlight=False)
    console.print(f"  {'source':12} {data['source']}", highlight=False)
    if data["metrics"]:
        console.print(f"  {'metrics':12} {data['metrics']}", highlight=False)
    if mv.reports:
        console.print(f"  {'reports':12} {', '.join(mv.reports)}")
    console.print(f"  {'packages':12} {', '.join(f'{k}={v}' for k, v in mv.packages.items())}", highlight=False)


@models_group.command("tag")
@click.argument("ref")
@click.argument("tags", nargs=-1, metavar="KEY=VALUE...")
@click.option("--remove", multiple=True, metavar="KEY", help="Remove this tag; repeatable.")
@json_option
@handle_errors
def tag_cmd(ref: str, tags: tuple[str, ...], remove: tuple[str, ...], as_json: bool) -> None:
    """Set (or --remove) tags on a version."""
    if not tags and not remove:
        raise click.UsageError("give at least one KEY=VALUE or --remove KEY")
    mv = Registry.open().set_tags(ref, parse_pairs(tags, "TAGS"), remove)
    print_json(mv.to_dict()) if as_json else click.echo(f"{mv.ref} tags: {mv.tags}")


@models_group.command("alias")
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from the model named in REF instead.")
@json_option
@handle_errors
def alias_cmd(ref: str, alias: str, remove: bool, as_json: bool) -> None:
    """Point ALIAS (e.g. prod, candidate) at REF, moving it if it pointed elsewhere."""
    reg = Registry.open()
    if remove:
        name = ref.split(":")[0].split("@")[0]
        reg.remove_alias(name, alias)
        print_json({"removed": f"{name}@{alias}"}) if as_json else click.echo(f"removed {name}@{alias}")
        return
    mv = reg.set_alias(ref, alias)
    print_json(mv.to_dict()) if as_json else click.echo(f"{mv.name}@{alias} -> {mv.ref}")


@models_group.command("export")
@click.argument("ref")
@click.argument("dest", type=click.Path())  # a str: a trailing slash means a folder
@json_option
@handle_errors
def export_cmd(ref: str, dest: str, as_json: bool) -> None:
    """Copy REF's verified artifact to DEST (a file, or a folder to write NAME-VERSION.ext into)."""
    reg = Registry.open()
    out = reg.export(ref, dest)
    print_json({"ref": reg.get(ref).ref, "path": str(out)}) if as_json else click.echo(str(out))


@models_group.command("delete")
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@handle_errors
def delete_cmd(ref: str, yes: bool, as_json: bool) -> None:
    """Delete a version (refused while a deployment serves it or an alias points at it).

    Asks first unless --yes; with --json (a script, no one to ask) --yes is required.
    """
    reg = Registry.open()
    mv = reg.get(ref)
    if not yes:
        if as_json:
            raise UsageError(f"deleting {mv.ref} from a script needs --yes", f"mlc models delete {mv.ref} --yes --json")
        click.confirm(f"delete {mv.ref}?", abort=True)
    reg.delete(mv.ref)
    print_json({"deleted": mv.ref}) if as_json else click.echo(f"deleted {mv.ref}")


@models_group.command("undeploy")
@click.argument("name")
@json_option
@handle_errors
def undeploy_cmd(name: str, as_json: bool) -> None:
    """End NAME's recorded deployment (the traffic split `mlc serve --split` recorded), so that
    its versions may be deleted again."""
    reg = Registry.open()
    split = reg.active_deployment(name)
    if split is None:
        raise NotFoundError(f"model {name} has no recorded deployment")
    reg.end_deployment(name)
    shares = {f"{name}:{v}": pct for v, pct in split.items()}
    print_json({"ended": name, "split": shares}) if as_json else click.echo(f"ended the deployment of {name} {shares}")


def _add_history() -> None:
    """`mlc models history` lives with the other alias commands (cli/lifecycle.py)."""
    from mlc.cli.lifecycle import history_cmd

    models_group.add_command(history_cmd)


_add_history()
