"""`models list/show/default` at engine level, all offline: the model cache filled by
`models sync`, plus the built-in catalog for providers never synced, plus the simulator."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from callm.errors import UsageError
from callm.types import ModelInfo

if TYPE_CHECKING:
    from callm.config.schema import Config

SORTS = ("price", "context", "name")


@dataclass(frozen=True)
class Row:
    """A model as `models list` shows it, with where the row came from."""

    info: ModelInfo
    source: str  # "sync 2026-11-23 14:02" | "catalog" | "sim"
    configured: bool  # the provider is in the config (or is sim)

    def as_dict(self) -> dict[str, Any]:
        m, p = self.info, self.info.price
        return {
            "provider": m.provider,
            "id": m.id,
            "name": f"{m.provider}/{m.id}",
            "display_name": m.display_name,
            "context_window": m.context_window,
            "max_output": m.max_output,
            "price": None
            if p is None
            else {
                "input": p.input,
                "output": p.output,
                "cached_input": p.cached_input,
                "cache_write": p.cache_write,
                "source": p.source,
            },
            "capabilities": list(m.capabilities),
            "source": self.source,
            "configured": self.configured,
            "extra": m.extra,
        }


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _sim_rows(name: str = "sim") -> list[ModelInfo]:
    from callm.drivers import get_driver
    from callm.types import Endpoint

    return get_driver("sim").list_models(Endpoint(name=name, driver="sim", base_url="sim://local"))


def rows(cfg: Config, provider: str | None = None) -> list[Row]:
    """Every model known without the network: synced providers from the cache; configured
    providers never synced, and catalog vendors not configured, from the catalog; sim."""
    from callm.catalog.models import for_provider, resolve_vendor, vendors
    from callm.ledger.models import cached, sync_times

    synced = sync_times()
    known = {*cfg.providers, *vendors(), *synced, "sim"}
    if provider and provider not in known:
        raise UsageError(
            f"unknown provider {provider!r}",
            hint="see `callm providers list`; catalog vendors: " + ", ".join(vendors()),
        )
    out: list[Row] = []
    for m in cached(provider):
        out.append(
            Row(
                m,
                f"sync {_when(synced[m.provider][0])}" if m.provider in synced else "sync",
                m.provider in cfg.providers,
            )
        )
    covered = set(synced)
    for name, pc in sorted(cfg.providers.items()):
        if name in covered or (provider and name != provider):
            continue
        vendor = resolve_vendor(name, pc.driver, pc.base_url)
        if pc.driver == "sim":
            out.extend(Row(m, "sim", True) for m in _sim_rows(name))
        elif vendor:
            out.extend(
                Row(replace(m, provider=name), "catalog", True) for m in for_provider(vendor)
            )
        covered.add(name)
    for vendor in vendors():
        if vendor not in covered and (not provider or vendor == provider):
            out.extend(Row(m, "catalog", False) for m in for_provider(vendor))
    if "sim" not in covered and (not provider or provider == "sim"):
        out.extend(Row(m, "sim", True) for m in _sim_rows())
    return out


def _price_key(r: Row) -> tuple[int, float, float]:
    p = r.info.price
    if p is None or p.input is None:
        return (1, 0.0, 0.0)  # unknown prices sort last, never as free
    return (0, p.input, p.output if p.output is not None else float("inf"))


def select(
    all_rows: list[Row], capabilities: list[str] | None = None, sort: str = "name"
) -> list[Row]:
    """Filter by capabilities (all must be present) and sort."""
    from callm.catalog.models import CAPABILITIES

    wanted = [c.lower() for c in capabilities or ()]
    for c in wanted:
        if c not in CAPABILITIES:
            raise UsageError(
                f"unknown capability {c!r}", hint=f"capabilities: {', '.join(CAPABILITIES)}"
            )
    if sort not in SORTS:
        raise UsageError(f"unknown sort {sort!r}", hint=f"sort by: {', '.join(SORTS)}")
    chosen = [r for r in all_rows if all(c in r.info.capabilities for c in wanted)]
    name_key = [(r.info.provider, r.info.id) for r in chosen]
    order = sorted(range(len(chosen)), key=lambda i: name_key[i])
    chosen = [chosen[i] for i in order]
    if sort == "price":
        chosen.sort(key=_price_key)
    elif sort == "context":
        chosen.sort(key=lambda r: (r.info.context_window is None, -(r.info.context_window or 0)))
    return chosen


def split_spec(spec: str) -> tuple[str, str]:
    provider, sep, model = spec.partition("/")
    if not sep or not provider or not model:
        raise UsageError(f"expected PROVIDER/MODEL, got {spec!r}", hint="e.g. openai/gpt-5-mini")
    return provider, model


def find(cfg: Config, spec: str) -> Row:
    """One model by PROVIDER/MODEL: the cache first, then the catalog (dated ids and aliases
    resolve to their row), then the simulator. UsageError when nothing knows it."""
    from callm.catalog.models import lookup, vendors
    from callm.ledger.models import get, sync_times

    provider, model = split_spec(spec)
    pc = cfg.providers.get(provider)
    if pc is None and provider not in vendors() and provider != "sim":
        raise UsageError(
            f"unknown provider {provider!r}", hint="see `callm providers list` or `models list`"
        )
    hit = get(provider, model)
    if hit is not None:
        synced = sync_times().get(provider)
        return Row(hit, f"sync {_when(synced[0])}" if synced else "sync", pc is not None)
    if provider == "sim" or (pc is not None and pc.driver == "sim"):
        for m in _sim_rows(provider):
            if m.id == model:
                return Row(m, "sim", True)
    cat = lookup(
        provider, model, driver=pc.driver if pc else None, base_url=pc.base_url if pc else None
    )
    if cat is not None:
        return Row(replace(cat, provider=provider), "catalog", pc is not None)
    raise UsageError(
        f"unknown model {spec!r}: not in the model cache or the built-in catalog",
        hint=f"run `callm models sync {provider}` or `callm models list --provider {provider}`",
    )


def set_default(cfg: Config, spec: str) -> Config:
    """A copy of the config with `default_model = spec`, after checking that it resolves to a
    configured provider (or sim). The model itself may be one no list knows yet."""
    from callm.config.schema import updated
    from callm.endpoints import resolve_target

    resolve_target(cfg, spec)  # UsageError: unknown provider, alias loop, allowlist
    return updated(cfg, default_model=spec)


def known(cfg: Config, spec: str) -> bool:
    """Whether the cache, the catalog or the simulator knows the model `spec` resolves to."""
    from callm.endpoints import resolve_target

    t = resolve_target(cfg, spec)
    try:
        find(cfg, f"{t.provider}/{t.model}")
    except UsageError:
        return False
    return True
