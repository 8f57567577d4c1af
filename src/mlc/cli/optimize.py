"""`mlc optimize`: the CLI face of mlc.optimize.optimize."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlc.cli._common import console, err_console, handle_errors, json_option, print_json
from mlc.errors import UsageError


def _batch_sizes(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--batch-sizes {text!r} is not a comma-separated list of integers",
                         "example: --batch-sizes 1,32,1024") from None
    if not sizes or min(sizes) < 1:
        raise UsageError("--batch-sizes needs positive integers")
    return sizes


@click.command("optimize")
@click.argument("source", metavar="PATH_OR_REF")
@click.option("--name", help="Registry name (default: the file name without extension).")
@click.option("--target", default="cpu", show_default=True, help="Hardware target: cpu, gpu, a name or a .toml.")
@click.option("--data", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Real input rows (.npy, .csv, .parquet) for parity, calibration and timing; stored with the "
                   "winner as its drift reference (mlc monitor).")
@click.option("--batch-sizes", help="Comma-separated batch sizes to time (default: the target's).")
@click.option("--allow-lossy", is_flag=True,
              help="Let a lossy candidate (int8, fp16) win when it is within the two limits below; "
                   "without it only lossless candidates are registered and lossy ones are reported.")
@click.option("--max-label-disagreement", type=float, default=0.005, show_default=True,
              help="Lossy passes: the largest share of rows whose label may change.")
@click.option("--max-abs-error", type=float, default=0.05, show_default=True,
              help="Lossy passes: the bound on the 99th percentile over rows of the largest output error "
                   "(absolute for probabilities, else relative to max(|original|, the output's mean |value|)).")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Also write the winner's ONNX here.")
@click.option("--tree-strategy", type=click.Choice(["gemm", "tree_traversal", "auto"]),
              help="GPU targets: force how tree ensembles become tensor ops (default: measure both, keep the faster).")
@click.option("--trust", is_flag=True, help="Load a pickle even if it imports globals outside the allowlist.")
@json_option
@handle_errors
def optimize_cmd(source: str, name: str | None, target: str, data: Path | None, batch_sizes: str | None,
                 allow_lossy: bool, max_label_disagreement: float, max_abs_error: float, output: Path | None,
                 tree_strategy: str | None,
                 trust: bool,
                 as_json: bool) -> None:
    """Convert a model to ONNX, try every optimization that applies, keep the fastest that is proven equal.

    PATH_OR_REF is a model file (registered first as the source version) or a registry
    reference NAME[:VERSION|@ALIAS]. Every candidate's outputs are checked against the original
    model; the winner is registered as a new version with its lineage and a report (JSON and
    Markdown, stored beside it). Exits 1 if no candidate reproduces the original.
    """
    from mlc.optimize import optimize

    def progress(message: str) -> None:
        err_console.print(f"[dim]…[/] {message}", highlight=False)

    result = optimize(
        source, name=name, target=target, data=data, batch_sizes=_batch_sizes(batch_sizes),
        max_label_disagreement=max_label_disagreement, max_abs_error=max_abs_error, allow_lossy=allow_lossy,
        output=output, progress=None if as_json else progress, trust=trust, tree_strategy=tree_strategy,
    )
    if as_json:
        print_json(result.to_dict())
        return
    from mlc.report.render import show

    show(json.loads(result.to_json()), console)  # as `mlc report show` prints the attached report.json
    err_console.print(f"[bold green]registered {result.winner}[/] (source {result.source})", highlight=False)
