"""Broken connections, stalls and unreadable replies: the kind, exit code and message the
user gets, whether callm retried, and that the text that arrived is kept."""

from __future__ import annotations

import json

import pytest
from faults import (
    JSON,
    SSE,
    blackhole,
    openai_chunk,
    openai_ok,
    sse,
)
from harness import callm

from replay_server import ReplayServer, Reply

CHAT = ("chat", "-m", "lab/gpt-test", "--json", "hi")


# ---- timeouts -----------------------------------------------------------------------------


def test_connect_timeout_uses_the_providers_connect_timeout(configure) -> None:
    with blackhole() as url:
        configure({"lab": ("openai", url)}, attempts=1, timeout=30, connect_timeout=0.4)
        r = callm(*CHAT)
    assert r.code == 1
    assert r.first_err.startswith("error: timed out (lab/gpt-test): could not connect to ")
    assert r.first_err.endswith(" within 0.4 s (connect phase)")
    assert r.json["error"]["kind"] == "timeout"
    assert r.seconds < 5, "the 30 s read timeout must not apply to connecting"
    r.assert_clean()


def test_stall_before_the_reply_is_a_read_timeout_and_retried(
    server: ReplayServer, configure
) -> None:
    server.add(Reply(stall=1.5), openai_ok("second try"))
    configure({"lab": ("openai", server.url)}, attempts=2, timeout=0.5)
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.json["text"] == "second try"
    assert r.stderr.splitlines()[0].startswith("lab timed out, retrying in ")
    assert [a["tries"] for a in r.json["attempts"]] == [2]


def test_stall_after_all_retries(server: ReplayServer, configure) -> None:
    server.default = Reply(stall=1.5)
    configure({"lab": ("openai", server.url)}, attempts=2, timeout=0.5)
    r = callm(*CHAT)
    assert r.code == 1
    assert r.first_err.startswith("error: timed out (lab/gpt-test): http://127.0.0.1:")
    assert r.first_err.endswith("/v1/chat/completions sent nothing for 0.5 s (read phase)")
    assert "hint: raise the provider's `timeout`" in r.stderr
    assert r.json["error"]["kind"] == "timeout"
    r.assert_clean()


def test_stall_mid_stream_keeps_the_text_and_does_not_retry(
    server: ReplayServer, configure
) -> None:
    first, second = sse(openai_chunk("half a "), done=False), sse(openai_chunk("reply"))
    server.add(Reply(200, SSE, chunks=[first, 1.5, second]), openai_ok("must not be asked"))
    configure({"lab": ("openai", server.url)}, attempts=3, timeout=0.5)
    r = callm(*CHAT)
    assert r.code == 1
    assert r.json["text"] == "half a "
    assert r.json["error"]["kind"] == "mid_stream"
    assert r.first_err.startswith("error: stream broke (lab/gpt-test): ")
    assert r.first_err.endswith("sent nothing for 0.5 s (read phase)")
    assert len(server.seen) == 1, "no retry once text was shown"
    r.assert_clean()


# ---- dropped connections ------------------------------------------------------------------


def test_reset_before_any_reply_is_retried(server: ReplayServer, configure) -> None:
    server.add(Reply(drop=True), openai_ok("recovered"))
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.json["text"] == "recovered"
    assert r.stderr.splitlines()[0].startswith("network error reaching lab, retrying in ")


def test_reset_before_any_reply_after_all_retries(server: ReplayServer, configure) -> None:
    server.default = Reply(drop=True)
    configure({"lab": ("openai", server.url)}, attempts=2)
    r = callm(*CHAT)
    assert r.code == 1
    assert r.first_err.startswith("error: network error (lab/gpt-test): ")
    assert r.json["error"]["kind"] == "network"
    assert len(server.seen) == 2
    r.assert_clean()


def test_reset_after_the_headers_before_any_text_is_retried(
    server: ReplayServer, configure
) -> None:
    """A 200 whose body never comes: nothing was shown, so it is a network error (retried),
    not a broken stream."""
    server.add(Reply(200, SSE, chunks=[b"x"], reset_after=0), openai_ok("recovered"))
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.json["text"] == "recovered"
    assert r.stderr.splitlines()[0].startswith("network error reaching lab, retrying in ")


