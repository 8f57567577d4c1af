"""`mlc score` on one machine: read inputs as a stream, score chunks on every core, resume.

The parent reads each input in fixed-size chunks (mlc.score.inputs) and scores them itself, with
one Scorer given every core (mlc.score.in_process), or hands each to an idle worker process
(mlc.score.pool); choose_workers picks. A chunk per worker (or being scored and written) and a
couple read ahead are all that is held, so memory does not grow with the input. Each worker
builds its Scorer once (the version's runtime plan, with cores / workers threads) and writes one
part per chunk; the parent makes finished parts durable and journals them, a group at a time
(mlc.score.manifest). A rerun of the same command skips journaled parts, so a run killed at any
point finishes with the same output an uninterrupted run writes. At the end the per-chunk rejects are joined into
_rejects.jsonl and the counts, which must add up (rows in = rows out + rows rejected), go to
_summary.json.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.errors import MlcError, UsageError
from mlc.files import atomic_write
from mlc.score.columns import ColumnPlan, plan_columns
from mlc.score.commit import Item
from mlc.score.features import check_type
from mlc.score.formats import OUTPUT_FORMATS
from mlc.score.in_process import InProcess
from mlc.score.inputs import InputFile, Reader, discover, open_reader
from mlc.score.manifest import MANIFEST, FileRecord, Journal
from mlc.score.model import ScoringModel
from mlc.score.outputs import TMP_PREFIX, json_lines, write_bytes
from mlc.score.pool import Pool
from mlc.score.progress import Progress, Silent
from mlc.score.worker import REJECTS_DIR, WorkerSetup

if TYPE_CHECKING:
    from mlc.registry import Registry

SUMMARY, REJECTS = "_summary.json", "_rejects.jsonl"
DEFAULT_CHUNK_ROWS = 65536


@dataclass(frozen=True)
class ScoreOptions:
    """What `mlc score` was asked for, besides the model and the inputs."""

    format: str = "parquet"  # of the output parts: parquet, csv or jsonl
    id_column: str | None = None  # passed through first
    keep: tuple[str, ...] = ()  # other columns passed through
    features: tuple[str, ...] | None = None  # the model's feature columns in order, where it records none
    workers: int | None = None  # worker processes; 0: in this process; None: choose_workers decides
    chunk_rows: int = DEFAULT_CHUNK_ROWS  # rows per chunk, and so per part file
    target: str | None = None  # hardware target for a version without a recorded plan


@dataclass
class ScoreSummary:
    """The counts of a finished run; rows_in == rows_out + rows_rejected always."""

    ref: str
    inputs: list[str]
    out: str
    format: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    parts: int  # part files written (a chunk whose every row was rejected writes none)
    resumed_parts: int  # parts found finished by an earlier run of the same command
    workers: int  # worker processes; 0: scored in the command's own process
    threads: int  # per worker (or of the one in-process Scorer)
    seconds: float  # of this run
    rows_per_s: float  # rows this run scored, per second
    # Peak resident memory of the parent ("parent") and of each worker ("workers"), and their sum
    # ("total", an upper bound of what the run held at once); empty for a run that had nothing left to do.
    peak_rss_bytes: dict[str, Any] = field(default_factory=dict)
    rejects: str | None = None  # the rejects file, when any row was rejected
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_files(ref: str, inputs: Sequence[str | Path], out: str | Path, options: ScoreOptions | None = None, *,
                registry: Registry | None = None, progress: Progress | None = None) -> ScoreSummary:
    """Score every row of `inputs` with the version `ref` serves; parts, rejects and summary go to `out`."""
    options = options or ScoreOptions()
    started = time.monotonic()
    check_options(options)
    model = ScoringModel.from_registry(ref, registry, options.target)
    files = discover(inputs)
    readers = [open_reader(f) for f in files]
    plans = tuple(_plan(model, reader, options) for reader in readers)
    _check_output_names(model, plans)
    folder = Path(out)
    _prepare_folder(folder)
    with Journal(folder, _header(model, files, options)) as journal:
        cores = _cores()
        workers = choose_workers(options.workers, model, files, cores)
        threads = max(1, cores // max(workers, 1))
        resumed = len(journal.parts)
        summary_path = folder / SUMMARY
        if summary_path.exists() and _complete(journal, readers):
            shutil.rmtree(folder / REJECTS_DIR, ignore_errors=True)
            return ScoreSummary(**json.loads(summary_path.read_text()))
        progress = progress or Silent()
        rss: dict[str, Any] = {}
        scored_now = 0
        if not _complete(journal, readers):
            setup = WorkerSetup(model=model, threads=threads, out=folder, format=options.format, columns=plans,
                                labels=tuple(f.label for f in files), parent=os.getpid())
            totals = [r.total_rows() for r in readers]
            progress.start(sum(t for t in totals if t is not None) if None not in totals else None,
                           sum(p.rows_in for p in journal.parts.values()))
            try:
                with InProcess(setup, journal, progress) if workers == 0 else Pool(setup, workers, journal,
                                                                                     progress) as pool:
                    pool.run(lambda: _items(readers, plans, options, journal, folder))
                    rss, scored_now = pool.rss, pool.scored_rows
            finally:
                progress.finish()
        rss["parent"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        rss["total"] = rss["parent"] + sum(rss.get("workers", []))
        seconds = time.monotonic() - started
        summary = _finish(model, files, folder, journal, options, workers, threads, resumed, seconds, scored_now, rss)
    atomic_write(summary_path, json.dumps(summary.to_dict(), indent=2).encode())
    shutil.rmtree(folder / REJECTS_DIR, ignore_errors=True)
    return summary


def check_options(options: ScoreOptions) -> None:
    if options.format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {options.format!r}", f"choose one of: {', '.join(OUTPUT_FORMATS)}")
    if options.chunk_rows < 1:
        raise UsageError(f"chunk rows must be at least 1, not {options.chunk_rows}")
    if options.workers is not None and options.workers < 0:
        raise UsageError(f"--workers must be 0 (score in this process) or more, not {options.workers}")


def choose_workers(asked: int | None, model: ScoringModel, files: Sequence[InputFile], cores: int) -> int:
    """Worker processes for a run; 0 scores in this process (mlc.score.in_process), the default
    where its engines use every core themselves: ONNX Runtime or the tree kernel, on inputs that
    Arrow's C++ readers parse. JSON lines are parsed in Python and the native engine is Python's
    predict: both hold the GIL, so those runs take a worker per core."""
    if asked is not None:
        return asked
    if cores == 1:
        return 0
    from mlc.runtime.scorer import RuntimePlan
    from mlc.targets import get_target

    native = RuntimePlan.from_record(model.runtime, get_target(model.target)).uses_native
    return cores if native or any(f.format == "jsonl" for f in files) else 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _plan(model: ScoringModel, reader: Reader, options: ScoreOptions) -> ColumnPlan:
    """How one input's columns feed the model; every mistake is raised here, before any work."""
    label = reader.file.label
    columns = reader.columns()
    if columns is None:  # .npy: positional values, nothing to pass through
        if options.id_column or options.keep:
            raise UsageError(f"{label} is an .npy array: it has no columns to pass through with --id-column/--keep")
        width, n = reader.width(), model.n_features
        if n is not None and width != n:
            raise UsageError(f"{label} has {width} values per row but the model takes {n} features")
        return ColumnPlan((), None, (), by_name=False)
    plan = plan_columns(columns, source=label, n_features=model.n_features,
                        feature_names=options.features or model.feature_names, id_column=options.id_column,
                        keep=options.keep)
    types = reader.types()
    for column in plan.features:
        check_type(column, types[column], label)
    return plan


