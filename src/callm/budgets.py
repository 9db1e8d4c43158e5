"""Spending limits from `[budgets]`: which limits a call falls under, the calendar period of
each, whether the call's worst case fits, and the warning past `alert_at`.

The engine asks a Guard to admit each model before calling it; the Guard reserves the worst
case in the ledger (ledger/reservations.py) and the call's usage row releases it. Models
priced at zero (local, sim) are always admitted and reserve nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from callm.errors import BudgetLimitError, CallmError
from callm.ledger.reservations import Scope, Tally

if TYPE_CHECKING:
    from callm.config.schema import Config
    from callm.endpoints import Target
    from callm.pricing import Estimate

PERIODS = ("daily", "monthly")
EPSILON = 1e-9  # float sums: ten reservations of $0.01 fit a $0.10 budget


@dataclass(frozen=True)
class Limit:
    provider: str | None  # None = every call
    period: str  # daily | monthly
    usd: float
    alert_at: float

    @property
    def name(self) -> str:
        return f"{self.provider} {self.period}" if self.provider else self.period

    @property
    def config_key(self) -> str:
        where = f"budgets.providers.{self.provider}" if self.provider else "budgets"
        return f"{where}.{self.period}"


def limits(cfg: Config, provider: str | None = None) -> list[Limit]:
    """Every configured limit, or those a call to `provider` falls under."""
    b = cfg.budgets
    out = [Limit(None, p, getattr(b, p), b.alert_at) for p in PERIODS if getattr(b, p) is not None]
    for name, pl in sorted(b.providers.items()):
        if provider is not None and name != provider:
            continue
        out += [
            Limit(name, p, getattr(pl, p), b.alert_at)
            for p in PERIODS
            if getattr(pl, p) is not None
        ]
    return out


def zone(cfg: Config) -> tzinfo | None:
    """The configured time zone; None = the machine's local time."""
    if not cfg.budgets.timezone:
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(cfg.budgets.timezone)


def period_bounds(period: str, tz: tzinfo | None, now: float) -> tuple[datetime, datetime]:
    """The calendar day or month containing `now`, in `tz` (naive local time when None:
    datetime.timestamp() then applies the local offset of each end, DST included)."""
    t = datetime.fromtimestamp(now, tz)
    start = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        end = start + timedelta(days=1)  # wall-clock arithmetic: a 23 or 25 h day ends right
    else:
        start = start.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def scope(limit: Limit, tz: tzinfo | None, now: float) -> Scope:
    start, end = period_bounds(limit.period, tz, now)
    return Scope(limit.provider, start.timestamp(), end.timestamp())


def usd(value: float) -> str:
    if value == 0 or abs(value) >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.6f}".rstrip("0")


Notice = Callable[[str], None]


class Guard:
    """Admits the models of one call against the budgets and holds one reservation at a
    time (moved when the call falls back to another model)."""

    def __init__(self, cfg: Config, prompt: str, messages: int, max_tokens: int | None) -> None:
        self.cfg = cfg
        self.prompt = prompt
        self.messages = messages
        self.max_tokens = max_tokens
        self.reservation: int | None = None

    def worst_case(self, target: Target) -> Estimate:
        from callm.pricing import estimate

        return estimate(
            self.cfg,
            target.provider,
            target.model,
            self.prompt,
            self.max_tokens,
            messages=self.messages,
        )

    def admit(self, target: Target, notice: Notice) -> None:
        """Reserve the target's worst case, or raise BudgetLimitError (exit 5)."""
        import time

        from callm.ledger.reservations import reserve

        lims = limits(self.cfg, target.provider)
        if not lims:
            return
        est = self.worst_case(target)
        worst = est.max_cost
        if worst == 0:
            return  # free (local, sim): never refused, nothing to hold
        if worst is None:
            if not self.cfg.budgets.allow_unpriced:
                raise _unpriced(target, est)
            return  # allowed; an unknown cost is stored as NULL and counts nothing
        now = time.time()
        tz = zone(self.cfg)
        warnings: list[str] = []

        def decide(tallies: list[Tally]) -> None:
            for lim, t in zip(lims, tallies, strict=True):
                left = lim.usd - t.total
                if worst > left + EPSILON:
                    raise _over(lim, t, worst, target, period_bounds(lim.period, tz, now)[1])
                if t.total >= lim.alert_at * lim.usd - EPSILON:
                    warnings.append(_alert(lim, t))

        try:
            self.reservation = reserve(
                target.provider,
                target.model,
                worst,
                [scope(lim, tz, now) for lim in lims],
                decide,
                replace=self.reservation,
            )
        except BudgetLimitError:
            raise
        except CallmError as exc:  # the ledger (a shared PostgreSQL one) cannot be reached
            if not self.cfg.budgets.fail_open:
                raise BudgetLimitError(
                    f"cannot check the budget for {target.label}: {exc.message}",
                    hint="budgets.fail_open = true lets paid calls through when it cannot",
                ) from None
            notice(f"budget not checked ({exc.message}); calling anyway (budgets.fail_open)")
            return
        for w in warnings:
            notice(w)

    def first_fitting(self, chain: list[Target], notice: Notice) -> list[Target]:
        """The chain from the first model the budgets admit (reserved for it). A model that
        would break a budget is passed over for a cheaper fallback; none fits -> the first
        model's refusal."""
        first_error: BudgetLimitError | None = None
        for i, target in enumerate(chain):
            try:
                self.admit(target, notice)
            except BudgetLimitError as exc:
                first_error = first_error or exc
                if i + 1 < len(chain):
                    notice(f"{target.label} would break a budget ({exc.message}); trying the next")
                continue
            return chain[i:]
        assert first_error is not None
        raise first_error

    def abandon(self) -> None:
        """The call never reached the ledger: give the reservation back now."""
        if self.reservation is None:
            return
        from callm.ledger.reservations import release_now

        try:
            release_now(self.reservation)
        except Exception:  # it expires with its process anyway
            pass
        self.reservation = None


