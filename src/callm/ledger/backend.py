"""Which ledger the data DB is: the SQLite file in the data dir (the default) or a shared
PostgreSQL database (`[ledger] url` in the config, or CALLM_LEDGER_URL).

Stdlib only at import: every store asks this module where to go, `providers list` included.
The password never sits in the URL: it comes from the keychain (`callm ledger login`) or from
libpq's own PGPASSWORD / ~/.pgpass.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from callm.errors import ConfigError

ENV = "CALLM_LEDGER_URL"
SCHEMES = ("postgresql://", "postgres://")

_configured: str | None = None  # from the loaded config, set by the CLI
_config_override: str | None = None  # --config, for the lazy read below
_config_read = False


def configure(url: str | None, *, config_override: str | None = None) -> None:
    """The CLI calls this with `[ledger] url` once the config is loaded."""
    global _configured, _config_read, _config_override
    _configured, _config_read = url, True
    if config_override is not None:
        _config_override = config_override


def set_config_override(path: str | None) -> None:
    global _config_override, _config_read
    _config_override, _config_read = path, False


def check_url(url: str) -> str:
    """A usable ledger URL, or ConfigError (one line) saying why not."""
    if not url.startswith(SCHEMES):
        raise ConfigError(f"ledger url {_redact(url)!r}: use postgresql://user@host:port/dbname")
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(f"ledger url {_redact(url)!r}: {exc}") from None
    if parts.password is not None:
        raise ConfigError(
            "ledger url carries a password: remove it and use `callm ledger login`,"
            " PGPASSWORD or ~/.pgpass"
        )
    return url


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        p = urlsplit(url)
        if p.password is not None:
            host = p.netloc.rsplit("@", 1)[-1]
            return p._replace(netloc=f"{p.username}:***@{host}").geturl()
    except ValueError:
        pass
    return url


def url() -> str | None:
    """The PostgreSQL ledger URL, or None for the SQLite file. CALLM_LEDGER_URL wins."""
    global _configured, _config_read
    env = os.environ.get(ENV)
    if env is not None:
        return check_url(env) if env.strip() else None
    if not _config_read:
        _configured, _config_read = _from_config_file(), True
    return _configured


def _from_config_file() -> str | None:
    from callm.config.store import load
    from callm.errors import CallmError
    from callm.paths import config_path

    try:  # the validated copy when the file is unchanged (callm.validated_cache)
        return load(config_path(_config_override)).ledger.url
    except CallmError:
        return None  # the config loader reports a broken file; here: no shared ledger


def shared(path: Path | None = None) -> str | None:
    """The URL when the data DB (path None) is the shared one; an explicit path is SQLite."""
    return url() if path is None else None


def exists(path: Path | None = None) -> bool:
    """Is there a ledger to read? (Reads never create the SQLite file.)"""
    from callm.paths import db_path

    return shared(path) is not None or (path or db_path()).is_file()


def where() -> str:
    """The ledger, as shown to the user: the PostgreSQL URL or the SQLite file's path."""
    from callm.paths import db_path

    shared_url = url()
    return describe(shared_url) if shared_url else str(db_path())


def describe(target: str) -> str:
    """A URL fit for output (never a password, even a stray one)."""
    return _redact(target)


def errors() -> tuple[type[BaseException], ...]:
    """The database errors a store catches (psycopg's arrive as sqlite3.Error subclasses)."""
    import sqlite3

    return (sqlite3.Error,)


def dialect(conn: Any) -> str:
    return getattr(conn, "dialect", "sqlite")
