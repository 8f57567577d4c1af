"""`mlc run [FILE] [--dry-run]`: the pipeline file's steps, each skipped when its inputs have not changed.

Per model: register → optimize → profile → compare+promote. Each step's result is stored under
a key, the sha256 of its inputs' digests (the model file's bytes, the versions' artifact
digests, the rows and labels files' bytes), its configuration, the target and mlc's version.
A rerun computes each key from what is there now: a step whose key has a stored result, and
whose recorded versions still exist with the same artifacts, does no work. Changing one
model's data changes only that model's keys, so only its steps run again. The store is a JSON
file in the registry home (pipeline/cache.json): the results are registry versions, so they
belong with the registry they name, and a fresh registry starts with an empty cache.

A promotion is judged once per key too: a cached refusal exits 5 again without measuring,
so CI keeps failing until something changes. When the alias already points at the optimized
version, there is nothing to promote and nothing runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc import __version__
from mlc.errors import NotFoundError, UsageError
from mlc.files import atomic_write
from mlc.lifecycle.pipeline import ModelSpec, Pipeline
from mlc.registry._store import sha256_file

if TYPE_CHECKING:
    from mlc.registry import ModelVersion, Registry

Say = Callable[[str], None]
CACHED, RAN, WOULD_RUN, NOTHING = "cached", "ran", "would run", "nothing to do"


def _sha256_file(path: Path) -> str:
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}")
    return sha256_file(path)


def step_key(step: str, inputs: dict[str, Any]) -> str:
    """The cache key of a step: its name, inputs and config, and mlc's version."""
    text = json.dumps({"step": step, "mlc": __version__, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    """Step results by key, in the registry home; written whole after every step (a killed run keeps
    what finished)."""

    def __init__(self, registry: Registry) -> None:
        self.path = registry.home / "pipeline" / "cache.json"
        self.entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(key)
        return None if entry is None else dict(entry["result"])

    def put(self, key: str, step: str, model: str, result: dict[str, Any]) -> None:
        self.entries[key] = {"step": step, "model": model, "at": time.time(), "result": result}
        atomic_write(self.path, json.dumps(self.entries, indent=1, sort_keys=True).encode())


@dataclass
class StepLine:
    model: str
    step: str
    status: str  # CACHED, RAN, WOULD_RUN, NOTHING
    detail: str

    def __str__(self) -> str:
        return f"{self.model:16} {self.step:9} {self.status:13} {self.detail}"


@dataclass
class RunResult:
    lines: list[StepLine] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "NAME: the failing criteria"

    @property
    def ran(self) -> int:
        return sum(1 for line in self.lines if line.status == RAN)


class _ModelRun:
    """One model's steps, in order, each looked up in the cache before it runs."""

    def __init__(self, spec: ModelSpec, pipeline: Pipeline, registry: Registry, cache: Cache, dry_run: bool,
                 result: RunResult, say: Say) -> None:
        self.spec, self.pipeline, self.registry, self.cache = spec, pipeline, registry, cache
        self.dry_run, self.result, self.say = dry_run, result, say
        self.data_digest = _sha256_file(spec.data)
        labels = Path(spec.labels) if spec.labels else None
        self.labels_digest = _sha256_file(labels) if labels is not None and labels.is_file() else spec.labels

    def line(self, step: str, status: str, detail: str) -> None:
        line = StepLine(self.spec.name, step, status, detail)
        self.result.lines.append(line)
        self.say(str(line))

    def _version(self, ref: str, digest: str | None = None) -> ModelVersion | None:
        """A version a cached result names, if it is still there with the same artifact."""
        try:
            mv = self.registry.get(ref)
        except NotFoundError:
            return None
        return mv if digest is None or mv.digest == digest else None

    def cached(self, step: str, key: str) -> dict[str, Any] | None:
        found = self.cache.get(key)
        if found is None:
            return None
        if "ref" in found and self._version(found["ref"], found.get("digest")) is None:
            return None  # the version it made was deleted or replaced: make it again
        return found

    def register(self) -> ModelVersion | None:
        spec = self.spec
        if spec.ref is not None:
            mv = self.registry.get(spec.ref)
            self.line("register", NOTHING, f"{mv.ref} (registered already)")
            return mv
        if spec.file is None:  # load_pipeline requires one of file and ref
            raise UsageError(f"{spec.name} names neither a file nor a ref")
        key = step_key("register", {"file": _sha256_file(spec.file), "name": spec.name, "trust": spec.trust})
        found = self.cached("register", key)
        if found is not None:
            self.line("register", CACHED, found["ref"])
            return self.registry.get(found["ref"])
        if self.dry_run:
            self.line("register", WOULD_RUN, str(spec.file.name))
            return None
        mv = self.registry.register_file(spec.file, spec.name, trust=spec.trust, reuse=True)
        self.cache.put(key, "register", spec.name, {"ref": mv.ref, "digest": mv.digest})
        self.line("register", RAN, mv.ref)
        return mv

    def rows(self) -> Any:
        from mlc.lifecycle.rows import read_rows

        return read_rows(self.spec.data, self.spec.labels, None)

    def optimize(self, source: ModelVersion | None) -> ModelVersion | None:
        spec, opt = self.spec, self.spec.optimize
        if source is None:
            self.line("optimize", WOULD_RUN, "after register")
            return None
        key = step_key("optimize", {"source": source.digest, "data": self.data_digest, "labels": self.labels_digest,
                                    "target": self.pipeline.target, "config": opt.__dict__})
        found = self.cached("optimize", key)
        if found is not None:
            self.line("optimize", CACHED, found["ref"])
            return self.registry.get(found["ref"])
        if self.dry_run:
            self.line("optimize", WOULD_RUN, f"{source.ref} for target {self.pipeline.target}")
            return None
        from mlc.optimize import optimize

        outcome = optimize(source.ref, target=self.pipeline.target, data=self.rows().x,
                           batch_sizes=opt.batch_sizes or None, max_label_disagreement=opt.max_label_disagreement,
                           max_abs_error=opt.max_abs_error, registry=self.registry, trust=spec.trust)
        if outcome.winner is None:
            raise UsageError(f"{spec.name}: no optimized candidate of {source.ref} reproduced it",
                             f"see the report: mlc models show {source.ref}")
        mv = self.registry.get(outcome.winner)
        self.cache.put(key, "optimize", spec.name, {"ref": mv.ref, "digest": mv.digest})
        self.line("optimize", RAN, mv.ref)
        return mv

    def profile(self, optimized: ModelVersion | None) -> None:
        prof = self.spec.profile
        if prof is None:
            return
        if optimized is None:
            self.line("profile", WOULD_RUN, "after optimize")
            return
        key = step_key("profile", {"version": optimized.digest, "target": self.pipeline.target,
                                   "config": prof.__dict__})
        found = self.cached("profile", key)
        if found is not None and optimized.metrics.profile is not None:
            self.line("profile", CACHED, found["summary"])
            return
        if self.dry_run:
            self.line("profile", WOULD_RUN, f"{optimized.ref} on target {self.pipeline.target}")
            return
        from mlc.profile.runner import ProfileOptions, profile

        out_dir = self.registry.home / "pipeline" / "profiles"
        out_dir.mkdir(parents=True, exist_ok=True)
        outcome = profile(optimized.ref, self.pipeline.target, ProfileOptions(
            slo_p99_ms=prof.slo_p99_ms, rate_rps=prof.rate, duration_s=prof.duration, quick=prof.quick,
            out_dir=out_dir))
        summary = f"{optimized.ref}: report {', '.join(p.name for p in outcome.files.values())}"
        self.cache.put(key, "profile", self.spec.name, {"summary": summary})
        self.line("profile", RAN, summary)

    def promote(self, optimized: ModelVersion | None) -> None:
        spec = self.spec
        if spec.alias is None:
            return
        if optimized is None:
            self.line("promote", WOULD_RUN, f"@{spec.alias}, after optimize")
            return
        try:
            holder = self.registry.get(f"{spec.name}@{spec.alias}")
        except NotFoundError:
            holder = None
        target = self.registry.served(holder).version if holder is not None else None
        if holder is not None and (holder.version == optimized.version or
                                   (target is not None and target.version == optimized.version)):
            self.line("promote", NOTHING, f"{spec.name}@{spec.alias} is {holder.ref} already")
            return
        key = step_key("promote", {
            "new": optimized.digest, "holder": None if holder is None else [holder.ref, holder.digest],
            "data": self.data_digest, "labels": self.labels_digest, "alias": spec.alias, "require": spec.require,
            "target": self.pipeline.target, "config": spec.compare.__dict__})
        found = self.cache.get(key)
        if found is not None:
            self.line("promote", CACHED, found["detail"])
            if found["failed"]:
                self.result.refused.append(f"{spec.name}: {'; '.join(found['failed'])} (cached)")
            return
        if self.dry_run:
            against = f"against {holder.ref}" if holder else "(no holder yet: moved without comparing)"
            self.line("promote", WOULD_RUN, f"{optimized.ref} to @{spec.alias} {against}")
            return
        from mlc.lifecycle.criteria import PromotionRefused
        from mlc.lifecycle.promote import promote, refusal
        from mlc.targets import get_target

        outcome = promote(self.registry, optimized.ref, spec.alias, rows=self.rows() if holder else None,
                          target=get_target(self.pipeline.target), require=spec.require if holder else (),
                          message=spec.message or f"mlc run {self.pipeline.path.name}",
                          budget_s=spec.compare.budget, resamples=spec.compare.resamples)
        failed = [o.text for o in outcome.failed]
        if failed:
            error: PromotionRefused = refusal(outcome)
            detail = f"REFUSED: {error.message}"
            self.result.refused.append(f"{spec.name}: {'; '.join(failed)}")
        else:
            was = f" (was {holder.ref})" if holder else ""
            detail = f"{spec.name}@{spec.alias} -> {optimized.ref}{was}"
        self.cache.put(key, "promote", spec.name, {"detail": detail, "failed": failed})
        self.line("promote", RAN, detail)

    def run(self) -> None:
        source = self.register()
        optimized = self.optimize(source)
        self.profile(optimized)
        self.promote(optimized)


def run_pipeline(pipeline: Pipeline, registry: Registry, *, dry_run: bool = False,
                 say: Say = lambda _line: None) -> RunResult:
    """Every model's steps in the file's order; see the module doc for what is skipped."""
    cache = Cache(registry)
    result = RunResult()
    for spec in pipeline.models:
        _ModelRun(spec, pipeline, registry, cache, dry_run, result, say).run()
    return result
