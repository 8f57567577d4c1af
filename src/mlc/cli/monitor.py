"""`mlc monitor`: drift of collected data against a version's reference, with an exit code for cron and CI.

    mlc monitor REF --collected DIR [--since 24h] [--baseline ROWS] [-o report.md|.html|.json]
    mlc monitor reference DATA -o ref.json   (a reference from a Parquet/CSV file of rows)

Exit codes: 0 no drift (or too little data to say), 4 drift, 1 error, 2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlc.cli._common import console, handle_errors, json_option, print_json, write_outputs
from mlc.errors import EXIT_DRIFT, NotFoundError


class _DefaultToCheck(click.Group):
    """`mlc monitor REF ...` runs the check; `mlc monitor reference ...` the named subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group("monitor", cls=_DefaultToCheck)
def monitor_group() -> None:
    """Drift of what a served version receives (mlc serve --collect) against its reference.

    \b
    Exit codes: 0 no drift (or too little data), 4 drift, 1 error, 2 usage error.
    """


def _reference(ref: str) -> tuple[Any, str | None, int | None]:
    """The reference summary (a file, or the one stored with the version REF names in the registry),
    and the model and version whose collected rows to read."""
    from mlc.monitor.summary import DataSummary

    path = Path(ref)
    if path.suffix == ".json" or path.is_file():
        summary = DataSummary.load(path)
        model, version = _split_ref(str(summary.meta.get("ref", "")))
        return summary, model, version
    registry = _registry_if_any()
    if registry is not None:
        from mlc.monitor.store import stored_reference

        try:
            mv = registry.get(ref)
        except NotFoundError:
            pass
        else:
            return stored_reference(registry, mv.ref), mv.name, mv.version
    model, version = _split_ref(ref)
    return None, model, version


def _registry_if_any() -> Any:
    """The registry when there is one here; None rather than creating an empty one."""
    from mlc.config import load_settings

    settings = load_settings()
    sqlite = settings.registry_url.removeprefix("sqlite:///")
    if sqlite != settings.registry_url and not Path(sqlite).is_file():
        return None
    from mlc.registry import Registry

    return Registry.open()


def _split_ref(ref: str) -> tuple[str | None, int | None]:
    if not ref:
        return None, None
    name, _, version = ref.partition(":")
    return name, int(version) if version.isdigit() else None


F = TypeVar("F", bound=Callable[..., Any])


