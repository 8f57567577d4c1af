"""`mlc serve`: registered models over KServe v2 HTTP (and gRPC), batched, with an optional traffic split."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mlc.cli._collect import collect_options
from mlc.cli._common import handle_errors
from mlc.serve.plan import ServeOptions, ServePlan


def _url(plan: ServePlan, port: int) -> str:
    return f"{'https' if plan.security.tls else 'http'}://{plan.host}:{port}"


def _grpc(plan: ServePlan) -> str | None:
    if plan.grpc_port is None:
        return None
    from mlc.serve.grpc_server import address  # only with --grpc-port: it imports the grpc extra

    return address(plan.host, plan.grpc_port)


def _summary(plan: ServePlan, port: int) -> dict[str, Any]:
    """What --json prints once the server listens: where, and what answers which URL."""
    return {
        "url": _url(plan, port), "grpc": _grpc(plan), "tls": plan.security.tls,
        "api_key": plan.security.api_key is not None, "workers": plan.workers, "target": plan.target.name,
        "versions": [{"ref": v.ref, "path": f"/v2/models/{v.name}/versions/{v.version}",
                      "batcher": {"max_batch_size": v.layout.max_batch_size,
                                  "max_queue_delay_us": v.layout.max_queue_delay_us,
                                  "max_queue_rows": v.layout.max_queue_rows, "instances": v.layout.instances,
                                  "threads": v.layout.threads, "from": v.layout_from},
                      "note": v.note or None} for v in plan.versions],
        "routes": {name: {str(version): share for version, share in shares.items()}
                   for name, shares in plan.routes.items()},
        "limits": {"max_request_bytes": plan.max_request_bytes, "max_request_rows": plan.max_request_rows},
        "shadow": None if plan.shadow is None else {
            "ref": plan.shadow.version.ref, "mirrors": plan.shadow.version.name,
            "sample": plan.shadow.settings.sample, "atol": plan.shadow.settings.atol},
    }


def _describe(plan: ServePlan, port: int) -> None:
    """Say where the server listens and what answers which URL, so nothing about it is a guess."""
    click.echo(f"mlc serve: listening on {_url(plan, port)}  "
               f"({plan.workers} worker{'s' if plan.workers > 1 else ''}, target {plan.target.name})")
    if plan.grpc_port is not None:
        click.echo(f"  gRPC on {_grpc(plan)}{' (TLS)' if plan.security.tls else ''}: inference.GRPCInferenceService "
                   "(KServe v2, Triton's ModelConfig and ModelStatistics) and grpc.health.v1")
    if plan.security.api_key is not None:
        click.echo("  every route but the health checks needs the header Authorization: Bearer KEY")
    for version in plan.versions:
        layout = version.layout
        click.echo(f"  {version.ref}  /v2/models/{version.name}/versions/{version.version}  "
                   f"batcher: max_batch_size={layout.max_batch_size} max_queue_delay_us={layout.max_queue_delay_us} "
                   f"instances={layout.instances} threads={layout.threads} (from {version.layout_from})")
        if version.note:
            click.echo(f"    note: {version.note}")
    for name, shares in plan.routes.items():
        split = ", ".join(f"{name}:{v} {p:g}%" for v, p in shares.items())
        following = ""
        if name in plan.follow:
            alias = plan.follow[name]
            following = f"  (follows {name}@{alias})" if alias else "  (follows its recorded deployment)"
        click.echo(f"  /v2/models/{name} -> {split}{following}")
    if plan.shadow is not None:
        candidate = plan.shadow.version
        click.echo(f"  shadow: {plan.shadow.settings.sample:.0%} of {candidate.name}'s answered requests mirrored "
                   f"to {candidate.ref} (never answering them); agreement on /metrics as mlc_shadow_*")
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
@click.option("--grpc-port", type=click.IntRange(0, 65535),
              help="Also serve KServe v2 over gRPC on this port (0 picks a free one; Triton uses 8001). "
                   "Needs the grpc extra: pip install \"mlc[grpc]\".")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path),
              help="PEM certificate (chain): both transports then speak TLS only. Needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path),
              help="PEM private key of --tls-cert, unencrypted.")
@click.option("--api-key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding an API key: every route but the health checks then needs "
                   "'Authorization: Bearer KEY' (HTTP header or gRPC metadata).")
@click.option("--json", "as_json", is_flag=True,
              help="Once listening, print where and what is served as one line of JSON (with --port 0 or "
                   "--grpc-port 0: the ports).")
@click.option("--poll-interval", type=click.FloatRange(0), default=5.0, show_default=True, metavar="SECONDS",
              help="How often each worker polls the registry for a moved alias (NAME@ALIAS) or a changed "
                   "deployment (NAME, --split; see mlc rollout); 0: only on SIGHUP to the server.")
@click.option("--no-hooks", is_flag=True,
              help="Do not deliver webhooks from this server (mlc hooks run delivers them elsewhere).")
@click.option("--shadow", metavar="REF",
              help="Mirror answered requests of REF's model to REF (a version not served) off the response "
                   "path, and count how often its outputs agree with what clients got (mlc_shadow_* on /metrics).")
@click.option("--shadow-sample", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              metavar="FRACTION", help="Share of the model's answered requests mirrored to --shadow.")
@click.option("--shadow-atol", type=click.FloatRange(0), default=1e-5, show_default=True, metavar="TOL",
              help="A mirrored row agrees when its labels are equal and its other outputs are within TOL.")
@collect_options
@handle_errors
def serve_cmd(refs: tuple[str, ...], host: str, port: int, workers: int | None, target_name: str | None,
              max_batch_size: int | None, max_queue_delay_us: int | None, max_queue_rows: int | None,
              instances: int | None, threads: int | None, splits: tuple[str, ...], grpc_port: int | None,
              tls_cert: Path | None, tls_key: Path | None, api_key_file: Path | None, as_json: bool,
              poll_interval: float = 5.0, no_hooks: bool = False, shadow: str | None = None,
              shadow_sample: float = 1.0, shadow_atol: float = 1e-5, collect: Any = None) -> None:
    """Serve registered models over HTTP, and gRPC with --grpc-port (KServe v2 / Open Inference
    Protocol, Triton-compatible).

    REF is NAME (its recorded deployment if any, else its latest version), NAME:VERSION or
    NAME@ALIAS. Only ONNX versions are served: run `mlc optimize` on a framework model first.
    NAME@ALIAS follows the alias and NAME its recorded deployment while serving: a moved alias
    (mlc promote) or a new split (mlc rollout) is loaded, warmed and swapped in with no restart.
    --shadow NAME:V weighs a candidate on live traffic without letting it answer anyone.
    """
    from mlc.config import load_settings
    from mlc.registry import Registry
    from mlc.serve.plan import build_plan, record_splits
    from mlc.serve.security import load_security
    from mlc.serve.split import parse_split
    from mlc.serve.workers import serve
    from mlc.targets import get_target

    options = ServeOptions(
        refs=refs, host=host, port=port, workers=workers, target=target_name, max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us, max_queue_rows=max_queue_rows, instances=instances, threads=threads,
        collect=collect, splits=tuple(parse_split(s) for s in splits), grpc_port=grpc_port,
        security=load_security(tls_cert, tls_key, api_key_file), poll_interval=poll_interval, shadow=shadow,
        shadow_sample=shadow_sample, shadow_atol=shadow_atol)
    if grpc_port is not None:
        import mlc.serve.grpc_proto  # noqa: F401 - without the grpc extra, says what to install
    registry = Registry.open()
    plan = build_plan(options, registry, get_target(target_name), load_settings())

    def ready(bound: ServePlan) -> None:
        record_splits(plan, registry)
        if not no_hooks:  # a thread of the supervising process: a slow receiver holds it, never a request
            from mlc.events.deliver import start_thread

            start_thread(registry)
        if as_json:  # one line, so a script that started the server can read it before EOF
            click.echo(json.dumps(_summary(bound, bound.port)))
            sys.stdout.flush()
        else:
            _describe(bound, bound.port)

    serve(plan, on_ready=ready)
    click.echo("mlc serve: stopped", err=as_json)
