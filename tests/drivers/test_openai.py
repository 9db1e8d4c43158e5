"""OpenAIChatDriver / OpenAICompatibleDriver: request shape, every recorded Chat Completions
reply (streams cut every way, non-streamed, in-stream errors, HTTP errors), model listings,
and the SSE fast path against the plain decoder."""

from __future__ import annotations

import json
import random
import sys
from decimal import Decimal
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
from callm.drivers.openai import ChatStreamParser, OpenAIChatDriver, OpenAICompatibleDriver
from callm.drivers.openai_common import SSEJSONReader
from callm.drivers.sse import SSEDecoder
from callm.errors import (
    AuthError,
    BadRequestError,
    BadResponseError,
    CallmError,
    MissingKeyError,
    RateLimitError,
    ServerError,
    UsageError,
)
from callm.types import ChatRequest, ChatResult, Endpoint, Message, StreamEvent

EP = Endpoint("openai", "openai", "https://api.openai.com/v1/", key="sk-test-123")
OPENAI = OpenAIChatDriver()
COMPAT = OpenAICompatibleDriver()


def _req(**kw: Any) -> ChatRequest:
    base: dict[str, Any] = {"model": "gpt-4o-mini", "messages": (Message("user", "Hi"),)}
    base.update(kw)
    return ChatRequest(**base)


def _driver_for(it: Interaction) -> OpenAIChatDriver:
    return OPENAI if it.provider == "openai" else COMPAT


# ---- request building ---------------------------------------------------------------------


def test_registry_names_these_drivers() -> None:
    assert type(get_driver("openai")) is OpenAIChatDriver
    assert type(get_driver("openai-compatible")) is OpenAICompatibleDriver
    assert (OPENAI.name, OPENAI.local, COMPAT.name, COMPAT.local) == (
        "openai",
        False,
        "openai-compatible",
        False,
    )


def test_openai_request_shape() -> None:
    ep = Endpoint("openai", "openai", EP.base_url, key="sk-test-123", headers={"X-Org": "o1"})
    req = _req(
        system="Be brief.",
        messages=(Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "2+2?")),
        temperature=0.2,
        max_tokens=50,
    )
    r = OPENAI.chat_request(ep, req)
    assert (r.method, r.url) == ("POST", "https://api.openai.com/v1/chat/completions")
    assert r.headers["Authorization"] == "Bearer sk-test-123"
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Org"] == "o1"
    assert r.json == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "2+2?"},
        ],
        "temperature": 0.2,
        "max_completion_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert "sk-test-123" not in repr(r)


def test_non_stream_request_has_no_stream_options() -> None:
    body = OPENAI.chat_request(EP, _req(stream=False)).json
    assert body["stream"] is False
    assert "stream_options" not in body
    assert "temperature" not in body and "max_completion_tokens" not in body


def test_compatible_request_shape_without_key() -> None:
    ep = Endpoint("lab", "openai-compatible", "http://127.0.0.1:8000/v1", key=None)
    r = COMPAT.chat_request(ep, _req(max_tokens=9))
    assert r.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert "Authorization" not in r.headers
    assert r.json["max_tokens"] == 9 and "max_completion_tokens" not in r.json
    assert r.json["stream_options"] == {"include_usage": True}
    keyed = COMPAT.chat_request(Endpoint("g", "openai-compatible", ep.base_url, key="k"), _req())
    assert keyed.headers["Authorization"] == "Bearer k"


def test_openai_without_key_is_missing_key() -> None:
    with pytest.raises(MissingKeyError):
        OPENAI.chat_request(Endpoint("openai", "openai", EP.base_url), _req())


def test_options_pass_through_except_internal_and_reserved() -> None:
    opts = {"top_p": 0.5, "seed": 7, "reasoning_effort": "low", "include_usage": False}
    body = OPENAI.chat_request(EP, _req(options=opts)).json
    assert body["top_p"] == 0.5 and body["seed"] == 7 and body["reasoning_effort"] == "low"
    assert "include_usage" not in body and "stream_options" not in body
    for key in ("model", "messages", "stream"):
        with pytest.raises(UsageError):
            OPENAI.chat_request(EP, _req(options={key: "x"}))
    with pytest.raises(UsageError):
        OPENAI.chat_request(EP, _req(options={"n": 2}))
    assert OPENAI.chat_request(EP, _req(options={"n": 1})).json["n"] == 1


