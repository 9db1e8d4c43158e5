"""Access tokens of `callm serve`: shown once when created, only their SHA-256 kept (in the
data DB: a team's PostgreSQL ledger is shared by its gateways), each with an optional daily
budget and list of allowed models/routes."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from callm.errors import UsageError

PREFIX = "callm-"


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created: float
    budget_usd_day: float | None = None
    models: tuple[str, ...] | None = None  # None: any model or route

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _connect(path: Path | None) -> sqlite3.Connection:
    """The ledger's tokens: path None is the configured ledger (a team's PostgreSQL one
    when set, so every gateway host knows every token), a path that SQLite file."""
    from callm.ledger.db import connect

    return connect(path)


def _row(r: tuple[str, float, float | None, str | None]) -> TokenInfo:
    models = tuple(json.loads(r[3])) if r[3] else None
    return TokenInfo(r[0], r[1], r[2], models)


def create(
    name: str,
    budget_usd_day: float | None = None,
    models: list[str] | None = None,
    path: Path | None = None,
) -> str:
    """A new token for `name`; the token itself is returned once and never stored."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"token name {name!r}: use letters, digits, - and _")
    token = PREFIX + secrets.token_urlsafe(32)
    conn = _connect(path)
    try:
        with conn:
            conn.execute(
                "INSERT INTO gateway_tokens (name, hash, created, budget_usd_day, models)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    name,
                    _hash(token),
                    time.time(),
                    budget_usd_day,
                    json.dumps(models) if models else None,
                ),
            )
    except sqlite3.IntegrityError:
        raise UsageError(
            f"a token named {name!r} exists", hint=f"remove it first: callm serve token rm {name}"
        ) from None
    finally:
        conn.close()
    return token


def list_all(path: Path | None = None) -> list[TokenInfo]:
    conn = _connect(path)
    try:
        rows = conn.execute(
            "SELECT name, created, budget_usd_day, models FROM gateway_tokens ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return [_row(r) for r in rows]


def remove(name: str, path: Path | None = None) -> bool:
    conn = _connect(path)
    try:
        with conn:
            n = conn.execute("DELETE FROM gateway_tokens WHERE name = ?", (name,)).rowcount
    finally:
        conn.close()
    return n > 0


class Keyring:
    """The tokens a running server accepts, read once at start and again when a token it
    does not know arrives (so a token created while it runs works at once)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.error: str | None = None  # why the last re-read failed (the ledger out of reach)
        self._by_hash: dict[str, TokenInfo] = {}
        self._loaded = 0.0
        self._read()  # at start, a ledger out of reach is the server's error

    def reload(self) -> None:
        """Read the tokens again. A ledger out of reach (a team's PostgreSQL server down)
        keeps the tokens known: their calls still work, their rows wait in the spill file."""
        from callm.errors import CallmError
        from callm.ledger.backend import errors

        try:
            self._read()
            self.error = None
        except (CallmError, *errors()) as exc:
            self.error = getattr(exc, "message", None) or str(exc)
            self._loaded = time.monotonic()  # look again in a while, not on every request

    def _read(self) -> None:
        conn = _connect(self.path)
        try:
            rows = conn.execute(
                "SELECT name, created, budget_usd_day, models, hash FROM gateway_tokens"
            ).fetchall()
        finally:
            conn.close()
        self._by_hash = {r[4]: _row(r[:4]) for r in rows}
        self._loaded = time.monotonic()

    @property
    def count(self) -> int:
        return len(self._by_hash)

    def check(self, token: str | None) -> TokenInfo | None:
        if not token:
            return None
        if time.monotonic() - self._loaded > 5.0:  # a removed token stops working soon
            self.reload()
        digest = _hash(token)
        hit = next((t for h, t in self._by_hash.items() if hmac.compare_digest(h, digest)), None)
        if hit is None and time.monotonic() - self._loaded > 1.0:
            self.reload()  # at most once a second, so bad tokens cannot hammer the DB
            hit = self._by_hash.get(digest)
        return hit


def spent_today(name: str, path: Path | None = None) -> float:
    """USD recorded today (local time) for calls made with token `name`."""
    start = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    conn = _connect(path)
    try:
        (total,) = conn.execute(
            "SELECT total(cost_usd) FROM usage WHERE token = ? AND ts >= ?", (name, start)
        ).fetchone()
    finally:
        conn.close()
    return float(total)
