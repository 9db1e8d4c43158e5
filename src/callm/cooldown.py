"""Cooldown across invocations: a provider that failed N times in a row is skipped for a
growing period, unless it is the only option. State lives in the data DB."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from callm.errors import CallmError
from callm.retry import RetryPolicy, counts_against_provider

if TYPE_CHECKING:
    from callm.endpoints import Target

MAX_LEVEL = 8  # cooldown_seconds * 2**8 at most


def cooling_until(providers: list[str]) -> dict[str, float]:
    """provider -> unix time its cooldown ends, for those cooling down now."""
    from callm.ledger.backend import exists

    if not exists():
        return {}
    import sqlite3

    from callm.ledger.db import connect

    now = time.time()
    conn = connect()
    try:
        marks = ",".join("?" * len(providers))
        rows = conn.execute(
            f"SELECT name, cooldown_until FROM provider_state WHERE name IN ({marks})"
            " AND cooldown_until > ?",
            (*providers, now),
        ).fetchall()
    except sqlite3.Error as exc:  # locked too long, damaged: no cooldown is better than no call
        raise CallmError(f"cannot read provider cooldowns: {exc}") from None
    finally:
        conn.close()
    return {name: until for name, until in rows}


def filter_chain(chain: list[Target], notice: Callable[[str], None]) -> list[Target]:
    if len(chain) <= 1:
        return chain  # the only option is always tried
    try:
        cooling = cooling_until(sorted({t.provider for t in chain}))
    except CallmError:
        return chain  # an unusable data DB must not stop a call
    if not cooling:
        return chain
    usable = [t for t in chain if t.provider not in cooling]
    if not usable:
        return chain
    now = time.time()
    for t in chain:
        if t.provider in cooling:
            notice(
                f"skipping {t.label}: {t.provider} is cooling down for another "
                f"{cooling[t.provider] - now:.0f} s after repeated failures"
            )
    return usable


def record_result(provider: str, exc: CallmError | None, policy: RetryPolicy) -> None:
    """Success resets the streak; a provider-side failure extends it and may start a cooldown."""
    if exc is not None and not counts_against_provider(exc):
        return
    try:
        from callm.ledger.db import connect

        conn = connect()
    except CallmError:
        return
    try:
        if exc is None:
            conn.execute(
                "UPDATE provider_state SET failures = 0, cooldown_until = NULL, cooldown_level = 0"
                " WHERE name = ? AND (failures > 0 OR cooldown_level > 0)",
                (provider,),
            )
            return
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO provider_state(name, failures) VALUES (?, 1)"
            " ON CONFLICT(name) DO UPDATE SET failures = provider_state.failures + 1",
            (provider,),
        )
        failures, level = conn.execute(
            "SELECT failures, cooldown_level FROM provider_state WHERE name = ?", (provider,)
        ).fetchone()
        if failures >= policy.cooldown_after:
            until = time.time() + policy.cooldown_seconds * (2 ** min(level, MAX_LEVEL))
            conn.execute(
                "UPDATE provider_state SET failures = 0, cooldown_until = ?,"
                " cooldown_level = cooldown_level + 1 WHERE name = ?",
                (until, provider),
            )
        conn.execute("COMMIT")
    except Exception:
        try:
            conn.execute("ROLLBACK")
        except Exception:
            pass
    finally:
        conn.close()
