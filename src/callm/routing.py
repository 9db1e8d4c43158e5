"""Routes: `[routes.NAME]` names several models and a strategy; a call to NAME goes to the
models that can serve the request (vision, tools, context window), in the strategy's order,
the rest being its fallbacks. Used by `callm chat -m NAME`, `callm serve` and
`callm routes explain`."""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callm.endpoints import Target, resolve_target
from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.call_types import CallSpec
    from callm.config.schema import Config, RouteConfig

_counters: dict[str, itertools.count[int]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Needs:
    """What a request needs from a model."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    vision: bool = False
    tools: bool = False


@dataclass
class Choice:
    targets: list[Target]  # in the order they will be tried
    why: list[str] = field(default_factory=list)  # one line per candidate and the strategy


def is_route(cfg: Config, name: str | None) -> bool:
    return bool(name) and name in cfg.routes


def choose(cfg: Config, name: str, needs: Needs) -> Choice:
    """The route's candidates that fit `needs`, ordered by its strategy. UsageError when none
    fits (the reasons are in the message)."""
    route = cfg.routes[name]
    why: list[str] = []
    fit: list[tuple[Target, float]] = []
    weights = route.weights or [1.0] * len(route.models)
    for spec, weight in zip(route.models, weights, strict=False):
        target = resolve_target(cfg, spec)
        reason = _unfit(cfg, target, needs)
        if reason:
            why.append(f"{target.label}: skipped ({reason})")
        else:
            fit.append((target, weight))
    if not fit:
        raise UsageError(
            f"no model of route {name!r} can serve this request",
            hint="; ".join(why) or None,
        )
    ordered, how = _order(cfg, name, route, fit, needs)
    why.append(how)
    return Choice([t for t, _ in ordered], why)


def _unfit(cfg: Config, target: Target, needs: Needs) -> str | None:
    from callm.model_query import find

    try:
        info = find(cfg, target.label).info
    except UsageError:
        return None  # a model no list knows: nothing says it cannot
    caps = set(info.capabilities)
    known = bool(caps)  # a row without capabilities says nothing either way
    if needs.vision and known and "vision" not in caps:
        return "no vision"
    if needs.tools and known and "tools" not in caps:
        return "no tool use"
    window = info.context_window
    if window and needs.prompt_tokens + needs.output_tokens > window:
        return f"~{needs.prompt_tokens} prompt tokens exceed its {window}-token context"
    return None


def _order(
    cfg: Config,
    name: str,
    route: RouteConfig,
    fit: list[tuple[Target, float]],
    needs: Needs,
) -> tuple[list[tuple[Target, float]], str]:
    s = route.strategy
    if s == "cheapest":
        costs = {t.label: _cost(cfg, t, needs) for t, _ in fit}
        ordered = sorted(fit, key=lambda tw: (costs[tw[0].label] is None, costs[tw[0].label] or 0))
        shown = ", ".join(f"{t.label} {_usd(costs[t.label])}" for t, _ in ordered)
        return ordered, f"cheapest for ~{needs.prompt_tokens}+{needs.output_tokens} tokens: {shown}"
    if s == "fastest":
        lat = p50_latencies(cfg, [t for t, _ in fit])
        ordered = sorted(
            fit, key=lambda tw: (lat.get(tw[0].label) is None, lat.get(tw[0].label) or 0)
        )
        shown = ", ".join(
            f"{t.label} {lat[t.label]} ms" if t.label in lat else f"{t.label} no data"
            for t, _ in ordered
        )
        return ordered, f"fastest by p50 latency over the last 24 h: {shown}"
    if s == "round_robin":
        with _lock:
            n = next(_counters.setdefault(name, itertools.count()))
        k = n % len(fit)
        return fit[k:] + fit[:k], f"round robin: turn {n + 1}, starting at {fit[k][0].label}"
    if s == "weighted":
        total = sum(w for _, w in fit)
        if total <= 0:
            return fit, "weighted: every fitting model has weight 0, so in order"
        pick = random.choices(range(len(fit)), weights=[w for _, w in fit])[0]
        rest = fit[:pick] + fit[pick + 1 :]
        first = fit[pick]
        return [
            first,
            *rest,
        ], f"weighted: picked {first[0].label} (weight {first[1]:g} of {total:g})"
    return fit, "priority: in the order listed, the next ones as fallbacks"


def _cost(cfg: Config, target: Target, needs: Needs) -> float | None:
    from callm.pricing import cost, price_for
    from callm.types import Usage

    try:
        price = price_for(cfg, target.provider, target.model)
    except UsageError:
        return None
    return cost(Usage(input_tokens=needs.prompt_tokens, output_tokens=needs.output_tokens), price)


def _usd(v: float | None) -> str:
    return "price unknown" if v is None else f"${v:.6f}"


def p50_latencies(cfg: Config, targets: list[Target]) -> dict[str, int]:
    """label -> median latency (ms) of its successful calls in the last 24 hours."""
    from callm.errors import CallmError
    from callm.ledger.backend import errors, exists
    from callm.ledger.db import connect

    if not exists():  # the configured ledger: a team's PostgreSQL one when set
        return {}
    out: dict[str, int] = {}
    since = time.time() - 86400
    try:
        conn = connect()
        try:
            for t in targets:
                rows = conn.execute(
                    "SELECT latency_ms FROM usage WHERE provider = ? AND model = ? AND ts >= ?"
                    " AND outcome IN ('ok', 'fallback') AND latency_ms >= 0 ORDER BY latency_ms",
                    (t.provider, t.model, since),
                ).fetchall()
                if rows:
                    out[t.label] = int(rows[(len(rows) - 1) // 2][0])
        finally:
            conn.close()
    except (CallmError, *errors()):  # a ledger out of reach: no data, the call still goes
        return {}
    return out


def needs_for(spec: CallSpec) -> Needs:
    """What a call needs: its estimated prompt size, images, tools."""
    from callm.pricing import estimate_prompt_tokens

    text = "\n".join([spec.system or "", *(m.content for m in spec.messages)])
    return Needs(
        prompt_tokens=estimate_prompt_tokens(text, max(1, len(spec.messages))),
        output_tokens=spec.max_tokens or 0,
        vision=any(m.images for m in spec.messages),
        tools=bool(spec.tools),
    )
