"""`mlc score`: a registered version over files (Parquet, CSV, JSON lines, .npy), on this machine or Spark."""

from __future__ import annotations

import importlib.util

import click

from mlc.cli._common import handle_errors, print_json, split_names
from mlc.errors import MissingDependencyError
from mlc.score.formats import OUTPUT_FORMATS


@click.command("score")
@click.argument("ref", metavar="REF")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out", "out", required=True, metavar="DIR",
              help="Folder for the output parts, _rejects.jsonl and _summary.json; a folder of an earlier, "
                   "interrupted run of the same command is resumed.")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="parquet", show_default=True,
              help="Format of the output parts.")
@click.option("--id-column", metavar="COLUMN", help="A column copied to the output first, to join results back.")
@click.option("--keep", multiple=True, metavar="COLS", help="Other columns copied to the output (repeat or A,B).")
@click.option("--features", metavar="A,B,...",
              help="The model's feature columns in order, for a model that records no names (default: its "
                   "recorded names; else every column but the id and kept ones, in file order).")
@click.option("--workers", type=click.IntRange(0),
              help="Worker processes (local engine); threads per worker = cores / workers; 0 scores in this "
                   "process on every core. Default: 0 where the model's engines use every core themselves "
                   "(ONNX Runtime, the tree kernel), one per core for JSON lines inputs or a native plan.")
@click.option("--chunk-rows", type=click.IntRange(1), default=65536, show_default=True,
              help="Rows read, scored and written at a time; memory grows with it, not with the input.")
@click.option("--target", "target_name", metavar="PROFILE",
              help="Hardware target for a version without a recorded runtime plan. Default: cpu.")
@click.option("--engine", type=click.Choice(("local", "spark")), default="local", show_default=True,
              help="local: this machine's cores (see --workers); spark: a Spark cluster (needs mlc[spark]).")
@click.option("--master", metavar="URL", help="Spark master (--engine spark). Default: local[*].")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON (progress stays on stderr).")
@handle_errors
def score_cmd(ref: str, inputs: tuple[str, ...], out: str, fmt: str, id_column: str | None, keep: tuple[str, ...],
              features: str | None, workers: int | None, chunk_rows: int, target_name: str | None, engine: str,
              master: str | None, as_json: bool) -> None:
    """Score every row of INPUT... (Parquet, CSV, JSON lines or .npy files, or folders of them).

    REF is NAME, NAME:VERSION or NAME@ALIAS; a framework version is scored through its optimized
    version, with the runtime plan `mlc optimize` recorded. Columns are matched to the model by
    name where it records its feature names. A row that cannot be scored (a value that is no
    number, a line that does not parse) goes to _rejects.jsonl with the reason; the run goes on.
    Killed and rerun with the same arguments, a run resumes from its finished parts.
    """
    if importlib.util.find_spec("pyarrow") is None:
        raise MissingDependencyError("pyarrow", "data", "mlc score (it reads and writes files with pyarrow)")
    from mlc.score.run import ScoreOptions

    options = ScoreOptions(format=fmt, id_column=id_column, keep=split_names(keep),
                           features=split_names((features,)) if features else None, workers=workers,
                           chunk_rows=chunk_rows, target=target_name)
    if engine == "spark":
        if workers is not None:
            raise click.BadParameter("--workers is for the local engine; on Spark, --master sets the parallelism",
                                     param_hint="--workers")
        from mlc.score.spark import score_files_spark

        summary = score_files_spark(ref, inputs, out, options, master=master)
    else:
        if master:
            raise click.BadParameter("--master is for --engine spark", param_hint="--master")
        from mlc.score.progress import for_terminal
        from mlc.score.run import score_files

        summary = score_files(ref, inputs, out, options, progress=for_terminal())
    if as_json:
        print_json(summary.to_dict())
        return
    click.echo(f"mlc score: {summary.ref}: {summary.rows_in:,} rows in = {summary.rows_out:,} scored "
               f"+ {summary.rows_rejected:,} rejected  ->  {summary.out}")
    if summary.note:
        click.echo(f"  note: {summary.note}")
    if summary.rejects:
        click.echo(f"  rejected rows, with reasons: {summary.rejects}")
    detail = f"{summary.rows_per_s:,.0f} rows/s over {summary.seconds:.1f} s"
    if summary.resumed_parts:
        detail += f", resumed after {summary.resumed_parts} finished parts"
    layout = (f"{summary.workers} workers x {summary.threads} threads" if summary.workers
              else f"in this process, {summary.threads} threads")
    click.echo(f"  {detail}; {layout}; "
               f"summary: {summary.out}/_summary.json")
