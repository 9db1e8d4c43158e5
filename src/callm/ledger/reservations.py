"""Budget reservations: a call's worst case, held in the data DB while the call runs.

Checking a budget and claiming part of it is one `BEGIN IMMEDIATE` transaction (SQLite's
write lock): sum what the ledger says was spent in the period plus every open reservation,
ask the caller whether the new amount fits, insert the reservation, commit. Two processes can
therefore never both see the same room left. The reservation goes away in the transaction
that writes the call's usage row (ledger/usage.py), so spend is never counted twice or not at
all. A holder that dies without settling is noticed by its pid (same host) or by `expires`.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callm.errors import CallmError

TTL_S = 3 * 3600.0  # longer than any call with its retries; a dead holder is noticed sooner


@dataclass(frozen=True)
class Scope:
    """What a limit counts: one provider's calls or all (provider None), in [start, end)."""

    provider: str | None
    start: float
    end: float


@dataclass(frozen=True)
class Tally:
    spent: float  # settled usage rows with a known cost
    reserved: float  # open reservations of calls in flight

    @property
    def total(self) -> float:
        return self.spent + self.reserved


Decide = Callable[[list[Tally]], None]  # raises to refuse; sees one Tally per scope


def _connect(path: Path | None) -> sqlite3.Connection:
    from callm.ledger.db import connect
    from callm.ledger.usage import _no_checkpoint_on_close

    conn = connect(path)
    _no_checkpoint_on_close(conn)  # the ~20 ms fsync on close (Python >= 3.12)
    return conn


def _tally(conn: sqlite3.Connection, scope: Scope) -> Tally:
    from callm.ledger.migrations import SPEND_BUCKET_S as B

    # spend from the 15-minute rollup: period ends fall on slot edges (whole UTC offsets)
    slots, sargs = "bucket >= ? AND bucket < ?", [int(scope.start // B), int(-(-scope.end // B))]
    where, args = "ts >= ? AND ts < ?", [scope.start, scope.end]
    if scope.provider is not None:
        slots += " AND provider = ?"
        sargs.append(scope.provider)
        where += " AND provider = ?"
        args.append(scope.provider)
    spent = conn.execute(
        f"SELECT total(cost_usd) FROM usage_spend WHERE {slots}", sargs
    ).fetchone()[0]
    held = conn.execute(
        f"SELECT total(amount_usd) FROM budget_reservation WHERE {where}", args
    ).fetchone()[0]
    return Tally(float(spent), float(held))


def tallies(scopes: list[Scope], path: Path | None = None) -> list[Tally]:
    """What each scope has spent and holds now (read only; stale reservations not counted)."""
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        _expire(conn)
        out = [_tally(conn, s) for s in scopes]
        conn.execute("ROLLBACK")  # _expire may have deleted rows; a reader keeps nothing
        return out
    finally:
        conn.close()


def reserve(
    provider: str,
    model: str,
    amount: float,
    scopes: list[Scope],
    decide: Decide,
    replace: int | None = None,
    path: Path | None = None,
) -> int:
    """Atomically: drop stale reservations (and `replace`, the caller's previous one), let
    `decide` see the scopes' tallies, and hold `amount`. Returns the reservation id. When
    `decide` raises, nothing changes (the replaced reservation stays)."""
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            _expire(conn)
            if replace is not None:
                conn.execute("DELETE FROM budget_reservation WHERE id = ?", (replace,))
            decide([_tally(conn, s) for s in scopes])
            now = time.time()
            cur = conn.execute(
                "INSERT INTO budget_reservation (ts, provider, model, amount_usd, pid, host,"
                " expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, provider, model, amount, os.getpid(), _host(), now + TTL_S),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(cur.lastrowid or 0)
    except sqlite3.Error as exc:
        raise CallmError(f"cannot reserve budget in the data DB: {exc}") from None
    finally:
        conn.close()


def release(conn: sqlite3.Connection, reservation: int) -> None:
    """Inside the caller's transaction (the one that writes the usage row)."""
    conn.execute("DELETE FROM budget_reservation WHERE id = ?", (reservation,))


def release_now(reservation: int, path: Path | None = None) -> None:
    """Drop a reservation whose call never started (no usage row will settle it)."""
    conn = _connect(path)
    try:
        release(conn, reservation)
    finally:
        conn.close()


def _host() -> str:
    """This machine's name (the host name, as uname gives it), to tell whose pids we can check."""
    return platform.node()


def _expire(conn: sqlite3.Connection) -> None:
    """Forget reservations past their expiry or held by a process of this host that is gone."""
    now = time.time()
    conn.execute("DELETE FROM budget_reservation WHERE expires < ?", (now,))
    rows = conn.execute(
        "SELECT DISTINCT pid FROM budget_reservation WHERE host = ?", (_host(),)
    ).fetchall()
    dead = [pid for (pid,) in rows if pid != os.getpid() and not _alive(pid)]
    for pid in dead:
        conn.execute("DELETE FROM budget_reservation WHERE host = ? AND pid = ?", (_host(), pid))


def _alive(pid: int) -> bool:
    if os.name == "nt":  # no cheap check: the expiry covers it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: alive
    return True