@pytest.mark.parametrize("it", cases(["openai-chat"], provider="openai"))
def test_request_has_the_recorded_fields(it: Interaction) -> None:
    """Same field names as what real clients sent (values differ)."""
    recorded = it.request.get("json") or {}
    body = OPENAI.chat_request(EP, _req(stream=bool(recorded.get("stream")))).json
    assert {"model", "messages"} <= recorded.keys() & body.keys()
    assert recorded.get("stream", False) == body["stream"]
    user = next(m for m in recorded["messages"] if m["role"] == "user")
    assert user.keys() >= body["messages"][0].keys() == {"role", "content"}
    if "stream_options" in recorded:
        assert body["stream_options"] == recorded["stream_options"]


def test_models_request() -> None:
    r = OPENAI.models_request(EP)
    assert (r.method, r.url) == ("GET", "https://api.openai.com/v1/models")
    assert r.headers["Authorization"] == "Bearer sk-test-123"
    r = COMPAT.models_request(Endpoint("lab", "openai-compatible", "http://h/v1"))
    assert r.url == "http://h/v1/models" and "Authorization" not in r.headers


# ---- recorded replies ---------------------------------------------------------------------


def _ok_stream_cases() -> list[Any]:
    return [
        p
        for p in cases(["openai-chat"])
        if p.values[0].response["status"] < 300
        and p.values[0].expect.get("stream")
        and "error" not in p.values[0].expect
    ]


def _check(result: ChatResult, expect: dict[str, Any]) -> None:
    assert reading(result) == expected_reading(expect)
    assert result.refusal == expect.get("refusal", "")


@pytest.mark.parametrize("it", _ok_stream_cases())
def test_recorded_stream(it: Interaction) -> None:
    d = _driver_for(it)
    results = {name: run_stream(d.stream_parser, ch) for name, ch in chunkings(it.body_bytes)}
    for seed in (1, 2):  # more random cuts
        for name, ch in chunkings(it.body_bytes, seed=seed)[2:]:
            results[f"{name}{seed}"] = run_stream(d.stream_parser, ch)
    _check(results["whole"], it.expect)
    for name, result in results.items():
        assert result == results["whole"], name


@pytest.mark.parametrize(
    "it",
    [
        p
        for p in cases(["openai-chat"])
        if p.values[0].response["status"] < 300 and p.values[0].expect.get("stream") is False
    ],
)
def test_recorded_non_stream(it: Interaction) -> None:
    _check(run_events(_driver_for(it).parse_response(it.body_bytes)), it.expect)


@pytest.mark.parametrize(
    "it", [p for p in cases(["openai-chat"]) if p.values[0].expect.get("error") == "mid_stream"]
)
def test_recorded_mid_stream_error(it: Interaction) -> None:
    for name, chunks in chunkings(it.body_bytes):
        parser = _driver_for(it).stream_parser()
        acc = StreamAccumulator()
        with pytest.raises(CallmError) as info:
            for chunk in chunks:
                for ev in parser.feed(chunk):
                    acc.add(ev)
            for ev in parser.close():
                acc.add(ev)
        assert acc.text == it.expect["partial_text"], name
        assert info.value.message


@pytest.mark.parametrize(
    "it", [p for p in cases(["openai-chat"]) if p.values[0].response["status"] >= 300]
)
def test_recorded_http_error(it: Interaction) -> None:
    resp = it.response
    err = _driver_for(it).parse_error(resp["status"], resp["headers"], it.body_bytes)
    assert err.kind == it.expect["error"]
    assert getattr(err, "retry_after", None) == it.expect["retry_after_s"]
    assert err.status == resp["status"]
    assert err.message and "{" not in err.message[:1]


def _recorded(case_part: str, index: int = 0) -> Interaction:
    return next(it for it in interactions() if case_part in it.id and it.index == index)


