"""What every command shares: error-to-exit-code mapping, --json output, key=value and list parsing,
-o report files."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from mlc.errors import EXIT_ERROR, MlcError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

# Piped output (logs, CI) gets wide tables instead of rich's 80-column default, which elides cells.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)  # error text is never re-wrapped: scripts grep it

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")


def handle_errors(func: F) -> F:
    """Turn mlc's errors into a message and an exit code; never show a traceback for them.

    Unexpected exceptions still exit 1 with a one-line summary; MLC_DEBUG=1 shows the traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MlcError as exc:
            # The texts are printed verbatim: a hint like pip install "mlc[gpu]" is not rich markup.
            err_console.print(Text.assemble(("error:", "bold red"), " ", exc.message))
            if exc.hint:
                err_console.print(Text.assemble("  ", ("hint:", "yellow"), " ", exc.hint))
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, KeyboardInterrupt):
            raise  # click's own: a usage error, or "Aborted!" when a prompt is declined
        except Exception as exc:
            if os.environ.get("MLC_DEBUG"):
                raise
            err_console.print(Text.assemble(("internal error:", "bold red"), f" {type(exc).__name__}: {exc}"))
            err_console.print("  [yellow]hint:[/] rerun with MLC_DEBUG=1 for the traceback and report it",
                              highlight=False)
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def parse_pairs(pairs: tuple[str, ...], what: str = "--tag") -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        out[key] = value
    return out


def split_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated flags and comma-separated lists alike: --keep a --keep b,c."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


_REPORT_FORMATS = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


def write_outputs(report: dict[str, Any], outputs: tuple[Path, ...]) -> None:
    """Each -o file in the format its suffix names, rendered by the one report renderer."""
    from mlc.report import render

    for path in outputs:
        fmt = _REPORT_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise UsageError(f"-o {path}: unknown report format {path.suffix or '(none)'}",
                             "name it .json, .md or .html")
        render.write_files(report, {fmt: path})
