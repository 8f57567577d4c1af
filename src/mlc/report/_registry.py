"""The registry of report kinds, keyed by the envelope's `kind`.

A kind is one module in mlc/report/kinds/ that turns a report's JSON into two documents: the
page (Markdown and HTML) and the terminal form (what the command that wrote the report prints,
and what `mlc report show` prints again). Every module there is imported on the first lookup,
so adding a kind is adding one module that calls `register_kind`. Like the converter registry,
this one refuses to replace a kind unless asked. A kind this version does not know (a report
from a newer mlc) is drawn generically rather than refused.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlc.errors import ConflictError
from mlc.report.blocks import Document

Report = dict[str, Any]  # the mlc.report/1 envelope, schema already checked


@dataclass(frozen=True)
class ReportKind:
    name: str  # the envelope's "kind"
    page: Callable[[Report], Document]  # Markdown and HTML: everything, verdict and plots first
    terminal: Callable[[Report], Document]  # at most 100 columns: compact tables, no plots


_KINDS: dict[str, ReportKind] = {}
_loaded = False


def register_kind(kind: ReportKind, *, overwrite: bool = False) -> ReportKind:
    """Make `kind` the renderer of its reports; refuses to replace another module's unless asked."""
    existing = _KINDS.get(kind.name)
    if existing is not None and existing.page.__module__ != kind.page.__module__ and not overwrite:
        raise ConflictError(f"report kind {kind.name!r} is already registered by {existing.page.__module__}",
                            "pass overwrite=True to replace it on purpose")
    _KINDS[kind.name] = kind
    return kind


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    import mlc.report.kinds as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    _loaded = True


def registered() -> dict[str, ReportKind]:
    """Every known kind, built-in ones loaded."""
    _load_builtin()
    return dict(_KINDS)


def get_kind(name: str) -> ReportKind:
    """The kind's renderer; the generic one for a kind this version does not know."""
    _load_builtin()
    found = _KINDS.get(name)
    if found is not None:
        return found
    from mlc.report.kinds._generic import GENERIC

    return GENERIC
