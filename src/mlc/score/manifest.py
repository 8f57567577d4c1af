"""The run's journal: what was asked, and which parts are finished, so a killed run resumes.

`_manifest.jsonl` in the output folder: a header line (the run's fingerprint: the version
scored, each input's path, size and modification time, and every option that changes what is
written), then one line per finished part and one per fully read input file. A part's line is
appended only after the part file is durable (written whole, renamed, fsynced with its folder),
so every line names a complete part. Lines are written as they come and fsynced in groups
(`sync`, once per group of parts finished together): a kill -9 loses no written line, and a
crash of the machine loses at most the lines of the last group, whose parts are then scored
again. A line torn by either is cut off when the journal is reopened. The number of workers is
not in the fingerprint: it changes how fast, not what.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlc.errors import UsageError

MANIFEST = "_manifest.jsonl"
_KIND = "mlc-score"
_VERSION = 1


@dataclass(frozen=True)
class PartRecord:
    part: str
    file: int  # index of the input file
    chunk: int
    rows_in: int
    rows_out: int
    rejected: int
    rejects: str | None  # the chunk's rejects file under _rejects/, if it had any


@dataclass(frozen=True)
class FileRecord:
    file: int
    chunks: int  # how many chunks the file gave
    rows: int  # rows read into chunks
    unparsed: int  # lines that could not be split into a row (CSV)
    rejects: str | None  # the file's unparsed lines under _rejects/, if any


class Journal:
    """Append-only record of finished work; opened once per run by the parent process."""

    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        self.path = folder / MANIFEST
        self.parts: dict[str, PartRecord] = {}
        self.files: dict[int, FileRecord] = {}
        exists = self.path.exists()
        if exists:
            self._resume(header)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        if not exists:
            self._append({"kind": _KIND, "version": _VERSION, "run": header})
            self.sync()

    @property
    def resumed(self) -> bool:
        return bool(self.parts or self.files)

    def _resume(self, header: dict[str, Any]) -> None:
        raw = self.path.read_bytes()
        lines, complete = _whole_lines(raw)
        if not lines or lines[0].get("kind") != _KIND:
            raise UsageError(f"{self.path} is not an mlc score manifest",
                             "write the output to a new folder with --out")
        recorded = lines[0].get("run")
        if recorded != header:
            changed = sorted(k for k in set(recorded or {}) | set(header) if (recorded or {}).get(k) != header.get(k))
            raise UsageError(
                f"{self.path.parent} holds the output of another run (it differs in: {', '.join(changed)})",
                "rerun with the same model, inputs and options to resume it, or write to a new folder with --out")
        for line in lines[1:]:
            if "part" in line:
                part = PartRecord(**line)
                self.parts[part.part] = part
            else:
                record = FileRecord(**line)
                self.files[record.file] = record
        if len(complete) != len(raw):
            with self.path.open("r+b") as handle:
                handle.truncate(len(complete))

    def record_part(self, record: PartRecord) -> None:
        """Journal a part whose file is durable already (written now, made durable by `sync`)."""
        self.parts[record.part] = record
        self._append(asdict(record))

    def record_file(self, record: FileRecord) -> None:
        self.files[record.file] = record
        self._append(asdict(record))

    def sync(self) -> None:
        """Make every line written so far durable."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _append(self, line: dict[str, Any]) -> None:
        # One unbuffered write per line: in the file as soon as this returns, whatever kills the process next.
        os.write(self._fd, json.dumps(line, separators=(",", ":")).encode() + b"\n")


def _whole_lines(raw: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """The journal's lines up to the first one torn by a kill or a crash, and the bytes they span."""
    lines: list[dict[str, Any]] = []
    end = 0
    while (newline := raw.find(b"\n", end)) >= 0:
        text = raw[end:newline]
        if text.strip():
            try:
                line = json.loads(text)
            except ValueError:
                break
            if not isinstance(line, dict):
                break
            lines.append(line)
        end = newline + 1
    return lines, raw[:end]