def _window_options(func: F) -> F:
    """The options every drift check shares: where the collected rows are, which, thresholds, outputs."""
    options = [
        click.option("--collected", "collected_dir", required=True,
                     type=click.Path(file_okay=False, path_type=Path), help="The DIR given to mlc serve --collect."),
        click.option("--since", help="Only rows newer than this (24h, 90m, 7d)."),
        click.option("--baseline", "baseline_rows", type=click.IntRange(1),
                     help="Use the window's oldest ROWS rows as the reference (a version stored without one)."),
        click.option("--alpha", type=float, default=0.05, show_default=True, help="Family-wise significance level."),
        click.option("--psi", type=float, default=0.1, show_default=True, help="Smallest PSI that counts as drift."),
        click.option("--missing-shift", type=float, default=0.05, show_default=True,
                     help="Smallest change of a missing-value share that counts."),
        click.option("--out-of-range", type=float, default=0.01, show_default=True,
                     help="Smallest share outside the reference's range that counts."),
        click.option("-o", "--output", "outputs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the report: .json, .md or .html (repeatable)."),
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _drift_body(ref: str, reference: Any, model: str | None, version: int | None, collected_dir: Path,
                since: str | None, baseline_rows: int | None, thresholds: Any) -> dict[str, Any]:
    """The drift report's body: where the rows came from and every column's verdict."""
    from mlc.monitor.drift import compare
    from mlc.monitor.window import parse_since, read_window

    window = read_window(collected_dir, reference, model=model, version=version,
                         since_seconds=parse_since(since) if since else None, baseline_rows=baseline_rows)
    result = compare(window.reference, window.collected, thresholds)
    return {"ref": ref, "collected": str(collected_dir), "since": since, "baseline_rows": baseline_rows,
            "files": window.files, "skipped": window.skipped, **result.to_dict()}


def _finish(body: dict[str, Any], outputs: tuple[Path, ...], as_json: bool, ref: tuple[str | None, int | None]
            = (None, None)) -> None:
    """Write, print, record a drift event for a registered version, and exit 4 on drift, 0 otherwise."""
    report = _envelope(body)
    write_outputs(report, outputs)
    if body.get("verdict") == "drift":
        _publish_drift(*ref, body)
    if as_json:
        print_json(report)
    else:
        from mlc.report import render

        render.show(report, console)
    sys.exit(EXIT_DRIFT if body.get("verdict") == "drift" else 0)


def _publish_drift(model: str | None, version: int | None, body: dict[str, Any]) -> None:
    """`mlc.model.drift_detected` in the outbox, when the version is in the registry (not for a bare file)."""
    if model is None or version is None:
        return
    registry = _registry_if_any()
    if registry is None:
        return  # no registry here: do not create one for an event
    from mlc.events import outbox
    from mlc.events.types import DRIFT_DETECTED

    try:
        mv = registry.get(f"{model}:{version}")
    except NotFoundError:
        return
    outbox.publish(registry, DRIFT_DETECTED, mv.name, mv.ref, {
        "name": mv.name, "version": mv.version, "drifted": body.get("drifted", []),
        "rows_collected": body.get("rows_collected"), "rows_reference": body.get("rows_reference"),
        "collected": body.get("collected"), "since": body.get("since")})


def _no_reference(ref: str) -> NotFoundError:
    return NotFoundError(f"no reference for {ref}: the version was stored without one",
                         "register it with --data (mlc register/optimize --data ROWS), pass a reference file "
                         "(mlc monitor reference DATA -o ref.json), or use --baseline ROWS")


@monitor_group.command("check", hidden=True)
@click.argument("ref", metavar="REF")
@_window_options
@handle_errors
def check_cmd(ref: str, collected_dir: Path, since: str | None, baseline_rows: int | None, alpha: float, psi: float,
              missing_shift: float, out_of_range: float, outputs: tuple[Path, ...], as_json: bool) -> None:
    """REF: a reference file (.json), or NAME:VERSION / NAME@ALIAS (the reference stored with the version
    by mlc register/optimize --data; else --baseline)."""
    from mlc.monitor.drift import Thresholds

    reference, model, version = _reference(ref)
    if reference is None and baseline_rows is None:
        raise _no_reference(ref)
    thresholds = Thresholds(alpha=alpha, psi=psi, missing_shift=missing_shift, out_of_range=out_of_range)
    _finish(_drift_body(ref, reference, model, version, collected_dir, since, baseline_rows, thresholds),
            outputs, as_json, (model, version))


@monitor_group.command("labels")
@click.argument("ref", metavar="REF")
@click.argument("labels_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id-column", default="request_id", show_default=True, help="The labels' request id column.")
@click.option("--label-column", default="label", show_default=True, help="The labels' true value column.")
@click.option("--task", type=click.Choice(["classification", "regression"]),
              help="What the model does (default: as registered, else from its outputs).")
@_window_options
@handle_errors
def labels_cmd(ref: str, labels_file: Path, id_column: str, label_column: str, task: str | None,
               collected_dir: Path, since: str | None, baseline_rows: int | None, alpha: float, psi: float,
               missing_shift: float, out_of_range: float, outputs: tuple[Path, ...], as_json: bool) -> None:
    """Live quality from late labels, beside drift: FILE (CSV, Parquet, JSON lines) holds a request id,
    the true value, and a `row` column when requests carry several rows.

    \b
    Classifiers: accuracy and log-loss; regressors: RMSE and MAE. Drift is checked as by
    mlc monitor REF when a reference (or --baseline) is there. Exit codes as mlc monitor.
    """
    from mlc.monitor.drift import Thresholds
    from mlc.monitor.quality import join, measure, read_labels
    from mlc.monitor.window import parse_since

    reference, model, version = _reference(ref)
    labels = read_labels(labels_file, id_column, label_column)
    joined = join(collected_dir, labels, model=model, version=version,
                  since_seconds=parse_since(since) if since else None)
    recorded_task, classes = _task(ref, reference)
    quality = measure(joined, len(labels), task=task or recorded_task, classes=classes)
    if reference is None and baseline_rows is None:
        body: dict[str, Any] = {"ref": ref, "collected": str(collected_dir), "since": since, "verdict": "not checked",
                                "drifted": [], "columns": [], "skipped": [],
                                "note": "no reference for this version: drift was not checked"}
    else:
        thresholds = Thresholds(alpha=alpha, psi=psi, missing_shift=missing_shift, out_of_range=out_of_range)
        body = _drift_body(ref, reference, model, version, collected_dir, since, baseline_rows, thresholds)
    body["quality"] = quality.to_dict()
    _finish(body, outputs, as_json, (model, version))


def _task(ref: str, reference: Any) -> tuple[str | None, list[Any] | None]:
    """The model's task and classes: from the reference's notes, else from the registry's version."""
    meta = reference.meta if reference is not None else {}
    if meta.get("task"):
        return str(meta["task"]), meta.get("classes")
    name, version = _split_ref(str(meta.get("ref") or ref))
    if name is None or version is None:
        return None, None
    from mlc.registry import Registry

    try:
        signature = Registry.open().get(f"{name}:{version}").signature
    except NotFoundError:
        return None, None
    return signature.task, list(signature.classes) if signature.classes is not None else None


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    from mlc.report.envelope import envelope

    return envelope("drift", body)


@monitor_group.command("reference")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the reference (JSON).")
@click.option("--ref", "model_ref", help="NAME:VERSION the reference describes (read back by mlc monitor).")
@handle_errors
def reference_cmd(data: Path, output: Path, model_ref: str | None) -> None:
    """A reference (feature sketches) from a Parquet or CSV file of rows, one column per feature.

    Output columns named output:NAME are summarised as the model's outputs.
    """
    import pandas as pd

    from mlc.monitor.summary import DataSummary

    frame = pd.read_parquet(data) if data.suffix.lower() in (".parquet", ".pq") else pd.read_csv(data)
    features = [c for c in frame.columns if not str(c).startswith("output:")]
    outputs = {str(c)[len("output:"):]: frame[c].to_numpy() for c in frame.columns if str(c).startswith("output:")}
    summary = DataSummary.from_rows(frame[features].to_numpy(dtype="float64"), outputs,
                                    feature_names=[str(c) for c in features],
                                    meta={"ref": model_ref, "from": data.name, "rows": len(frame)})
    summary.save(output)
    console.print(f"reference of {len(frame):,} rows, {len(features)} features -> {output}", markup=False)
