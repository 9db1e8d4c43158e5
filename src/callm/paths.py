"""Where callm keeps its files (SPEC: Files). Stdlib only: computed on every start-up."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def config_path(override: str | None = None) -> Path:
    """--config PATH > CALLM_CONFIG > the platform's config dir."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("CALLM_CONFIG")
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("linux") or os.environ.get("XDG_CONFIG_HOME"):
        return _xdg("XDG_CONFIG_HOME", ".config") / "callm" / "config.toml"
    import platformdirs  # only off Linux, where the rules are not XDG's

    return Path(platformdirs.user_config_dir("callm")) / "config.toml"


def data_dir() -> Path:
    """CALLM_DATA_DIR > the platform's data dir. Holds callm.db (ledger, model cache)."""
    env = os.environ.get("CALLM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("linux") or os.environ.get("XDG_DATA_HOME"):
        return _xdg("XDG_DATA_HOME", ".local/share") / "callm"
    import platformdirs

    return Path(platformdirs.user_data_dir("callm"))


def db_path() -> Path:
    return data_dir() / "callm.db"
