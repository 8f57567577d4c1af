"""`mlc` imports a command's module only when that command runs."""

from __future__ import annotations

import subprocess
import sys

import click

from mlc.cli import _COMMANDS, cli


def test_every_listed_command_resolves_to_a_command_of_that_name() -> None:
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
    assert cli.get_command(ctx, "no-such-command") is None
    assert "history" in cli.get_command(ctx, "models").list_commands(ctx)  # type: ignore[union-attr]


def test_running_one_command_imports_only_its_own_module() -> None:
    """`mlc targets` loads cli/system.py and none of the other command modules (bench alone took 0.5 s)."""
    code = ("import sys; from mlc.cli import cli; cli(['targets'], standalone_mode=False); "
            "print('MODULES', *sorted(m for m in sys.modules if m.startswith('mlc.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.splitlines()[-1].split()[1:])
    modules = {target.split(":")[0] for target in _COMMANDS.values()}
    assert loaded & modules == {"mlc.cli.system"}, loaded
