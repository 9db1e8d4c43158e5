"""The model cache in the data DB (tables `models` and `model_sync`), filled by `models sync`.

Reads never create the DB: with no DB there is simply nothing cached."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from callm.types import ModelInfo, Price

if TYPE_CHECKING:
    import sqlite3

_COLUMNS = (
    "provider, id, display_name, context_window, max_output, price_input, price_output,"
    " price_cached_input, price_source, capabilities, extra, synced_at"
)


def _open(create: bool) -> sqlite3.Connection | None:
    from callm.ledger.backend import exists
    from callm.ledger.db import connect

    if not create and not exists():
        return None
    return connect()


def _row(m: ModelInfo, when: float) -> tuple[Any, ...]:
    p = m.price
    extra = dict(m.extra)
    if p is not None and p.cache_write is not None:
        extra["price_cache_write"] = p.cache_write  # no column of its own (migrations frozen)
    return (
        m.provider,
        m.id,
        m.display_name,
        m.context_window,
        m.max_output,
        p.input if p else None,
        p.output if p else None,
        p.cached_input if p else None,
        p.source if p else None,
        json.dumps(list(m.capabilities)),
        json.dumps(extra, ensure_ascii=False, default=str),
        when,
    )


def _info(row: tuple[Any, ...]) -> ModelInfo:
    (provider, mid, display, ctx, max_out, p_in, p_out, p_cached, p_src, caps, extra, _) = row
    extra_d = json.loads(extra) if extra else {}
    cache_write = extra_d.pop("price_cache_write", None)
    price = None
    if p_src is not None or any(v is not None for v in (p_in, p_out, p_cached)):
        price = Price(p_in, p_out, p_cached, cache_write, source=p_src or "unknown")
    return ModelInfo(
        provider=provider,
        id=mid,
        context_window=ctx,
        max_output=max_out,
        price=price,
        capabilities=tuple(json.loads(caps)) if caps else (),
        display_name=display,
        extra=extra_d,
    )


def store_sync(
    provider: str, models: list[ModelInfo], when: float | None = None
) -> tuple[list[str], list[str]]:
    """Replace the provider's cached models with `models`; returns (added, removed) ids
    compared with the previous sync (both empty on a first sync that finds nothing)."""
    ts = time.time() if when is None else when
    conn = _open(create=True)
    assert conn is not None
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT id FROM models WHERE provider = ?", (provider,))
            before = {r[0] for r in rows}
            now = {m.id for m in models}
            conn.execute("DELETE FROM models WHERE provider = ?", (provider,))
            latest = {m.id: m for m in models if m.provider == provider}  # a repeat: last wins
            if latest:
                conn.executemany(
                    f"INSERT INTO models ({_COLUMNS}) VALUES ({','.join('?' * 12)})",
                    [_row(m, ts) for m in latest.values()],
                )
            conn.execute(
                "INSERT INTO model_sync (provider, synced_at, count) VALUES (?, ?, ?)"
                " ON CONFLICT(provider) DO UPDATE SET synced_at = excluded.synced_at,"
                " count = excluded.count",
                (provider, ts, len(now)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return sorted(now - before), sorted(before - now)


def cached(provider: str | None = None) -> list[ModelInfo]:
    """Cached models (of one provider, or all), ordered by provider and id."""
    conn = _open(create=False)
    if conn is None:
        return []
    try:
        if provider is None:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM models ORDER BY provider, id").fetchall()
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM models WHERE provider = ? ORDER BY id", (provider,)
            ).fetchall()
    finally:
        conn.close()
    return [_info(r) for r in rows]


def get(provider: str, model_id: str) -> ModelInfo | None:
    conn = _open(create=False)
    if conn is None:
        return None
    try:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM models WHERE provider = ? AND id = ?", (provider, model_id)
        ).fetchone()
    finally:
        conn.close()
    return _info(row) if row else None


def sync_times() -> dict[str, tuple[float, int]]:
    """provider -> (time of its last sync, number of models then)."""
    conn = _open(create=False)
    if conn is None:
        return {}
    try:
        rows = conn.execute("SELECT provider, synced_at, count FROM model_sync").fetchall()
    finally:
        conn.close()
    return {p: (t, n) for p, t, n in rows}


def synced_price(provider: str, model: str) -> Price | None:
    """The price the provider itself reported at the last sync (OpenRouter lists prices; the
    simulator too), source "vendor sync <date>". None when it reported none: catalog prices
    merged into the cache are not returned here, so a newer catalog is never shadowed."""
    info = get(provider, model)
    if info is None or info.price is None or info.price.source.startswith("catalog"):
        return None
    return info.price
