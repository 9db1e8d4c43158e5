"""The end of a call: its usage settled (reported, or estimated offline and labelled so), its
cost, and its one usage row in the ledger."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from callm.errors import CallmError
from callm.types import Usage

if TYPE_CHECKING:
    from callm.call_types import CallOutcome, CallSpec
    from callm.config.schema import Config


def settle_usage(cfg: Config, spec: CallSpec, out: CallOutcome) -> None:
    """Reported usage if the vendor sent it; otherwise an offline estimate, labelled so."""
    from callm.pricing import cost, estimate_prompt_tokens, estimate_text_tokens, price_for

    target = out.target
    assert target is not None
    reported = out.result.usage
    if reported is not None and not trusted(reported):
        reported = None  # e.g. negative counts from a broken proxy: estimate instead
    produced = out.result.text + out.result.reasoning
    complete = out.error is None and not out.interrupted
    if reported is not None and (complete or reported.output_tokens > 0 or not produced):
        out.usage, out.usage_source = reported, "reported"
    else:
        # No usage, or a stream cut short before its final usage report: estimate offline
        # from what we sent and what arrived, and say so.
        prompt = "\n".join(m.content for m in spec.messages) + (spec.system or "")
        out.usage = Usage(
            input_tokens=(reported.input_tokens if reported and reported.input_tokens else 0)
            or (estimate_prompt_tokens(prompt) if out.attempts else 0),
            output_tokens=estimate_text_tokens(produced) if produced else 0,
            cache_read_tokens=reported.cache_read_tokens if reported else 0,
            cache_write_tokens=reported.cache_write_tokens if reported else 0,
        )
        out.usage_source = "estimated"
    try:
        out.price = price_for(cfg, target.provider, target.model)
        out.cost_usd = cost(out.usage, out.price)
    except CallmError:
        out.price, out.cost_usd = None, None


def trusted(u: Usage) -> bool:
    """Reported counts are used only when every one is a non-negative integer."""
    return all(type(v) is int and v >= 0 for v in u.as_dict().values())


def record_call(
    cfg: Config, spec: CallSpec, out: CallOutcome, started_at: float, reservation: int | None
) -> None:
    from callm.conversations import log_columns
    from callm.ledger.usage import UsageRow, record

    t = out.target
    assert t is not None
    err = out.error
    kind = None if err is None else err.kind
    if out.interrupted:
        kind = out.interrupted_as
    row = UsageRow(
        ts=started_at,
        provider=t.provider,
        model=t.model,
        driver=t.config.driver,
        input_tokens=out.usage.input_tokens,
        output_tokens=out.usage.output_tokens,
        cache_read_tokens=out.usage.cache_read_tokens,
        cache_write_tokens=out.usage.cache_write_tokens,
        usage_source=out.usage_source,
        cost_usd=out.cost_usd,
        price_source=out.price.source if out.price else None,
        latency_ms=out.latency_ms,
        ttft_ms=out.ttft_ms,
        outcome=out.outcome,
        error_kind=kind,
        attempts=max(1, sum(a.tries for a in out.attempts)),
        attempts_json=json.dumps([a.as_dict() for a in out.attempts]),
        token=spec.token,
        **log_columns(cfg, spec, out),
    )
    record(row, release=reservation)
