"""The data DB (SQLite, WAL): usage ledger, model cache, provider state.

Many `callm chat` processes may write at once: WAL lets readers and one writer work together,
and a generous busy timeout makes writers queue instead of failing with "database is locked".
The schema is the list of migrations in callm.ledger.migrations; `PRAGMA user_version` records
how many have run.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from callm.errors import CallmError
from callm.ledger.migrations import MIGRATIONS
from callm.paths import db_path

BUSY_TIMEOUT_MS = 30_000


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the data DB: the shared PostgreSQL ledger when
    one is configured and no explicit path is given, else the SQLite file."""
    from callm.ledger import backend

    url = backend.shared(path)
    if url is not None:
        from callm.ledger import pg

        return pg.connect(url)  # type: ignore[return-value]  # sqlite3's manners, see pg.py
    path = path or db_path()
    try:
        _private(path)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise CallmError(
            f"cannot open the data DB {path}: {exc}",
            hint="check permissions, or point CALLM_DATA_DIR somewhere writable",
        ) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise CallmError(f"data DB {path} is not usable: {exc}") from None
    return conn


def _private(path: Path) -> None:
    """The DB holds prompts and replies when logged: the file 0600 (its -wal and -shm copy
    that), in a folder of ours that is 0700."""
    import errno
    import stat

    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    if st.st_mode & 0o077 and mine and not path.exists():
        folder.chmod(0o700)  # a new DB: the folder is callm's own (an old one was 0755)
    # An existing DB is never opened here: closing any descriptor of a file drops every POSIX
    # lock this process holds on it, and in `callm serve` other threads' connections hold some
    # (without them another process's last close deletes the WAL under them: disk I/O errors).
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(path, flags, 0o600))
    except FileExistsError:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "is a symbolic link", str(path)) from None
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, 0o600)  # a DB from before this rule


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs a moment of exclusive access; retry briefly if others hold it.
    for _ in range(50):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.05)


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")  # one migrator at a time; others wait on busy_timeout
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for i in range(version, len(MIGRATIONS)):
            for stmt in _statements(MIGRATIONS[i]):
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements (a `;` inside a -- comment does not end one)."""
    out: list[str] = []
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf)
            buf = ""
    if buf.strip(" \n\t;"):
        out.append(buf)
    return out
