"""Per-provider state kept in the data DB: last verification, failure streak, cooldown.

Reading never creates the DB: `providers list` on a fresh machine must not leave files behind
(nor pay for importing sqlite3)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProviderState:
    name: str
    last_verified: str | None = None
    last_verify_ok: bool | None = None
    failures: int = 0
    cooldown_until: float | None = None

    def cooldown_until_iso(self) -> str | None:
        import time

        if not self.cooldown_until or self.cooldown_until <= time.time():
            return None
        return time.strftime("%H:%M:%S", time.localtime(self.cooldown_until))


def _when(ts: float | None) -> str | None:
    if ts is None:
        return None
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def read_states() -> dict[str, ProviderState]:
    """Every provider's recorded state; {} when there is no DB yet or it cannot be read."""
    from callm.errors import CallmError
    from callm.ledger.backend import exists

    try:
        if not exists():
            return {}
    except CallmError:
        return {}
    import sqlite3

    from callm.ledger.db import connect

    try:
        conn = connect()
    except CallmError:
        return {}
    try:
        rows = conn.execute(
            "SELECT name, last_verified, last_verify_ok, failures, cooldown_until"
            " FROM provider_state"
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {
        name: ProviderState(
            name=name,
            last_verified=_when(verified),
            last_verify_ok=None if ok is None else bool(ok),
            failures=failures or 0,
            cooldown_until=cooldown,
        )
        for name, verified, ok, failures, cooldown in rows
    }


def record_verify(name: str, ok: bool, when: float | None = None) -> None:
    """Remember the time and result of a verification (creates the DB if needed)."""
    record_verifies({name: ok}, when)


def record_verifies(results: dict[str, bool], when: float | None = None) -> None:
    """Several results in one transaction (what `providers verify` writes at its end)."""
    import time

    from callm.ledger.db import connect

    if not results:
        return
    ts = time.time() if when is None else when
    conn = connect()
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO provider_state (name, last_verified, last_verify_ok)"
                " VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " last_verified = excluded.last_verified,"
                " last_verify_ok = excluded.last_verify_ok",
                [(name, ts, int(ok)) for name, ok in results.items()],
            )
    finally:
        conn.close()
