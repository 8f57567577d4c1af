"""`mlc promote NAME:V --alias prod`: move an alias to a new version only if the criteria hold.

The new version is compared with the one holding the alias now (lifecycle/compare.py), each
`--require` criterion is evaluated over that comparison (lifecycle/criteria.py), and the alias
moves only if every one holds. The comparison, with each criterion's values and the decision,
is attached to the new version as a report whatever the outcome (a refusal is worth reading),
and a move is recorded in the alias history with who, when and why (registry/_history.py).
The move checks that the alias still points where it did when the comparison started, so two
promotions racing cannot both be judged against the same old version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlc.errors import NotFoundError, UsageError
from mlc.lifecycle import compare
from mlc.lifecycle.criteria import Outcome, PromotionRefused, evaluate, parse
from mlc.lifecycle.rows import Rows
from mlc.registry._history import AliasMove, move_alias

if TYPE_CHECKING:
    from mlc.registry import ModelVersion, Registry
    from mlc.targets import HardwareTarget

# Asked before an unconditional promotion (no criteria, no --yes): True moves the alias.
Confirm = Callable[[dict[str, Any]], bool]


@dataclass
class Promotion:
    """What `promote` decided: the report it decided on (None when nothing held the alias), and the move."""

    ref: str
    alias: str
    report: dict[str, Any] | None
    outcomes: list[Outcome]
    move: AliasMove | None
    report_file: str | None = None

    @property
    def promoted(self) -> bool:
        return self.move is not None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.held]


def _holder(registry: Registry, name: str, alias: str) -> ModelVersion | None:
    try:
        return registry.get(f"{name}@{alias}")
    except NotFoundError:
        return None


def promote(registry: Registry, ref: str, alias: str, *, rows: Rows | None, target: HardwareTarget,
            require: tuple[str, ...] = (), message: str = "", confirm: Confirm | None = None,
            budget_s: float = compare.DEFAULT_BUDGET_S, resamples: int = 1000) -> Promotion:
    """Compare REF with NAME@ALIAS's holder and move the alias if every criterion holds.

    Without criteria, `confirm` decides (None: move). When a criterion fails the report is still
    recorded and the result's `failed` names it (`refusal` turns that into PromotionRefused)."""
    criteria = [parse(text) for text in require]  # a typo fails before minutes of measuring
    mv = registry.get(ref)
    registry._check_alias(alias)
    old = _holder(registry, mv.name, alias)
    if old is not None and old.version == mv.version:
        raise UsageError(f"{mv.name}@{alias} already points at {mv.ref}")
    if old is None:
        if criteria:
            raise UsageError(f"no version of {mv.name} holds @{alias}, so there is nothing to judge "
                             f"{len(criteria)} criteria against",
                             f"point it at a first version without criteria: mlc promote {mv.ref} --alias {alias}")
        first = move_alias(registry, mv.name, alias, mv.version, message=message or "first holder",
                           expected_previous=None)
        return Promotion(mv.ref, alias, None, [], first)
    if rows is None:
        raise UsageError(f"comparing {mv.ref} with {old.ref} (@{alias}) needs rows", "pass --data ROWS")
    report = compare.report(registry, mv.ref, old.ref, rows, target, budget_s=budget_s, resamples=resamples)
    body = report["body"]
    new_figures, old_figures = compare.metric_values(body, "new"), compare.metric_values(body, "old")
    outcomes = [evaluate(c, new_figures, old_figures) for c in criteria]
    body["criteria"] = [o.to_dict() for o in outcomes]
    failed = [o for o in outcomes if not o.held]
    go = not failed and (bool(criteria) or confirm is None or confirm(report))
    reason = ("every criterion held" if criteria else "confirmed") if go else (
        f"{len(failed)} criteria failed" if failed else "declined")
    body["decision"] = {"promoted": go, "ref": mv.ref, "alias_ref": f"{mv.name}@{alias}", "previous": old.ref,
                        "reason": reason, "message": message}
    from mlc.report.render import report_json

    filename = f"compare-{alias}-{mv.version}-vs-{old.version}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    registry.attach_report(mv, filename, report_json(report))
    moved = None
    if go:
        moved = move_alias(registry, mv.name, alias, mv.version, message=message, report=filename,
                           criteria=body["criteria"], expected_previous=old.version)
    result = Promotion(mv.ref, alias, report, outcomes, moved, filename)
    return result


def refusal(result: Promotion) -> PromotionRefused:
    """The error `mlc promote` exits with when criteria failed, naming each."""
    names = "; ".join(f"{o.text} ({_num(o.left)} {o.op} {_num(o.right)} is false)" for o in result.failed)
    return PromotionRefused(f"{result.ref} was not promoted to @{result.alias}: {names}",
                            f"the comparison is attached to {result.ref} as {result.report_file}")


def _num(value: float) -> str:
    return "NaN" if value != value else f"{value:.6g}"
