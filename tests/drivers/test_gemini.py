"""GeminiDriver: request shape, both stream forms, recorded errors, model listing."""

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
from callm.drivers.gemini import GeminiDriver
from callm.errors import (
    AuthError,
    BadResponseError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from callm.types import ChatRequest, Endpoint, Message, TextDelta

BASE = "https://generativelanguage.googleapis.com/v1beta"
EP = Endpoint("gemini", "gemini", BASE, key="AIza-secret")
D = GeminiDriver()


def _req(**kw: object) -> ChatRequest:
    base: dict[str, object] = {"model": "gemini-2.5-flash", "messages": (Message("user", "Hi"),)}
    base.update(kw)
    return ChatRequest(**base)  # type: ignore[arg-type]


# ---- request building ---------------------------------------------------------------------


def test_registry_names_this_driver() -> None:
    d = get_driver("gemini")
    assert isinstance(d, GeminiDriver) and d.name == "gemini" and d.local is False


def test_stream_request_shape() -> None:
    req = _req(
        messages=(Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "More")),
        system="Be brief.",
        temperature=0.3,
        max_tokens=50,
    )
    r = D.chat_request(EP, req)
    assert r.method == "POST"
    assert r.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert r.headers["x-goog-api-key"] == "AIza-secret"
    assert r.headers["Content-Type"] == "application/json"
    assert "AIza-secret" not in r.url  # URLs get logged
    assert r.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "More"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 50},
    }


def test_non_stream_request_and_bare_body() -> None:
    r = D.chat_request(EP, _req(stream=False))
    assert r.url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert r.json == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_model_given_with_prefix_is_not_doubled() -> None:
    r = D.chat_request(EP, _req(model="models/gemini-2.0-flash"))
    assert r.url.startswith(f"{BASE}/models/gemini-2.0-flash:")
    r = D.chat_request(EP, _req(model="tunedModels/my-model"))
    assert r.url.startswith(f"{BASE}/tunedModels/my-model:")


def test_options_go_where_the_api_wants_them() -> None:
    req = _req(
        options={
            "top_p": 0.9,
            "topK": 3,
            "thinking_budget": 0,
            "safety_settings": [{"category": "X", "threshold": "BLOCK_NONE"}],
        }
    )
    body = D.chat_request(EP, req).json
    assert body["generationConfig"] == {
        "topP": 0.9,
        "topK": 3,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["safetySettings"] == [{"category": "X", "threshold": "BLOCK_NONE"}]


def test_system_role_messages_join_the_system_instruction() -> None:
    req = _req(messages=(Message("system", "Rule."), Message("user", "Hi")))
    body = D.chat_request(EP, req).json
    assert body["systemInstruction"] == {"parts": [{"text": "Rule."}]}
    assert len(body["contents"]) == 1


def test_no_key_no_header() -> None:
    r = D.chat_request(Endpoint("g", "gemini", BASE), _req())
    assert "x-goog-api-key" not in r.headers


def test_models_request_pages() -> None:
    r = D.models_request(EP)
    assert (r.method, r.url) == ("GET", f"{BASE}/models?pageSize=1000")
    assert r.headers["x-goog-api-key"] == "AIza-secret" and r.json is None
    assert D.models_request(EP, "abc=").url == f"{BASE}/models?pageSize=1000&pageToken=abc%3D"


# ---- recorded traffic ---------------------------------------------------------------------

OK_CASES = [p for p in cases(["gemini"]) if p.values[0].response["status"] < 300]
ERROR_CASES = [p for p in cases(["gemini"]) if p.values[0].response["status"] >= 300]
MODEL_CASES = cases(["models"], provider="gemini")


def test_recordings_are_present() -> None:
    assert len(OK_CASES) >= 8 and len(ERROR_CASES) >= 4 and MODEL_CASES
    bodies = [p.values[0].body_bytes.lstrip()[:1] for p in OK_CASES]
    assert b"[" in bodies and b"d" in bodies  # both stream forms are covered


@pytest.mark.parametrize("it", OK_CASES)
def test_recorded_streams(it: Interaction) -> None:
    want = expected_reading(it.expect or {})
    body = it.body_bytes
    for name, chunks in chunkings(body, seed=len(body)):
        assert reading(run_stream(D.stream_parser, chunks)) == want, name


ARRAY_CASES = [p for p in OK_CASES if p.values[0].body_bytes.lstrip()[:1] == b"["]


@pytest.mark.parametrize("it", ARRAY_CASES)
def test_recorded_bodies_as_whole_responses(it: Interaction) -> None:
    """The JSON-array form is also a valid complete body (what parse_response may get)."""
    body = it.body_bytes
    assert reading(run_events(D.parse_response(body))) == expected_reading(it.expect or {})


@pytest.mark.parametrize("it", ERROR_CASES)
def test_recorded_errors(it: Interaction) -> None:
    exp = it.expect or {}
    err = D.parse_error(it.response["status"], it.response["headers"], it.body_bytes)
    assert err.kind == exp["error"]
    assert getattr(err, "retry_after", None) == exp["retry_after_s"]
    assert err.status == exp["status"]


@pytest.mark.parametrize("it", MODEL_CASES)
def test_recorded_model_listing(it: Interaction) -> None:
    exp = it.expect or {}
    models, nxt = D.parse_models(EP, it.body_bytes)
    assert len(models) == exp["models"]
    first = models[0]
    assert first.extra["name"] == exp["first"]
    assert first.id == exp["first"].removeprefix("models/")
    assert first.display_name == "Gemini 2.5 Flash"
    assert (first.context_window, first.max_output) == (1048576, 65536)
    assert "generateContent" in first.capabilities
    assert nxt  # the recording has a nextPageToken


def test_thought_parts_are_reasoning() -> None:
    it = next(p.values[0] for p in OK_CASES if "test_prompt" in p.values[0].id)
    r = run_stream(D.stream_parser, [it.body_bytes])
    assert r.text == "Scoop"
    assert r.reasoning.startswith("**Considering the Constraint**")
    assert r.usage is not None and r.usage.reasoning_tokens == 291


# ---- synthetic cases ----------------------------------------------------------------------


def _sse(*objs: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\r\n\r\n" for o in objs)


def _chunk(text: str, **cand: object) -> dict[str, object]:
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, **cand}]}


