"""One chat call end to end: resolve the chain of models, call each with retries, stream
events to a sink, and record exactly one usage row whatever happens.

Layers: this module calls drivers (sans-IO), transport (HTTP), secrets/endpoints (keys),
pricing and the ledger. It knows nothing about terminals: the CLI passes a sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from callm.call_record import record_call, settle_usage
from callm.call_types import Attempt, CallOutcome, CallSpec
from callm.drivers import get_driver
from callm.drivers.base import StreamAccumulator
from callm.endpoints import Target, endpoint, resolve_target
from callm.errors import (
    BadResponseError,
    CallmError,
    OutputClosed,
    StreamError,
)
from callm.retry import RetryPolicy, should_fall_back, wait_before_retry
from callm.types import (
    ChatRequest,
    Finished,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)

if TYPE_CHECKING:
    from callm.config.schema import Config

Sink = Callable[[StreamEvent], None]
Notice = Callable[[str], None]


class _Watch:
    """Wraps the sink: timing of the first token, and whether any text was shown."""

    __slots__ = ("first", "shown", "sink", "start")

    def __init__(self, sink: Sink, start: float) -> None:
        self.sink = sink
        self.start = start
        self.first: float | None = None
        self.shown = False

    def __call__(self, ev: StreamEvent) -> None:
        if not self.shown and type(ev) in (TextDelta, ReasoningDelta, ToolCallDelta):
            self.shown = True
            self.first = time.monotonic()
        self.sink(ev)


def call(cfg: Config, spec: CallSpec, sink: Sink, notice: Notice) -> CallOutcome:
    """Run the call with retries and fallbacks. Never raises CallmError: the outcome carries
    it. KeyboardInterrupt is recorded and re-raised."""
    out = CallOutcome()
    start = time.monotonic()
    started_at = time.time()
    guard = None
    try:
        chain = _chain(cfg, spec)  # usage errors (unknown model...) surface before any call
        guard = _budget_guard(cfg, spec)
        if guard is not None:  # [budgets]: reserve the worst case, or refuse (exit 5)
            chain = guard.first_fitting(chain, notice)
        out.target = chain[0]
        _run_chain(cfg, spec, chain, sink, notice, out, start, guard)
        if spec.schema is not None:
            from callm.schema_output import check_reply

            out.parsed = check_reply(out.result, spec.schema)
    except CallmError as exc:
        out.error = exc
    # Ctrl-C, SIGTERM, reader gone (a pipe, or the gateway's client: ClientGone)
    except (KeyboardInterrupt, BrokenPipeError, OutputClosed) as exc:
        out.interrupted = True
        out.interrupted_as = getattr(exc, "outcome", "interrupted")
        raise
    except BaseException as exc:  # a bug: recorded as an error, not as an interruption
        out.error = CallmError(f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        if not any(a.tries for a in out.attempts):  # else: set by the attempts themselves
            out.latency_ms = int((time.monotonic() - start) * 1000)
        if out.target is not None:
            settle_usage(cfg, spec, out)
            record_call(cfg, spec, out, started_at, guard.reservation if guard else None)
        elif guard is not None:
            guard.abandon()
    return out


def _budget_guard(cfg: Config, spec: CallSpec) -> Any:
    b = cfg.budgets
    if b.daily is None and b.monthly is None and not b.providers:
        return None  # no budget: chat does not even import the module
    from callm.budgets import guard_for

    prompt = "\n".join(m.content for m in spec.messages) + (spec.system or "")
    n = len(spec.messages) + (1 if spec.system else 0)
    return guard_for(cfg, prompt, n, spec.max_tokens)


def _chain(cfg: Config, spec: CallSpec) -> list[Target]:
    if spec.targets:
        return list(spec.targets)
    if spec.model and spec.model in cfg.routes:  # a route: its fitting models, in its order
        from callm.routing import choose, needs_for

        return choose(cfg, spec.model, needs_for(spec)).targets
    first = resolve_target(cfg, spec.model)
    names = list(spec.fallbacks)
    for key in (spec.model, first.label):
        if key and key in cfg.fallbacks:
            names += [n for n in cfg.fallbacks[key] if n not in names]
    chain = [first]
    for n in names:
        t = resolve_target(cfg, n)
        if t.label not in {c.label for c in chain}:
            chain.append(t)
    return chain


def _run_chain(
    cfg: Config,
    spec: CallSpec,
    chain: list[Target],
    sink: Sink,
    notice: Notice,
    out: CallOutcome,
    start: float,
    guard: Any = None,
) -> None:
    from callm import cooldown

    policy = RetryPolicy.from_config(cfg.retry)
    usable = cooldown.filter_chain(chain, notice)
    left = len(usable)
    last_error: CallmError | None = None
    tried: Target | None = None
    began: float | None = None
    for target in chain:
        if target not in usable:  # cooling down: shown in the attempts, not called
            out.attempts.append(
                Attempt(target.provider, target.model, "skipped", "cooldown", None, tries=0)
            )
            continue
        left -= 1
        if tried is not None and last_error is not None:
            notice(f"{tried.label} failed ({last_error.kind}); falling back to {target.label}")
        if guard is not None and target is not chain[0]:
            guard.admit(target, notice)  # the reservation moves to this model, or refusal
        out.target = target
        tried = target
        attempt = Attempt(target.provider, target.model, "ok")
        out.attempts.append(attempt)
        t0 = time.monotonic()
        began = began or t0
        try:
            _call_with_retries(target, spec, sink, notice, out, policy, attempt, start)
        except BaseException as exc:
            attempt.latency_ms = int((time.monotonic() - t0) * 1000)
            # the call's latency: first request to last answer, not the ledger or cooldown
            # bookkeeping around it (a locked data DB once turned 0.17 s into 10.87 s)
            out.latency_ms = int((time.monotonic() - began) * 1000)
            if not isinstance(exc, CallmError):
                interrupted = isinstance(exc, (KeyboardInterrupt, BrokenPipeError, OutputClosed))
                attempt.outcome = "interrupted" if interrupted else "error"
                raise
            attempt.outcome, attempt.error_kind = "error", exc.kind
            cooldown.record_result(target.provider, exc, policy)
            last_error = exc
            if out.text_shown or not should_fall_back(exc) or left == 0:
                raise
            continue
        attempt.latency_ms = int((time.monotonic() - t0) * 1000)
        out.latency_ms = int((time.monotonic() - began) * 1000)
        cooldown.record_result(target.provider, None, policy)
        return


def _call_with_retries(
    target: Target,
    spec: CallSpec,
    sink: Sink,
    notice: Notice,
    out: CallOutcome,
    policy: RetryPolicy,
    attempt: Attempt,
    start: float,
) -> None:
    ep = endpoint(target.provider, target.config)  # MissingKeyError: not retried
    if spec.timeout:
        ep = replace(ep, deadline=spec.timeout)
    driver = get_driver(target.config.driver)
    request = ChatRequest(
        model=target.model,
        messages=tuple(spec.messages),
        system=spec.system,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        stream=spec.stream,
        options=spec.options,
        tools=spec.tools,
        tool_choice=spec.tool_choice,
        stop=spec.stop,
        response_format=spec.response_format,
        schema=spec.schema,
        attachments=spec.attachments,
    )
    request = _checked(target, request)  # UsageError before any call: not retried
    for n in range(1, policy.attempts + 1):
        attempt.tries = n
        watch = _Watch(sink, start)
        acc = StreamAccumulator()
        try:
            _one_call(driver, ep, request, acc, watch, target.config.connect_timeout)
            out.result = acc.finish()
            _note_first_token(out, watch, start)
            return
        except BaseException as exc:  # keep what arrived, whatever stopped it
            out.result = acc.finish()
            _note_first_token(out, watch, start)
            out.text_shown = out.text_shown or watch.shown
            if not isinstance(exc, CallmError):
                raise  # Ctrl-C, or our reader went away
            if watch.shown and not isinstance(exc, StreamError):
                exc = StreamError(exc.message, partial=acc.text, cause=exc)
            _label(exc, target)
            if watch.shown or n == policy.attempts or not _retryable(exc):
                raise exc from None
            if _asks_too_long(exc, policy):  # sleeping max_delay would only fail again
                raise exc from None
            wait = wait_before_retry(exc, n, policy)
            notice(
                f"{_what_failed(exc, target.provider)}, retrying in {_seconds(wait)} s "
                f"(attempt {n + 1}/{policy.attempts})"
            )
            time.sleep(wait)


def _asks_too_long(exc: CallmError, policy: RetryPolicy) -> bool:
    """The server asked for a longer wait than retry.max_delay: say so and stop retrying."""
    from callm.retry import root_cause

    asked = getattr(root_cause(exc), "retry_after", None)
    if asked is None or asked <= policy.max_delay:
        return False
    exc.hint = (
        f"the server asked to wait {_seconds(float(asked))} s, more than retry.max_delay "
        f"({_seconds(policy.max_delay)} s); try again later"
    )
    return True


def _checked(target: Target, request: ChatRequest) -> ChatRequest:
    """Ranges, minimums, sizes and model capabilities the vendor would refuse."""
    from callm.drivers.limits import check_request

    if request.attachments:
        from callm.attachments import check_model

        check_model(target, request.attachments)
    return check_request(target.config.driver, request)


def _retryable(exc: CallmError) -> bool:
    if isinstance(exc, StreamError):
        return exc.cause is not None and exc.cause.retryable
    return exc.retryable


def _seconds(wait: float) -> str:
    """1.0, 2.5, 30.0; short waits keep their digits (0.25, 0.05) instead of showing 0.0."""
    text = f"{wait:.1f}" if wait >= 1 else f"{wait:.2f}"
    return text[:-1] if text.endswith("0") and not text.endswith(".0") else text


def _what_failed(exc: CallmError, provider: str) -> str:
    """The start of a retry notice: "rate-limited by openai", "openai timed out"..."""
    cause = exc.cause if isinstance(exc, StreamError) and exc.cause else exc
    return {
        "rate_limit": f"rate-limited by {provider}",
        "overloaded": f"{provider} is overloaded",
        "timeout": f"{provider} timed out",
        "network": f"network error reaching {provider}",
    }.get(cause.kind, f"server error from {provider}")


def _label(exc: CallmError, target: Target) -> None:
    exc.provider = exc.provider or target.provider
    exc.model = exc.model or target.model


def _note_first_token(out: CallOutcome, watch: _Watch, start: float) -> None:
    if watch.first is not None and out.ttft_ms is None:
        out.ttft_ms = int((watch.first - start) * 1000)


def _one_call(
    driver: Any,
    ep: Any,
    request: ChatRequest,
    acc: StreamAccumulator,
    sink: Sink,
    connect_timeout: float = 10.0,
) -> None:
    """A single HTTP exchange (or a sim run), events into acc and sink."""

    got = 0  # events so far

    def emit(events: list[StreamEvent]) -> None:
        nonlocal got
        got += len(events)
        for ev in events:
            acc.add(ev)
            sink(ev)

    if getattr(driver, "local", False):
        try:
            for ev in driver.run(ep, request):
                acc.add(ev)
                sink(ev)
        except CallmError as exc:
            if acc.text:
                raise StreamError(exc.message, partial=acc.text, cause=exc) from None
            raise
        _check_finished(acc)
        return

    from callm import transport

    req = driver.chat_request(ep, request)
    timeouts = transport.Timeouts(connect=connect_timeout, read=ep.timeout, deadline=ep.deadline)
    if not request.stream:
        resp = transport.send(req, timeouts, ep.name, ep.tls)
        if resp.status >= 300:
            raise _http_error(driver, resp.status, resp.headers, resp.body)
        with _reading():
            emit(driver.parse_response(resp.body))
        _check_finished(acc, None if got else resp.body, "a reply")
        return
    with transport.stream(req, timeouts, ep.name, ep.tls) as resp:
        if resp.status >= 300:
            raise _http_error(driver, resp.status, resp.headers, resp.read_all())
        parser = driver.stream_parser()
        head: bytearray | None = bytearray()  # the body while it yields no event
        try:
            with _reading():
                for chunk in resp.chunks:
                    events = parser.feed(chunk)
                    if head is not None:
                        if events:
                            head = None
                        elif len(head) < _HEAD_LIMIT:
                            head += chunk[: _HEAD_LIMIT - len(head)]
                    emit(events)
                emit(parser.close())
                if head and not got and _is_json(resp.headers):
                    # a server that ignored stream=true and sent the whole reply
                    emit(driver.parse_response(bytes(head)))
        except CallmError as exc:
            # An error after the 200: the vendor's in-stream error or a dropped connection.
            # Before any text it is that error (its kind, exit code, retry); after, the
            # stream broke and the text that arrived is kept.
            if not acc.text:
                raise
            raise StreamError(exc.message, partial=acc.text, cause=exc) from None
    _check_finished(acc, None if got else head)


_HEAD_LIMIT = 1 << 20  # a whole reply sent instead of a stream is never bigger than this
# What a driver raises when a vendor's JSON has an unexpected shape (a list where an object
# belongs...): a bad response, never a traceback.
_SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


@contextmanager
def _reading() -> Iterator[None]:
    try:
        yield
    except _SHAPE_ERRORS as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise BadResponseError(f"unexpected data from the provider ({detail[:160]})") from None


def _http_error(driver: Any, status: int, headers: dict[str, str], body: bytes) -> CallmError:
    """The driver's reading of an error reply; the status alone if the body is too odd."""
    try:
        return driver.parse_error(status, headers, body)
    except _SHAPE_ERRORS:
        from callm.drivers.base import body_text, error_from_http

        return error_from_http(status, body_text(body), headers=headers)


def _is_json(headers: dict[str, str]) -> bool:
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return "json" in ctype.lower() and "ndjson" not in ctype.lower()


def _has_events(body: bytes) -> bool:
    """Anything but blank lines, SSE comments and `data: [DONE]` (a stream of nothing)."""
    for line in body.splitlines():
        line = line.strip()
        if line and not line.startswith(b":") and line not in (b"data: [DONE]", b"data:[DONE]"):
            return True
    return False


def _check_finished(
    acc: StreamAccumulator, body: bytes | bytearray | None = None, expected: str = "a stream"
) -> None:
    """A reply must end with a finish reason. `body`: what came, when no event came of it."""
    if acc.result.finish_reason is None:
        if acc.text:
            raise StreamError(
                "the stream ended before the reply was complete",
                partial=acc.text,
                cause=BadResponseError("truncated stream"),
            )
        if not acc._tools:  # a tool call alone is a complete answer
            if body and _has_events(bytes(body)):
                from callm.drivers.base import body_text

                raise BadResponseError(f"expected {expected}, got: {body_text(bytes(body), 200)}")
            raise BadResponseError("the provider sent an empty reply")
        acc.add(Finished("tool_call"))