def test_reasoning_is_kept_apart_from_text() -> None:
    for part in ("deepseek_model_thinking", "mistral_model_thinking", "ollama_clo"):
        it = next(
            i
            for i in interactions("openai-chat")
            if part in i.id and i.response["status"] < 300 and i.expect.get("stream")
        )
        r = run_stream(ChatStreamParser, [it.body_bytes])
        assert r.reasoning and r.reasoning not in r.text, it.id
        assert r.text == it.expect["text"]


def test_usage_details_are_read() -> None:
    it = _recorded("deepseek_model_thinking")
    usage = json.loads(it.response["body"].split("data: ")[-2])["usage"]  # the finish chunk
    r = run_stream(ChatStreamParser, [it.body_bytes])
    assert r.usage is not None
    assert r.usage.reasoning_tokens == usage["completion_tokens_details"]["reasoning_tokens"]
    it = next(i for i in interactions("openai-chat") if "groq_llama3" in i.id)
    r = run_stream(ChatStreamParser, [it.body_bytes])  # usage only in x_groq
    assert r.usage is not None and r.usage.input_tokens == it.expect["input_tokens"]
    it = next(
        i for i in interactions("openai-chat") if "tool_use_failed_error" in i.id and i.index == 2
    )
    cached = json.loads(it.response["body"])["usage"]["prompt_tokens_details"]["cached_tokens"]
    r = run_events(OPENAI.parse_response(it.body_bytes))
    assert r.usage is not None and r.usage.cache_read_tokens == cached > 0


def test_tool_call_arguments_are_joined() -> None:
    it = next(i for i in interactions("openai-chat") if "test_tool_use_basic" in i.id)
    r = run_stream(ChatStreamParser, [it.body_bytes[i : i + 3] for i in range(0, 99999, 3)])
    (call,) = r.tool_calls
    assert call.name == "multiply" and call.id
    assert isinstance(json.loads(call.arguments), dict)


# ---- synthetic streams: edge cases the recordings do not cover ----------------------------


def _sse(*objs: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs)
    return out + (b"data: [DONE]\n\n" if done else b"")


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def test_events_before_an_error_in_the_same_read_are_not_lost() -> None:
    body = _sse(
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        {"error": {"message": "upstream died", "code": 502}},
        done=False,
    )
    parser = ChatStreamParser()
    events = parser.feed(body)
    assert "".join(e.text for e in events) == "Hello"  # type: ignore[union-attr]
    with pytest.raises(ServerError, match="upstream died"):
        parser.feed(b"")
    parser = ChatStreamParser()
    parser.feed(body)
    with pytest.raises(ServerError):  # or from close(), the engine's last call
        parser.close()


def test_groq_event_error_and_plain_error_events() -> None:
    body = b'event: error\ndata: {"error":{"message":"slow down","type":"rate_limit_exceeded"}}\n\n'
    with pytest.raises(RateLimitError):
        ChatStreamParser().feed(body)
    with pytest.raises(ServerError, match="boom"):
        ChatStreamParser().feed(b"event: error\ndata: boom\n\n")


def test_null_error_and_null_usage_are_ordinary_chunks() -> None:
    body = _sse(_chunk({"content": "ok"}, error=None, usage=None), _chunk({}, "stop"))
    r = run_stream(ChatStreamParser, [body])
    assert (r.text, r.finish_reason, r.usage) == ("ok", "stop", None)


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("length", "length"), ("content_filter", "content_filter"), ("function_call", "tool_call")],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    assert run_stream(ChatStreamParser, [_sse(_chunk({}, reason))]).finish_reason == finish


def test_mixed_delta_keeps_every_part() -> None:
    delta = {"content": "A", "reasoning_content": "think", "tool_calls": [{"index": 0, "id": "c1",
             "function": {"name": "f", "arguments": "{}"}}]}  # fmt: skip
    r = run_stream(ChatStreamParser, [_sse(_chunk(delta, "tool_calls"))])
    assert (r.text, r.reasoning, r.finish_reason) == ("A", "think", "tool_call")
    assert [(t.id, t.name, t.arguments) for t in r.tool_calls] == [("c1", "f", "{}")]


def test_garbage_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError):
        ChatStreamParser().feed(b"data: {not json\n\n")
    with pytest.raises(BadResponseError):
        ChatStreamParser().feed(b"data: [1, 2]\n\n")