def test_reset_after_the_headers_after_all_retries(server: ReplayServer, configure) -> None:
    server.default = Reply(200, SSE, chunks=[b"x"], reset_after=0)
    configure({"lab": ("openai", server.url)}, attempts=2)
    r = callm(*CHAT)
    assert r.code == 1
    assert r.first_err.startswith("error: network error (lab/gpt-test): connection to ")
    assert r.json["error"]["kind"] == "network"
    r.assert_clean()


def test_reset_mid_stream_keeps_text_no_retry(server: ReplayServer, configure) -> None:
    chunks = [sse(openai_chunk("partial "), done=False), sse(openai_chunk("answer"), done=False)]
    server.default = Reply(200, SSE, chunks=[*chunks, b""], reset_after=2)
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 1
    assert r.json["text"] == "partial answer"
    assert r.json["error"]["kind"] == "mid_stream"
    assert r.first_err.startswith("error: stream broke (lab/gpt-test): connection to ")
    assert len(server.seen) == 1
    r.assert_clean()


def test_reset_mid_stream_piped_text_stays_on_stdout(server: ReplayServer, configure) -> None:
    chunks = [sse(openai_chunk("partial "), done=False), sse(openai_chunk("answer"), done=False)]
    server.default = Reply(200, SSE, chunks=[*chunks, b""], reset_after=2)
    configure({"lab": ("openai", server.url)})
    r = callm("chat", "-m", "lab/gpt-test", "hi")
    assert r.code == 1
    assert r.stdout.startswith("partial answer")
    assert r.first_err.startswith("error: stream broke (lab/gpt-test): ")


# ---- unreadable replies -------------------------------------------------------------------

_BAD = [
    (
        "malformed-json",
        Reply(200, SSE, b"data: {not json\n\n"),
        "error: unreadable response (lab/gpt-test): invalid JSON in stream: b'{not json'",
    ),
    (
        "invalid-utf8",
        Reply(200, SSE, b"data: \xff\xfe\xfd\n\n"),
        "error: unreadable response (lab/gpt-test): invalid JSON in stream: b'\\xff\\xfe\\xfd'",
    ),
    (
        "html-200",
        Reply(200, {"content-type": "text/html"}, b"<html><title>Captive portal</title></html>"),
        "error: unreadable response (lab/gpt-test): expected a stream, got: Captive portal",
    ),
    (
        "empty-200",
        Reply(200, SSE, b""),
        "error: unreadable response (lab/gpt-test): the provider sent an empty reply",
    ),
    (
        "json-not-sse",
        Reply(200, JSON, b'{"unexpected": true}'),
        'error: unreadable response (lab/gpt-test): expected a stream, got: {"unexpected": true}',
    ),
]


@pytest.mark.parametrize(("reply", "first_err"), [b[1:] for b in _BAD], ids=[b[0] for b in _BAD])
def test_unreadable_replies(server: ReplayServer, configure, reply: Reply, first_err: str) -> None:
    server.default = reply
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 1
    assert r.first_err == first_err
    assert r.json["error"]["kind"] == "bad_response"
    assert len(server.seen) == 1, "an unreadable reply is not retried"
    r.assert_clean()


def test_truncated_stream_keeps_text(server: ReplayServer, configure) -> None:
    """The connection closes cleanly, but the stream had no finish and no [DONE]."""
    server.default = Reply(200, SSE, chunks=[sse(openai_chunk("cut sh"), done=False)])
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 1
    assert r.json["text"] == "cut sh"
    assert r.json["error"]["kind"] == "mid_stream"
    assert r.first_err == (
        "error: stream broke (lab/gpt-test): the stream ended before the reply was complete"
    )
    r.assert_clean()


@pytest.mark.parametrize("same_read", [False, True], ids=["later-read", "same-read"])
def test_malformed_json_after_text_keeps_text(
    server: ReplayServer, configure, same_read: bool
) -> None:
    good, bad = sse(openai_chunk("good "), done=False), b'data: {"choices": [\n\n'
    server.default = Reply(200, SSE, chunks=[good + bad] if same_read else [good, 0.05, bad])
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 1
    assert r.json["text"] == "good "
    assert r.json["error"]["kind"] == "mid_stream"
    assert r.first_err.startswith("error: stream broke (lab/gpt-test): invalid JSON in stream")
    r.assert_clean()