def guard_for(cfg: Config, prompt: str, messages: int, max_tokens: int | None) -> Guard | None:
    """None when no budget is configured (the common case costs nothing)."""
    if not limits(cfg):
        return None
    return Guard(cfg, prompt, messages, max_tokens)


def _when(end: datetime) -> str:
    return end.strftime("%Y-%m-%d %H:%M") + (f" {end.tzname()}" if end.tzinfo else "")


def _over(lim: Limit, t: Tally, worst: float, target: Target, end: datetime) -> BudgetLimitError:
    left = max(lim.usd - t.total, 0.0)
    held = f" ({usd(t.reserved)} held by calls in flight)" if t.reserved > EPSILON else ""
    return BudgetLimitError(
        f"the {lim.name} budget of {usd(lim.usd)} has {usd(left)} left{held} until"
        f" {_when(end)}; this call may cost up to {usd(worst)}",
        hint=f"lower --max-tokens, pass a cheaper --fallback, or raise {lim.config_key}",
        provider=target.provider,
        model=target.model,
    )


def _unpriced(target: Target, est: Estimate) -> BudgetLimitError:
    if est.price.input is not None and est.price.output is not None:
        why, hint = "its longest reply is unknown", "pass --max-tokens N to bound the reply"
    else:
        why = "its price is unknown"
        hint = (
            f'set [pricing."{target.label}"], run `callm models sync`,'
            " or set allow_unpriced = true in [budgets]"
        )
    return BudgetLimitError(
        f"a budget applies and the worst case of this call cannot be known: {why}",
        hint=hint,
        provider=target.provider,
        model=target.model,
    )


def _alert(lim: Limit, t: Tally) -> str:
    share = t.total / lim.usd if lim.usd else 1.0
    return (
        f"warning: {share:.0%} of the {lim.name} budget used"
        f" ({usd(t.total)} of {usd(lim.usd)}; alert_at = {lim.alert_at:g})"
    )


def status(cfg: Config, now: float | None = None) -> list[dict[str, Any]]:
    """Each budget: spent, held by calls in flight, limit, left, period end (`usage budget`)."""
    import time

    from callm.ledger.reservations import tallies

    now = time.time() if now is None else now
    tz = zone(cfg)
    lims = limits(cfg)
    if not lims:
        return []
    counted = tallies([scope(lim, tz, now) for lim in lims])
    rows = []
    for lim, t in zip(lims, counted, strict=True):
        start, end = (d.astimezone(tz) for d in period_bounds(lim.period, tz, now))
        rows.append(
            {
                "budget": lim.name,
                "provider": lim.provider,
                "period": lim.period,
                "limit_usd": lim.usd,
                "spent_usd": round(t.spent, 9),
                "reserved_usd": round(t.reserved, 9),
                "left_usd": round(max(lim.usd - t.total, 0.0), 9),
                "used": round(t.total / lim.usd, 4) if lim.usd else 1.0,
                "alert": t.total >= lim.alert_at * lim.usd,
                "period_start": start.isoformat(timespec="seconds"),
                "period_end": end.isoformat(timespec="seconds"),
            }
        )
    return rows
