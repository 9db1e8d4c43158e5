"""The usage ledger: one row per chat call, whatever happened, and never a row lost.

`record()` opens one connection and runs one INSERT. When the DB is busy it waits (busy
timeout) and retries; when it cannot be written at all (read-only or missing data dir, disk
full, a broken file) the row goes as one JSON line to a spill file, next to the DB or, when
the data dir itself is unwritable, in the temp dir. The next successful `record()` imports the
spilled rows first, in the same transaction as its own row.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

SPILL_NAME = "usage-spill.jsonl"
RETRIES = 8  # "database is locked" that escaped the busy timeout (WAL switch, recovery)
MAX_WAIT = 20.0  # seconds; a lock held longer than the busy timeout means: spill, don't hang
OUTCOMES = ("ok", "error", "interrupted", "broken_stream", "fallback", "client_gone")


@dataclass
class UsageRow:
    """One chat call, as stored in the `usage` table (see ledger/db.py)."""

    ts: float  # unix time the call started
    provider: str
    model: str
    driver: str | None = None
    input_tokens: int = 0  # all prompt tokens, cached ones included
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    usage_source: str = "reported"  # reported | estimated
    cost_usd: float | None = None  # None = price unknown (never 0 for unknown)
    price_source: str | None = None
    latency_ms: int | None = None
    ttft_ms: int | None = None
    outcome: str = "ok"  # ok | error | interrupted | broken_stream | fallback
    error_kind: str | None = None
    attempts: int = 1
    # [{provider, model, outcome, error_kind, latency_ms}]; a list is serialised for you
    attempts_json: str | list[dict[str, Any]] | None = None
    prompt: str | None = None  # only when logging (the caller decides): this turn's prompt
    reply: str | None = None
    # the call log (ledger/logs.py): conversation, system prompt, options, attachments
    cid: str | None = None
    system: str | None = None
    options_json: str | None = None
    attachments_json: str | None = None
    reply_json: str | None = None
    token: str | None = None  # the `callm serve` token's name, for calls through the gateway


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRow))
_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def record(row: UsageRow, path: Path | None = None, release: int | None = None) -> None:
    """Add `row` to the ledger. Never raises and never drops the row (see module doc).
    `release`: the call's budget reservation, removed in the row's own transaction.

    The caller fills prompt/reply only when config `log_prompts` is true; whatever it gives
    is stored with anything shaped like an API key scrubbed.
    """
    from callm.paths import db_path

    db = path or db_path()  # the spill files live next to the local data DB, always
    values = _values(row)
    reason = "unknown error"
    deadline = time.monotonic() + MAX_WAIT
    for attempt in range(RETRIES):
        try:
            _write(db, values, path, release)
            return
        except Exception as exc:  # a ledger failure must never break the call
            reason = _reason(exc)
            if not _is_busy(reason) or attempt == RETRIES - 1 or time.monotonic() > deadline:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0))
    _spill([values], db, reason)


def spill_paths(db: Path) -> tuple[Path, Path]:
    """Where rows go when `db` cannot be written: next to it, else in the temp dir."""
    import tempfile

    tag = hashlib.sha256(os.path.abspath(db).encode()).hexdigest()[:12]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return db.parent / SPILL_NAME, Path(tempfile.gettempdir()) / f"callm-{uid}-{tag}-{SPILL_NAME}"


# ---- writing ------------------------------------------------------------------------------


def _values(row: UsageRow) -> dict[str, Any]:
    values = asdict(row)
    if isinstance(values["attempts_json"], (list, tuple)):
        values["attempts_json"] = json.dumps(values["attempts_json"], separators=(",", ":"))
    if any(values[k] for k in _SCRUBBED):
        from callm.secrets import scrub

        for k in _SCRUBBED:
            if values[k]:
                values[k] = scrub(values[k])
    return values


# Free text a user or a model wrote: anything shaped like a key is masked before it is stored.
_SCRUBBED = ("prompt", "reply", "system", "options_json", "attachments_json", "reply_json")


def _write(db: Path, values: dict[str, Any], path: Path | None, release: int | None = None) -> None:
    from callm.ledger.db import connect

    pending = [p for p in spill_paths(db) if p.exists()]
    conn = connect(path)  # None: the configured ledger (PostgreSQL or the file `db`)
    _no_checkpoint_on_close(conn)
    try:
        if pending:
            _import_and_insert(conn, db, values, pending, release)
        elif release is not None:
            _insert_and_release(conn, values, release)
        else:
            conn.execute(_INSERT, tuple(values[c] for c in COLUMNS))
    finally:
        conn.close()


def _no_checkpoint_on_close(conn: Any) -> None:
    """The last connection to close a WAL database checkpoints it, with an fsync: ~20 ms, most
    of a record(). Skipping it leaves the rows safely in the WAL, which SQLite checkpoints every
    1000 pages anyway. Python >= 3.12 only (Connection.setconfig); older ones pay the 20 ms."""
    import sqlite3

    flag = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)
    if flag is not None and hasattr(conn, "setconfig"):
        try:
            conn.setconfig(flag, True)
        except sqlite3.Error:
            pass


def import_spilled(path: Path | None = None) -> int:
    """Write the spilled rows into the ledger now (`ledger migrate`); returns how many."""
    from callm.ledger.db import connect
    from callm.paths import db_path

    db = path or db_path()
    pending = [p for p in spill_paths(db) if p.exists()]
    if not pending:
        return 0
    conn = connect(path)
    try:
        return _import_and_insert(conn, db, None, pending)
    finally:
        conn.close()


def _insert_and_release(conn: Any, values: dict[str, Any], release: int) -> None:
    from callm.ledger.reservations import release as drop

    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_INSERT, tuple(values[c] for c in COLUMNS))
        drop(conn, release)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _import_and_insert(
    conn: Any,
    db: Path,
    values: dict[str, Any] | None,
    pending: list[Path],
    release: int | None = None,
) -> int:
    """Spilled rows and the new one in one transaction; the spill files go before COMMIT."""
    conn.execute("BEGIN IMMEDIATE")  # the write lock also serialises importers
    claimed: list[tuple[Path, int]] = []
    spilled: list[dict[str, Any]] = []
    removed = False
    imported = 0
    try:
        for p in pending:
            got = _claim(p)
            if got is not None:
                fd, rows = got
                claimed.append((p, fd))
                spilled.extend(rows)
        imported = _insert_spilled(conn, spilled)
        if values is not None:
            conn.execute(_INSERT, tuple(values[c] for c in COLUMNS))
        if release is not None:
            from callm.ledger.reservations import release as drop

            drop(conn, release)
        for p, _ in claimed:
            p.unlink()
        removed = True
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except Exception:
            pass
        if removed and spilled:  # the files are gone but the rows did not land: put them back
            _spill(spilled, db, "import failed", quiet=True)
        raise
    finally:
        for _, fd in claimed:
            os.close(fd)
    if spilled:
        _say(f"note: imported {imported} usage row(s) spilled while the ledger was unwritable")
    return imported


def _insert_spilled(conn: Any, spilled: list[dict[str, Any]]) -> int:
    """Insert spilled rows one by one: a row the table refuses (a hand-edited line) is skipped
    rather than blocking the ledger for good. Any other error (busy, disk full) propagates."""
    import sqlite3

    bad = 0
    for r in spilled:
        conn.execute("SAVEPOINT spilled_row")
        try:
            conn.execute(
                _INSERT, tuple(_DEFAULTS[c] if r.get(c) is None else r[c] for c in COLUMNS)
            )
        except (sqlite3.Error, ValueError, OverflowError, TypeError) as exc:
            refused = not isinstance(exc, sqlite3.Error) or isinstance(
                exc, (sqlite3.IntegrityError, sqlite3.InterfaceError)
            )
            if not refused and "binding" not in str(exc):  # 3.11+: ProgrammingError on binding
                raise
            bad += 1
            conn.execute("ROLLBACK TO spilled_row")
        conn.execute("RELEASE spilled_row")
    if bad:
        _say(f"warning: skipped {bad} spilled usage row(s) the ledger refused")
    return len(spilled) - bad


def _claim(path: Path) -> tuple[int, list[dict[str, Any]]] | None:
    """Open, lock and read a spill file. Returns the locked fd and its rows."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            os.close(fd)  # someone else's file in a shared temp dir: not ours to import
            return None
        _lock(fd)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
    except BaseException:
        os.close(fd)
        raise
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or "provider" not in obj or "model" not in obj:
                raise ValueError
            rows.append({c: obj[c] for c in COLUMNS if c in obj})
        except ValueError:
            bad += 1
    if bad:
        _say(f"warning: skipped {bad} unreadable line(s) in {path}")
    return fd, rows


