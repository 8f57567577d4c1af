"""`mlc serve`: registered models over KServe v2 HTTP, batched, with an optional traffic split."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mlc.cli._common import handle_errors
from mlc.serve.plan import ServeOptions, ServePlan


def _summary(plan: ServePlan, port: int) -> dict[str, Any]:
    """What --json prints once the server listens: where, and what answers which URL."""
    return {
        "url": f"http://{plan.host}:{port}", "workers": plan.workers, "target": plan.target.name,
        "versions": [{"ref": v.ref, "path": f"/v2/models/{v.name}/versions/{v.version}",
                      "batcher": {"max_batch_size": v.batch.max_batch_size,
                                  "max_queue_delay_us": v.batch.max_queue_delay_us,
                                  "max_queue_rows": v.batch.max_queue_rows, "instances": v.batch.instances,
                                  "threads": v.batch.threads, "from": v.batch.source},
                      "note": v.note or None} for v in plan.versions],
        "routes": {name: {str(version): share for version, share in shares.items()}
                   for name, shares in plan.routes.items()},
        "limits": {"max_request_bytes": plan.max_request_bytes, "max_request_rows": plan.max_request_rows},
    }


def _describe(plan: ServePlan, port: int) -> None:
    """Say where the server listens and what answers which URL, so nothing about it is a guess."""
    click.echo(f"mlc serve: listening on http://{plan.host}:{port}  "
               f"({plan.workers} worker{'s' if plan.workers > 1 else ''}, target {plan.target.name})")
    for version in plan.versions:
        batch = version.batch
        click.echo(f"  {version.ref}  /v2/models/{version.name}/versions/{version.version}  "
                   f"batcher: max_batch_size={batch.max_batch_size} max_queue_delay_us={batch.max_queue_delay_us} "
                   f"instances={batch.instances} threads={batch.threads} (from {batch.source})")
        if version.note:
            click.echo(f"    note: {version.note}")
    for name, shares in plan.routes.items():
        split = ", ".join(f"{name}:{v} {p:g}%" for v, p in shares.items())
        click.echo(f"  /v2/models/{name} -> {split}")
    click.echo(f"  limits: {plan.max_request_bytes:,} bytes and {plan.max_request_rows:,} rows per request; "
               "Ctrl-C stops after in-flight requests finish")
    sys.stdout.flush()


@click.command("serve")
@click.argument("refs", nargs=-1, metavar="REF...")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes the server to the network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--workers", type=click.IntRange(1),
              help="Worker processes sharing the port, each with its own sessions and batchers. "
                   "Default: the models' profile, else 1.")
@click.option("--target", "target_name", metavar="PROFILE",
              help="Hardware target (name or .toml); its cores are shared among workers. "
                   "Default: cpu (the cpu-2 profile).")
@click.option("--max-batch-size", type=click.IntRange(1),
              help="Rows per batch. Default: the model's profile, else the target's.")
@click.option("--max-queue-delay-us", type=click.IntRange(0),
              help="Longest wait of the oldest queued request before its batch runs. Default: the model's "
                   "profile, else 0 (a batch runs as soon as an instance is free).")
@click.option("--max-queue-rows", type=click.IntRange(1),
              help="Rows waiting per version before requests are refused with 503.")
@click.option("--instances", type=click.IntRange(1),
              help="Model instances per version and worker: batches that run side by side. Default: the "
                   "model's profile, else 1.")
@click.option("--threads", type=click.IntRange(1),
              help="ONNX Runtime threads per instance. Default: the model's profile, else the target's cores "
                   "shared among workers and instances (at most what mlc optimize chose).")
@click.option("--split", "splits", multiple=True, metavar="NAME=REF:PCT,REF:PCT",
              help="Send PCT% of unversioned requests for NAME to each REF; recorded as NAME's deployment.")
@click.option("--json", "as_json", is_flag=True,
              help="Once listening, print where and what is served as one line of JSON (with --port 0: the port).")
@handle_errors
def serve_cmd(refs: tuple[str, ...], host: str, port: int, workers: int | None, target_name: str | None,
              max_batch_size: int | None, max_queue_delay_us: int | None, max_queue_rows: int | None,
              instances: int | None, threads: int | None, splits: tuple[str, ...], as_json: bool) -> None:
    """Serve registered models over HTTP (KServe v2 / Open Inference Protocol, Triton-compatible).

    REF is NAME (its recorded deployment if any, else its latest version), NAME:VERSION or
    NAME@ALIAS. Only ONNX versions are served: run `mlc optimize` on a framework model first.
    """
    from mlc.config import load_settings
    from mlc.registry import Registry
    from mlc.serve.plan import build_plan, record_splits
    from mlc.serve.split import parse_split
    from mlc.serve.workers import serve
    from mlc.targets import get_target

    options = ServeOptions(
        refs=refs, host=host, port=port, workers=workers, target=target_name, max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us, max_queue_rows=max_queue_rows, instances=instances, threads=threads,
        splits=tuple(parse_split(s) for s in splits))
    registry = Registry.open()
    plan = build_plan(options, registry, get_target(target_name), load_settings())

    def ready(bound: int) -> None:
        record_splits(plan, registry)
        if as_json:  # one line, so a script that started the server can read it before EOF
            click.echo(json.dumps(_summary(plan, bound)))
            sys.stdout.flush()
        else:
            _describe(plan, bound)

    serve(plan, on_ready=ready)
    click.echo("mlc serve: stopped", err=as_json)
