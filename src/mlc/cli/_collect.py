"""`mlc serve`'s collection and drift-metrics flags, turned into one CollectSettings (None without either)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, TypeVar

import click

from mlc.cli._common import split_names
from mlc.errors import UsageError

F = TypeVar("F", bound=Any)


def collect_options(func: F) -> F:
    """Adds --collect, --collect-sample, --collect-exclude, --collect-hash; passes `collect`."""

    @click.option("--collect", "collect_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
                  help="Write a sample of requests (inputs, outputs, request id, time, version, split arm) as "
                       "Parquet under DIR/model=NAME/version=V/date=D/, off the hot path.")
    @click.option("--collect-sample", type=float, default=1.0, show_default=True,
                  help="Share of answered requests collected.")
    @click.option("--collect-exclude", multiple=True, metavar="COLS",
                  help="Feature columns (comma-separated, repeatable) never written.")
    @click.option("--collect-hash", multiple=True, metavar="COLS",
                  help="Feature columns written as a SHA-256 prefix of the value (repeatable).")
    @click.option("--drift-metrics", is_flag=True,
                  help="Export a rolling drift score per feature on /metrics (mlc_drift_psi, mlc_drift_flagged), "
                       "computed by a background thread against each version's reference.")
    @click.option("--drift-reference", "drift_references", multiple=True, metavar="FILE",
                  type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="A reference file (mlc monitor reference --ref NAME:V) for a served version that has "
                       "none stored (repeatable).")
    @click.option("--drift-window", type=click.IntRange(100), default=10_000, show_default=True, metavar="ROWS",
                  help="Recent rows the drift score covers.")
    @click.option("--drift-interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                  metavar="SECONDS", help="How often the drift score is recomputed.")
    @functools.wraps(func)
    def wrapper(*args: Any, collect_dir: Path | None, collect_sample: float, collect_exclude: tuple[str, ...],
                collect_hash: tuple[str, ...], drift_metrics: bool, drift_references: tuple[Path, ...],
                drift_window: int, drift_interval: float, **kwargs: Any) -> Any:
        from mlc.monitor.collect import CollectSettings
        from mlc.monitor.rolling import RollingSettings

        if drift_references and not drift_metrics:
            raise UsageError("--drift-reference needs --drift-metrics")
        if collect_dir is None:
            if collect_exclude or collect_hash:
                raise UsageError("--collect-exclude and --collect-hash need --collect DIR")
            if not drift_metrics:
                if collect_sample != 1.0:
                    raise UsageError("--collect-sample needs --collect DIR or --drift-metrics")
                return func(*args, collect=None, **kwargs)
        drift = RollingSettings(drift_window, drift_interval) if drift_metrics else None
        settings = CollectSettings(collect_dir, sample=collect_sample, exclude=split_names(collect_exclude),
                                   hash=split_names(collect_hash), drift=drift, drift_references=drift_references)
        return func(*args, collect=settings, **kwargs)

    return wrapper  # type: ignore[return-value]
