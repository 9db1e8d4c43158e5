"""`models sync` at engine level: fetch each provider's model list concurrently, merge it with
the built-in catalog, store it in the model cache. One failing provider does not stop the
others; it is reported with the same stages as `providers verify`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from callm.types import ModelInfo, Price

if TYPE_CHECKING:
    from callm.config.schema import Config, ProviderConfig

# What vendors call a capability -> our word for it (see catalog.models.CAPABILITIES).
_CAP_WORDS = {
    "vision": "vision",
    "image_input": "vision",
    "image": "vision",
    "images": "vision",
    "tools": "tools",
    "tool_use": "tools",
    "function_calling": "tools",
    "functions": "tools",
    "reasoning": "reasoning",
    "thinking": "reasoning",
    "extended_thinking": "reasoning",
    "adaptive_thinking": "reasoning",
    "json": "json",
    "json_mode": "json",
    "structured_outputs": "json",
    "response_format": "json",
    "streaming": "streaming",
    "streamgeneratecontent": "streaming",
}


@dataclass
class SyncResult:
    provider: str
    ok: bool = False
    models: int | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stage: str | None = None
    error: str | None = None
    synced_at: float | None = None
    first_sync: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ok": self.ok,
            "models": self.models,
            "added": self.added,
            "removed": self.removed,
            "first_sync": self.first_sync,
            "synced_at": _iso(self.synced_at),
            "stage": self.stage,
            "error": self.error,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))


def capabilities(vendor_caps: tuple[str, ...], extra: dict[str, Any]) -> tuple[str, ...]:
    """A vendor's capability words in ours (unknown words are dropped here, kept in extra)."""
    from callm.catalog.models import CAPABILITIES

    found = {_CAP_WORDS[c.lower()] for c in vendor_caps if c.lower() in _CAP_WORDS}
    if extra.get("thinking") is True:  # Gemini lists thinking models with `thinking: true`
        found.add("reasoning")
    return tuple(c for c in CAPABILITIES if c in found)


def merge(name: str, pc: ProviderConfig, listed: list[ModelInfo], when: float) -> list[ModelInfo]:
    """What the vendor reports wins (ids, context, max output, its own prices); the catalog
    fills the gaps: prices, limits and capabilities the listing does not carry."""
    from callm.catalog.models import CAPABILITIES, lookup

    day = time.strftime("%Y-%m-%d", time.localtime(when))
    out: list[ModelInfo] = []
    for m in listed:
        cat = lookup(name, m.id, driver=pc.driver, base_url=pc.base_url)
        caps = set(capabilities(m.capabilities, m.extra)) | set(cat.capabilities if cat else ())
        extra = dict(m.extra)
        if m.capabilities:
            extra["vendor_capabilities"] = list(m.capabilities)
        if cat is not None:
            extra["catalog_id"] = cat.id
            if cat.extra.get("source"):
                extra["price_url"] = cat.extra["source"]
            if cat.extra.get("notes"):
                extra["price_notes"] = cat.extra["notes"]
        out.append(
            ModelInfo(
                provider=name,
                id=m.id,
                context_window=m.context_window or (cat.context_window if cat else None),
                max_output=m.max_output or (cat.max_output if cat else None),
                price=_price(m.price, cat.price if cat else None, day),
                capabilities=tuple(c for c in CAPABILITIES if c in caps),
                display_name=m.display_name or (cat.display_name if cat else None),
                extra=extra,
            )
        )
    return out


def _price(vendor: Price | None, catalog: Price | None, day: str) -> Price | None:
    if vendor is not None and (vendor.input is not None or vendor.output is not None):
        if vendor.source.startswith("vendor"):
            return replace(vendor, source=f"vendor sync {day}")
        return vendor  # e.g. the simulator's own zero prices
    return catalog


def sync_one(name: str, pc: ProviderConfig, timeout: float) -> SyncResult:
    """Fetch, merge and store one provider's list. Never raises for a provider failure."""
    from callm.ledger.models import store_sync, sync_times
    from callm.listing import list_models
    from callm.secrets import scrub
    from callm.verify import classify

    res = SyncResult(provider=name)
    try:
        listed = list_models(name, pc, timeout)
    except Exception as exc:  # every failure becomes a stage and a message
        res.stage, msg = classify(exc, name, pc.base_url or "")
        res.error = scrub(msg)
        return res
    when = time.time()
    merged = merge(name, pc, listed, when)
    try:
        res.first_sync = name not in sync_times()
        res.added, res.removed = store_sync(name, merged, when)
    except Exception as exc:  # CallmError from connect, sqlite3.Error from a write
        res.stage, res.error = "store", scrub(f"cannot store the model list: {exc}")
        return res
    res.ok, res.models, res.synced_at = True, len(merged), when
    return res


def select(cfg: Config, names: list[str]) -> list[str]:
    """The named providers (each must exist), else every enabled one."""
    from callm.verify import select as select_providers

    return select_providers(cfg, names)


def sync_many(cfg: Config, names: list[str], timeout: float = 30.0) -> list[SyncResult]:
    """Sync providers concurrently, each within `timeout` seconds; results in name order.
    Fetching runs in parallel; storing is serialised by SQLite's write lock."""
    from callm.endpoints import provider_config
    from callm.fanout import fan_out
    from callm.secrets import scrub

    chosen = select(cfg, names)
    raw = fan_out(chosen, lambda n: sync_one(n, provider_config(cfg, n), timeout), timeout + 5)
    results: list[SyncResult] = []
    for n in chosen:
        value = raw.get(n)
        if isinstance(value, SyncResult):
            results.append(value)
        elif value is None:
            results.append(SyncResult(n, stage="timeout", error=f"no answer within {timeout:g} s"))
        else:
            msg = value.message if hasattr(value, "message") else f"{type(value).__name__}: {value}"
            results.append(SyncResult(n, stage="response", error=scrub(str(msg))))
    return results
