"""OpenAI Responses API (also served by OpenRouter, vLLM and others): POST {base}/responses.

Request: `input` as [{role, content}], `instructions` for the system prompt,
`max_output_tokens`, `stream`, and `store: false` unless `-o store=true` (callm never reads
a stored response back). Other `-o` options go into the body as for Chat Completions.

Stream: SSE events named by their JSON "type" (OpenAI also sends `event:` lines, OpenRouter
only `data:` and a final [DONE]). Text, reasoning (summary or raw), refusal and function-call
argument deltas become events; `response.completed` / `response.incomplete` carry usage and
decide the finish; `response.failed` and `error` raise a CallmError from feed().
A key is optional: local servers that speak this format take none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callm.drivers import parts
from callm.drivers.base import READ_ERRORS, defer_after_events, join_url, loads, reads_json
from callm.drivers.openai import OpenAIChatDriver
from callm.drivers.openai_common import SSEJSONReader, apply_options, stream_error
from callm.drivers.structured import SCHEMA_NAME, strict_schema
from callm.drivers.wire_tools import responses_fields, responses_input
from callm.errors import BadResponseError, CallmError
from callm.types import (
    ChatRequest,
    Endpoint,
    Finished,
    FinishReason,
    HttpRequest,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

_REASONING = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})
_FINAL = frozenset({"response.completed", "response.incomplete", "response.done"})
_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
}


def responses_usage(u: Mapping[str, Any]) -> Usage:
    """input_tokens include cached ones; output_tokens include reasoning."""
    itd = u.get("input_tokens_details") or {}
    otd = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=u.get("input_tokens") or 0,
        output_tokens=u.get("output_tokens") or 0,
        cache_read_tokens=itd.get("cached_tokens") or 0,
        reasoning_tokens=otd.get("reasoning_tokens") or 0,
    )


def _finish(resp: Mapping[str, Any], saw_call: bool = False) -> FinishReason:
    status = resp.get("status")
    if status == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE.get(reason or "", "unknown")
    if status == "failed":
        return "error"
    output = resp.get("output") or ()
    if saw_call or any(isinstance(i, dict) and i.get("type") == "function_call" for i in output):
        return "tool_call"
    return "stop"


def _final_events(resp: Mapping[str, Any], saw_call: bool = False) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    usage = resp.get("usage")
    if usage:
        out.append(UsageReport(responses_usage(usage)))
    out.append(Finished(_finish(resp, saw_call)))
    return out


def _error_of(obj: Mapping[str, Any]) -> CallmError:
    """`error` event ({type, code, message} or {type, error: {...}}), or response.failed."""
    if obj.get("type") in ("response.failed", "response.error"):
        err = (obj.get("response") or {}).get("error") or obj.get("error")
        return stream_error(err or {"message": "response failed", "code": "server_error"})
    err = obj.get("error")
    return stream_error(err if err else {k: v for k, v in obj.items() if k != "type"})


class ResponsesStreamParser:
    __slots__ = ("_args_seen", "_calls", "_pending", "_reader")

    def __init__(self) -> None:
        self._reader = SSEJSONReader()
        self._pending: CallmError | None = None
        self._calls: set[int] = set()  # output_index of function calls
        self._args_seen: set[int] = set()  # ... that streamed argument deltas

    def close(self) -> list[StreamEvent]:
        events = self.feed(b"\n\n")  # flush a final event sent without its blank line
        if self._pending is not None:
            err, self._pending = self._pending, None
            raise err
        return events

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._pending is not None:
            err, self._pending = self._pending, None
            raise err
        out: list[StreamEvent] = []
        try:
            for obj in self._reader.feed(data):
                self._event(obj, out)
        except READ_ERRORS as exc:
            self._reader.done = True  # nothing after an error counts
            self._pending = defer_after_events(exc, out)
        return out

    def _event(self, obj: Any, out: list[StreamEvent]) -> None:
        if not isinstance(obj, dict):
            raise BadResponseError(f"unexpected event: {str(obj)[:120]!r}")
        kind = obj.get("type")
        if kind == "response.output_text.delta":
            if obj.get("delta"):
                out.append(TextDelta(obj["delta"]))
        elif kind in _REASONING:
            if obj.get("delta"):
                out.append(ReasoningDelta(obj["delta"]))
        elif kind == "response.refusal.delta":
            if obj.get("delta"):
                out.append(RefusalDelta(obj["delta"]))
        elif kind == "response.function_call_arguments.delta":
            idx = obj.get("output_index") or 0
            self._args_seen.add(idx)
            out.append(ToolCallDelta(idx, arguments=obj.get("delta") or ""))
        else:
            self._other(kind, obj, out)

    def _other(self, kind: Any, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        if kind == "response.output_item.added":
            item = obj.get("item") or {}
            if item.get("type") == "function_call":
                idx = obj.get("output_index") or 0
                self._calls.add(idx)
                out.append(
                    ToolCallDelta(idx, item.get("call_id") or item.get("id"), item.get("name"))
                )
        elif kind == "response.function_call_arguments.done":
            idx = obj.get("output_index") or 0
            if idx not in self._args_seen and obj.get("arguments"):
                out.append(ToolCallDelta(idx, arguments=obj["arguments"]))  # no deltas came
        elif kind in _FINAL:
            out.extend(_final_events(obj.get("response") or {}, bool(self._calls)))
        elif kind in ("error", "response.failed", "response.error") or (
            kind is None and obj.get("error")
        ):
            raise _error_of(obj)


def parse_responses_response(body: bytes) -> list[StreamEvent]:
    """A complete (non-streamed) Response object, as the events a stream would give."""
    resp = loads(body)
    if not isinstance(resp, dict):
        raise BadResponseError("unexpected reply: not a JSON object")
    if resp.get("status") == "failed" or (resp.get("error") and not resp.get("output")):
        raise _error_of({"type": "response.failed", "response": resp})
    out: list[StreamEvent] = []
    for i, item in enumerate(resp.get("output") or ()):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text" and part.get("text"):
                    out.append(TextDelta(part["text"]))
                elif part.get("type") == "refusal" and part.get("refusal"):
                    out.append(RefusalDelta(part["refusal"]))
        elif kind == "reasoning":
            for part in (item.get("summary") or []) + (item.get("content") or []):
                if isinstance(part, dict) and part.get("text"):
                    out.append(ReasoningDelta(part["text"]))
        elif kind == "function_call":
            call_id = item.get("call_id") or item.get("id")
            out.append(ToolCallDelta(i, call_id, item.get("name"), item.get("arguments") or ""))
    out.extend(_final_events(resp))
    return out


def _input(req: ChatRequest) -> list[dict[str, Any]]:
    items = responses_input(req.messages)
    if req.attachments:
        parts.responses(items, req.attachments)
    return items


class ResponsesDriver(OpenAIChatDriver):
    """Shares auth, error parsing and model listing with Chat Completions."""

    name = "openai-responses"
    key_required = False

    def chat_body(self, req: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "input": _input(req)}
        if req.system:
            body["instructions"] = req.system
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.max_tokens is not None:
            body["max_output_tokens"] = req.max_tokens
        body["stream"] = req.stream
        body["store"] = False
        responses_fields(req, body)
        if req.schema is not None:
            body["text"] = {
                "format": {
                    "type": "json_schema",
                    "name": SCHEMA_NAME,
                    "schema": strict_schema(req.schema),
                    "strict": True,
                }
            }
        apply_options(body, req.options)
        return body

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest:
        url = join_url(ep.base_url, "responses")
        return HttpRequest("POST", url, self._headers(ep), self.chat_body(req))

    def stream_parser(self) -> ResponsesStreamParser:  # type: ignore[override]
        return ResponsesStreamParser()

    @reads_json
    def parse_response(self, body: bytes) -> list[StreamEvent]:
        return parse_responses_response(body)