def test_usage_takes_the_last_report_and_counts_thoughts_and_cache() -> None:
    u1 = {"promptTokenCount": 100, "totalTokenCount": 100}
    u2 = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 60,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 20,
    }
    body = _sse(
        {**_chunk("a"), "usageMetadata": u1},
        {**_chunk("b", finishReason="MAX_TOKENS"), "usageMetadata": u2},
    )
    r = run_stream(D.stream_parser, [body])
    assert r.text == "ab" and r.finish_reason == "length"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens) == (100, 25)
    assert (r.usage.cache_read_tokens, r.usage.reasoning_tokens) == (60, 20)


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("OTHER", "unknown")],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    body = _sse(_chunk("", finishReason=reason))
    assert run_stream(D.stream_parser, [body]).finish_reason == finish


def test_blocked_prompt_is_content_filter() -> None:
    body = _sse({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}})
    assert run_stream(D.stream_parser, [body]).finish_reason == "content_filter"


def test_function_call_arguments_and_finish() -> None:
    part = {"functionCall": {"name": "f", "args": {"x": [1, 2]}, "id": "c1"}}
    body = _sse(
        {"candidates": [{"content": {"parts": [part]}}]},
        _chunk("", finishReason="STOP"),
    )
    r = run_stream(D.stream_parser, [body])
    assert [(t.id, t.name, json.loads(t.arguments)) for t in r.tool_calls] == [
        ("c1", "f", {"x": [1, 2]})
    ]
    assert r.finish_reason == "tool_call"


def test_error_inside_stream_keeps_earlier_text() -> None:
    err = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    parser = D.stream_parser()
    events = parser.feed(_sse(_chunk("partial"), err))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["partial"]
    with pytest.raises(OverloadedError):
        parser.close()
    array_form = b'[{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}]'
    with pytest.raises(ServerError):
        D.stream_parser().feed(array_form)


def test_json_array_stream_with_tricky_strings() -> None:
    texts = ['a "quoted" {brace}', "back\\slash\\", "\u00e9\u4e2d\U0001f600", "]},["]
    body = ("[" + ",\r\n".join(json.dumps(_chunk(t), indent=2) for t in texts) + "]").encode()
    for name, chunks in chunkings(body, seed=3):
        assert run_stream(D.stream_parser, chunks).text == "".join(texts), name


def test_leading_whitespace_before_the_stream() -> None:
    body = b"\n  " + json.dumps([_chunk("x")]).encode()
    assert run_stream(D.stream_parser, [body[:1], body[1:3], body[3:]]).text == "x"


def test_garbage_and_truncation_are_bad_responses() -> None:
    with pytest.raises(BadResponseError):
        D.stream_parser().feed(b"<html>oops</html>")
    with pytest.raises(BadResponseError):
        D.stream_parser().feed(b'[{"a": 1} x')
    parser = D.stream_parser()
    parser.feed(b'[{"candidates": [')
    with pytest.raises(BadResponseError):
        parser.close()


def _status(code: int, status: str, message: str, details: list[object] | None = None) -> bytes:
    err: dict[str, object] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return json.dumps({"error": err}).encode()


def test_error_mapping() -> None:
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
    e = D.parse_error(429, {"Retry-After": "30"}, _status(429, "RESOURCE_EXHAUSTED", "q", retry))
    assert isinstance(e, RateLimitError) and e.retry_after == 30.0  # the larger wait
    e = D.parse_error(429, {}, b"[" + _status(429, "RESOURCE_EXHAUSTED", "q", retry) + b"]")
    assert isinstance(e, RateLimitError) and e.retry_after == 7.0
    e = D.parse_error(404, {}, b"data: " + _status(404, "NOT_FOUND", "no model") + b"\r\n\r\n")
    assert isinstance(e, NotFoundError)
    msg = "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."
    e = D.parse_error(400, {}, _status(400, "INVALID_ARGUMENT", msg))
    assert isinstance(e, ContextLengthError)
    e = D.parse_error(503, {}, _status(503, "UNAVAILABLE", "The model is overloaded."))
    assert isinstance(e, OverloadedError)
    e = D.parse_error(500, {}, _status(500, "INTERNAL", "An internal error has occurred."))
    assert type(e) is ServerError
    e = D.parse_error(401, {}, _status(401, "UNAUTHENTICATED", "bad creds"))
    assert isinstance(e, AuthError)
    e = D.parse_error(502, {}, b"<html><title>502 Bad Gateway</title></html>")
    assert isinstance(e, ServerError) and "Bad Gateway" in e.message


def test_int_enum_finish_reason() -> None:
    body = json.dumps([_chunk("x", finishReason=2)]).encode()
    assert run_stream(D.stream_parser, [body]).finish_reason == "length"
