"""The pipeline file, `mlc.toml`: what `mlc run` registers, optimizes, profiles, compares and promotes.

TOML because Python reads it without a dependency (tomllib) and it is what pyproject.toml
already taught every Python user. The schema, documented here and in the README (unknown keys
are refused, naming the key, so a typo cannot silently drop a criterion):

    target = "cpu-2"                 # hardware target of every step (default: "cpu")

    [[models]]                       # one table per model; steps of one model never wait on another's
    name = "churn"                   # registry name
    file = "churn.joblib"            # the trained model file, registered first ...
    # ref = "churn:3"                # ... or a version already registered (instead of file)
    trust = false                    # load a pickle importing globals outside the allowlist
    data = "holdout.csv"             # rows: optimize's parity and timing, and the comparison
    labels = "label"                 # a column of `data`, or a file of labels (optional)
    alias = "prod"                   # the alias promoted (optional: without it, no compare/promote)
    require = ["auc >= old.auc - 0.002"]   # promotion criteria (mlc.lifecycle.criteria)
    message = "retrained by CI"      # recorded in the alias history

    [models.optimize]                # optional; these are the defaults
    max_label_disagreement = 0.005
    max_abs_error = 0.05
    batch_sizes = []                 # [] = the target's

    [models.profile]                 # optional: without this table, no profiling
    slo_p99_ms = 20.0
    rate = 1000.0                    # requests/s to size replicas for (optional)
    duration = 2.0                   # seconds per load point
    quick = true

    [models.compare]                 # optional; these are the defaults
    budget = 1.0                     # seconds of interleaved latency measurement
    resamples = 1000                 # bootstrap resamples of the quality intervals

Relative paths are read from the pipeline file's folder, so a pipeline runs from anywhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there only)
    import tomli as tomllib

from mlc.errors import NotFoundError, UsageError
from mlc.registry._refs import check_name

DEFAULT_FILE = "mlc.toml"


@dataclass(frozen=True)
class OptimizeStep:
    max_label_disagreement: float = 0.005
    max_abs_error: float = 0.05
    batch_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class ProfileStep:
    slo_p99_ms: float = 20.0
    rate: float | None = None
    duration: float = 2.0
    quick: bool = True


@dataclass(frozen=True)
class CompareStep:
    budget: float = 1.0
    resamples: int = 1000


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: Path | None
    ref: str | None
    data: Path
    labels: str | None  # a column of data, or a file (already resolved against the pipeline's folder)
    trust: bool = False
    alias: str | None = None
    require: tuple[str, ...] = ()
    message: str = ""
    optimize: OptimizeStep = field(default_factory=OptimizeStep)
    profile: ProfileStep | None = None
    compare: CompareStep = field(default_factory=CompareStep)


@dataclass(frozen=True)
class Pipeline:
    path: Path
    target: str
    models: tuple[ModelSpec, ...]


def _table(data: Any, where: str, known: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UsageError(f"{where} must be a table")
    for key, value in data.items():
        if key not in known:
            raise UsageError(f"{where} has an unknown key {key!r}", f"known keys: {', '.join(known)}")
        expected = known[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected in (int, float, (int, float))):
            raise UsageError(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return data


_NUMBER = (int, float)


def _step(cls: type, data: Any, where: str, known: dict[str, type | tuple[type, ...]]) -> Any:
    table = _table(data, where, known)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    return cls(**values)


def _model(data: Any, where: str, folder: Path) -> ModelSpec:
    table = _table(data, where, {
        "name": str, "file": str, "ref": str, "trust": bool, "data": str, "labels": str, "alias": str,
        "require": list, "message": str, "optimize": dict, "profile": dict, "compare": dict})
    name = table.get("name")
    if not name:
        raise UsageError(f"{where} has no name", "every [[models]] table needs name = \"...\"")
    check_name(name)
    if ("file" in table) == ("ref" in table):
        raise UsageError(f"{where} ({name}) needs exactly one of file and ref")
    if "data" not in table:
        raise UsageError(f"{where} ({name}) has no data",
                         "name the rows to optimize and compare on: data = \"rows.csv\"")
    require = table.get("require", [])
    if not all(isinstance(r, str) for r in require):
        raise UsageError(f"{where}.require must be a list of strings")
    if require and "alias" not in table:
        raise UsageError(f"{where} ({name}) has criteria but no alias to promote")
    labels = table.get("labels")
    if labels is not None and (folder / labels).is_file():
        labels = str(folder / labels)
    return ModelSpec(
        name=name, file=folder / table["file"] if "file" in table else None, ref=table.get("ref"),
        data=folder / table["data"], labels=labels, trust=table.get("trust", False), alias=table.get("alias"),
        require=tuple(require), message=table.get("message", ""),
        optimize=_step(OptimizeStep, table.get("optimize", {}), f"{where}.optimize",
                       {"max_label_disagreement": _NUMBER, "max_abs_error": _NUMBER, "batch_sizes": list}),
        profile=None if "profile" not in table else _step(
            ProfileStep, table["profile"], f"{where}.profile",
            {"slo_p99_ms": _NUMBER, "rate": _NUMBER, "duration": _NUMBER, "quick": bool}),
        compare=_step(CompareStep, table.get("compare", {}), f"{where}.compare",
                      {"budget": _NUMBER, "resamples": int}),
    )


def load_pipeline(path: Path | None = None) -> Pipeline:
    """Read and check a pipeline file (default: ./mlc.toml)."""
    path = Path(path or DEFAULT_FILE)
    if not path.is_file():
        raise NotFoundError(f"no pipeline file {path}", "write one (see examples/mlc.toml) or name it: mlc run FILE")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    table = _table(data, path.name, {"target": str, "models": list})
    models = tuple(_model(m, f"{path.name}: models[{i}]", path.parent) for i, m in enumerate(table.get("models", [])))
    if not models:
        raise UsageError(f"{path} declares no model", "add a [[models]] table")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"{path} declares a model name twice: {', '.join(twice)}")
    return Pipeline(path=path, target=table.get("target", "cpu"), models=models)
