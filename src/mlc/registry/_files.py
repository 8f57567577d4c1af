"""Registering a model file: the one way `mlc register` and `mlc optimize` put a user's model in.

The file is loaded through the safe loaders first (a pickle's globals checked against the
allowlist), so nothing unloadable or unsafe enters the registry, and its signature is read
from the loaded model. `reuse` is optimize's: optimizing the same file again finds the
version registered the first time instead of adding an identical one; `mlc register` always
adds a version, as a user who registers twice asked for.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from mlc.errors import NotFoundError, UsageError
from mlc.registry.records import BYTES, FILE, Source

if TYPE_CHECKING:
    from mlc.loading.model import LoadedModel
    from mlc.registry._registry import ModelVersion, Registry


def register_file(registry: Registry, model: str | Path | LoadedModel, name: str | None = None, *,
                  trust: bool = False, tags: dict[str, str] | None = None, description: str = "",
                  aliases: tuple[str, ...] = (), reuse: bool = False) -> ModelVersion:
    """Register a model file (a path, loaded safely here, or a model already loaded from one), or an
    ONNX model loaded in memory; named after the file unless `name` is given."""
    from mlc.loading.model import LoadedModel

    if isinstance(model, LoadedModel):
        loaded = model
    else:
        from mlc.loading import load_model

        if not Path(model).exists():
            raise NotFoundError(f"no such file: {model}")
        loaded = load_model(Path(model), trust=trust)
    if loaded.path is not None:
        data = Path(loaded.path).read_bytes()
        source = Source.file(str(Path(loaded.path).resolve()), trust)
    elif loaded.is_onnx:
        data = loaded.model.SerializeToString()
        source = Source(BYTES)
    else:
        raise UsageError("a model loaded in memory without its file cannot be registered",
                         "pass the model file's path instead")
    model_name = name or (Path(loaded.path).stem.replace(" ", "-") if loaded.path else None)
    if not model_name:
        raise UsageError("the model needs a name", "pass name=... (--name)")
    if reuse:
        digest = hashlib.sha256(data).hexdigest()
        for existing in registry.list(name=model_name):
            if existing.digest == digest and existing.source.kind in (FILE, BYTES):
                return existing
    return registry.register(model_name, data, format=loaded.format, framework=loaded.framework,
                             signature=loaded.signature, tags=tags, description=description, aliases=list(aliases),
                             source=source)
