"""Which input columns feed the model, and which pass through: decided per input before any work.

Where the model recorded its feature names (or `--features` names them), columns are matched by
name, so a table whose columns are in another order scores correctly and a missing column is an
error naming it. Without names, the columns other than the id and kept ones are taken in file
order, and their count must be the model's feature count. Every mistake found here stops the run
before a worker starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlc.errors import UsageError


@dataclass(frozen=True)
class ColumnPlan:
    """The columns of one input, as the run reads them."""

    features: tuple[str, ...]  # input columns in the model's feature order
    id_column: str | None
    keep: tuple[str, ...]
    by_name: bool  # matched by the model's feature names (False: taken in file order)

    @property
    def passthrough(self) -> tuple[str, ...]:
        """The columns copied to the output, id first."""
        return ((self.id_column,) if self.id_column else ()) + tuple(k for k in self.keep if k != self.id_column)

    @property
    def read(self) -> tuple[str, ...]:
        """Every column the run reads, each once, features first."""
        return tuple(dict.fromkeys((*self.features, *self.passthrough)))


def plan_columns(columns: Sequence[str], *, source: str, n_features: int | None,
                 feature_names: Sequence[str] | None, id_column: str | None = None,
                 keep: Sequence[str] = ()) -> ColumnPlan:
    """Match one input's columns to the model; raises UsageError naming what is missing."""
    present = list(columns)
    wanted = [c for c in ((id_column,) if id_column else ()) + tuple(keep)]
    absent = [c for c in wanted if c not in present]
    if absent:
        flag = "--id-column" if absent[0] == id_column else "--keep"
        raise UsageError(f"{source} has no column {absent[0]!r} (asked for by {flag})",
                         f"its columns are: {_listed(present)}")
    if feature_names:
        missing = [f for f in feature_names if f not in present]
        if missing:
            raise UsageError(
                f"{source} lacks {len(missing)} of the model's {len(feature_names)} feature columns: "
                f"{_listed(missing)}",
                f"its columns are: {_listed(present)}; the data must have every feature the model was trained on")
        return ColumnPlan(tuple(feature_names), id_column, tuple(keep), by_name=True)
    candidates = [c for c in present if c != id_column and c not in keep]
    if n_features is not None and len(candidates) != n_features:
        raise UsageError(
            f"the model takes {n_features} features but {source} has {len(candidates)} columns besides the id "
            f"and kept ones ({_listed(candidates)})",
            "the model records no feature names, so columns are taken in file order: pass --keep for columns "
            "that are not features, or name the model's features in order with --features A,B,...")
    return ColumnPlan(tuple(candidates), id_column, tuple(keep), by_name=False)


def _listed(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "") if names else "(none)"
