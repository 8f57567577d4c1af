"""The `mlc` command: a thin layer over mlc's Python API."""

from __future__ import annotations

import gc
import importlib

import click

from mlc import __version__

# Each command's module is imported when that command runs (or --help lists them all): importing
# every command group up front cost ~1 s before any command started (bench alone 0.5 s,
# the registry's sqlalchemy 0.4 s), more than `mlc score` needs to score a small file.
_COMMANDS = {
    "register": "mlc.cli.models:register_cmd",
    "optimize": "mlc.cli.optimize:optimize_cmd",
    "models": "mlc.cli.models:models_group",
    "registry": "mlc.cli.registry:registry_group",
    "doctor": "mlc.cli.system:doctor_cmd",
    "targets": "mlc.cli.system:targets_cmd",
    "serve": "mlc.cli.serve:serve_cmd",
    "profile": "mlc.cli.profile:profile_cmd",
    "bench": "mlc.cli.bench:bench_cmd",
    "report": "mlc.cli.report:report_group",
    "monitor": "mlc.cli.monitor:monitor_group",
    "package": "mlc.cli.package:package_cmd",
    "score": "mlc.cli.score:score_cmd",
    "events": "mlc.cli.events:events_cmd",
    "hooks": "mlc.cli.events:hooks_group",
    "compare": "mlc.cli.lifecycle:compare_cmd",
    "promote": "mlc.cli.lifecycle:promote_cmd",
    "run": "mlc.cli.lifecycle:run_cmd",
    "rollout": "mlc.cli.rollout:rollout_cmd",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported by name when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


_EPILOG = """\b
Exit codes:
  0  success
  1  error (bad model file, not found, parity failed, ...)
  2  usage error (bad flag or argument)
  3  refused as unsafe (a pickle imports globals outside the allowlist; see --trust)
  4  drift found (mlc monitor)
  5  promotion refused: a --require criterion failed (mlc promote, mlc run)
  6  rollout aborted: an --abort-if guard held and traffic went back (mlc rollout)

\b
The registry lives in $MLC_HOME, else ./.mlc (like git or DVC);
MLC_REGISTRY_URL points its metadata at another database (e.g. PostgreSQL).
"""


@click.group(cls=_LazyGroup, epilog=_EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlc")
def cli() -> None:
    """mlc: compile a trained model to the fastest verified ONNX, serve it, and size its deployment."""


def main() -> None:
    try:
        cli(prog_name="mlc")
    finally:
        # The interpreter's last collection at exit walks every object still alive: after a command
        # that loaded numba's kernels that took 0.74 s of a 5 s `mlc score`, for a process that is
        # ending anyway. Frozen objects are left out of it; nothing else changes.
        gc.freeze()
