"""ResponsesDriver: request shape, every recorded Responses reply (OpenAI and OpenRouter
streams cut every way, the non-streamed Response, HTTP errors), and the events the
recordings do not show (incomplete, failed, error, reasoning, refusal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from driver_replay import (
    Interaction,
    cases,
    chunkings,
    expected_reading,
    interactions,
    reading,
    run_events,
    run_stream,
)

from callm.drivers import get_driver
from callm.drivers.base import StreamAccumulator
from callm.drivers.openai_responses import ResponsesDriver, ResponsesStreamParser
from callm.errors import (
    BadResponseError,
    CallmError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UsageError,
)
from callm.types import ChatRequest, Endpoint, Message

D = ResponsesDriver()
EP = Endpoint("openai", "openai-responses", "https://api.openai.com/v1", key="sk-resp-test")


def _req(**kw: Any) -> ChatRequest:
    base: dict[str, Any] = {"model": "gpt-5-mini", "messages": (Message("user", "Hi"),)}
    base.update(kw)
    return ChatRequest(**base)


# ---- request building ---------------------------------------------------------------------


def test_registry() -> None:
    d = get_driver("openai-responses")
    assert type(d) is ResponsesDriver and d.name == "openai-responses" and d.local is False


def test_request_shape() -> None:
    req = _req(
        system="Be terse.",
        messages=(Message("user", "a"), Message("assistant", "b"), Message("user", "c")),
        temperature=0.3,
        max_tokens=64,
        options={"reasoning": {"effort": "low"}},
    )
    r = D.chat_request(EP, req)
    assert (r.method, r.url) == ("POST", "https://api.openai.com/v1/responses")
    assert r.headers["Authorization"] == "Bearer sk-resp-test"
    assert r.json == {
        "model": "gpt-5-mini",
        "input": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
        "instructions": "Be terse.",
        "temperature": 0.3,
        "max_output_tokens": 64,
        "stream": True,
        "store": False,
        "reasoning": {"effort": "low"},
    }


def test_request_options() -> None:
    body = D.chat_request(EP, _req(stream=False, options={"store": True})).json
    assert body["stream"] is False and body["store"] is True
    assert "stream_options" not in body and "instructions" not in body
    with pytest.raises(UsageError):
        D.chat_request(EP, _req(options={"input": "x"}))
    keyless = D.chat_request(Endpoint("vllm", "openai-responses", "http://h/v1"), _req())
    assert "Authorization" not in keyless.headers


@pytest.mark.parametrize(
    "it",
    [p for p in cases(["openai-responses"]) if p.values[0].response["status"] < 300],
)
def test_request_has_the_recorded_fields(it: Interaction) -> None:
    recorded = it.request["json"]
    body = D.chat_request(EP, _req(stream=bool(recorded.get("stream")))).json
    assert {"model", "input", "stream"} <= recorded.keys() & body.keys()
    assert recorded["stream"] == body["stream"]
    assert recorded["input"][0].keys() == body["input"][0].keys()


def test_models_request_is_openais() -> None:
    r = D.models_request(EP)
    assert (r.method, r.url) == ("GET", "https://api.openai.com/v1/models")
    it = next(i for i in interactions("models") if i.provider == "openai")
    models, token = D.parse_models(EP, it.body_bytes)
    assert (len(models), models[0].id, token) == (it.expect["models"], it.expect["first"], None)


# ---- recorded replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "it",
    [
        p
        for p in cases(["openai-responses"])
        if p.values[0].response["status"] < 300 and p.values[0].expect.get("stream")
    ],
)
def test_recorded_stream(it: Interaction) -> None:
    results = {n: run_stream(D.stream_parser, ch) for n, ch in chunkings(it.body_bytes)}
    assert reading(results["whole"]) == expected_reading(it.expect)
    for name, result in results.items():
        assert result == results["whole"], name


@pytest.mark.parametrize(
    "it",
    [
        p
        for p in cases(["openai-responses"])
        if p.values[0].response["status"] < 300 and p.values[0].expect.get("stream") is False
    ],
)
def test_recorded_non_stream(it: Interaction) -> None:
    assert reading(run_events(D.parse_response(it.body_bytes))) == expected_reading(it.expect)


@pytest.mark.parametrize(
    "it", [p for p in cases(["openai-responses"]) if p.values[0].response["status"] >= 300]
)
def test_recorded_http_error(it: Interaction) -> None:
    resp = it.response
    err = D.parse_error(resp["status"], resp["headers"], it.body_bytes)
    assert err.kind == it.expect["error"]
    assert getattr(err, "retry_after", None) == it.expect["retry_after_s"]


def test_unknown_model_is_not_found_though_http_400() -> None:
    it = next(i for i in interactions("openai-responses") if "model_not_found" in i.id)
    err = D.parse_error(400, it.response["headers"], it.body_bytes)
    assert isinstance(err, NotFoundError) and err.status == 400


def test_tool_call_keeps_call_id_and_full_arguments() -> None:
    it = next(
        i for i in interactions("openai-responses") if "tool_use_streami" in i.id and i.index == 0
    )
    done = [
        json.loads(line[6:])
        for line in it.response["body"].splitlines()
        if line.startswith("data: ") and '"response.output_item.done"' in line
    ][-1]["item"]
    (call,) = run_stream(ResponsesStreamParser, [it.body_bytes]).tool_calls
    assert (call.id, call.name, call.arguments) == (
        done["call_id"],
        done["name"],
        done["arguments"],
    )


def test_usage_details_from_completed() -> None:
    it = next(i for i in interactions("openai-responses") if "streaming_usage" in i.case_file.name)
    r = run_stream(ResponsesStreamParser, [it.body_bytes])
    assert r.usage is not None and r.usage.reasoning_tokens > 0
    assert r.usage.output_tokens == it.expect["output_tokens"]


# ---- synthetic events ---------------------------------------------------------------------


def _sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(f"event: {o['type']}\ndata: {json.dumps(o)}\n\n".encode() for o in objs)


def _resp(status: str, **kw: Any) -> dict[str, Any]:
    usage = {"input_tokens": 10, "output_tokens": 5, "input_tokens_details": {"cached_tokens": 4}}
    return {"status": status, "output": [], "usage": usage, **kw}


def test_incomplete_max_output_tokens_is_length() -> None:
    body = _sse(
        {"type": "response.output_text.delta", "delta": "Hello wor", "output_index": 0},
        {"type": "response.incomplete", "response": _resp(
            "incomplete", incomplete_details={"reason": "max_output_tokens"})},
    )  # fmt: skip
    r = run_stream(ResponsesStreamParser, [body])
    assert (r.text, r.finish_reason) == ("Hello wor", "length")
    assert r.usage is not None and (r.usage.input_tokens, r.usage.cache_read_tokens) == (10, 4)


def test_reasoning_and_refusal_deltas() -> None:
    body = _sse(
        {"type": "response.reasoning_summary_text.delta", "delta": "plan", "output_index": 0},
        {"type": "response.reasoning_text.delta", "delta": " more", "output_index": 0},
        {"type": "response.refusal.delta", "delta": "I can't", "output_index": 1},
        {"type": "response.completed", "response": _resp("completed")},
    )
    r = run_stream(ResponsesStreamParser, [body])
    assert (r.reasoning, r.refusal, r.text, r.finish_reason) == ("plan more", "I can't", "", "stop")


def test_arguments_only_in_done_event() -> None:
    item = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": ""}
    body = _sse(
        {"type": "response.output_item.added", "output_index": 2, "item": item},
        {"type": "response.function_call_arguments.done", "output_index": 2, "arguments": "{}"},
        {"type": "response.completed", "response": _resp("completed")},
    )
    r = run_stream(ResponsesStreamParser, [body])
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("call_1", "f", "{}")]
    assert r.finish_reason == "tool_call"


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"type": "error", "code": "rate_limit_exceeded", "message": "slow"}, RateLimitError),
        ({"type": "error", "error": {"type": "server_error", "message": "oops"}}, ServerError),
        (
            {"type": "response.failed", "response": _resp(
                "failed", error={"code": "server_error", "message": "failed"})},
            ServerError,
        ),
    ],
)  # fmt: skip
def test_in_stream_errors_raise(event: dict[str, Any], kind: type[CallmError]) -> None:
    body = _sse({"type": "response.output_text.delta", "delta": "part", "output_index": 0}, event)
    for chunks in ([body], [body[i : i + 1] for i in range(len(body))]):
        parser, acc = ResponsesStreamParser(), StreamAccumulator()
        with pytest.raises(kind):
            for chunk in chunks:
                for ev in parser.feed(chunk):
                    acc.add(ev)
            parser.close()
        assert acc.text == "part"  # what came before the error is kept


def test_failed_non_streamed_response_raises() -> None:
    body = json.dumps(_resp("failed", error={"code": "server_error", "message": "x"})).encode()
    with pytest.raises(ServerError):
        D.parse_response(body)
    with pytest.raises(BadResponseError):
        D.parse_response(b"[]")


def test_non_streamed_tool_call_and_refusal() -> None:
    resp = _resp(
        "completed",
        output=[
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "why"}]},
            {"type": "message", "content": [{"type": "refusal", "refusal": "no"}]},
            {"type": "function_call", "call_id": "c9", "name": "g", "arguments": '{"a":1}'},
        ],
    )
    r = run_events(D.parse_response(json.dumps(resp).encode()))
    assert (r.reasoning, r.refusal, r.finish_reason) == ("why", "no", "tool_call")
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("c9", "g", '{"a":1}')]
