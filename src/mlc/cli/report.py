"""`mlc report show` and `mlc report compare`: reading reports, and the CI regression gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlc.cli._common import console, err_console, handle_errors, json_option, print_json
from mlc.errors import EXIT_ERROR, UsageError
from mlc.report.compare import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MAX_SLOWDOWN

_REPORT = click.Path(path_type=Path, dir_okay=False)


@click.group("report")
def report_group() -> None:
    """Show reports (bench, optimize, profile, compare) and compare two bench reports."""


@report_group.command("show")
@click.argument("report", type=_REPORT)
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print the Markdown (as the command wrote it: for a PR comment) instead of the terminal form.")
@click.option("--html", "as_html", is_flag=True,
              help="Print the HTML page with its plots (as the command wrote it); redirect it to a file.")
@json_option
@handle_errors
def show_cmd(report: Path, as_markdown: bool, as_html: bool, as_json: bool) -> None:
    """Show REPORT.json, whatever its kind, as the command that wrote it printed it."""
    from mlc.report.compare import read_report
    from mlc.report.render import show, to_html, to_markdown

    if sum((as_markdown, as_html, as_json)) > 1:
        raise UsageError("choose one of --markdown, --html and --json")
    data = read_report(report)
    if as_json:
        print_json(data)
    elif as_markdown:
        click.echo(to_markdown(data), nl=False)
    elif as_html:
        click.echo(to_html(data), nl=False)
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
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Also write report.json, report.md and report.html (the gate's page, with its plot) here.")
@json_option
@handle_errors
def compare_cmd(baseline: Path, new: Path, max_slowdown: str, max_accuracy_drop: str, all_lines: bool,
                as_markdown: bool, out: Path | None, as_json: bool) -> None:
    """Compare two bench reports; exit 1 on a real regression beyond the thresholds, else 0.

    Speed is judged on ratios to a reference measured in the same run (mlc / native, mlc /
    ort-default per batch size), so a uniformly slower machine is not a regression. A model and
    batch size fail only when mlc's ratio to every reference got slower with its whole 95%
    bootstrap interval (over the repeats) beyond --max-slowdown; a reference that moved on its
    own, or noise, shows as "unclear" and passes.
    """
    from mlc.report.compare import Thresholds, compare_reports, load_bench_report, parse_fraction
    from mlc.report.envelope import envelope
    from mlc.report.kinds.compare import body
    from mlc.report.render import show, to_markdown, write_report_files

    if as_json and as_markdown:
        raise UsageError("choose one of --markdown and --json")
    limits = Thresholds(parse_fraction(max_slowdown, "--max-slowdown"),
                        parse_fraction(max_accuracy_drop, "--max-accuracy-drop"))
    result = compare_reports(load_bench_report(baseline), load_bench_report(new), limits,
                             baseline_name=str(baseline), new_name=str(new))
    report = envelope("compare", body(result, all_lines))
    if out is not None:
        paths = write_report_files(report, out)
        err_console.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(result.to_dict())
    elif as_markdown:
        click.echo(to_markdown(report), nl=False)
    else:
        show(report, console)
    if result.failed:
        sys.exit(EXIT_ERROR)
