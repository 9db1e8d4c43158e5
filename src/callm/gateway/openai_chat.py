"""Inbound OpenAI Chat Completions: POST /v1/chat/completions, JSON or SSE chunks ending
with `data: [DONE]`; errors as {"error": {"message", "type", "code"}}."""

from __future__ import annotations

import time
from typing import Any

from callm.call_types import CallOutcome
from callm.gateway.common import BadRequest, Inbound, model_of, new_id, sse, tool, tool_call, want
from callm.types import (
    FinishReason,
    Message,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

MEDIA_TYPE = "text/event-stream"
_FINISH: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_call": "tool_calls",
    "content_filter": "content_filter",
}
_ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    etype = _ERROR_TYPE.get(status, "api_error")
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def text_of(content: Any, images: list[str] | None = None) -> str:
    """`content` as a string or a list of parts; image parts go to `images`."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise BadRequest("message content must be a string or a list of parts")
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("image_url", "input_image") and images is not None:
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                if isinstance(url, str):
                    images.append(url)
    return "".join(texts)


def _message(m: Any) -> Message:
    if not isinstance(m, dict):
        raise BadRequest("every message must be an object")
    role = m.get("role")
    if role in ("system", "developer"):
        return Message("system", text_of(m.get("content")))
    if role == "tool":
        return Message("tool", text_of(m.get("content")), tool_call_id=m.get("tool_call_id"))
    if role == "assistant":
        calls: list[ToolCall] = []
        for c in m.get("tool_calls") or ():
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict):
                raise BadRequest("a tool call needs a function")
            calls.append(tool_call(c.get("id"), fn.get("name"), fn.get("arguments")))
        return Message("assistant", text_of(m.get("content")), tool_calls=tuple(calls))
    if role == "user":
        images: list[str] = []
        text = text_of(m.get("content"), images)
        return Message("user", text, images=tuple(images))
    raise BadRequest(f"unknown message role {role!r}")


def parse(body: Any) -> Inbound:
    model = model_of(body, "'model' is required")
    messages = want(body, "messages", list)
    if not messages:
        raise BadRequest("'messages' must be a non-empty list")
    tools = []
    for t in want(body, "tools", list) or ():
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict):
            raise BadRequest("only function tools are supported")
        tools.append(tool(fn.get("name"), fn.get("description"), fn.get("parameters")))
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name")
    stop = body.get("stop")
    stop = (stop,) if isinstance(stop, str) else tuple(s for s in stop or () if isinstance(s, str))
    rf = want(body, "response_format", dict)
    fmt: dict[str, Any] | None = None
    if rf and rf.get("type") == "json_schema":
        js = rf.get("json_schema") or {}
        fmt = {"type": "json_schema", "name": js.get("name"), "schema": js.get("schema") or {}}
        if js.get("strict") is not None:
            fmt["strict"] = js["strict"]
    elif rf and rf.get("type") == "json_object":
        fmt = {"type": "json_object"}
    options: dict[str, Any] = {}
    for key in ("top_p", "seed", "presence_penalty", "frequency_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
    stream = bool(body.get("stream"))
    return Inbound(
        model=model,
        messages=[_message(m) for m in messages],
        stream=stream,
        temperature=want(body, "temperature", (int, float)),
        max_tokens=want(body, "max_completion_tokens", int) or want(body, "max_tokens", int),
        tools=tuple(tools),
        tool_choice=choice if isinstance(choice, str) else None,
        stop=stop,
        response_format=fmt,
        options=options,
        include_usage=stream and bool((body.get("stream_options") or {}).get("include_usage")),
    )


def usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def finish(reason: FinishReason | None) -> str:
    return _FINISH.get(reason or "stop", "stop")


def complete(inb: Inbound, out: CallOutcome) -> dict[str, Any]:
    r = out.result
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None, "refusal": None}
    if r.refusal:
        message["refusal"] = r.refusal
    if r.reasoning:
        message["reasoning_content"] = r.reasoning
    if r.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id or f"call_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for i, c in enumerate(r.tool_calls)
        ]
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": inb.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish(r.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": usage_json(out.usage),
    }


class Renderer:
    """Canonical events -> `chat.completion.chunk` SSE frames."""

    media_type = MEDIA_TYPE

    def __init__(self, inb: Inbound) -> None:
        self.inb = inb
        self.id = new_id("chatcmpl-")
        self.created = int(time.time())

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.inb.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
        }
        if self.inb.include_usage:
            obj["usage"] = None
        return sse(obj)

    def start(self) -> list[bytes]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def event(self, ev: StreamEvent) -> list[bytes]:
        if isinstance(ev, TextDelta):
            return [self._chunk({"content": ev.text})]
        if isinstance(ev, ToolCallDelta):
            call: dict[str, Any] = {"index": ev.index, "function": {"arguments": ev.arguments}}
            if ev.id is not None or ev.name is not None:
                call["id"] = ev.id or f"call_{ev.index}"
                call["type"] = "function"
                call["function"]["name"] = ev.name or ""
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(ev, ReasoningDelta):
            return [self._chunk({"reasoning_content": ev.text})]
        if isinstance(ev, RefusalDelta):
            return [self._chunk({"refusal": ev.text})]
        return []

    def end(self, out: CallOutcome) -> list[bytes]:
        frames = [self._chunk({}, finish(out.result.finish_reason))]
        if self.inb.include_usage:
            obj = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.inb.model,
                "choices": [],
                "usage": usage_json(out.usage),
            }
            frames.append(sse(obj))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def fail(self, status: int, message: str) -> list[bytes]:
        """An error after the stream started: an `error` chunk, and no [DONE]."""
        return [sse(error_body(status, message))]