def _check_output_names(model: ScoringModel, plans: Sequence[ColumnPlan]) -> None:
    outputs = {o.name for o in model.signature.outputs}
    for plan in plans:
        clash = [c for c in plan.passthrough if c in outputs or any(c.startswith(f"{o}_") for o in outputs)]
        if clash:
            raise UsageError(f"passed-through column {clash[0]!r} would collide with the model's output columns "
                             f"({', '.join(sorted(outputs))})", "rename the column in the input, or do not keep it")


def _prepare_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file", "name a folder: parts, rejects and a summary are written there")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).exists():
        raise UsageError(f"--out {folder} is not empty and holds no mlc score run",
                         "name a new or empty folder (a folder of an earlier run resumes it)")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob(f"{TMP_PREFIX}*"), *(folder / REJECTS_DIR).glob(f"{TMP_PREFIX}*")]:
        stale.unlink(missing_ok=True)  # files a killed run was writing


def _header(model: ScoringModel, files: Sequence[InputFile], options: ScoreOptions) -> dict[str, Any]:
    return {"model": model.ref, "digest": model.digest, "inputs": [f.fingerprint() for f in files],
            "format": options.format, "id_column": options.id_column, "keep": list(options.keep),
            "features": list(options.features) if options.features else None, "chunk_rows": options.chunk_rows}