def test_giant_line_is_refused_quickly(server: ReplayServer, configure) -> None:
    """A 17 MB line with no end: refused at the line cap, in well under the test budget."""
    piece = b"x" * (1 << 20)
    server.default = Reply(200, SSE, chunks=[b"data: " + piece] + [piece] * 16)
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT, timeout=30)
    assert r.code == 1
    assert r.first_err == (
        "error: unreadable response (lab/gpt-test): stream line longer than 16777216 bytes"
    )
    assert r.seconds < 5
    r.assert_clean()


def test_error_event_before_any_text_keeps_its_kind(server: ReplayServer, configure) -> None:
    """A 200 stream whose first event is an error (OpenRouter does this for upstream rate
    limits): the user gets the rate-limit exit code, and callm retries."""
    err = {"error": {"code": 429, "message": "Upstream rate limit"}}
    server.add(Reply(200, SSE, sse(err, done=False)), openai_ok("then fine"))
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines()[0].startswith("rate-limited by lab, retrying in ")
    server.default = Reply(200, SSE, sse(err, done=False))
    r = callm(*CHAT)
    assert r.code == 4
    assert r.json["error"]["kind"] == "rate_limit"
    assert r.first_err == "error: rate-limited (lab/gpt-test): Upstream rate limit"


def test_error_body_is_html_not_json(server: ReplayServer, configure) -> None:
    server.default = Reply(
        400, {"content-type": "text/html"}, b"<html><title>400 Bad Request</title></html>"
    )
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 1
    assert r.first_err == "error: request rejected (lab/gpt-test): 400 Bad Request"
    r.assert_clean()


def test_error_body_is_empty(server: ReplayServer, configure) -> None:
    server.default = Reply(503, {}, b"")
    configure({"lab": ("openai", server.url)}, attempts=1)
    r = callm(*CHAT)
    assert r.code == 1
    assert r.first_err == "error: server error (lab/gpt-test): HTTP 503"
    assert json.loads(r.stdout)["error"]["kind"] == "server"


