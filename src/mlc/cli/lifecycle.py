"""`mlc compare`, `mlc promote` and `mlc models history`: the retrain loop from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlc.cli._common import console, err_console, handle_errors, json_option, print_json, write_outputs
from mlc.errors import EXIT_REFUSED, UsageError

_ROWS = click.Path(exists=True, dir_okay=False, path_type=Path)


def _budget(text: str) -> float:
    value = text.strip().removesuffix("s")
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"--budget {text!r} is not a duration", "write seconds, e.g. 1 or 2.5s") from None
    if seconds <= 0:
        raise UsageError("--budget must be positive")
    return seconds


def _write(report: dict[str, Any], outputs: tuple[Path, ...]) -> None:
    write_outputs(report, outputs)
    for path in outputs:
        err_console.print(f"wrote {path}", highlight=False)


def comparison_options(func: Any) -> Any:
    for option in reversed((
        click.option("--labels", metavar="FILE|COLUMN",
                     help="True labels: a file (one per row) or a column of --data, for quality with intervals."),
        click.option("--target", "target_name", metavar="PROFILE", help="Hardware target (default: cpu)."),
        click.option("--budget", default="1s", show_default=True, help="Time spent measuring latency."),
        click.option("--resamples", default=1000, show_default=True, type=click.IntRange(10),
                     help="Bootstrap resamples of the quality intervals."),
        click.option("-o", "--output", "outputs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the report: .json, .md or .html by suffix; repeatable."),
    )):
        func = option(func)
    return func


@click.command("compare")
@click.argument("new_ref")
@click.argument("old_ref")
@click.option("--data", required=True, type=_ROWS, help="Rows to score (.npy, .csv or .parquet).")
@comparison_options
@json_option
@handle_errors
def compare_cmd(new_ref: str, old_ref: str, data: Path, labels: str | None, target_name: str | None, budget: str,
                resamples: int, outputs: tuple[Path, ...], as_json: bool) -> None:
    """Compare two registered versions on the same rows: agreement, quality, latency.

    NEW_REF and OLD_REF are NAME, NAME:VERSION or NAME@ALIAS, of one model or two (different
    frameworks too); each is scored as it is served (a framework version by its optimized
    ONNX version, with its runtime plan). `mlc report compare` stays the benchmark gate.
    """
    from mlc.lifecycle.compare import report as comparison
    from mlc.lifecycle.rows import read_rows
    from mlc.registry import Registry
    from mlc.report.render import show
    from mlc.targets import get_target

    registry = Registry.open()
    rows = read_rows(data, labels, registry.served(new_ref).version.signature.n_features)
    report = comparison(registry, new_ref, old_ref, rows, get_target(target_name), budget_s=_budget(budget),
                        resamples=resamples)
    _write(report, outputs)
    print_json(report) if as_json else show(report, console)


_REQUIRE_HELP = """Criterion the comparison must meet, e.g. "auc >= old.auc - 0.002" or
"p99_us@1 <= 1.10 * old.p99_us@1"; repeatable. Bare names are the new version's, old.NAME the
holder's; METRIC.low/.high are interval bounds, diff.METRIC is new - old."""


