"""The registry of package formats: one builder per format, refusing to overwrite an entry unless asked.

Like the converter and pass registries (convert/_registry.py), a new format is one module that
registers itself; `mlc package --format` lists exactly what is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlc.deploy.source import PackageSource
from mlc.errors import UsageError


@dataclass(frozen=True)
class PackageOptions:
    """The flags of `mlc package` beyond the reference and the destination."""

    engine: str | None = None  # "onnx": plain ONNX for Triton's ORT backend even where mlc's engines are faster
    runtime: str = "mlc"  # kserve: "mlc" (the container) or "triton" (the exported repository)
    image: str | None = None  # kserve: the container image to run; default NAME-mlc:VERSION
    storage_uri: str | None = None  # kserve --runtime triton: where the Triton repository is stored
    wheel: Path | None = None  # container: mlc's wheel to install; default: built from this mlc's source


@dataclass(frozen=True)
class PackageResult:
    format: str
    ref: str
    dest: Path
    files: tuple[Path, ...]  # relative to dest
    notes: tuple[str, ...] = field(default_factory=tuple)  # what the user should know (speed given up, ...)

    def to_dict(self) -> dict[str, object]:
        return {"format": self.format, "ref": self.ref, "dest": str(self.dest),
                "files": [str(f) for f in self.files], "notes": list(self.notes)}


Builder = Callable[[PackageSource, Path, PackageOptions], PackageResult]

_FORMATS: dict[str, Builder] = {}


def register_format(name: str, builder: Builder, *, replace: bool = False) -> None:
    """Add a package format; an existing name is refused unless replace=True."""
    if name in _FORMATS and not replace:
        raise UsageError(f"package format {name!r} is already registered",
                         "pass replace=True to replace it on purpose")
    _FORMATS[name] = builder


def get_format(name: str) -> Builder:
    try:
        return _FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown package format {name!r}", f"choose one of: {', '.join(formats())}") from None


def formats() -> tuple[str, ...]:
    return tuple(sorted(_FORMATS))