def test_whole_reply_instead_of_a_stream_is_read(server: ReplayServer, configure) -> None:
    """A server that ignores stream=true and answers with one chat.completion object."""
    whole = {
        "id": "c1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "all at once"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }
    server.default = Reply(200, JSON, json.dumps(whole).encode())
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.json["text"] == "all at once"
    assert r.json["usage"]["output_tokens"] == 3


def test_error_object_in_a_200_json_body(server: ReplayServer, configure) -> None:
    body = {"error": {"message": "Rate limit exceeded", "code": 429}}
    server.default = Reply(200, JSON, json.dumps(body).encode())
    configure({"lab": ("openai", server.url)}, attempts=2)
    r = callm(*CHAT)
    assert r.code == 4
    assert r.first_err == "error: rate-limited (lab/gpt-test): Rate limit exceeded"
    assert len(server.seen) == 2


@pytest.mark.parametrize(
    ("provider", "driver", "model", "body"),
    [
        ("gem", "gemini", "gem/g", b'data: {"candidates": [5]}\n\n'),
        (
            "claude",
            "anthropic",
            "claude/c",
            b'data: {"type": "content_block_delta", "delta": 5}\n\n',
        ),
        ("lab", "ollama", "lab/llama", b'{"message": 5}\n'),
        ("lab", "openai", "lab/gpt", b'data: {"choices": [{"delta": {"tool_calls": [5]}}]}\n\n'),
    ],
    ids=["gemini", "anthropic", "ollama", "openai"],
)
def test_json_of_an_unexpected_shape(
    server: ReplayServer, configure, provider: str, driver: str, model: str, body: bytes
) -> None:
    """Valid JSON, wrong shape: an unreadable response, never an internal error."""
    server.default = Reply(200, SSE, body)
    configure({provider: (driver, server.url)})
    r = callm("chat", "-m", model, "--json", "hi")
    assert r.code == 1
    assert r.first_err.startswith(f"error: unreadable response ({model}): ")
    assert r.json["error"]["kind"] == "bad_response"
    r.assert_clean()


# ---- the same faults without streaming (--no-stream) --------------------------------------

NO_STREAM = ("chat", "-m", "lab/gpt-test", "--no-stream", "--json", "hi")
WHOLE = {
    "id": "c1",
    "choices": [{"index": 0, "message": {"content": "whole"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def test_no_stream_html_page(server: ReplayServer, configure) -> None:
    server.default = Reply(
        200, {"content-type": "text/html"}, b"<!DOCTYPE html><title>Sign in to Wi-Fi</title>"
    )
    configure({"lab": ("openai", server.url)})
    r = callm(*NO_STREAM)
    assert r.code == 1
    assert r.first_err == (
        "error: unreadable response (lab/gpt-test): expected JSON, got an HTML page: Sign in to"
        " Wi-Fi"
    )
    assert len(server.seen) == 1


def test_no_stream_truncated_body_is_a_network_error_and_retried(
    server: ReplayServer, configure
) -> None:
    body = json.dumps(WHOLE).encode()
    server.add(
        Reply(200, JSON, chunks=[body[:20], body[20:]], reset_after=1), Reply(200, JSON, body)
    )
    configure({"lab": ("openai", server.url)})
    r = callm(*NO_STREAM)
    assert r.code == 0, r.stderr
    assert r.json["text"] == "whole"
    assert r.stderr.splitlines()[0].startswith("network error reaching lab, retrying in ")


def test_no_stream_stall_and_rate_limit(server: ReplayServer, configure) -> None:
    server.add(
        Reply(stall=1.2),
        Reply(429, {**JSON, "retry-after-ms": "400"}, b'{"error": {"message": "slow"}}'),
        Reply(200, JSON, json.dumps(WHOLE).encode()),
    )
    configure({"lab": ("openai", server.url)}, timeout=0.5)
    r = callm(*NO_STREAM)
    assert r.code == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("lab timed out, retrying in ")
    assert lines[1] == "rate-limited by lab, retrying in 0.4 s (attempt 3/3)"
    assert server.seen[2].at - server.seen[1].at == pytest.approx(0.4, rel=0.10)
    r.assert_clean()


def _ollama_line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def test_ollama_error_line_before_and_after_text(server: ReplayServer, configure) -> None:
    crash = _ollama_line({"error": "llama runner process has terminated"})
    text = _ollama_line({"message": {"role": "assistant", "content": "partial"}, "done": False})
    done = _ollama_line(
        {"message": {"content": ""}, "done": True, "prompt_eval_count": 3, "eval_count": 1}
    )
    ndjson = {"content-type": "application/x-ndjson"}
    server.add(Reply(200, ndjson, chunks=[crash]), Reply(200, ndjson, chunks=[text, done]))
    configure({"lab": ("ollama", server.url)})
    r = callm("chat", "-m", "lab/llama3", "--json", "hi")
    assert r.code == 0, r.stderr
    assert r.json["text"] == "partial"
    assert r.stderr.splitlines()[0].startswith("server error from lab, retrying in ")

    server.default = Reply(200, ndjson, chunks=[text, 0.05, crash])
    r = callm("chat", "-m", "lab/llama3", "--json", "hi")
    assert r.code == 1
    assert r.json["text"] == "partial"
    assert r.first_err == ("error: stream broke (lab/llama3): llama runner process has terminated")
    assert server.seen[-1].path == "/api/chat"
    r.assert_clean()


def test_text_of_the_wrong_type_is_an_unreadable_response() -> None:
    """A parser may pass on a value it did not check ({"content": 5}); the accumulator,
    which every call goes through, refuses it instead of crashing later in join()."""
    from callm.drivers.base import StreamAccumulator
    from callm.errors import BadResponseError
    from callm.types import TextDelta

    acc = StreamAccumulator()
    acc.add(TextDelta("fine "))
    with pytest.raises(BadResponseError):
        acc.add(TextDelta(5))  # type: ignore[arg-type]
    assert acc.finish().text == "fine "
