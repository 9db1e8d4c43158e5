"""Inbound Anthropic Messages: POST /v1/messages, JSON or the SSE sequence message_start,
content_block_start/delta/stop, message_delta (with usage), message_stop; errors as
{"type": "error", "error": {"type", "message"}}."""

from __future__ import annotations

import json
from typing import Any

from callm.call_types import CallOutcome
from callm.gateway.common import BadRequest, Inbound, model_of, new_id, sse, tool, tool_call, want
from callm.types import FinishReason, Message, StreamEvent, TextDelta, ToolCall, ToolCallDelta

MEDIA_TYPE = "text/event-stream"
_STOP: dict[str, str] = {"stop": "end_turn", "length": "max_tokens", "tool_call": "tool_use"}
_ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    etype = _ERROR_TYPE.get(status, "api_error")
    return {"type": "error", "error": {"type": etype, "message": message}}


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    raise BadRequest("content must be a string or a list of blocks")


def _image(block: dict[str, Any]) -> str | None:
    src = block.get("source") or {}
    if src.get("type") == "base64":
        return f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
    if src.get("type") == "url" and isinstance(src.get("url"), str):
        return str(src["url"])
    return None


def _messages(raw: list[Any]) -> list[Message]:
    """Blocks to canonical turns: tool_result blocks become "tool" turns (before the user's
    text of the same message), tool_use blocks the assistant's tool calls."""
    out: list[Message] = []
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest("every message needs role 'user' or 'assistant'")
        role, content = m["role"], m.get("content")
        if not isinstance(content, list):
            out.append(Message(role, _text(content)))
            continue
        texts: list[str] = []
        images: list[str] = []
        calls: list[ToolCall] = []
        for b in content:
            if not isinstance(b, dict):
                raise BadRequest("every content block must be an object")
            kind = b.get("type")
            if kind == "text":
                texts.append(str(b.get("text", "")))
            elif kind == "image":
                url = _image(b)
                if url:
                    images.append(url)
            elif kind == "tool_use":
                calls.append(tool_call(b.get("id"), b.get("name"), b.get("input")))
            elif kind == "tool_result":
                out.append(
                    Message("tool", _text(b.get("content")), tool_call_id=b.get("tool_use_id"))
                )
        if texts or images or calls or role == "assistant":
            out.append(Message(role, "".join(texts), tool_calls=tuple(calls), images=tuple(images)))
    return out


def parse(body: Any) -> Inbound:
    model = model_of(body, "model: Field required")
    messages = want(body, "messages", list)
    if not messages:
        raise BadRequest("messages: Field required")
    max_tokens = want(body, "max_tokens", int)
    if max_tokens is None:
        raise BadRequest("max_tokens: Field required")
    tools = tuple(
        tool(t.get("name"), t.get("description"), t.get("input_schema"))
        for t in want(body, "tools", list) or ()
        if isinstance(t, dict)
    )
    tc = want(body, "tool_choice", dict) or {}
    choice = {"auto": "auto", "any": "required", "none": "none"}.get(tc.get("type", ""))
    if tc.get("type") == "tool":
        choice = tc.get("name")
    options = {k: body[k] for k in ("top_p", "top_k") if body.get(k) is not None}
    return Inbound(
        model=model,
        messages=_messages(messages),
        stream=bool(body.get("stream")),
        system=_text(body.get("system")) or None,
        temperature=want(body, "temperature", (int, float)),
        max_tokens=max_tokens,
        tools=tools,
        tool_choice=choice,
        stop=tuple(s for s in want(body, "stop_sequences", list) or () if isinstance(s, str)),
        options=options,
    )


def stop_reason(reason: FinishReason | None) -> str:
    return _STOP.get(reason or "stop", "end_turn")


def _input(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return {}


def complete(inb: Inbound, out: CallOutcome) -> dict[str, Any]:
    r = out.result
    content: list[dict[str, Any]] = [{"type": "text", "text": r.text}] if r.text else []
    for i, c in enumerate(r.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": c.id or f"toolu_{i}",
                "name": c.name,
                "input": _input(c.arguments),
            }
        )
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": inb.model,
        "content": content,
        "stop_reason": stop_reason(r.finish_reason),
        "stop_sequence": None,
        "usage": _usage(out),
    }


def _usage(out: CallOutcome) -> dict[str, int]:
    u = out.usage
    return {
        "input_tokens": u.input_tokens - u.cache_read_tokens - u.cache_write_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    }


def _frame(event: str, obj: dict[str, Any]) -> bytes:
    return sse(obj, event)


class Renderer:
    """Canonical events -> Anthropic SSE. A text block is open until a tool call starts."""

    media_type = MEDIA_TYPE

    def __init__(self, inb: Inbound, input_tokens: int = 0) -> None:
        self.inb = inb
        self.input_tokens = input_tokens
        self.block = -1  # the index of the open block
        self.kind: str | None = None  # "text" | "tool_use" | None (none open)
        self.tools: dict[int, int] = {}  # tool call index -> block index

    def start(self) -> list[bytes]:
        msg = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": self.inb.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
        }
        return [_frame("message_start", {"type": "message_start", "message": msg})]

    def _close(self) -> list[bytes]:
        if self.kind is None:
            return []
        self.kind = None
        return [_frame("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def _open(self, block: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self.block += 1
        self.kind = block["type"]
        frames.append(
            _frame(
                "content_block_start",
                {"type": "content_block_start", "index": self.block, "content_block": block},
            )
        )
        return frames

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _frame(
            "content_block_delta",
            {"type": "content_block_delta", "index": self.block, "delta": delta},
        )

    def event(self, ev: StreamEvent) -> list[bytes]:
        frames: list[bytes] = []
        if isinstance(ev, TextDelta):
            if self.kind != "text":
                frames += self._open({"type": "text", "text": ""})
            frames.append(self._delta({"type": "text_delta", "text": ev.text}))
        elif isinstance(ev, ToolCallDelta):
            if ev.index not in self.tools:
                block = {
                    "type": "tool_use",
                    "id": ev.id or f"toolu_{ev.index}",
                    "name": ev.name or "",
                    "input": {},
                }
                frames += self._open(block)
                self.tools[ev.index] = self.block
            if ev.arguments:
                frames.append(
                    self._delta({"type": "input_json_delta", "partial_json": ev.arguments})
                )
        return frames

    def end(self, out: CallOutcome) -> list[bytes]:
        frames = self._close()
        delta = {"stop_reason": stop_reason(out.result.finish_reason), "stop_sequence": None}
        frames.append(
            _frame("message_delta", {"type": "message_delta", "delta": delta, "usage": _usage(out)})
        )
        frames.append(_frame("message_stop", {"type": "message_stop"}))
        return frames

    def fail(self, status: int, message: str) -> list[bytes]:
        return [_frame("error", error_body(status, message))]
