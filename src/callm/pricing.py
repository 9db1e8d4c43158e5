"""Prices, costs and estimates. USD per million tokens; an unknown price is None, never 0.

Where a price comes from, first hit per field wins:
config `[pricing."PATTERN"]` overrides (most specific pattern first) > prices stored by
`models sync` > the built-in catalog. `Price.source` says which layers were used.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from callm.errors import BudgetError
from callm.types import Price, Usage

if TYPE_CHECKING:
    from callm.config.schema import Config

_FIELDS = ("input", "output", "cached_input", "cache_write")
_WILD = re.compile(r"\[[^\]]*\]|[*?]")
TOKENS_PER_MESSAGE = 4  # role markers and separators the vendor adds around each message
ESTIMATE_METHOD = "offline estimate: ~4 chars/token"


# ---- which price ----------------------------------------------------------------------------


SIM_PRICE = Price(input=0.0, output=0.0, cached_input=0.0, cache_write=0.0, source="sim (free)")


def price_for(config: Config | None, provider: str, model: str) -> Price:
    """The price of provider/model: overrides > synced vendor prices > catalog > unknown.

    An override may give only some fields; the others come from the next layer down. Once a
    layer gives `input`, cached rates from lower layers are not mixed in (they belong to a
    different input price): cost() then charges cached tokens at that layer's input rate.
    """
    layers: list[tuple[str, Price]] = [
        (f"override {key}", Price(**asdict(ov)))
        for key, ov in matching_overrides(config, provider, model)
    ]
    hints = _hints(config, provider)
    for found in (_synced_price(provider, model), _catalog_price(provider, model, hints)):
        if found is not None:
            layers.append((found.source, found))
    merged: dict[str, float | None] = dict.fromkeys(_FIELDS)
    input_from: int | None = None
    used: list[str] = []
    for i, (source, price) in enumerate(layers):
        gave = False
        for f in _FIELDS:
            value = getattr(price, f)
            if value is None or merged[f] is not None:
                continue
            if f in ("cached_input", "cache_write") and input_from not in (None, i):
                continue
            merged[f] = value
            gave = True
        if merged["input"] is not None and input_from is None:
            input_from = i
        if gave:
            used.append(source)
    if not used:
        return Price()
    return Price(**merged, source=" + ".join(used))


def matching_overrides(config: Config | None, provider: str, model: str) -> list[tuple[str, Any]]:
    """`[pricing]` entries that match, most specific first.

    A key with a `/` is matched against "provider/model" ("lab/*", "openai/gpt-4o*",
    "*/gpt-4o"); a key without one against the provider name or the model id. fnmatch
    wildcards, case-insensitive. Most specific = most non-wildcard characters, then fewest
    wildcards.
    """
    if config is None or not config.pricing:
        return []
    full = f"{provider}/{model}".lower()
    hits = []
    for key, ov in config.pricing.items():
        pat = key.lower()
        if "/" in pat:
            ok = fnmatchcase(full, pat)
        else:
            ok = fnmatchcase(provider.lower(), pat) or fnmatchcase(model.lower(), pat)
        if ok:
            hits.append((key, ov))
    return sorted(hits, key=lambda kv: _specificity(kv[0]), reverse=True)


def _specificity(pattern: str) -> tuple[int, int]:
    wild = _WILD.findall(pattern)
    return len(_WILD.sub("", pattern)), -len(wild)


def _synced_price(provider: str, model: str) -> Price | None:
    try:
        from callm.ledger.models import synced_price
    except ImportError:
        return None
    try:
        return synced_price(provider, model)
    except Exception:  # a price source that fails (DB unreadable...) counts as absent
        return None


def _hints(config: Config | None, provider: str) -> dict[str, Any]:
    """A configured provider's driver and base URL let the catalog recognise the vendor behind
    a custom name (a "work" provider on api.openai.com is priced as openai)."""
    pc = config.providers.get(provider) if config is not None else None
    return {"driver": pc.driver, "base_url": pc.base_url} if pc is not None else {}


def _catalog_price(provider: str, model: str, hints: dict[str, Any]) -> Price | None:
    if hints.get("driver", "sim" if provider == "sim" else None) == "sim":
        return SIM_PRICE  # the offline simulator costs nothing, whatever the model name
    try:
        from callm.catalog.models import catalog_price
    except ImportError:
        return None
    try:
        return catalog_price(provider, model, **hints)
    except Exception:
        return None


def _max_output(provider: str, model: str, hints: dict[str, Any]) -> int | None:
    try:
        from callm.catalog.models import lookup
    except ImportError:
        return None
    try:
        info = lookup(provider, model, **hints)
    except Exception:
        return None
    return getattr(info, "max_output", None) if info is not None else None


# ---- what it costs --------------------------------------------------------------------------


def cost(usage: Usage, price: Price) -> float | None:
    """USD for `usage` at `price`; None when a rate the usage needs is unknown.

    input_tokens counts every prompt token (SPEC), so the uncached part is input minus
    cache-read minus cache-write tokens, at the input rate; cache reads at cached_input and
    cache writes at cache_write (each falling back to the input rate); output at output.
    """
    rates = (price.input, price.output, price.cached_input, price.cache_write)
    if all(r is None for r in rates):
        return None
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    write_rate = price.cache_write if price.cache_write is not None else price.input
    plain = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    total = 0.0
    for tokens, rate in (
        (plain, price.input),
        (usage.cache_read_tokens, cached_rate),
        (usage.cache_write_tokens, write_rate),
        (usage.output_tokens, price.output),
    ):
        if tokens <= 0:
            continue
        if rate is None:
            return None
        total += tokens * rate
    # a price near the float limit (1e308: the config refuses only inf) times a token count
    # overflows; say unknown, which --max-cost refuses, rather than pass on inf
    return total / 1_000_000 if math.isfinite(total) else None


# ---- before the call ------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    input_tokens: int
    max_output_tokens: int | None  # None: neither --max-tokens nor the catalog knows
    min_cost: float | None  # the prompt alone
    max_cost: float | None  # prompt + max output; None = unknown worst case
    method: str
    price: Price
    provider: str = ""
    model: str = ""


def estimate_text_tokens(text: str) -> int:
    """Offline, character based: ~4 ASCII characters per token, 1 per other character
    (CJK, emoji: errs high, the safe side for a budget)."""
    if not text:
        return 0
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 4 + (len(text) - ascii_chars))


def estimate_prompt_tokens(text: str, messages: int = 1) -> int:
    """Offline, character based estimate of a prompt: text tokens + per-message overhead."""
    return estimate_text_tokens(text) + TOKENS_PER_MESSAGE * max(messages, 0)


def estimate(
    config: Config | None,
    provider: str,
    model: str,
    prompt_text: str,
    max_tokens: int | None,
    *,
    messages: int = 1,
    extra: int = 0,
) -> Estimate:
    """What a call may cost before it is made: best case (no output) and worst case (the
    full --max-tokens, else the model's max output from the catalog)."""
    price = price_for(config, provider, model)
    n_in = estimate_prompt_tokens(prompt_text, messages) + extra  # extra: attachments
    max_out = (
        max_tokens
        if max_tokens is not None
        else _max_output(provider, model, _hints(config, provider))
    )
    min_cost = cost(Usage(input_tokens=n_in), price)
    if max_out is not None:
        max_cost = cost(Usage(input_tokens=n_in, output_tokens=max_out), price)
    elif price.output == 0:  # free output: the length does not matter
        max_cost = min_cost
    else:
        max_cost = None
    return Estimate(n_in, max_out, min_cost, max_cost, ESTIMATE_METHOD, price, provider, model)


def check_budget(estimate: Estimate, max_cost: float) -> None:
    """Refuse (BudgetError, exit 5) when the worst case exceeds max_cost or is unknown."""
    where = {"provider": estimate.provider or None, "model": estimate.model or None}
    if estimate.max_cost is None:
        price = estimate.price
        if estimate.min_cost is not None and price.output is not None:
            raise BudgetError(
                f"cannot check --max-cost ${max_cost:g}: the worst case is unknown"
                " (the model's max output is unknown)",
                hint="pass --max-tokens N to bound the reply",
                **where,
            )
        missing = [f for f in ("input", "output") if getattr(price, f) is None]
        what = " and ".join(missing) or "cache"
        raise BudgetError(
            f"cannot check --max-cost ${max_cost:g}: the {what} price of this model is unknown",
            hint='set it in the config ([pricing."provider/model"]) or run `callm models sync`',
            **where,
        )
    if estimate.max_cost > max_cost:
        raise BudgetError(
            f"worst case {format_usd(estimate.max_cost)} exceeds --max-cost"
            f" ${max_cost:g} (~{estimate.input_tokens} input tokens, up to"
            f" {estimate.max_output_tokens} output tokens; prices: {estimate.price.source})",
            hint="raise --max-cost, or lower --max-tokens",
            **where,
        )


def format_usd(value: float | None) -> str:
    """$0.0123 style, enough digits for fractions of a cent; "unknown" for None."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if abs(value) < 0.000001:
        return "<$0.000001"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.6f}".rstrip("0").rstrip(".")
