"""SimDriver: deterministic offline replies, usage, delays and injected failures."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from callm.drivers import get_driver
from callm.drivers.base import StreamAccumulator
from callm.drivers.sim import DEFAULT_LENGTH, FAIL_MODES, SimDriver
from callm.errors import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_RATE_LIMIT,
    EXIT_USAGE,
    AuthError,
    BadRequestError,
    CallmError,
    CallTimeoutError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
    UsageError,
)
from callm.types import (
    ChatRequest,
    ChatResult,
    Endpoint,
    Finished,
    Message,
    StreamEvent,
    TextDelta,
    UsageReport,
)

EP = Endpoint("sim", "sim", "sim://local")
D = SimDriver()


def _req(prompt: str = "Tell me about streams", **kw: Any) -> ChatRequest:
    return ChatRequest(model="sim-small", messages=(Message("user", prompt),), **kw)


def _run(req: ChatRequest) -> tuple[list[StreamEvent], ChatResult]:
    events = list(D.run(EP, req))
    acc = StreamAccumulator()
    for ev in events:
        acc.add(ev)
    return events, acc.finish()


def _until_error(req: ChatRequest) -> tuple[list[StreamEvent], CallmError]:
    events: list[StreamEvent] = []
    with pytest.raises(CallmError) as info:
        for ev in D.run(EP, req):
            events.append(ev)
    return events, info.value


def test_registry_and_flags() -> None:
    d = get_driver("sim")
    assert isinstance(d, SimDriver) and d.name == "sim" and d.local is True


def test_deterministic_for_the_same_prompt() -> None:
    a = _run(_req())[1]
    b = _run(_req())[1]
    assert a.text == b.text and a.usage == b.usage
    assert _run(_req("something else"))[1].text != a.text


def test_seed_option_overrides_the_prompt_and_accepts_strings() -> None:
    a = _run(_req("one", options={"seed": "7"}))[1]
    b = _run(_req("two", options={"seed": 7}))[1]
    c = _run(_req("one", options={"seed": 8}))[1]
    assert a.text == b.text != c.text


def test_default_length_usage_and_finish() -> None:
    events, r = _run(_req("x" * 400))
    assert r.usage is not None
    assert r.usage.output_tokens == DEFAULT_LENGTH
    assert r.usage.input_tokens == 100  # 400 characters / 4
    assert r.finish_reason == "stop"
    assert isinstance(events[-1], Finished)
    assert r.text.endswith(".")


@pytest.mark.parametrize("length", [1, 5, 200, "33"])
def test_length_option(length: int | str) -> None:
    r = _run(_req(options={"length": length}))[1]
    assert r.usage is not None and r.usage.output_tokens == int(length)
    # one token is one word: the text has about as many words as tokens reported
    assert abs(len(r.text.split()) - int(length)) <= int(length) // 3 + 2


def test_max_tokens_cuts_with_length_finish() -> None:
    full = _run(_req(options={"length": 100}))[1]
    cut = _run(_req(options={"length": 100}, max_tokens=10))[1]
    assert cut.finish_reason == "length"
    assert cut.usage is not None and cut.usage.output_tokens == 10
    assert full.text.startswith(cut.text)


def test_markdown_shape_and_small_chunks() -> None:
    events, r = _run(_req(options={"length": 150}))
    assert r.text.startswith("## ")
    assert "\n- **" in r.text and "\n\n" in r.text
    chunks = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(chunks) >= 150 // 3
    assert max(len(c.split()) for c in chunks) <= 4  # up to 3 words, plus "##" or "-"


def test_usage_reported_up_front_and_at_the_end() -> None:
    events = _run(_req())[0]
    reports = [e for e in events if isinstance(e, UsageReport)]
    assert reports[0].usage.output_tokens == 0 and reports[0].usage.input_tokens > 0
    assert reports[-1].usage.output_tokens == DEFAULT_LENGTH


def test_delay_sleeps_once_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("callm.drivers.sim.time.sleep", sleeps.append)
    events = _run(_req(options={"delay_ms": "25", "length": 30}))[0]
    chunks = [e for e in events if isinstance(e, TextDelta)]
    assert sleeps and all(s == 0.025 for s in sleeps)
    assert len(sleeps) in (len(chunks), len(chunks) - 1)  # the closing "." is not generated
    sleeps.clear()
    _run(_req())
    assert sleeps == []  # no delay asked, no sleep


FAILS: list[tuple[str, type[CallmError], int]] = [
    ("rate_limit", RateLimitError, EXIT_RATE_LIMIT),
    ("auth", AuthError, EXIT_AUTH),
    ("server", ServerError, EXIT_FAILED),
    ("overloaded", OverloadedError, EXIT_FAILED),
    ("timeout", CallTimeoutError, EXIT_FAILED),
    ("not_found", NotFoundError, EXIT_USAGE),
    ("context_length", ContextLengthError, EXIT_FAILED),
    ("bad_request", BadRequestError, EXIT_FAILED),
]


def test_every_fail_mode_is_tested() -> None:
    assert {f for f, _, _ in FAILS} | {"mid_stream"} == set(FAIL_MODES)


@pytest.mark.parametrize(("fail", "cls", "exit_code"), FAILS)
def test_fail_modes_raise_before_any_text(fail: str, cls: type[CallmError], exit_code: int) -> None:
    events, err = _until_error(_req(options={"fail": fail}))
    assert events == []
    assert type(err) is cls and err.kind == fail and err.exit_code == exit_code
    assert err.provider == "sim" and err.model == "sim-small"


def test_failure_happens_on_iteration_not_on_call() -> None:
    it = D.run(EP, _req(options={"fail": "auth"}))  # nothing raised yet
    with pytest.raises(AuthError):
        next(it)


def test_rate_limit_retry_after() -> None:
    err = _until_error(_req(options={"fail": "rate_limit"}))[1]
    assert isinstance(err, RateLimitError) and err.retry_after == 1.0 and err.retryable
    err = _until_error(_req(options={"fail": "rate_limit", "retry_after": "2.5"}))[1]
    assert isinstance(err, RateLimitError) and err.retry_after == 2.5


def test_mid_stream_keeps_the_text_before_the_error() -> None:
    full = _run(_req(options={"length": 40}))[1].text
    events, err = _until_error(_req(options={"length": 40, "fail": "mid_stream"}))
    assert type(err) is ServerError and "connection reset by sim" in err.message
    partial = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert partial and full.startswith(partial) and len(partial) < len(full)
    assert abs(len(partial.split()) - 20) <= 4  # about half of the 40 tokens
    assert not any(isinstance(e, Finished) for e in events)


@pytest.mark.parametrize(
    "opts", [{"fail": "explode"}, {"length": "many"}, {"delay_ms": -1}, {"seed": "x"}]
)
def test_bad_options_are_usage_errors(opts: dict[str, Any]) -> None:
    err = _until_error(_req(options=opts))[1]
    assert isinstance(err, UsageError) and err.exit_code == EXIT_USAGE


def test_fail_none_and_empty_mean_no_failure() -> None:
    assert _run(_req(options={"fail": "none"}))[1].finish_reason == "stop"
    assert _run(_req(options={"fail": ""}))[1].finish_reason == "stop"


def test_works_without_any_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("sim touched the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    r = _run(_req(system="sys", options={"length": 20}))[1]
    assert r.text and r.finish_reason == "stop"
    assert D.list_models(EP)
    err = _until_error(_req(options={"fail": "mid_stream"}))[1]
    assert isinstance(err, ServerError)


def test_list_models() -> None:
    models = D.list_models(EP)
    assert [m.id for m in models] == ["sim-small", "sim-large"]
    for m in models:
        assert m.provider == "sim" and m.price is not None
        assert (m.price.input, m.price.output, m.price.source) == (0.0, 0.0, "sim")
        assert m.context_window and m.max_output


@pytest.mark.parametrize("length", [0, 1, 2])
def test_mid_stream_breaks_even_a_tiny_reply(length: int) -> None:
    events, err = _until_error(_req(options={"length": length, "fail": "mid_stream"}))
    assert type(err) is ServerError
    assert sum(1 for e in events if isinstance(e, TextDelta)) <= 1


def test_zero_length_reply() -> None:
    r = _run(_req(options={"length": 0}))[1]
    assert r.text == "" and r.finish_reason == "stop"
    assert r.usage is not None and r.usage.output_tokens == 0
