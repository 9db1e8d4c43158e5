"""The data DB on PostgreSQL (psycopg 3), behind the same small interface the stores use
with sqlite3: `conn.execute(sql, args)` with `?` placeholders, explicit BEGIN/COMMIT, rows as
tuples. Errors arrive as sqlite3.Error subclasses, so each store catches one family.

Days in the rollups are local days of the writing process, as on SQLite: each session runs
in the process's time zone. Migrations run under pg_advisory_lock, so ten processes starting
at once migrate once.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from decimal import Decimal
from typing import Any

from callm.errors import CallmError

CONNECT_TIMEOUT = 5  # seconds; a down server means: spill, don't hang the call
MIGRATE_LOCK = 0x63616C6C6D  # "callm": the advisory lock key of the migrator
# BEGIN IMMEDIATE (SQLite: take the write lock now) becomes BEGIN plus this transaction-scoped
# advisory lock, so code written for SQLite's one-writer-at-a-time (a budget check and its
# reservation, a cooldown streak) stays atomic across machines. Plain INSERTs do not take it.
WRITE_LOCK = 0x63616C6C6D77
VERSION_TABLE = "callm_schema"


class PgError(sqlite3.OperationalError):
    """A psycopg error (connection lost, serialization, ...)."""


class PgIntegrityError(sqlite3.IntegrityError):
    """A row the table refuses (constraint, bad value)."""


# Open connections kept for the life of the process: `usage report` and a `callm serve` make
# many short uses; a new connection costs a backend fork and three round trips. One is handed
# out only when idle and healthy; close() returns it here. `callm serve` opens and closes from
# many threads at once: a few wait here (one each for the calls running together), and the
# lock keeps each hand-over whole.
MAX_IDLE = 8
_idle: dict[str, list[PgConn]] = {}
_idle_lock = threading.Lock()
_migrated: set[str] = set()


def connect(url: str, *, migrate_schema: bool = True) -> PgConn:
    while True:
        with _idle_lock:
            spare = _idle.get(url)
            conn = spare.pop() if spare else None
        if conn is None:
            break
        if _usable(conn):
            _set_time_zone(conn)  # cheap when unchanged
            return conn
        conn.discard()
    conn = _open(url)
    try:
        _set_time_zone(conn)
        if migrate_schema and url not in _migrated:
            migrate(conn)
            _migrated.add(url)
    except BaseException:
        conn.discard()
        raise
    return conn


def _usable(conn: PgConn) -> bool:
    """An idle connection still good to hand out. One the server wrote to while idle has been
    told goodbye (a restart, an admin's kill): its socket is readable, at end of file."""
    import select

    if conn.raw.broken or conn.raw.closed or conn.in_transaction:
        return False
    try:
        readable, _, _ = select.select([conn.raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _open(url: str) -> PgConn:
    try:
        import psycopg
    except ImportError:
        raise CallmError(
            "the ledger is on PostgreSQL but psycopg is not installed",
            hint="pip install 'callm[postgres]'",
        ) from None
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
    try:
        try:
            raw = psycopg.connect(url, application_name="callm", **kwargs)
        except psycopg.OperationalError as exc:
            # libpq had no password (PGPASSWORD, ~/.pgpass): the keychain's, asked only now
            # (opening the keychain costs more than most ledger writes)
            password = "password" in str(exc) and _keychain_password(url)
            if not password:
                raise
            raw = psycopg.connect(url, application_name="callm", password=password, **kwargs)
    except psycopg.Error as exc:
        from callm.ledger.backend import describe

        raise CallmError(f"cannot reach the ledger {describe(url)}: {_one_line(exc)}") from None
    return PgConn(raw, url)


def keychain_entry(url: str) -> str:
    """The keychain name of a ledger's password: ledger:user@host:port/db."""
    from urllib.parse import urlsplit

    p = urlsplit(url)
    user = p.username or os.environ.get("PGUSER") or ""
    return f"ledger:{user}@{p.hostname or ''}:{p.port or 5432}{p.path or '/'}"


def _keychain_password(url: str) -> str | None:
    if os.environ.get("PGPASSWORD"):
        return None  # libpq reads it (and ~/.pgpass) itself
    try:
        from callm.secrets import keychain_get

        return keychain_get(keychain_entry(url))
    except Exception:  # no keychain here: libpq's own sources still apply
        return None


def _set_time_zone(conn: PgConn) -> None:
    want = (os.environ.get("TZ"), time.timezone, time.altzone)
    if conn.tz == want:
        return
    conn.tz = want
    tz = os.environ.get("TZ", "").lstrip(":")
    if not tz:
        try:
            link = os.readlink("/etc/localtime")
            tz = link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else ""
        except OSError:
            tz = ""
    if tz:
        try:
            conn.execute("SELECT set_config('TimeZone', ?, false)", (tz,))
            return
        except sqlite3.Error:
            pass
    off = -time.altzone if time.localtime().tm_isdst > 0 else -time.timezone
    sign = "+" if off >= 0 else "-"
    hours, minutes = divmod(abs(off) // 60, 60)
    conn.execute(f"SET TIME ZONE INTERVAL '{sign}{hours:02d}:{minutes:02d}' HOUR TO MINUTE")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


_PLACEHOLDER = re.compile(r"\?")


def translate(sql: str) -> str:
    """sqlite3 SQL as psycopg wants it: %s placeholders, a literal % doubled."""
    sql = sql.replace("%", "%%")
    return _PLACEHOLDER.sub("%s", sql)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):  # sum() of integers is numeric in PostgreSQL
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class _Cursor:
    def __init__(self, cur: Any, conn: PgConn | None = None) -> None:
        self._cur = cur
        self._conn = conn

    @property
    def lastrowid(self) -> int | None:
        """sqlite3's: the id given to the row just inserted (the session's last sequence)."""
        if self._conn is None:
            return None
        row = self._conn.raw.execute("SELECT lastval()").fetchone()
        return int(row[0]) if row else None

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        if not self._cur.description:
            return []
        return [tuple(_plain(v) for v in row) for row in self._cur.fetchmany(size)]

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cur.fetchone() if self._cur.description else None
        return None if row is None else tuple(_plain(v) for v in row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        if not self._cur.description:
            return []
        return [tuple(_plain(v) for v in row) for row in self._cur.fetchall()]

    def __iter__(self) -> Any:
        return iter(self.fetchall())


class PgConn:
    """A psycopg connection with sqlite3's manners (autocommit; BEGIN/COMMIT by hand)."""

    dialect = "postgres"

    def __init__(self, raw: Any, url: str) -> None:
        self.raw = raw
        self.url = url
        self.tz: tuple[Any, ...] | None = None  # what the session's TimeZone was set from

    def execute(self, sql: str, args: Any = ()) -> _Cursor:
        import psycopg

        try:
            if args:
                return _Cursor(self.raw.execute(translate(sql), tuple(args)), self)
            if sql.strip().upper() == "BEGIN IMMEDIATE":
                self.raw.execute("BEGIN")
                return _Cursor(self.raw.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
            return _Cursor(self.raw.execute(sql), self)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            raise PgIntegrityError(_one_line(exc)) from None
        except psycopg.Error as exc:
            raise PgError(_one_line(exc)) from None

    def executemany(self, sql: str, rows: Any) -> int:
        """Returns the number of rows changed (ON CONFLICT DO NOTHING: the ones added)."""
        import psycopg

        try:
            with self.raw.cursor() as cur:
                cur.executemany(translate(sql), [tuple(r) for r in rows])
                return int(cur.rowcount)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            raise PgIntegrityError(_one_line(exc)) from None
        except psycopg.Error as exc:
            raise PgError(_one_line(exc)) from None

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def close(self) -> None:
        """Back to the per-process cache when reusable, else really closed."""
        healthy = not self.raw.closed and not self.raw.broken
        evicted: list[PgConn] = []
        kept = False
        if healthy and not self.in_transaction:
            with _idle_lock:  # one ledger's at a time (tests switch databases)
                evicted = [c for u in list(_idle) if u != self.url for c in _idle.pop(u)]
                spare = _idle.setdefault(self.url, [])
                kept = len(spare) < MAX_IDLE
                if kept:
                    spare.append(self)
        for other in evicted:
            other.discard()
        if not kept:
            self.discard()

    def discard(self) -> None:
        try:
            self.raw.close()
        except Exception:
            pass

    def __enter__(self) -> PgConn:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK" if exc_type else "COMMIT")


# ---- schema ---------------------------------------------------------------------------------


def version(conn: PgConn) -> int:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
    row = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(conn: PgConn) -> int:
    """Apply what is missing; returns the number of migrations applied now."""
    from callm.ledger.migrations import MIGRATIONS
    from callm.ledger.pg_migrations import PG_MIGRATIONS

    target = len(MIGRATIONS)
    try:
        if _current(conn) >= target:
            return 0
    except sqlite3.Error:
        pass  # no version table yet: take the lock and create it
    conn.execute("SELECT pg_advisory_lock(?)", (MIGRATE_LOCK,))
    try:
        have = version(conn)  # under the lock: another process may have just migrated
        if have >= target:
            return 0
        conn.execute("BEGIN")
        try:
            for i in range(have, target):
                sql = PG_MIGRATIONS[i]
                if sql.strip():
                    conn.execute(sql)
            conn.execute(f"DELETE FROM {VERSION_TABLE}")
            conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES ({target})")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return target - have
    finally:
        conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATE_LOCK,))


def _current(conn: PgConn) -> int:
    row = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return int(row[0] or 0) if row else 0
