"""Anthropic Messages API: POST /v1/messages, SSE events, `{"type":"error"}` bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from callm.drivers import parts
from callm.drivers.base import (
    READ_ERRORS,
    body_text,
    count,
    defer_after_events,
    error_from_http,
    join_url,
    loads,
    parse_retry_after,
    reads_error_body,
    reads_json,
    total,
)
from callm.drivers.sse import SSEDecoder
from callm.drivers.structured import SCHEMA_TOOL, strict_schema
from callm.drivers.wire_tools import anthropic_fields, anthropic_messages
from callm.errors import AuthError, CallmError, NotFoundError, OverloadedError
from callm.types import (
    Attachment,
    ChatRequest,
    Endpoint,
    Finished,
    FinishReason,
    HttpRequest,
    Message,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

API_VERSION = "2023-06-01"
# The API requires max_tokens; this is what we ask for when the user did not say.
DEFAULT_MAX_TOKENS = 4096

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
    "pause_turn": "unknown",
}

# error.type -> the HTTP status Anthropic documents for it (used for errors sent inside a
# 200 stream, where the real status says nothing)
_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _usage(u: Mapping[str, Any]) -> Usage:
    inp = count(u.get("input_tokens"))
    cache_read = count(u.get("cache_read_input_tokens"))
    cache_write = count(u.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=total(inp, cache_read, cache_write),
        output_tokens=count(u.get("output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _error(
    err: Any, status: int, headers: Mapping[str, str] | None = None, fallback: str = ""
) -> CallmError:
    """Map an Anthropic `error` object (or anything else) to a canonical error."""
    etype = message = None
    if isinstance(err, dict):
        etype = err.get("type")
        message = err.get("message")
    etype = etype if isinstance(etype, str) else None
    msg = message if isinstance(message, str) and message else (fallback or f"HTTP {status}")
    if status < 400:  # an error event inside a 200 stream
        status = _TYPE_STATUS.get(etype or "", 500)
    if etype in ("authentication_error", "permission_error"):
        return AuthError(msg, status=status)
    if etype == "not_found_error":
        return NotFoundError(msg, status=status)
    if etype == "overloaded_error":
        wait = parse_retry_after(headers) if headers is not None else None
        return OverloadedError(msg, status=status, retry_after=wait)
    return error_from_http(status, msg, code=etype, headers=headers)


def _with_user_headers(headers: dict[str, str], user: Mapping[str, str]) -> dict[str, str]:
    """The provider's configured headers win, whatever their letter case."""
    if user:
        lower = {k.lower() for k in user}
        headers = {k: v for k, v in headers.items() if k.lower() not in lower}
        headers.update(user)
    return headers


