"""Promotion criteria: a small expression language over a model-comparison report's figures.

A criterion compares two arithmetic expressions:

    auc >= old.auc - 0.002
    p99_us@1 <= 1.10 * old.p99_us@1
    diff.log_loss.high < 0          (the whole interval of new − old below zero)
    agreement >= 0.99

Grammar (whitespace is free):

    criterion  := expr ("<" | "<=" | ">" | ">=" | "==" | "!=") expr
    expr       := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := NUMBER | NAME | "-" factor | "(" expr ")" | ("abs" | "min" | "max") "(" expr ("," expr)* ")"
    NAME       := ["new." | "old."] metric ["@" BATCH]

A bare metric is the new version's (`auc` is `new.auc`); `old.` reads the version that holds
the alias now. Metrics: quality (`accuracy`, `log_loss`, `auc`, `f1`; `rmse`, `mae`, `r2`) with
`.low` and `.high` for the bounds of their 95% interval; `diff.METRIC` (new − old, paired,
with `.low`/`.high`); latency `median_us@B` and `p99_us@B` at each batch size B of the target;
and the comparison's `agreement` (label agreement), `max_diff`, `mean_diff`, `rows`.

Parsed by a tokenizer and a recursive-descent parser into a tree of a few node types, then
evaluated over the figures: no `eval`, nothing but arithmetic reaches a value. A name the
report does not hold is refused, listing the names it does. A figure that could not be
measured (NaN: an AUC on one class) fails its criterion rather than passing it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlc.errors import EXIT_REFUSED, MlcError, UsageError


class PromotionRefused(MlcError):
    """A promotion criterion did not hold: the alias stays where it was."""

    exit_code = EXIT_REFUSED


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:@\d+)?)
    | (?P<op><=|>=|==|!=|<|>|[-+*/(),])
    )""", re.VERBOSE)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_FUNCS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max}
SIDES = ("new", "old")


# ---- the tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Name:
    side: str  # "new" or "old"
    metric: str  # e.g. "auc", "p99_us@1", "diff.log_loss.high"


@dataclass(frozen=True)
class Negate:
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]


Node = Number | Name | Negate | Binary | Call


@dataclass(frozen=True)
class Criterion:
    text: str
    op: str
    left: Node
    right: Node


# ---- parsing -------------------------------------------------------------------------------


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _syntax(text, f"unexpected {text[pos:].strip()[:12]!r}")
        kind = match.lastgroup or "op"
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _syntax(text: str, what: str) -> UsageError:
    return UsageError(f"criterion {text!r}: {what}",
                      "write e.g. \"auc >= old.auc - 0.002\" or \"p99_us@1 <= 1.10 * old.p99_us@1\" "
                      "(see mlc promote --help)")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _syntax(self.text, f"it ends where {value or 'a value'!r} was expected")
        if value is not None and token[1] != value:
            raise _syntax(self.text, f"expected {value!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def criterion(self) -> Criterion:
        left = self.expr()
        token = self.peek()
        if token is None or token[1] not in _COMPARE:
            raise _syntax(self.text, "a criterion compares two sides with <, <=, >, >=, == or !=")
        self.pos += 1
        right = self.expr()
        if self.peek() is not None:
            raise _syntax(self.text, f"unexpected {self.peek()[1]!r} after the criterion")  # type: ignore[index]
        return Criterion(self.text.strip(), token[1], left, right)

    def expr(self) -> Node:
        node = self.term()
        while (token := self.peek()) is not None and token[1] in "+-" and token[0] == "op":
            self.pos += 1
            node = Binary(token[1], node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while (token := self.peek()) is not None and token[1] in "*/" and token[0] == "op":
            self.pos += 1
            node = Binary(token[1], node, self.factor())
        return node

    def factor(self) -> Node:
        kind, value = self.take()
        if kind == "number":
            return Number(float(value))
        if value == "-":
            return Negate(self.factor())
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind == "name":
            if value in _FUNCS and (nxt := self.peek()) is not None and nxt[1] == "(":
                self.take("(")
                args = [self.expr()]
                while (nxt := self.peek()) is not None and nxt[1] == ",":
                    self.pos += 1
                    args.append(self.expr())
                self.take(")")
                return Call(value, tuple(args))
            side, _, rest = value.partition(".")
            if side in SIDES and rest:
                return Name(side, rest)
            return Name("new", value)
        raise _syntax(self.text, f"unexpected {value!r}")


def parse(text: str) -> Criterion:
    """One criterion, parsed; a malformed one raises UsageError saying where."""
    return _Parser(text).criterion()


# ---- evaluating ----------------------------------------------------------------------------


def _eval(node: Node, figures: Mapping[str, Mapping[str, float]], text: str) -> float:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Name):
        values = figures[node.side]
        if node.metric not in values:
            known = ", ".join(sorted(k for k in values if "." not in k or k.startswith("diff.")))
            raise UsageError(f"criterion {text!r}: the comparison has no figure {node.metric!r}",
                             f"its figures: {known} (and METRIC.low / METRIC.high for the interval bounds)")
        return float(values[node.metric])
    if isinstance(node, Negate):
        return -_eval(node.operand, figures, text)
    if isinstance(node, Binary):
        left, right = _eval(node.left, figures, text), _eval(node.right, figures, text)
        if node.op == "/" and right == 0:
            return math.nan
        return _ARITH[node.op](left, right)
    return float(_FUNCS[node.func](*(_eval(a, figures, text) for a in node.args)))


@dataclass(frozen=True)
class Outcome:
    text: str
    op: str
    left: float
    right: float
    held: bool

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {"text": self.text, "op": self.op, "left": num(self.left), "right": num(self.right), "held": self.held}


def evaluate(criterion: Criterion, new: Mapping[str, float], old: Mapping[str, float]) -> Outcome:
    """The criterion on the two sides' figures (compare.metric_values); NaN on either side fails it."""
    figures = {"new": new, "old": old}
    left = _eval(criterion.left, figures, criterion.text)
    right = _eval(criterion.right, figures, criterion.text)
    held = not (math.isnan(left) or math.isnan(right)) and _COMPARE[criterion.op](left, right)
    return Outcome(criterion.text, criterion.op, left, right, held)


__all__ = ["EXIT_REFUSED", "Criterion", "Outcome", "PromotionRefused", "evaluate", "parse"]