def test_nothing_after_done_counts() -> None:
    parser = ChatStreamParser()
    parser.feed(_sse(_chunk({"content": "x"}, "stop")))
    assert parser.feed(_sse(_chunk({"content": "late"}))) == []
    assert parser.close() == []


# ---- the SSE fast path gives what the decoder gives ---------------------------------------


def _reference(body: bytes) -> list[Any]:
    """SSEDecoder + json.loads, frame by frame: the behaviour SSEJSONReader must match."""
    dec, out = SSEDecoder(), []
    for event, payload in dec.feed(body) + dec.close():
        if payload == b"[DONE]":
            break
        if not payload.strip():
            continue
        obj = json.loads(payload)
        if event == "error" and not (isinstance(obj, dict) and obj.get("error")):
            obj = {"error": obj}
        out.append(obj)
    return out


_TRICKY = [
    b'data: {"a": 1}\n\n',
    b'data: {"b": "\xc3\xa9\xf0\x9f\x98\x8a"}\n\n',  # multi-byte UTF-8, cut anywhere
    b": OPENROUTER PROCESSING\n\n",
    b'event: ping\ndata: {"c": 2}\n\n',
    b'data: {"d":\ndata: 3}\n\n',  # two data lines joined by LF
    b'data: {"e": 4}\r\n\r\n',  # CRLF framing
    b'data: {"f": 5}\r\rdata:{"g":6}\n\n',  # CR endings, no space after the colon
    b'id: 7\ndata: {"h": 7}\nretry: 10\n\n',
    b'data:  {"i": 8}  \n\n',  # extra spaces
    b"data: \n\n",  # empty payload
    b'data: {"j": 9}\n\n\n\n',  # extra blank lines
    b'event: error\ndata: {"message": "m"}\n\n',
]


@pytest.mark.parametrize("seed", range(40))
def test_reader_matches_the_decoder(seed: int) -> None:
    rng = random.Random(seed)
    body = b"".join(rng.choice(_TRICKY) for _ in range(rng.randint(1, 12)))
    body += rng.choice([b"data: [DONE]\n\n", b'data: {"z": 0}', b""])
    expected = _reference(body)
    for cut in ([body], [body[i : i + 1] for i in range(len(body))], _random_cut(body, rng)):
        reader, got = SSEJSONReader(), []
        for piece in cut:
            got.extend(reader.feed(piece))
        got.extend(reader.close())
        assert got == expected, (body, cut)


def _random_cut(body: bytes, rng: random.Random) -> list[bytes]:
    parts, i = [], 0
    while i < len(body):
        n = rng.choice([1, 2, 5, 17, 64, 300])
        parts.append(body[i : i + n])
        i += n
    return parts


def test_parser_events_are_plain_canonical_events() -> None:
    it = next(i for i in interactions("openai-chat") if "mirascope--test_call" in i.id)
    events: list[StreamEvent] = ChatStreamParser().feed(it.body_bytes)
    assert {type(e).__name__ for e in events} == {"TextDelta", "Finished", "UsageReport"}


# ---- error bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (500, b"<html><title>502 Bad Gateway</title></html>", "server", "502 Bad Gateway"),
        (503, b"", "server", "HTTP 503"),
        (400, b'{"error": "model is required"}', "bad_request", "model is required"),
        (401, b'{"message": "no auth", "code": "unauthorized"}', "auth", "no auth"),
        (422, b'{"detail": [{"msg": "field required"}]}', "bad_request", "field required"),
        (404, b'data: {"error": {"message": "gone"}}\n\n', "not_found", "gone"),
        (400, b"plain words", "bad_request", "plain words"),
    ],
)
def test_error_body_shapes(status: int, body: bytes, kind: str, text: str) -> None:
    err = COMPAT.parse_error(status, {"content-type": "text/event-stream"}, body)
    assert err.kind == kind and text in err.message


def test_retry_after_header_is_honoured() -> None:
    err = OPENAI.parse_error(429, {"Retry-After": "7"}, b'{"error": {"message": "slow"}}')
    assert isinstance(err, RateLimitError) and err.retry_after == 7.0
    assert isinstance(OPENAI.parse_error(403, {}, b"{}"), AuthError)
    assert isinstance(OPENAI.parse_error(400, {}, b"{}"), BadRequestError)


