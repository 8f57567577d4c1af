"""`mlc report show` and `mlc report compare`: reading reports, and the CI regression gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlc.cli._common import console, handle_errors, json_option, print_json
from mlc.errors import EXIT_ERROR
from mlc.report.compare import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MAX_SLOWDOWN

_REPORT = click.Path(path_type=Path, dir_okay=False)


@click.group("report")
def report_group() -> None:
    """Show reports (bench, optimize, profile) and compare two bench reports."""


@report_group.command("show")
@click.argument("report", type=_REPORT)
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print Markdown (for a PR comment) instead of terminal tables.")
@json_option
@handle_errors
def show_cmd(report: Path, as_markdown: bool, as_json: bool) -> None:
    """Render REPORT.json, whatever its kind, to the terminal."""
    from mlc.report.compare import read_report
    from mlc.report.render import show, to_markdown

    data = read_report(report)
    if as_json:
        print_json(data)
    elif as_markdown:
        click.echo(to_markdown(data), nl=False)
    else:
        show(data, console)


@report_group.command("compare")
@click.argument("baseline", type=_REPORT)
@click.argument("new", type=_REPORT)
@click.option("--max-slowdown", default=f"{DEFAULT_MAX_SLOWDOWN:.0%}", show_default=True,
              help="Fail when mlc's same-run ratios got slower by more than this (e.g. 10% or 0.1).")
@click.option("--max-accuracy-drop", default=str(DEFAULT_MAX_ACCURACY_DROP), show_default=True,
              help="Fail when label agreement falls, or output error rises, by more than this.")
@click.option("--all", "all_lines", is_flag=True, help="List unchanged lines too.")
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print Markdown (for a PR comment) instead of terminal tables.")
@json_option
@handle_errors
def compare_cmd(baseline: Path, new: Path, max_slowdown: str, max_accuracy_drop: str, all_lines: bool,
                as_markdown: bool, as_json: bool) -> None:
    """Compare two bench reports; exit 1 on a real regression beyond the thresholds, else 0.

    Speed is judged on ratios to a reference measured in the same run (mlc / native, mlc /
    ort-default per batch size), so a uniformly slower machine is not a regression. A model and
    batch size fail only when mlc's ratio to every reference got slower with its whole 95%
    bootstrap interval (over the repeats) beyond --max-slowdown; a reference that moved on its
    own, or noise, shows as "unclear" and passes.
    """
    from mlc.report.compare import Thresholds, compare_reports, load_bench_report, parse_fraction
    from mlc.report.render import comparison_blocks, markdown, print_blocks

    limits = Thresholds(parse_fraction(max_slowdown, "--max-slowdown"),
                        parse_fraction(max_accuracy_drop, "--max-accuracy-drop"))
    result = compare_reports(load_bench_report(baseline), load_bench_report(new), limits,
                             baseline_name=str(baseline), new_name=str(new))
    if as_json:
        print_json(result.to_dict())
    elif as_markdown:
        click.echo(markdown(comparison_blocks(result, all_lines=all_lines)), nl=False)
    else:
        print_blocks(comparison_blocks(result, all_lines=all_lines), console)
    if result.failed:
        sys.exit(EXIT_ERROR)