_DEFAULTS: dict[str, Any] = {
    f.name: None if f.default is MISSING else f.default for f in fields(UsageRow)
}
_DEFAULTS.update(ts=0.0, provider="unknown", model="unknown")


# ---- spilling -----------------------------------------------------------------------------


def _spill(rows: list[dict[str, Any]], db: Path, reason: str, quiet: bool = False) -> None:
    data = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in rows)
    for target in spill_paths(db):
        try:
            # a PostgreSQL ledger may never have made the local data dir: make it, so the
            # rows wait there and not in the temp dir, which a reboot may empty
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _append(target, data.encode())
        except OSError:
            continue
        if not quiet:
            _say(f"warning: usage ledger {db} not writable ({reason}); row saved to {target}")
        return
    # Nowhere on disk: the row goes to stderr, the one place left.
    _say(f"warning: usage ledger {db} not writable ({reason}); row: {data.strip()}")


def _append(path: Path, data: bytes) -> None:
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(20):
        fd = os.open(path, flags, 0o600)
        try:
            _refuse_foreign(path, fd)
            _lock(fd)
            try:  # an importer may have removed the file while we waited for the lock
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn line from a full disk
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            return
        finally:
            os.close(fd)
    raise OSError(f"could not append to {path}")


def _refuse_foreign(path: Path, fd: int) -> None:
    """The temp dir is shared and the spill file's name can be guessed: one that another user
    created (to read our rows) or that is not a plain file is not ours to append to."""
    import stat

    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
        raise OSError(f"{path} is not ours")


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: appends are short; go without
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


# ---- helpers ------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]


def _is_busy(reason: str) -> bool:
    low = reason.lower()
    # SQLite's lock timeouts; PostgreSQL's deadlock victim and serialization failure
    return any(w in low for w in ("locked", "busy", "deadlock", "could not serialize"))


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
