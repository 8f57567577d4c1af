"""Model references as users type them: NAME, NAME:VERSION, NAME@ALIAS."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlc.errors import UsageError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")  # whole names only: fullmatch
_REF_RE = re.compile(r"(?P<name>[^:@]+)(?::(?P<version>\d+)|@(?P<alias>[A-Za-z0-9._-]+))?")


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None
    alias: str | None = None


def check_name(name: str, what: str = "model name") -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid {what} {name!r}",
            "use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 200)",
        )
    return name


def parse_ref(text: str) -> Ref:
    match = _REF_RE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"invalid model reference {text!r}", "write NAME, NAME:VERSION or NAME@ALIAS")
    name = check_name(match["name"])
    version = int(match["version"]) if match["version"] else None
    return Ref(name=name, version=version, alias=match["alias"])
