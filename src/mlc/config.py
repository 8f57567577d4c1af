"""Settings and their defaults, in one place.

Values come from environment variables (MLC_*) with flags overriding them in the
CLI; nothing else in mlc reads the environment for these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME_DIRNAME = ".mlc"
DEFAULT_MAX_REQUEST_ROWS = 65_536


@dataclass(frozen=True)
class Settings:
    home: Path
    registry_url: str
    profiles_dir: Path | None
    # Server bounds: a request bigger than this is refused before it is parsed.
    max_request_bytes: int = 64 * 1024 * 1024
    max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS


def mlc_home() -> Path:
    """$MLC_HOME, else .mlc/ in the working directory (like git or DVC)."""
    env = os.environ.get("MLC_HOME")
    return Path(env).expanduser().resolve() if env else (Path.cwd() / DEFAULT_HOME_DIRNAME).resolve()


def load_settings() -> Settings:
    home = mlc_home()
    url = os.environ.get("MLC_REGISTRY_URL") or f"sqlite:///{home / 'registry.db'}"
    profiles = os.environ.get("MLC_PROFILES")
    return Settings(
        home=home,
        registry_url=url,
        profiles_dir=Path(profiles).expanduser() if profiles else None,
        max_request_bytes=int(os.environ.get("MLC_MAX_REQUEST_BYTES", 64 * 1024 * 1024)),
        max_request_rows=int(os.environ.get("MLC_MAX_REQUEST_ROWS", DEFAULT_MAX_REQUEST_ROWS)),
    )
