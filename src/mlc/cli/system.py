"""`mlc doctor` and `mlc targets`: what this machine offers and what targets exist."""

from __future__ import annotations

import click
from rich.table import Table

from mlc.cli._common import console, handle_errors, json_option, print_json


@click.command("doctor")
@json_option
@handle_errors
def doctor_cmd(as_json: bool) -> None:
    """Show what mlc will use: onnxruntime and its providers, numba, the compiled core, CPU, memory, GPUs."""
    from mlc.doctor import collect

    info = collect()
    if as_json:
        print_json(info)
        return
    ort = info["onnxruntime"]
    ext = info["compiled_extension"]
    cpu = info["cpu"]
    rows = [
        ("mlc", info["mlc"] or "not installed (running from source)"),
        ("python", f"{info['python']} on {info['platform']}"),
        ("onnxruntime", f"{ort.get('version')} (package: "
         f"{'onnxruntime-gpu ' + ort['onnxruntime-gpu'] if ort['onnxruntime-gpu'] else 'onnxruntime'})"),
        ("providers", ", ".join(ort.get("providers", [])) or "none"),
        ("numba", info["numba"] or "missing"),
        ("compiled core", f"loaded ({ext['path']})" if ext["loaded"] else f"MISSING: {ext['error']}"),
        ("cpu", f"{cpu['usable_cores']} usable of {cpu['logical_cores']} logical cores ({cpu['model']})"),
        ("memory", f"{info['memory_gib']} GiB"),
        ("gpus", "; ".join(f"{g['index']}: {g['name']} {g['memory_gib']} GiB" for g in info["gpus"]) or "none seen"),
    ]
    rows += [(name, version or "not installed") for name, version in info["frameworks"].items()]
    for key, value in rows:
        console.print(f"[bold]{key:14}[/] {value}", highlight=False)
    if ort.get("problem"):
        console.print(f"[bold red]problem:[/] {ort['problem']}", highlight=False)


@click.command("targets")
@json_option
@handle_errors
def targets_cmd(as_json: bool) -> None:
    """List hardware targets (profiles/*.toml, plus $MLC_PROFILES)."""
    from mlc.targets import list_targets

    targets = list_targets()
    if as_json:
        print_json([t.to_dict() | {"source": t.source} for t in targets])
        return
    table = Table(box=None, header_style="bold")
    for col in ("name", "device", "cores", "memory", "$/hour", "providers", "description"):
        table.add_column(col)
    for t in targets:
        table.add_row(t.name, t.device, str(t.cores), f"{t.memory_gib:g} GiB", f"{t.price_per_hour:.3f}",
                      ",".join(p.replace("ExecutionProvider", "") for p in t.execution_providers), t.description)
    console.print(table)
