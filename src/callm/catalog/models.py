"""The built-in model catalog (data in models.json): context window, max output, prices in USD
per million tokens with the date and page they were read from, and capabilities. The file is
validated by catalog/schema.py (through catalog/data.py). Unknown models are simply absent:
their price is unknown, never 0."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from callm.types import ModelInfo, Price

CAPABILITIES = ("vision", "tools", "reasoning", "json", "streaming")

# Driver -> the vendor whose catalog rows apply when a provider's name is not a vendor's.
_DRIVER_VENDOR = {
    "openai": "openai",
    "openai-responses": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "bedrock": "bedrock",
}
# Bedrock's geographic inference profiles: `us.anthropic.claude-...` is priced as the model's
# in-Region id (AWS charges the source Region's rate); `global.` ids have rows of their own.
_BEDROCK_GEO = re.compile(r"^(?:us|eu|apac|jp|au|ca|us-gov)\.")

# Suffixes a vendor adds to a model id for a dated snapshot or a moving alias.
_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-mini-2024-07-18
    re.compile(r"[-@]\d{8}$"),  # claude-sonnet-4-5-20250929, vertex's @20250929
    re.compile(r"-(?:latest|\d{4})$"),  # mistral-small-latest, mistral-large-2411, gpt-4-0613
    re.compile(r"-\d{3}$"),  # gemini-1.5-flash-002
)


def _price(row: dict[str, Any]) -> Price | None:
    """A validated row's price (schema.CatalogModel's fields, as plain values)."""
    if row["price"] is None:
        return None
    return Price(**row["price"], source=f"catalog {row['price_checked'] or ''}".strip())


def _info(row: dict[str, Any]) -> ModelInfo:
    extra = {k: row[k] for k in ("price_checked", "source", "aliases", "notes")}
    return ModelInfo(
        provider=row["provider"],
        id=row["id"],
        context_window=row["context_window"],
        max_output=row["max_output"],
        price=_price(row),
        capabilities=tuple(c for c in CAPABILITIES if c in row["capabilities"]),
        display_name=row["display_name"],
        extra={k: v for k, v in extra.items() if v},
    )


@lru_cache(maxsize=1)
def _data() -> tuple[dict[tuple[str, str], ModelInfo], dict[tuple[str, str], str]]:
    from callm.catalog.data import validated

    rows: dict[tuple[str, str], ModelInfo] = {}
    aliases: dict[tuple[str, str], str] = {}
    for row in validated("models.json")["models"]:
        info = _info(row)
        rows[(info.provider, info.id)] = info
        for alias in row["aliases"]:
            aliases[(info.provider, alias)] = info.id
    return rows, aliases


def builtin_models() -> dict[tuple[str, str], ModelInfo]:
    """(provider, model id) -> ModelInfo, for every catalog row."""
    return dict(_data()[0])


def vendors() -> tuple[str, ...]:
    return tuple(sorted({p for p, _ in _data()[0]}))


def resolve_vendor(name: str, driver: str | None = None, base_url: str | None = None) -> str | None:
    """Whose catalog rows apply to a configured provider: its own name when it is a vendor in
    the catalog, else the vendor its base URL's host belongs to, else its driver's vendor."""
    known = vendors()
    if name in known:
        return name
    if base_url:
        from callm.catalog.providers import catalog

        host = urlsplit(base_url).hostname or ""
        for t in catalog().values():
            if t.name in known and t.base_url and urlsplit(t.base_url).hostname == host:
                return t.name
    if driver and _DRIVER_VENDOR.get(driver) in known and not base_url:
        return _DRIVER_VENDOR[driver]
    return None


def _candidates(model: str) -> list[str]:
    """The id itself, then with prefixes and dated/alias suffixes taken off one at a time."""
    out = [model]
    m = model.removeprefix("models/")
    if m != model:
        out.append(m)
    changed = True
    while changed:
        changed = False
        for rx in _SUFFIXES:
            shorter = rx.sub("", m)
            if shorter != m and shorter:
                m = shorter
                out.append(m)
                changed = True
    return out


def lookup(
    provider: str, model: str, *, driver: str | None = None, base_url: str | None = None
) -> ModelInfo | None:
    """The catalog row for a model: exact id, a listed alias, or the id without a date
    suffix (`gpt-4o-mini-2024-07-18` -> gpt-4o-mini). A `vendor/model` id on an aggregator
    such as OpenRouter finds the vendor's row. None when the catalog does not know it."""
    rows, aliases = _data()
    vendor = resolve_vendor(provider, driver, base_url)
    attempts: list[tuple[str, str]] = []
    if vendor:
        attempts.append((vendor, model))
    head, sep, tail = model.partition("/")
    if sep and head in vendors() and tail:
        attempts.append((head, tail))
    if vendor == "bedrock" and _BEDROCK_GEO.match(model):
        attempts.append((vendor, _BEDROCK_GEO.sub("", model)))
    for v, mid in attempts:
        for cand in _candidates(mid):
            key = (v, aliases.get((v, cand), cand))
            if key in rows:
                return rows[key]
    return None


def catalog_price(
    provider: str, model: str, *, driver: str | None = None, base_url: str | None = None
) -> Price | None:
    """The catalog's price for a model (source "catalog <date checked>"), or None."""
    info = lookup(provider, model, driver=driver, base_url=base_url)
    return info.price if info else None


def for_provider(vendor: str) -> list[ModelInfo]:
    """Catalog rows of one vendor, in file order."""
    return [m for (p, _), m in _data()[0].items() if p == vendor]
