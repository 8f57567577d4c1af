"""`mlc bench`: the CLI face of mlc.bench.run_bench, writing report.json, report.md and report.html."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from mlc.bench import SUITES, BenchSettings
from mlc.cli._common import console, err_console, handle_errors, json_option, print_json


@click.command("bench")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--suite", type=click.Choice(SUITES), help="Built-in suite to run (default without REFs: quick).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("bench-out"),
              show_default=True, help="Folder for report.json, report.md and report.html.")
@click.option("--repeats", type=click.IntRange(min=3), default=BenchSettings.repeats, show_default=True,
              help="Timed repeats per variant and batch size (compare needs at least 3).")
@click.option("--target", default="cpu", show_default=True,
              help="Hardware target: cpu, gpu, a profile name or a .toml.")
@click.option("--data", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Real input rows (.npy, .csv, .parquet) for REFs; default: rows drawn to fit each model.")
@json_option
@handle_errors
def bench_cmd(refs: tuple[str, ...], suite: str | None, out: Path, repeats: int, target: str, data: Path | None,
              as_json: bool) -> None:
    """Time registered models (REF: NAME[:VERSION|@ALIAS]) or a built-in suite: native vs ONNX Runtime vs mlc.

    Each model runs three ways: its framework's own predict (the parity reference), the plain
    conversion under ONNX Runtime's default options, and the optimized version through mlc's
    Scorer. Repeats are interleaved across the three at batch sizes 1, 32 and 1024; every timing
    has an output check beside it. Gate CI with `mlc report compare BASELINE.json OUT/report.json`.
    """
    from mlc.bench import run_bench
    from mlc.report.render import show, write_report_files

    def progress(message: str) -> None:
        err_console.print(f"[dim]…[/] {escape(message)}", highlight=False, soft_wrap=True)

    report = run_bench(refs, suite=suite, target=target, settings=BenchSettings(repeats=repeats), data=data,
                       progress=progress)
    paths = write_report_files(report, out)
    if as_json:
        print_json(report)
        return
    show(report, console)
    err_console.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False, soft_wrap=True)
