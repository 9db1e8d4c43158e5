"""Fault injection on 127.0.0.1: the replies a misbehaving vendor sends, in each wire format.

Builds on tests/replay_server.py (scripted replies, chunked streams with delays, RST mid-stream,
stalls, RST before any answer; each request's arrival time in `Seen.at`). Adds the vendors'
error bodies, each form of "retry later", well-formed streams to break, and a listener that
never accepts (connect timeouts)."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from replay_server import Reply

JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
NDJSON = {"content-type": "application/x-ndjson"}

# Obviously fake keys, one per provider, long enough that masking hides most of them.
KEYS = {
    "lab": "sk-test-FAKE-lab-0000",
    "backup": "sk-test-FAKE-backup-0000",
    "third": "sk-test-FAKE-third-0000",
    "claude": "sk-ant-test-FAKE-cl-0000",
    "gem": "AIza-test-FAKE-gem-00000000000000000",
}


# ---- error replies ------------------------------------------------------------------------


def openai_error(
    status: int, message: str = "boom", headers: dict[str, str] | None = None, **err: Any
) -> Reply:
    body = {"error": {"message": message, "type": err.pop("type", "x"), "code": None, **err}}
    return Reply(status, {**JSON, **(headers or {})}, json.dumps(body).encode())


def http_date(when: float) -> str:
    return email.utils.formatdate(when, usegmt=True)


def rate_limited(form: str, seconds: float = 1.0) -> Reply:
    """A 429 that asks for `seconds` in one of the forms vendors use."""
    if form == "seconds":
        return openai_error(429, "Rate limit reached", {"retry-after": f"{seconds:g}"})
    if form == "ms":
        return openai_error(429, "Rate limit reached", {"retry-after-ms": str(int(seconds * 1000))})
    if form == "date":  # `seconds` from now (whole seconds: a date has no fractions)
        return openai_error(429, "Rate limit reached", {"retry-after": http_date(when_in(seconds))})
    if form == "none":
        return openai_error(429, "Rate limit reached")
    raise ValueError(form)


def when_in(seconds: float) -> float:
    """The unix time `seconds` from now, rounded down to a whole second."""
    return float(int(time.time() + seconds))


def gemini_rate_limited(delay: str = "1s", headers: dict[str, str] | None = None) -> Reply:
    """Gemini's 429: a google.rpc.Status with RetryInfo.retryDelay in the body."""
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaMetric": "generativelanguage.googleapis.com/x"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
            ],
        }
    }
    return Reply(429, {**JSON, **(headers or {})}, json.dumps(body).encode())


def anthropic_overloaded() -> Reply:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return Reply(529, JSON, json.dumps(body).encode())


def anthropic_error(status: int, etype: str, message: str) -> Reply:
    body = {"type": "error", "error": {"type": etype, "message": message}}
    return Reply(status, JSON, json.dumps(body).encode())


def html_page(status: int, title: str = "502 Bad Gateway") -> Reply:
    body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1><hr>nginx</body></html>"
    return Reply(status, {"content-type": "text/html"}, body.encode())


# ---- good streams (to break) --------------------------------------------------------------


def openai_chunk(text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


OPENAI_USAGE = {
    "id": "c1",
    "choices": [],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


def sse(*objs: Any, done: bool = True) -> bytes:
    text = "".join(f"data: {json.dumps(o)}\n\n" for o in objs)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def openai_stream(*texts: str) -> Reply:
    chunks = [sse(openai_chunk(t), done=False) for t in texts]
    chunks.append(sse(openai_chunk(finish="stop"), OPENAI_USAGE))
    return Reply(200, SSE, chunks=chunks)


def openai_ok(text: str = "fine") -> Reply:
    return openai_stream(text)


def anthropic_stream(text: str = "fine") -> Reply:
    events = [
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 5}}}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 2},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()
    return Reply(200, SSE, chunks=[body])


def gemini_stream(text: str = "fine") -> Reply:
    obj = {
        "candidates": [{"content": {"parts": [{"text": text}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
    }
    return Reply(200, SSE, chunks=[f"data: {json.dumps(obj)}\r\n\r\n".encode()])


# ---- connect timeouts ---------------------------------------------------------------------


@contextmanager
def blackhole() -> Iterator[str]:
    """A URL whose connects hang: a listener with a full accept queue that never accepts, so
    the kernel drops further SYNs (on loopback, no packet leaves the machine)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for c in fillers:
            c.close()
        srv.close()
