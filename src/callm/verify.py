"""`providers verify` at engine level: is the key there, is the endpoint reachable, is the key
accepted, how fast. The check is the vendor's model-list call, which costs nothing; `--probe`
adds a 1-token completion. Checks run concurrently, each bounded by its own timeout.

No terminal code here: the CLI view passes callbacks for progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callm.errors import (
    AuthError,
    CallmError,
    CallTimeoutError,
    KeychainError,
    MissingKeyError,
    NetworkError,
    UsageError,
)

if TYPE_CHECKING:
    from callm.config.schema import Config, ProviderConfig
    from callm.types import Endpoint, Price

STAGES = ("key", "connect", "auth", "response", "timeout", "probe")
PROBE_PROMPT = "Reply with OK."
PROBE_INPUT_TOKENS = 12  # the prompt plus the vendor's chat framing, generously
GRACE_S = 0.5  # a worker thread gets this long past its own timeout before it is abandoned


@dataclass
class ProbeResult:
    model: str
    estimated_cost_usd: float | None = None
    price_source: str | None = None
    ok: bool = False
    latency_ms: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ok": self.ok,
            "estimated_cost_usd": self.estimated_cost_usd,
            "cost_usd": self.cost_usd,
            "price_source": self.price_source,
            "latency_ms": self.latency_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "error": self.error,
        }


@dataclass
class VerifyResult:
    name: str
    ok: bool = False
    stage: str | None = None  # the stage that failed; None when ok
    error: str | None = None  # one line, secrets scrubbed
    latency_ms: int | None = None  # the listing call
    models: int | None = None  # how many models the provider lists
    probe: ProbeResult | None = None

    def as_dict(self, with_probe: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "ok": self.ok,
            "stage": self.stage,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "models": self.models,
        }
        if with_probe:
            d["probe"] = self.probe.as_dict() if self.probe else None
        return d


def _scrub(text: str) -> str:
    from callm.secrets import scrub

    return scrub(text)


def _ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def classify(exc: BaseException, name: str, url: str) -> tuple[str, str]:
    """The stage a failure belongs to, and a one-line message for it."""
    if isinstance(exc, (MissingKeyError, KeychainError)):
        return "key", exc.message
    if isinstance(exc, CallTimeoutError):
        if "connect phase" in exc.message:
            return "connect", f"cannot reach {url}: no connection within the timeout"
        return "timeout", exc.message
    if isinstance(exc, NetworkError):
        msg = exc.message
        return "connect", msg if msg.startswith("cannot reach") else f"cannot reach {url}: {msg}"
    if isinstance(exc, AuthError):
        status = f"HTTP {exc.status}: " if exc.status else ""
        return "auth", (
            f"key rejected ({status}{exc.message}); run `callm providers set-key {name}`"
        )
    if isinstance(exc, CallmError):
        status = f"HTTP {exc.status}: " if exc.status else ""
        return "response", f"{exc.summary()} ({status}{exc.message})"
    return "response", f"internal error: {type(exc).__name__}: {exc}"


def verify_one(
    name: str,
    pc: ProviderConfig,
    key_override: str | None = None,
    timeout: float = 10.0,
    probe_model: str | None = None,
    probe_price: Price | None = None,
) -> VerifyResult:
    """Check one provider in the calling thread. Never raises for a provider failure."""
    from callm.endpoints import endpoint

    res = VerifyResult(name=name)
    url = pc.base_url or ""
    try:
        ep = endpoint(name, pc, key_override=key_override)
        url = ep.base_url
        _check_listing(res, ep, pc, timeout)
    except Exception as exc:  # every failure becomes a stage and a message
        res.stage, msg = classify(exc, name, url)
        res.error = _scrub(msg)
        return res
    if probe_model:
        res.probe = run_probe(ep, pc, probe_model, timeout, probe_price)
        if not res.probe.ok:
            res.stage = "probe"
            res.error = f"probe {probe_model}: {res.probe.error}"
            return res
    res.ok = True
    return res


def _check_listing(res: VerifyResult, ep: Endpoint, pc: ProviderConfig, timeout: float) -> None:
    from callm.listing import list_endpoint

    start = time.monotonic()
    try:
        models = list_endpoint(ep, timeout, connect_timeout=min(pc.connect_timeout, timeout))
    finally:
        res.latency_ms = _ms(start)
    res.models = len(models)


def run_probe(
    ep: Endpoint,
    pc: ProviderConfig,
    model: str,
    timeout: float,
    price: Price | None = None,
) -> ProbeResult:
    """A 1-token completion, sent without streaming; its cost is estimated from `price`."""
    from callm import transport
    from callm.drivers import get_driver
    from callm.drivers.base import StreamAccumulator
    from callm.drivers.limits import limits_for
    from callm.types import ChatRequest, Message

    # one token, or the vendor's minimum (the Responses API refuses fewer than 16)
    least = limits_for(ep.driver).min_max_tokens
    out = ProbeResult(model=model)
    out.estimated_cost_usd, out.price_source = estimate_probe_cost(price, least)
    req = ChatRequest(
        model=model, messages=(Message("user", PROBE_PROMPT),), max_tokens=least, stream=False
    )
    acc = StreamAccumulator()
    start = time.monotonic()
    try:
        driver = get_driver(ep.driver)
        if getattr(driver, "local", False):
            for ev in driver.run(ep, req):
                acc.add(ev)
        else:
            connect = min(pc.connect_timeout, timeout)
            t = transport.Timeouts(connect=connect, read=timeout, deadline=timeout)
            resp = transport.send(driver.chat_request(ep, req), t, provider=ep.name, tls=ep.tls)
            if resp.status >= 400:
                raise driver.parse_error(resp.status, resp.headers, resp.body)
            for ev in driver.parse_response(resp.body):
                acc.add(ev)
        result = acc.finish()
    except Exception as exc:
        out.latency_ms = _ms(start)
        what = exc.one_line() if isinstance(exc, CallmError) else f"{type(exc).__name__}: {exc}"
        out.error = _scrub(what)
        return out
    out.latency_ms = _ms(start)
    out.ok = True
    if result.usage is not None:
        out.input_tokens = result.usage.input_tokens
        out.output_tokens = result.usage.output_tokens
        out.cost_usd = _cost(price, out.input_tokens, out.output_tokens)
    return out


def _cost(price: Price | None, tokens_in: int, tokens_out: int) -> float | None:
    if price is None or price.input is None or price.output is None:
        return None
    return (tokens_in * price.input + tokens_out * price.output) / 1_000_000


def estimate_probe_cost(
    price: Price | None, tokens_out: int = 1
) -> tuple[float | None, str | None]:
    """What a probe costs at most: a short prompt in, one token (or the vendor's minimum)
    out. None = unknown."""
    return _cost(price, PROBE_INPUT_TOKENS, tokens_out), (price.source if price else None)


def probe_price(cfg: Config, name: str, pc: ProviderConfig, model: str) -> Price | None:
    """The price a probe is estimated with: the simulator's own, else the pricing module's
    answer (overrides > last sync > catalog). None when unknown."""
    if pc.driver == "sim":
        from callm.drivers import get_driver
        from callm.endpoints import endpoint

        rows = get_driver("sim").list_models(endpoint(name, pc))
        return next((m.price for m in rows if m.id == model), None)
    from callm.catalog.models import catalog_price
    from callm.pricing import price_for

    try:
        price: Price | None = price_for(cfg, name, model)
    except CallmError:
        price = None
    if price is None or (price.input is None and price.output is None):
        # a provider named freely ("work-openai") still finds its vendor's catalog row
        price = catalog_price(name, model, driver=pc.driver, base_url=pc.base_url)
    return price


def probe_plan(
    cfg: Config, names: list[str], spec: str | None, named: bool = True
) -> dict[str, str]:
    """Which provider gets a probe with which model. `spec` is PROVIDER/MODEL, an alias or a
    bare provider name (that provider only), or a bare model id (every provider checked).
    When no provider was named (`named=False`), the probe's provider joins `names`."""
    if not spec:
        return {}
    from callm.endpoints import SIM, resolve_target

    head = spec.partition("/")[0]
    if spec in cfg.aliases or head in cfg.providers or head == SIM:
        target = resolve_target(cfg, spec)
        if target.provider not in names and not named:
            names.append(target.provider)
        if target.provider not in names:
            raise UsageError(
                f"--probe {spec} is for {target.provider}, which is not being verified",
                hint=f"add {target.provider} to the providers to verify",
            )
        return {target.provider: target.model}
    if "/" in spec:  # PROVIDER/MODEL with a provider that is not configured
        raise UsageError(
            f"--probe {spec}: no provider {head!r} is configured",
            hint=f"name the provider first: --probe {names[0] if names else 'PROVIDER'}/{spec}",
        )
    return dict.fromkeys(names, spec)


def select(cfg: Config, names: list[str]) -> list[str]:
    """The providers to check: those named (each must exist), else every enabled one."""
    from callm.endpoints import provider_config

    if not names:
        return sorted(n for n, pc in cfg.providers.items() if pc.enabled)
    unique = list(dict.fromkeys(names))
    for n in unique:
        provider_config(cfg, n)  # UsageError for an unknown name
    return unique


Callback = Callable[[VerifyResult], None]


@dataclass
class Plan:
    """What a verify run will do, known before it starts (so estimates can be shown first)."""

    names: list[str]
    probes: dict[str, str]  # provider -> model to probe
    prices: dict[str, Price | None]  # provider -> price the probe is estimated with

    def estimate(self, name: str) -> tuple[float | None, str | None]:
        return estimate_probe_cost(self.prices.get(name))


def prepare(cfg: Config, names: list[str], probe: str | None = None) -> Plan:
    """Raises UsageError (exit 2) for an unknown provider or a --probe that fits none."""
    from callm.endpoints import provider_config

    chosen = select(cfg, names)
    probes = probe_plan(cfg, chosen, probe, named=bool(names))
    prices = {n: probe_price(cfg, n, provider_config(cfg, n), m) for n, m in probes.items()}
    return Plan(chosen, probes, prices)


def verify_many(
    cfg: Config,
    names: list[str],
    timeout: float = 10.0,
    probe: str | None = None,
    on_result: Callback | None = None,
    record: bool = True,
    plan: Plan | None = None,
    on_start: Callable[[], None] | None = None,
) -> list[VerifyResult]:
    """Check providers concurrently; results in the order of `names` (after `select`).
    A check that has not answered by its deadline is reported as a timeout and abandoned.
    `on_start` runs once the checks are sent: work that can overlap their waiting."""
    from callm.endpoints import provider_config
    from callm.fanout import fan_out

    run = plan or prepare(cfg, names, probe)
    chosen = run.names

    def job(n: str) -> VerifyResult:
        return verify_one(
            n,
            provider_config(cfg, n),
            timeout=timeout,
            probe_model=run.probes.get(n),
            probe_price=run.prices.get(n),
        )

    def as_result(n: str, value: VerifyResult | BaseException | None) -> VerifyResult:
        if isinstance(value, VerifyResult):
            return value
        if value is None:
            return VerifyResult(
                n,
                stage="timeout",
                error=f"no answer within {timeout:g} s",
                latency_ms=round(timeout * 1000),
            )
        return VerifyResult(n, stage="response", error=_scrub(f"internal error: {value}"))

    def done(n: str, value: VerifyResult | BaseException) -> None:
        if on_result:
            on_result(as_result(n, value))

    _warm_up(cfg, chosen)
    budget = timeout * (2 if run.probes else 1) + GRACE_S
    raw = fan_out(chosen, job, budget, done, on_start)
    results = [as_result(n, raw.get(n)) for n in chosen]
    if on_result:
        for r in results:
            if r.name not in raw:  # timed out: reported now
                on_result(r)
    if record:
        _record({r.name: r for r in results})
    return results


def _warm_up(cfg: Config, names: list[str]) -> None:
    """Import the drivers and build the TLS context once, before the threads start, so the
    checks do not queue on the import lock and each latency measures the network alone."""
    from callm.drivers import get_driver
    from callm.endpoints import provider_config

    configs = [provider_config(cfg, n) for n in names]
    for d in {pc.driver for pc in configs}:
        try:
            get_driver(d)
        except Exception:  # reported by the check itself, with its provider's name
            continue
    from callm import transport

    transport.warm_up([pc.base_url or "" for pc in configs])


def _record(results: dict[str, VerifyResult]) -> None:
    from callm.provider_state import record_verifies

    try:
        record_verifies({n: r.ok for n, r in results.items()})
    except Exception:  # CallmError or sqlite3.Error (imported lazily)
        pass  # an unwritable data DB must not turn a passing check into a failure
