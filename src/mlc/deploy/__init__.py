"""`mlc package`: deployable artifacts for engines beyond one `mlc serve` process.

One function for every format: `package(ref, "triton" | "kserve" | "container", dest)`. Each
format is one module registered by name (_formats.py); each reads the same facts about the
version (source.py: the artifact as ONNX Runtime loads it, the layout `mlc serve` would use,
the profile's sizing and what it was measured on) and each package carries a README saying so.
"""

from __future__ import annotations

from pathlib import Path

from mlc.deploy import container, kserve, triton  # noqa: F401  (each registers its format)
from mlc.deploy._formats import PackageOptions, PackageResult, formats, get_format, register_format
from mlc.deploy.source import PackageSource, read_source
from mlc.errors import UsageError
from mlc.registry import Registry
from mlc.targets import get_target

__all__ = ["PackageOptions", "PackageResult", "PackageSource", "formats", "package", "register_format"]


def package(ref: str, format: str, dest: Path | str, *, target: str | None = None,
            options: PackageOptions | None = None, registry: Registry | None = None) -> PackageResult:
    """Write the package of `ref` in `format` into dest, a folder that must not exist or be empty
    (a package is written whole, never merged into an older one)."""
    builder = get_format(format)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists and is not an empty folder",
                         "package into a new folder (mlc does not merge a package into another)")
    registry = registry or Registry.open()
    source = read_source(registry, ref, get_target(target))
    return builder(source, dest, options or PackageOptions())
