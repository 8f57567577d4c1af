"""The `mlc` command: a thin layer over mlc's Python API."""

from __future__ import annotations

import click

from mlc import __version__
from mlc.cli.bench import bench_cmd
from mlc.cli.models import models_group, register_cmd
from mlc.cli.optimize import optimize_cmd
from mlc.cli.profile import profile_cmd
from mlc.cli.report import report_group
from mlc.cli.serve import serve_cmd
from mlc.cli.system import doctor_cmd, targets_cmd

_EPILOG = """\b
Exit codes:
  0  success
  1  error (bad model file, not found, parity failed, ...)
  2  usage error (bad flag or argument)
  3  refused as unsafe (a pickle imports globals outside the allowlist; see --trust)

\b
The registry lives in $MLC_HOME, else ./.mlc (like git or DVC);
MLC_REGISTRY_URL points its metadata at another database (e.g. PostgreSQL).
"""


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlc")
def cli() -> None:
    """mlc: compile a trained model to the fastest verified ONNX, serve it, and size its deployment."""


cli.add_command(register_cmd)
cli.add_command(optimize_cmd)
cli.add_command(models_group)
cli.add_command(doctor_cmd)
cli.add_command(targets_cmd)
cli.add_command(serve_cmd)
cli.add_command(profile_cmd)
cli.add_command(bench_cmd)
cli.add_command(report_group)


def main() -> None:
    cli(prog_name="mlc")
