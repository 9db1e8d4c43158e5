"""Locate, load and atomically save the config file."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callm.errors import ConfigError

if TYPE_CHECKING:
    from callm.config.schema import Config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    """The raw TOML table; a syntax error names the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line 3, column 7)"
        raise ConfigError(
            f"{path}: invalid TOML: {exc}", hint="fix the file by hand; callm will not overwrite it"
        ) from None


def load(path: Path) -> Config:
    """Load and validate; a missing file is an empty config."""
    from pydantic import ValidationError

    from callm.config.schema import Config

    raw = read_toml(path)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {field!r}"
        else:
            msg = f"{field}: {err['msg']}"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(
            f"{path}: {msg}{more}", hint="fix the file by hand; callm will not overwrite it"
        ) from None


def save(path: Path, config: Config) -> None:
    """Write atomically: temp file in the same directory, fsync, rename. On any failure
    (full disk, permissions) the old file is untouched and the temp file is removed."""
    import tomli_w

    data = tomli_w.dumps(config.to_toml_dict())
    write_atomic(path, data)


def write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError(
            f"could not save {path}: {exc.strerror or exc}; the previous config is unchanged"
        ) from None
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
