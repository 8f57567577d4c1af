"""Hardware targets: the machines mlc optimizes for, profiles on and sizes.

A target is a TOML file in `profiles/` (shipped) or in a folder named by
$MLC_PROFILES / a path the user passes. They are frozen values so a target seen
by the search is the same one recorded in its report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.errors import NotFoundError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# The shipped profiles: in the package (mlc/profiles/, copied there from the checkout's
# profiles/ when a wheel is built, see setup.py), else at the top of the checkout this module
# runs from (an editable install, or the source tree on the path).
_PACKAGE_PROFILES = Path(__file__).resolve().parent / "profiles"
_CHECKOUT = Path(__file__).resolve().parents[2]
_SHIPPED_DIRS = (_PACKAGE_PROFILES, *((_CHECKOUT / "profiles",) if (_CHECKOUT / "pyproject.toml").is_file() else ()))

# `--target cpu` / `--target gpu` pick these.
_SHORTHANDS = {"cpu": "cpu-2", "gpu": "gpu-h100"}


@dataclass(frozen=True)
class HardwareTarget:
    name: str
    description: str
    device: str  # "cpu" or "gpu"
    execution_providers: tuple[str, ...]
    cores: int
    memory_gib: float
    price_per_hour: float
    batch_sizes: tuple[int, ...] = (1, 32, 1024)
    optional_execution_providers: tuple[str, ...] = ()
    gpu_memory_gib: float | None = None
    source: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.device == "gpu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "device": self.device,
            "execution_providers": list(self.execution_providers),
            "optional_execution_providers": list(self.optional_execution_providers),
            "cores": self.cores,
            "memory_gib": self.memory_gib,
            "gpu_memory_gib": self.gpu_memory_gib,
            "price_per_hour": self.price_per_hour,
            "batch_sizes": list(self.batch_sizes),
        }


_REQUIRED = ("name", "device", "execution_providers", "cores", "memory_gib", "price_per_hour")


def parse_target(path: Path) -> HardwareTarget:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read hardware target {path}: {exc}",
                         "fix the TOML file; see profiles/cpu-2.toml for the fields") from exc
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise UsageError(f"hardware target {path} lacks {', '.join(missing)}",
                         "see profiles/cpu-2.toml for the fields a target needs")
    if data["device"] not in ("cpu", "gpu"):
        raise UsageError(f"hardware target {path}: device must be 'cpu' or 'gpu', not {data['device']!r}")
    if int(data["cores"]) < 1:
        raise UsageError(f"hardware target {path}: cores must be at least 1")
    gpu_mem = data.get("gpu_memory_gib")
    return HardwareTarget(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        device=data["device"],
        execution_providers=tuple(data["execution_providers"]),
        optional_execution_providers=tuple(data.get("optional_execution_providers", ())),
        cores=int(data["cores"]),
        memory_gib=float(data["memory_gib"]),
        gpu_memory_gib=float(gpu_mem) if gpu_mem is not None else None,
        price_per_hour=float(data["price_per_hour"]),
        batch_sizes=tuple(int(b) for b in data.get("batch_sizes", (1, 32, 1024))),
        source=str(path),
    )


def _search_dirs(extra: Path | None) -> list[Path]:
    from mlc.config import load_settings

    dirs = [d for d in (extra, load_settings().profiles_dir) if d is not None]
    return dirs + [d for d in _SHIPPED_DIRS if d.is_dir()]


def list_targets(extra_dir: Path | None = None) -> list[HardwareTarget]:
    """Every target visible: user folders first, so a user's file shadows a shipped one."""
    seen: dict[str, HardwareTarget] = {}
    for folder in _search_dirs(extra_dir):
        for path in sorted(folder.glob("*.toml")):
            target = parse_target(path)
            seen.setdefault(target.name, target)
    return list(seen.values())


def get_target(name_or_path: str | None = None) -> HardwareTarget:
    """A target by name, shorthand (cpu, gpu) or TOML path; default: cpu-2."""
    key = name_or_path or "cpu"
    path = Path(key)
    if key.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise NotFoundError(f"hardware target file {key} does not exist")
        return parse_target(path)
    key = _SHORTHANDS.get(key, key)
    for target in list_targets():
        if target.name == key:
            return target
    names = ", ".join(t.name for t in list_targets())
    raise NotFoundError(f"no hardware target named {key!r}", f"known targets: {names}; or pass a .toml path")
