"""`mlc profile`: the CLI face of mlc.profile.profile."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from mlc.cli._common import console, err_console, handle_errors, json_option, print_json
from mlc.errors import UsageError

_EXIT_INTERRUPTED = 130  # the shell's convention for a run ended by Ctrl-C


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}


def _seconds(text: str) -> float:
    """'10s', '1.5s', '500ms', '2m' or a bare number of seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"--duration {text!r} is not a duration", "write it like 2s, 1.5s, 500ms or 1m")
    return float(match[1]) * _UNIT_S[match[2]]


@click.command("profile")
@click.argument("ref", metavar="REF")
@click.option("--target", default="cpu", show_default=True, metavar="PROFILE",
              help="Hardware target to size for: cpu, gpu, a profile name (cpu-2, cpu-8, gpu-h100) or a .toml.")
@click.option("--slo-p99-ms", type=float, default=20.0, show_default=True, help="Latency objective: p99 in ms.")
@click.option("--rate", type=float, help="Requests per second to size replicas for (default: one replica).")
@click.option("--mode", type=click.Choice(["inprocess", "http"]), default="http", show_default=True,
              help="http: `mlc serve` (or --url) driven by locust, what gets deployed; inprocess: the scoring "
                   "core alone, no server (an upper bound, recorded for serve only with --record-inprocess).")
@click.option("--url", help="Measure this running KServe v2 server (Triton included) instead of starting one.")
@click.option("--model-name", help="The model's name at --url (default: its registry name).")
@click.option("--duration", default="2s", show_default=True, help="How long each load point is held.")
@click.option("--quick", is_flag=True, help="Hill-climb over configurations instead of measuring the whole grid.")
@click.option("--arrivals", type=click.Choice(["poisson", "constant"]), default="poisson", show_default=True,
              help="Gaps between requests: exponential (independent users) or fixed.")
@click.option("--headroom", type=float, default=0.25, show_default=True,
              help="Share of measured capacity kept free when planning replicas, cores and memory.")
@click.option("--pyinstrument", is_flag=True, help="Also write a pyinstrument HTML profile of the scoring hot path.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write an HTML report with plots here.")
@click.option("--out-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("."), show_default=True,
              help="Folder for the JSON and Markdown reports.")
@click.option("--no-record", is_flag=True, help="Do not record the profile with the model version in the registry.")
@click.option("--record-inprocess", is_flag=True,
              help="With --mode inprocess, record its layout as `mlc serve`'s default anyway (not done by default: "
                   "it sized no server).")
@click.option("--locust-master", metavar="[HOST][:PORT]",
              help="Run locust in distributed mode, its master listening here (default 127.0.0.1:5557; "
                   "0.0.0.0:PORT to accept workers from other hosts).")
@click.option("--locust-workers", type=click.IntRange(min=0),
              help="Distributed locust: worker processes to start on this machine (default 2 with --locust-master).")
@click.option("--locust-remote-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Distributed locust: workers started on other hosts the master waits for "
                   "(each: locust -f - --worker --master-host HOST --master-port PORT, mlc installed).")
@json_option
@handle_errors
def profile_cmd(ref: str, target: str, slo_p99_ms: float, rate: float | None, mode: str, url: str | None,
                model_name: str | None, duration: str, quick: bool, arrivals: str, headroom: float,
                pyinstrument: bool, html_path: Path | None, out_dir: Path, no_record: bool, record_inprocess: bool,
                locust_master: str | None, locust_workers: int | None, locust_remote_workers: int,
                as_json: bool) -> None:
    """Measure a registered model under load on a hardware target and recommend its deployment.

    By default measures `mlc serve` over HTTP with locust (--mode http); --mode inprocess sizes
    the scoring core alone. Sweeps batcher settings, instances, threads and workers within the target's cores at
    open-loop arrival rates (latency counted from each request's scheduled time), samples
    CPU, memory and GPU of the serving processes, and recommends the cheapest configuration
    whose p99 meets the SLO: replicas for --rate, cores and memory per replica, batcher
    settings, cost per hour and per million inferences. The recommended layout is served afresh
    and held at its planned rate for 3 runs before it counts; one that never held exits 1 and is
    not recorded. Writes JSON and Markdown reports (HTML with --html) and records a confirmed
    recommendation with the model version, where `mlc serve` picks it up. Ctrl-C stops
    measuring and still writes what was measured.
    """
    from mlc.profile import ProfileOptions, profile
    from mlc.profile.loadgen_http import Distributed

    def progress(message: str) -> None:
        err_console.print(f"[dim]…[/] {message}", highlight=False)

    options = ProfileOptions(
        slo_p99_ms=slo_p99_ms, rate_rps=rate, mode=mode, url=url.rstrip("/") if url else None,
        model_name=model_name, duration_s=_seconds(duration), quick=quick, arrivals=arrivals, headroom=headroom,
        pyinstrument=pyinstrument, html=html_path, out_dir=out_dir, record=not no_record,
        record_inprocess=record_inprocess,
        locust=Distributed.parse(locust_master, 2 if locust_workers is None else locust_workers, locust_remote_workers)
        if locust_master or locust_workers or locust_remote_workers else None)
    outcome = profile(ref, target, options, progress=progress)
    if as_json:
        print_json(outcome.report)
    else:
        from mlc.report.render import show

        show(outcome.report, console)  # as `mlc report show` prints the JSON file again
        for kind, path in outcome.files.items():
            err_console.print(f"[green]wrote[/] {kind}: {path}", highlight=False)
    if outcome.result.interrupted:
        sys.exit(_EXIT_INTERRUPTED)
    rec = outcome.result.recommendation
    if rec is None:
        err_console.print(f"[bold red]error:[/] no configuration met p99 <= {slo_p99_ms:g} ms", highlight=False)
        sys.exit(1)
    if rec.confirmed is False:
        err_console.print(f"[bold red]error:[/] the recommendation never held p99 <= {slo_p99_ms:g} ms at its planned "
                          "load in its confirmation runs: reported as unconfirmed, not recorded for `mlc serve`",
                          highlight=False)
        sys.exit(1)
