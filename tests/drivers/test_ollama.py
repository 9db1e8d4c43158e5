"""OllamaDriver: /api/chat request shape, NDJSON streams (/api/chat and /api/generate),
errors, /api/tags and /api/ps listings."""

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
from callm.drivers.ollama import OllamaDriver
from callm.errors import AuthError, NotFoundError, ServerError
from callm.types import ChatRequest, Endpoint, Message, TextDelta

EP = Endpoint("ollama", "ollama", "http://127.0.0.1:11434")
D = OllamaDriver()


def _req(**kw: object) -> ChatRequest:
    base: dict[str, object] = {"model": "llama3.2", "messages": (Message("user", "Hi"),)}
    base.update(kw)
    return ChatRequest(**base)  # type: ignore[arg-type]


# ---- request building ---------------------------------------------------------------------


def test_registry_names_this_driver() -> None:
    d = get_driver("ollama")
    assert isinstance(d, OllamaDriver) and d.name == "ollama" and d.local is False


def test_chat_request_shape() -> None:
    req = _req(system="Be brief.", temperature=0.0, max_tokens=50)
    r = D.chat_request(EP, req)
    assert (r.method, r.url) == ("POST", "http://127.0.0.1:11434/api/chat")
    assert r.headers == {"Content-Type": "application/json"}  # no key, no Authorization
    assert r.json == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": True,
        "options": {"temperature": 0.0, "num_predict": 50},
    }


def test_non_stream_and_options() -> None:
    req = _req(stream=False, options={"think": True, "keep_alive": "5m", "num_ctx": 8192})
    body = D.chat_request(EP, req).json
    assert body["stream"] is False
    assert body["think"] is True and body["keep_alive"] == "5m"
    assert body["options"] == {"num_ctx": 8192}


def test_cloud_key_is_a_bearer_token() -> None:
    ep = Endpoint("ollama-cloud", "ollama", "https://ollama.com", key="ok-secret")
    r = D.chat_request(ep, _req())
    assert r.url == "https://ollama.com/api/chat"
    assert r.headers["Authorization"] == "Bearer ok-secret"
    assert "ok-secret" not in repr(r)


def test_base_url_with_api_suffix() -> None:
    ep = Endpoint("o", "ollama", "http://host:11434/api/")
    assert D.chat_request(ep, _req()).url == "http://host:11434/api/chat"
    assert D.models_request(ep).url == "http://host:11434/api/tags"


def test_models_request() -> None:
    r = D.models_request(EP)
    assert (r.method, r.url, r.json) == ("GET", "http://127.0.0.1:11434/api/tags", None)


# ---- recorded traffic ---------------------------------------------------------------------

CHAT = cases(["ollama-chat", "ollama-generate"])
OK_CASES = [p for p in CHAT if p.values[0].response["status"] < 300]
ERROR_CASES = [p for p in CHAT if p.values[0].response["status"] >= 300]
LISTINGS = cases(["ollama-tags"])


def test_recordings_are_present() -> None:
    assert len(OK_CASES) >= 4 and ERROR_CASES and len(LISTINGS) == 2


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
    assert "does not support tools" in err.message


@pytest.mark.parametrize("it", LISTINGS)
def test_recorded_listings(it: Interaction) -> None:
    exp = it.expect or {}
    models, nxt = D.parse_models(EP, it.body_bytes)
    assert len(models) == exp["models"] and nxt is None
    first = models[0]
    assert first.id == exp["first"] and first.provider == "ollama"
    assert first.extra["parameter_size"] == "8.0B"
    assert first.extra["family"] == "llama"
    assert first.extra["quantization"] == "Q4_0"


# ---- synthetic cases ----------------------------------------------------------------------


def _nd(*objs: dict[str, object]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def test_thinking_and_tool_calls() -> None:
    call = {"function": {"name": "get_time", "arguments": {"tz": "UTC"}}}
    body = _nd(
        {"message": {"role": "assistant", "content": "", "thinking": "Let me think"}},
        {"message": {"role": "assistant", "content": "", "tool_calls": [call, call]}},
        {
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 3,
            "eval_count": 4,
        },
    )
    r = run_stream(D.stream_parser, [body])
    assert r.reasoning == "Let me think" and r.text == ""
    assert [(t.name, json.loads(t.arguments)) for t in r.tool_calls] == [
        ("get_time", {"tz": "UTC"}),
        ("get_time", {"tz": "UTC"}),
    ]
    assert r.finish_reason == "tool_call"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (3, 4)


def test_length_finish_and_generate_lines() -> None:
    body = _nd(
        {"response": "abc", "done": False},
        {"response": "", "done": True, "done_reason": "length", "eval_count": 2},
    )
    r = run_stream(D.stream_parser, [body[:5], body[5:]])
    assert (r.text, r.finish_reason) == ("abc", "length")


def test_error_line_keeps_earlier_text() -> None:
    body = _nd({"message": {"content": "par"}}, {"error": "model runner has crashed"})
    parser = D.stream_parser()
    events = parser.feed(body)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["par"]
    with pytest.raises(ServerError):
        parser.close()


def test_last_line_without_newline() -> None:
    body = _nd({"message": {"content": "x"}}).rstrip() + b"\n" + b'{"done": true}'
    r = run_stream(D.stream_parser, [body])
    assert (r.text, r.finish_reason) == ("x", "stop")


def test_error_bodies() -> None:
    e = D.parse_error(404, {}, b'{"error":"model \\"llama9\\" not found, try pulling it first"}')
    assert isinstance(e, NotFoundError) and "llama9" in e.message
    e = D.parse_error(401, {}, b'{"error": "unauthorized"}')
    assert isinstance(e, AuthError)
    e = D.parse_error(500, {}, b"Internal Server Error")
    assert isinstance(e, ServerError) and e.message == "Internal Server Error"