# ---- model listings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "it",
    [
        pytest.param(it, id=it.id)
        for it in interactions("models")
        if it.provider in ("openai", "openrouter", "cerebras")
    ],
)
def test_recorded_model_listing(it: Interaction) -> None:
    ep = Endpoint(it.provider, "openai-compatible", "https://example.invalid/v1")
    models, token = COMPAT.parse_models(ep, it.body_bytes)
    assert token is None
    assert len(models) == it.expect["models"]
    assert models[0].id == it.expect["first"]
    assert {m.provider for m in models} == {it.provider}


def test_openrouter_listing_details() -> None:
    it = next(i for i in interactions("models") if i.provider == "openrouter")
    rows = json.loads(it.response["body"])["data"]
    models, _ = COMPAT.parse_models(Endpoint("openrouter", "x", "u"), it.body_bytes)
    for row, m in zip(rows, models, strict=True):
        assert m.context_window == row["context_length"]
        assert m.max_output == row["top_provider"]["max_completion_tokens"]
        assert m.display_name == row["name"]
        assert m.price is not None and m.price.source == "vendor sync"
        per_m = float(Decimal(row["pricing"]["prompt"]) * 1_000_000)
        assert m.price.input == per_m
        assert m.price.output == float(Decimal(row["pricing"]["completion"]) * 1_000_000)
        assert ("tools" in m.capabilities) == ("tools" in row["supported_parameters"])
        assert ("vision" in m.capabilities) == ("image" in row["architecture"]["input_modalities"])


def test_bare_list_listing_uses_model_id() -> None:
    it = next(i for i in interactions("models") if "available-models" in i.request["url"])
    rows = json.loads(it.response["body"])
    models, _ = COMPAT.parse_models(Endpoint("heroku", "x", "u"), it.body_bytes)
    assert [m.id for m in models] == [r["model_id"] for r in rows]


def test_unreadable_listing_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError):
        COMPAT.parse_models(EP, b'{"object": "list"}')
    with pytest.raises(BadResponseError):
        COMPAT.parse_models(EP, b"<html>")


@pytest.mark.parametrize(
    ("driver", "base", "url"),
    [
        ("openai", "https://gw.example/v1?key=X", "https://gw.example/v1/models?key=X"),
        ("openai", "https://gw.example/v1/?key=X", "https://gw.example/v1/models?key=X"),
        (
            "anthropic",
            "https://gw.example/v1?key=X",
            "https://gw.example/v1/models?limit=1000&key=X",
        ),
        (
            "gemini",
            "https://gw.example/v1beta?a=b",
            "https://gw.example/v1beta/models?pageSize=1000&a=b",
        ),
        ("ollama", "http://gw.example/api?key=X", "http://gw.example/api/tags?key=X"),
        (
            "azure-openai",
            "https://r.example/openai/v1?key=X",
            "https://r.example/openai/v1/models?key=X",
        ),
    ],
)
def test_a_query_in_base_url_stays_after_the_joined_path(driver: str, base: str, url: str) -> None:
    """A gateway taking its key in the query: `.../v1/models?key=X`, not `.../v1?key=X/models`."""
    ep = Endpoint(name="gw", driver=driver, base_url=base, key="test-key-123")
    assert get_driver(driver).models_request(ep).url == url
    chat = get_driver(driver).chat_request(
        ep, ChatRequest(model="m", messages=(Message("user", "hi"),))
    )
    assert chat.url.count("?") == 1 and chat.url.endswith(base.partition("?")[2])


def test_github_models_lists_its_catalog() -> None:
    from callm.drivers.openai import OpenAICompatibleDriver

    ep = Endpoint("github", "openai-compatible", "https://models.github.ai/inference", key="gh-x")
    r = OpenAICompatibleDriver().models_request(ep)
    assert r.url == "https://models.github.ai/catalog/models"
    assert r.headers["Authorization"] == "Bearer gh-x"
    body = b'[{"id": "openai/gpt-4.1", "name": "OpenAI GPT-4.1", "publisher": "OpenAI"}]'
    models, nxt = OpenAICompatibleDriver().parse_models(ep, body)
    assert [m.id for m in models] == ["openai/gpt-4.1"] and nxt is None
