"""AnthropicDriver: request shape, recorded streams and errors, model listing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from driver_replay import (
    Interaction,
    cases,
    chunkings,
    expected_reading,
    reading,
    run_events,
    run_stream,
)

from callm.drivers import get_driver
from callm.drivers.anthropic import DEFAULT_MAX_TOKENS, AnthropicDriver
from callm.errors import (
    AuthError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from callm.types import (
    ChatRequest,
    Endpoint,
    Finished,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)

EP = Endpoint("anthropic", "anthropic", "https://api.anthropic.com/v1", key="sk-ant-test")
D = AnthropicDriver()


def _req(**kw: object) -> ChatRequest:
    base: dict[str, object] = {
        "model": "claude-haiku-4-5",
        "messages": (Message("user", "Hi"),),
    }
    base.update(kw)
    return ChatRequest(**base)  # type: ignore[arg-type]


# ---- request building ---------------------------------------------------------------------


def test_registry_names_this_driver() -> None:
    d = get_driver("anthropic")
    assert isinstance(d, AnthropicDriver)
    assert d.name == "anthropic" and d.local is False


def test_chat_request_shape() -> None:
    req = _req(
        messages=(Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Again")),
        system="Be brief.",
        temperature=0.2,
        max_tokens=100,
    )
    r = D.chat_request(EP, req)
    assert r.method == "POST"
    assert r.url == "https://api.anthropic.com/v1/messages"
    assert r.headers["x-api-key"] == "sk-ant-test"
    assert r.headers["anthropic-version"] == "2023-06-01"
    assert r.headers["Content-Type"] == "application/json"
    assert "Authorization" not in r.headers
    assert r.json == {
        "model": "claude-haiku-4-5",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        "system": "Be brief.",
        "max_tokens": 100,
        "temperature": 0.2,
        "stream": True,
    }
    assert "sk-ant-test" not in repr(r)


def test_max_tokens_is_always_sent() -> None:
    body = D.chat_request(EP, _req()).json
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert "temperature" not in body and "system" not in body


def test_system_messages_move_to_top_level() -> None:
    req = _req(messages=(Message("system", "Rule one."), Message("user", "Hi")), system="Top.")
    body = D.chat_request(EP, req).json
    assert body["system"] == "Top.\n\nRule one."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_non_streamed_request_and_options_pass_through() -> None:
    req = _req(stream=False, options={"top_k": 5, "thinking": {"type": "enabled"}})
    body = D.chat_request(EP, req).json
    assert "stream" not in body
    assert body["top_k"] == 5 and body["thinking"] == {"type": "enabled"}


def test_configured_headers_are_added_and_win() -> None:
    ep = Endpoint(
        "anthropic",
        "anthropic",
        "https://api.anthropic.com/v1/",
        key="k",
        headers={"anthropic-beta": "x", "Anthropic-Version": "2099-01-01"},
    )
    r = D.chat_request(ep, _req())
    assert r.url == "https://api.anthropic.com/v1/messages"
    assert r.headers["anthropic-beta"] == "x"
    assert r.headers["Anthropic-Version"] == "2099-01-01"
    assert "anthropic-version" not in r.headers


def test_models_request_pages_with_after_id() -> None:
    r = D.models_request(EP)
    assert (r.method, r.url) == ("GET", "https://api.anthropic.com/v1/models?limit=1000")
    assert r.headers["x-api-key"] == "sk-ant-test" and r.json is None
    r2 = D.models_request(EP, "claude-2.0")
    assert r2.url == "https://api.anthropic.com/v1/models?limit=1000&after_id=claude-2.0"


# ---- recorded traffic ---------------------------------------------------------------------

OK_CASES = [p for p in cases(["anthropic"]) if p.values[0].response["status"] < 300]
ERROR_CASES = [p for p in cases(["anthropic"]) if p.values[0].response["status"] >= 300]
MODEL_CASES = cases(["models"], provider="anthropic")


def test_recordings_are_present() -> None:
    assert len(OK_CASES) >= 6 and len(ERROR_CASES) >= 4 and MODEL_CASES


@pytest.mark.parametrize("it", OK_CASES)
def test_recorded_replies(it: Interaction) -> None:
    want = expected_reading(it.expect or {})
    body = it.body_bytes
    if it.expect and it.expect.get("stream"):
        for name, chunks in chunkings(body, seed=len(body)):
            assert reading(run_stream(D.stream_parser, chunks)) == want, name
    else:
        assert reading(run_events(D.parse_response(body))) == want


@pytest.mark.parametrize("it", ERROR_CASES)
def test_recorded_errors(it: Interaction) -> None:
    exp = it.expect or {}
    err = D.parse_error(it.response["status"], it.response["headers"], it.body_bytes)
    assert err.kind == exp["error"]
    assert getattr(err, "retry_after", None) == exp["retry_after_s"]
    assert err.status == exp["status"]
    assert err.message and "HTTP" not in err.message


@pytest.mark.parametrize("it", MODEL_CASES)
def test_recorded_model_listing(it: Interaction) -> None:
    exp = it.expect or {}
    models, nxt = D.parse_models(EP, it.body_bytes)
    assert len(models) == exp["models"]
    assert models[0].id == exp["first"]
    assert models[0].display_name == "Claude 3.5 Sonnet (New)"
    assert models[0].provider == "anthropic"
    assert nxt is None  # has_more is false


def test_thinking_is_reasoning_not_text() -> None:
    it = next(p.values[0] for p in OK_CASES if "thinking" in p.values[0].id)
    r = run_stream(D.stream_parser, [it.body_bytes])
    assert r.reasoning.startswith("This is a straightforward question")
    assert "straightforward" not in r.text


def test_tool_call_arguments_are_joined() -> None:
    it = next(p.values[0] for p in OK_CASES if "weather" in p.values[0].case_file.name)
    r = run_stream(D.stream_parser, chunkings(it.body_bytes)[1][1])
    assert len(r.tool_calls) == 1
    call = r.tool_calls[0]
    assert call.id == "toolu_0162ZtaBhxLcjZgGmc9xNueT"
    assert json.loads(call.arguments) == {"location": "San Francisco, CA"}


# ---- synthetic cases ----------------------------------------------------------------------


def _sse(*events: tuple[str, dict[str, object]]) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
    )


START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
                "output_tokens": 1,
            }
        },
    },
)
TEXT = (
    "content_block_delta",
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
)


def test_usage_merges_cache_tokens_and_output_only_delta() -> None:
    body = _sse(
        START,
        TEXT,
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 7},
            },
        ),
    )
    r = run_stream(D.stream_parser, [body])
    assert r.usage is not None
    assert r.usage.input_tokens == 130  # input + cache_read + cache_creation
    assert r.usage.cache_read_tokens == 100 and r.usage.cache_write_tokens == 20
    assert r.usage.output_tokens == 7
    assert r.finish_reason == "stop"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_call"),
        ("refusal", "content_filter"),
        ("something_new", "unknown"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    body = _sse(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop}}))
    assert run_stream(D.stream_parser, [body]).finish_reason == finish


def test_error_event_keeps_earlier_text_then_raises() -> None:
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    body = _sse(START, TEXT, ("error", err))
    parser = D.stream_parser()
    events = parser.feed(body)  # text that came before the error is handed over first
    assert any(isinstance(e, TextDelta) and e.text == "Hi" for e in events)
    with pytest.raises(OverloadedError) as info:
        parser.close()
    assert info.value.message == "Overloaded"
    # alone in a chunk, the error is raised at once
    with pytest.raises(OverloadedError):
        D.stream_parser().feed(_sse(("error", err)))


@pytest.mark.parametrize(
    ("etype", "cls"),
    [("rate_limit_error", RateLimitError), ("api_error", ServerError), ("x", ServerError)],
)
def test_error_event_types(etype: str, cls: type) -> None:
    body = _sse(("error", {"type": "error", "error": {"type": etype, "message": "m"}}))
    with pytest.raises(cls):
        D.stream_parser().feed(body)


def test_non_streamed_message() -> None:
    body = json.dumps(
        {
            "type": "message",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"q": 1}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 3, "output_tokens": 9},
        }
    ).encode()
    events = D.parse_response(body)
    assert isinstance(events[0], ReasoningDelta)
    assert any(isinstance(e, UsageReport) for e in events)
    assert isinstance(events[-1], Finished)
    r = run_events(events)
    assert r.text == "Let me check." and r.reasoning == "hmm"
    assert [(t.id, t.name, json.loads(t.arguments)) for t in r.tool_calls] == [
        ("toolu_1", "get_weather", {"q": 1})
    ]
    assert r.finish_reason == "tool_call"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (8, 9)


def test_tool_call_deltas_use_tool_ordinals() -> None:
    body = _sse(
        (
            "content_block_start",
            {"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use"}},
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 3,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        ),
    )
    events = D.stream_parser().feed(body)
    assert [e.index for e in events if isinstance(e, ToolCallDelta)] == [0, 0]


def test_error_bodies() -> None:
    e = D.parse_error(
        529,
        {},
        b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    )
    assert isinstance(e, OverloadedError)
    e = D.parse_error(
        429,
        {"retry-after": "12"},
        b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}',
    )
    assert isinstance(e, RateLimitError) and e.retry_after == 12.0
    e = D.parse_error(
        403, {}, b'{"type":"error","error":{"type":"permission_error","message":"no"}}'
    )
    assert isinstance(e, AuthError)
    e = D.parse_error(502, {}, b"<html><title>502 Bad Gateway</title></html>")
    assert isinstance(e, ServerError) and "Bad Gateway" in e.message


def test_models_pagination_token() -> None:
    body = json.dumps(
        {
            "data": [
                {
                    "id": "claude-x",
                    "display_name": "Claude X",
                    "max_input_tokens": 200000,
                    "max_tokens": 64000,
                    "capabilities": {"vision": {"supported": True}, "pdf": {"supported": False}},
                }
            ],
            "has_more": True,
            "last_id": "claude-x",
        }
    ).encode()
    models, nxt = D.parse_models(EP, body)
    assert nxt == "claude-x"
    m = models[0]
    assert (m.context_window, m.max_output, m.capabilities) == (200000, 64000, ("vision",))