def _complete(journal: Journal, readers: Sequence[Reader]) -> bool:
    """Every input read through and every one of its chunks journaled."""
    done = _done_chunks(journal)
    return len(journal.files) == len(readers) and all(
        (f.file, c) in done for f in journal.files.values() for c in range(f.chunks))


def _done_chunks(journal: Journal) -> set[tuple[int, int]]:
    """(input file, chunk) of every journaled part."""
    return {(p.file, p.chunk) for p in journal.parts.values()}


def _items(readers: Sequence[Reader], plans: Sequence[ColumnPlan], options: ScoreOptions, journal: Journal,
           folder: Path) -> Iterator[Item]:
    """Every chunk not done yet, in input order, and a FileRecord once an input is read through
    (run in the pool's reader thread; it reads the journal before its first chunk goes out, so
    before the committer journals anything)."""
    done = _done_chunks(journal)
    recorded = dict(journal.files)
    for index, (reader, plan) in enumerate(zip(readers, plans, strict=True)):
        record = recorded.get(index)
        if record is not None and all((index, c) in done for c in range(record.chunks)):
            continue
        chunks = rows = 0
        for chunk in reader.chunks(plan.read or (), options.chunk_rows):
            chunks += 1
            rows += chunk.rows
            if (index, chunk.index) not in done:
                yield index, chunk
        if record is None:
            unparsed = reader.unparsed.lines
            rejects = None
            if unparsed:
                rejects = f"{REJECTS_DIR}/file-{index:05d}-unparsed.jsonl"
                write_bytes(folder / rejects, json_lines([{"file": reader.file.label, "line": line,
                                                           "reason": reason, "text": text}
                                                          for line, reason, text in unparsed]))
            yield FileRecord(file=index, chunks=chunks, rows=rows, unparsed=len(unparsed), rejects=rejects)


def _finish(model: ScoringModel, files: Sequence[InputFile], folder: Path, journal: Journal, options: ScoreOptions,
            workers: int, threads: int, resumed: int, seconds: float, scored_now: int,
            rss: dict[str, Any]) -> ScoreSummary:
    """Join the rejects in input order, check the counts add up, and say what was done."""
    parts = sorted(journal.parts.values(), key=lambda p: (p.file, p.chunk))
    for record in journal.files.values():
        read = sum(p.rows_in for p in parts if p.file == record.file)
        if read != record.rows:
            raise MlcError(f"internal error: {files[record.file].label} gave {record.rows} rows but its parts "
                           f"account for {read}", "delete the output folder and rerun; report this")
    # Rejects in input order: each file's chunks in order, then the lines of it that did not parse.
    ordered = sorted([((p.file, 0, p.chunk), p.rejects) for p in parts if p.rejects]
                     + [((f.file, 1, 0), f.rejects) for f in journal.files.values() if f.rejects])
    chunks = [folder / name for _, name in ordered]
    rows_out = sum(p.rows_out for p in parts)
    rejected = sum(p.rejected for p in parts) + sum(f.unparsed for f in journal.files.values())
    rows_in = sum(p.rows_in for p in parts) + sum(f.unparsed for f in journal.files.values())
    if rows_in != rows_out + rejected:  # pragma: no cover - each part's counts add up by construction
        raise MlcError(f"internal error: {rows_in} rows in but {rows_out} out and {rejected} rejected")
    rejects_path = folder / REJECTS
    if chunks:
        _concatenate(chunks, rejects_path)
    else:
        rejects_path.unlink(missing_ok=True)
    return ScoreSummary(
        ref=model.ref, inputs=[f.label for f in files], out=str(folder), format=options.format, rows_in=rows_in,
        rows_out=rows_out, rows_rejected=rejected, parts=sum(1 for p in parts if p.rows_out), resumed_parts=resumed,
        workers=workers, threads=threads, seconds=round(seconds, 3),
        rows_per_s=round(scored_now / seconds, 1) if seconds > 0 else 0.0, peak_rss_bytes=rss,
        rejects=str(rejects_path) if chunks else None, note=model.note)


def _concatenate(paths: Sequence[Path], dest: Path) -> None:
    """The files' bytes one after another into dest, which is absent, old or complete (as atomic_write)."""
    tmp = dest.with_name(f"{TMP_PREFIX}{dest.name}")
    with tmp.open("wb") as handle:
        for path in paths:
            with path.open("rb") as part:
                shutil.copyfileobj(part, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, dest)