@click.command("promote")
@click.argument("ref")
@click.option("--alias", required=True, help="The alias to move (e.g. prod).")
@click.option("--data", type=_ROWS, help="Rows to compare on (needed unless --rollback or the alias is new).")
@click.option("--require", "require", multiple=True, metavar="EXPR", help=_REQUIRE_HELP)
@click.option("--message", default="", help="Why: recorded in the alias history.")
@click.option("--yes", is_flag=True, help="Without criteria, move the alias without asking.")
@click.option("--rollback", is_flag=True, help="Move the alias back to its previous holder (REF is NAME).")
@comparison_options
@json_option
@handle_errors
def promote_cmd(ref: str, alias: str, data: Path | None, require: tuple[str, ...], message: str, yes: bool,
                rollback: bool, labels: str | None, target_name: str | None, budget: str, resamples: int,
                outputs: tuple[Path, ...], as_json: bool) -> None:
    """Move ALIAS to REF if every --require criterion holds against the version holding it now.

    The comparison (as mlc compare prints it) is attached to REF whatever the outcome; a move
    is recorded with who, when, --message and the report (mlc models history NAME). A failed
    criterion exits 5, naming it. Criteria grammar: see mlc.lifecycle.criteria or the README.
    """
    from mlc.lifecycle.promote import promote, refusal
    from mlc.lifecycle.rows import read_rows
    from mlc.registry import Registry, parse_ref
    from mlc.registry._history import rollback as roll_back
    from mlc.report.render import show
    from mlc.targets import get_target

    registry = Registry.open()
    if rollback:
        if require or data:
            raise UsageError("--rollback takes no --require or --data", f"mlc promote NAME --alias {alias} --rollback")
        move = roll_back(registry, parse_ref(ref).name, alias, message)
        print_json(move.to_dict()) if as_json else click.echo(
            f"{move.name}@{alias} -> {move.name}:{move.version} (rolled back from {move.name}:{move.previous})")
        return

    def confirm(report: dict[str, Any]) -> bool:
        if yes:
            return True
        if as_json:
            raise UsageError("a promotion without criteria from a script needs --yes")
        show(report, console)
        return click.confirm(f"move {parse_ref(ref).name}@{alias} to {ref}?")

    rows = None if data is None else read_rows(data, labels, registry.served(ref).version.signature.n_features)
    result = promote(registry, ref, alias, rows=rows, target=get_target(target_name), require=require,
                     message=message, confirm=confirm, budget_s=_budget(budget), resamples=resamples)
    if result.report is not None:
        _write(result.report, outputs)
        if as_json:
            print_json(result.report)
        elif require or yes:  # confirm() already showed it otherwise
            show(result.report, console)
    if result.failed:
        raise refusal(result)
    if result.move is not None and not as_json:
        move = result.move
        was = f" (was {move.name}:{move.previous})" if move.previous is not None else ""
        click.echo(f"{move.name}@{alias} -> {move.name}:{move.version}{was}")
    elif result.move is None:
        click.echo(f"{ref} not promoted: declined", err=True)


@click.command("history")
@click.argument("name")
@click.option("--alias", help="Only this alias's moves.")
@json_option
@handle_errors
def history_cmd(name: str, alias: str | None, as_json: bool) -> None:
    """NAME's alias moves, oldest first: who moved which alias from which version to which, when and why."""
    from rich.table import Table

    from mlc.registry import Registry
    from mlc.registry._history import history

    moves = history(Registry.open(), name, alias)
    if as_json:
        print_json([m.to_dict() for m in moves])
        return
    if not moves:
        click.echo(f"no alias of {name} was moved by mlc promote yet")
        return
    table = Table(box=None, header_style="bold")
    for col in ("when", "alias", "to", "from", "action", "who", "message", "criteria", "report"):
        table.add_column(col)
    for m in moves:
        d = m.to_dict()
        held = sum(1 for c in m.criteria if c.get("held"))
        table.add_row(d["created_at"], m.alias, f"{name}:{m.version}",
                      f"{name}:{m.previous}" if m.previous is not None else "-", m.action, m.creator,
                      m.message or "-", f"{held}/{len(m.criteria)} held" if m.criteria else "-", m.report or "-")
    console.print(table)


@click.command("run")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print each step and whether it would run or is cached; run nothing.")
@handle_errors
def run_cmd(file: Path | None, dry_run: bool) -> None:
    """Run the pipeline FILE (default ./mlc.toml): register, optimize, profile, compare and promote each model.

    Each step is skipped when its inputs (file and data digests, versions), its config and mlc's
    version are unchanged since it last ran; a rerun with nothing changed does no work and says
    so. Exits 5 when a promotion criterion fails (cached or not), so CI fails on it.
    """
    from mlc.lifecycle.pipeline import load_pipeline
    from mlc.lifecycle.run import CACHED, WOULD_RUN, run_pipeline
    from mlc.registry import Registry

    pipeline = load_pipeline(file)
    click.echo(f"mlc run {pipeline.path}{' (dry run)' if dry_run else ''}: {len(pipeline.models)} model(s), "
               f"target {pipeline.target}")
    result = run_pipeline(pipeline, Registry.open(), dry_run=dry_run, say=click.echo)
    if dry_run:
        click.echo(f"dry run: {sum(1 for line in result.lines if line.status == WOULD_RUN)} step(s) would run")
    elif result.ran == 0:
        click.echo("nothing changed since the last run: no step ran")
    else:
        click.echo(f"{result.ran} step(s) ran, {sum(1 for line in result.lines if line.status == CACHED)} cached")
    if result.refused:
        for line in result.refused:
            err_console.print(f"promotion refused: {line}", highlight=False, markup=False)
        raise SystemExit(EXIT_REFUSED)