class AnthropicStreamParser:
    __slots__ = ("_error", "_raw_usage", "_sse", "_tool_index")

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._raw_usage: dict[str, int] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call ordinal
        self._error: CallmError | None = None

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._error:
            raise self._error
        return self._handle(self._sse.feed(data))

    def close(self) -> list[StreamEvent]:
        if self._error:
            raise self._error
        return self._handle(self._sse.close())

    def _handle(self, frames: list[tuple[str | None, bytes]]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        try:
            self._frames(frames, out)
        except READ_ERRORS as exc:
            self._error = defer_after_events(exc, out)
        return out

    def _frames(self, frames: list[tuple[str | None, bytes]], out: list[StreamEvent]) -> None:
        for event, data in frames:
            if event == "ping" or not data:
                continue
            obj = loads(data)
            if not isinstance(obj, dict):
                continue
            t = obj.get("type") or event
            if t == "content_block_delta":
                self._delta(obj, out)
            elif t == "content_block_start":
                self._block_start(obj, out)
            elif t == "message_start":
                msg = obj.get("message") or {}
                self._merge_usage(msg.get("usage"), out)
            elif t == "message_delta":
                self._merge_usage(obj.get("usage"), out)
                reason = (obj.get("delta") or {}).get("stop_reason")
                if reason:
                    out.append(Finished(_FINISH.get(reason, "unknown")))
            elif t == "error":
                raise _error(obj.get("error"), 200, fallback=data.decode("utf-8", "replace"))
            # ping, content_block_stop, message_stop and future event types carry nothing

    def _delta(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = obj.get("delta") or {}
        dt = delta.get("type")
        if dt == "text_delta":
            text = delta.get("text")
            if text:
                out.append(TextDelta(text))
        elif dt == "input_json_delta":
            part = delta.get("partial_json")
            idx = self._tool_index.get(obj.get("index", -1))
            if part and idx is not None:
                out.append(ToolCallDelta(index=idx, arguments=part))
        elif dt == "thinking_delta":
            text = delta.get("thinking")
            if text:
                out.append(ReasoningDelta(text))
        # signature_delta, citations_delta: nothing callm shows

    def _block_start(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        block = obj.get("content_block") or {}
        bt = block.get("type")
        if bt == "tool_use":
            idx = len(self._tool_index)
            self._tool_index[obj.get("index", idx)] = idx
            args = block.get("input")
            out.append(
                ToolCallDelta(
                    index=idx,
                    id=block.get("id"),
                    name=block.get("name"),
                    arguments=json.dumps(args) if args else "",
                )
            )
        elif bt == "text" and block.get("text"):
            out.append(TextDelta(block["text"]))
        elif bt == "thinking" and block.get("thinking"):
            out.append(ReasoningDelta(block["thinking"]))

    def _merge_usage(self, u: Any, out: list[StreamEvent]) -> None:
        """message_delta usage is cumulative but may carry only output_tokens: merge."""
        if not isinstance(u, dict):
            return
        raw = self._raw_usage
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            v = u.get(k)
            if isinstance(v, int):
                raw[k] = v
        out.append(UsageReport(_usage(raw)))


def _split_system(req: ChatRequest) -> tuple[str | None, list[Message]]:
    systems = [req.system] if req.system else []
    rest: list[Message] = []
    for m in req.messages:
        if m.role == "system":
            systems.append(m.content)
        else:
            rest.append(m)
    return ("\n\n".join(systems) if systems else None), rest


# Models with native structured output (`output_format`, beta header); others get a tool.
STRUCTURED_BETA = "structured-outputs-2025-11-13"
_NATIVE_SCHEMA = re.compile(
    r"^claude-(?:(?:sonnet|haiku|opus)-4-5|opus-4-1|(?:[a-z]+-)?(?:[5-9]|\d\d)(?:[-.]|$))", re.I
)


def native_structured_output(model: str) -> bool:
    return bool(_NATIVE_SCHEMA.match(model))


def _messages(messages: list[Message], atts: tuple[Attachment, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
    if atts:
        parts.anthropic(out, atts)
    return out


class AnthropicDriver:
    name = "anthropic"
    local = False

    def _headers(self, ep: Endpoint) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
        if ep.key:
            headers["x-api-key"] = ep.key
        return _with_user_headers(headers, ep.headers)

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest:
        system, messages = _split_system(req)
        body: dict[str, Any] = {
            "model": req.model,
            "messages": _messages(messages, req.attachments)
            if req.attachments
            else anthropic_messages(messages),
            "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            body["system"] = system
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.stream:
            body["stream"] = True
        anthropic_fields(req, body)
        headers = self._headers(ep)
        if req.schema is not None:
            if native_structured_output(req.model):
                body["output_format"] = {"type": "json_schema", "schema": strict_schema(req.schema)}
                headers = _with_user_headers(
                    {**headers, "anthropic-beta": STRUCTURED_BETA}, ep.headers
                )
            else:  # a forced tool whose input is the answer
                body["tools"] = [
                    {
                        "name": SCHEMA_TOOL,
                        "description": "Reply by calling this tool with the answer.",
                        "input_schema": req.schema,
                    }
                ]
                body["tool_choice"] = {"type": "tool", "name": SCHEMA_TOOL}
        for k, v in req.options.items():  # -o top_k:=5, -o thinking:=..., passed through
            body[k] = v
        return HttpRequest("POST", join_url(ep.base_url, "messages"), headers, body)

    def stream_parser(self) -> AnthropicStreamParser:
        return AnthropicStreamParser()

    @reads_json
    def parse_response(self, body: bytes) -> list[StreamEvent]:
        obj = loads(body)
        if not isinstance(obj, dict):
            raise _error(None, 500, fallback=body_text(body))
        if obj.get("type") == "error":
            raise _error(obj.get("error"), 200, fallback=body_text(body))
        out: list[StreamEvent] = []
        tools = 0
        for block in obj.get("content") or ():
            bt = block.get("type")
            if bt == "text" and block.get("text"):
                out.append(TextDelta(block["text"]))
            elif bt == "thinking" and block.get("thinking"):
                out.append(ReasoningDelta(block["thinking"]))
            elif bt == "tool_use":
                args = block.get("input")
                out.append(
                    ToolCallDelta(
                        index=tools,
                        id=block.get("id"),
                        name=block.get("name"),
                        arguments=json.dumps(args if args is not None else {}),
                    )
                )
                tools += 1
        if isinstance(obj.get("usage"), dict):
            out.append(UsageReport(_usage(obj["usage"])))
        reason = obj.get("stop_reason")
        if reason:
            out.append(Finished(_FINISH.get(reason, "unknown")))
        return out

    @reads_error_body
    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        err = obj.get("error") if isinstance(obj, dict) else None
        return _error(err, status, headers, fallback=body_text(body))

    def models_request(self, ep: Endpoint, page_token: str | None = None) -> HttpRequest:
        url = join_url(ep.base_url, "models?limit=1000")
        if page_token:
            url += "&after_id=" + quote(page_token, safe="")
        headers = self._headers(ep)
        headers.pop("Content-Type", None)
        return HttpRequest("GET", url, headers)

    @reads_json
    def parse_models(self, ep: Endpoint, body: bytes) -> tuple[list[ModelInfo], str | None]:
        obj = loads(body)
        if not isinstance(obj, dict):
            raise _error(None, 500, fallback=body_text(body))
        models: list[ModelInfo] = []
        for m in obj.get("data") or ():
            mid = m.get("id")
            if not mid:
                continue
            caps = m.get("capabilities")
            capabilities = (
                tuple(
                    k
                    for k, v in caps.items()
                    if (v.get("supported") if isinstance(v, dict) else v) is True
                )
                if isinstance(caps, dict)
                else ()
            )
            extra = {k: m[k] for k in ("created_at", "type") if k in m}
            models.append(
                ModelInfo(
                    provider=ep.name,
                    id=mid,
                    context_window=m.get("max_input_tokens"),
                    max_output=m.get("max_tokens"),
                    capabilities=capabilities,
                    display_name=m.get("display_name"),
                    extra=extra,
                )
            )
        nxt = obj.get("last_id") if obj.get("has_more") else None
        return models, nxt
