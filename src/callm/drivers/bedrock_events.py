"""Bedrock's replies as canonical events and errors: ConverseStream's event-stream frames
(decoded by botocore, CRCs checked), `metadata` usage, and AWS error types, whether sent as an
HTTP error or as a `:message-type: exception` frame inside a 200 stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callm.drivers.base import READ_ERRORS, defer_after_events, error_from_http, loads
from callm.errors import (
    AuthError,
    BadResponseError,
    CallmError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from callm.types import (
    Finished,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Converse's own request fields; any other `-o` option goes to additionalModelRequestFields
# (the model's native parameters, e.g. top_k).
_STATUS = {
    "accessdenied": 403,
    "unrecognizedclient": 403,
    "invalidsignature": 403,
    "expiredtoken": 403,
    "incompletesignature": 403,
    "missingauthenticationtoken": 403,
    "validation": 400,
    "resourcenotfound": 404,
    "throttling": 429,
    "servicequotaexceeded": 429,
    "modelnotready": 429,
    "modeltimeout": 408,
    "modelerror": 424,
    "modelstreamerror": 424,
    "internalserver": 500,
    "serviceunavailable": 503,
}


def _kind(etype: str | None) -> str:
    """`ThrottlingException`, `throttlingException`, `ValidationException:http://...` ->
    `throttling`, `validation`."""
    name = (etype or "").split(":", 1)[0].split("#")[-1].strip().lower()
    return name[: -len("exception")] if name.endswith("exception") else name


def bedrock_error(
    etype: str | None, message: str, status: int | None = None, headers: Any = None
) -> CallmError:
    """An AWS error (HTTP reply or in-stream exception) as a canonical error."""
    kind = _kind(etype)
    status = status if status and status >= 400 else _STATUS.get(kind, 500)
    # AWS appends the canonical request to a signature error after a blank line: keep line one
    msg = (message or "").split("\n\n", 1)[0].strip() or etype or f"HTTP {status}"
    if kind in ("accessdenied", "unrecognizedclient", "invalidsignature", "expiredtoken"):
        return AuthError(msg, status=status)
    if kind in ("incompletesignature", "missingauthenticationtoken"):
        return AuthError(msg, status=status)
    if kind in ("throttling", "servicequotaexceeded"):
        return RateLimitError(msg, status=status)
    if kind in ("modelnotready", "serviceunavailable"):
        return OverloadedError(msg, status=status)
    if kind == "resourcenotfound":
        return NotFoundError(msg, status=status)
    if kind in ("modeltimeout", "modelerror", "modelstreamerror", "internalserver"):
        return ServerError(msg, status=status)
    if kind == "validation":
        low = msg.lower()
        if any(m in low for m in _CONTEXT_MARKERS):
            return ContextLengthError(msg, status=status)
        return error_from_http(400, msg, headers=headers)
    return error_from_http(status, msg, code=etype, headers=headers)


# What Bedrock's validation messages say when the prompt does not fit the model
_CONTEXT_MARKERS = (
    "input is too long",
    "too many input tokens",
    "too many tokens",
    "prompt is too long",
    "context window",
    "context length",
    "maximum context",
    "exceeds the maximum",
    "max_tokens_to_sample",
)


def converse_usage(u: Mapping[str, Any]) -> Usage:
    """Converse's inputTokens leaves out cached tokens; callm counts every prompt token."""
    inp = u.get("inputTokens") or 0
    read = u.get("cacheReadInputTokens") or 0
    write = u.get("cacheWriteInputTokens") or 0
    return Usage(
        input_tokens=inp + read + write,
        output_tokens=u.get("outputTokens") or 0,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


class BedrockStreamParser:
    """ConverseStream event-stream frames -> canonical events."""

    __slots__ = ("_buffer", "_error", "_fed", "_json", "_read", "_tool_index")

    def __init__(self) -> None:
        from callm.aws_auth import need_botocore

        need_botocore()
        from botocore.eventstream import EventStreamBuffer

        self._buffer = EventStreamBuffer()
        self._fed = 0  # bytes given to the buffer
        self._read = 0  # bytes of the complete frames taken out of it
        self._tool_index: dict[int, int] = {}  # content block index -> tool call ordinal
        self._error: CallmError | None = None
        # A body starting with "{" is JSON, not frames (a frame this long would be > 2 GB): a
        # server that ignored the stream, whose whole reply the engine reads as such.
        self._json = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._error:
            raise self._error
        if self._json or (self._fed == 0 and data[:1] == b"{"):
            self._json = True
            return []
        out: list[StreamEvent] = []
        try:
            self._buffer.add_data(data)
            self._fed += len(data)
            for message in self._buffer:
                self._read += message.prelude.total_length
                self._frame(message.headers, message.payload, out)
        except READ_ERRORS as exc:
            self._error = defer_after_events(exc, out)
        except Exception as exc:  # botocore's ParserError: a bad CRC or length
            self._error = defer_after_events(_corrupt(exc), out)
        return out

    def close(self) -> list[StreamEvent]:
        if self._error:
            raise self._error
        if self._fed != self._read:
            raise BadResponseError(
                f"the event stream ended inside a frame ({self._fed - self._read} bytes left)"
            )
        return []

    def _frame(self, headers: Mapping[str, Any], payload: bytes, out: list[StreamEvent]) -> None:
        mtype = headers.get(":message-type")
        if mtype == "exception":
            body = loads(payload) if payload else {}
            message = (body.get("message") or body.get("Message")) if isinstance(body, dict) else ""
            raise bedrock_error(headers.get(":exception-type"), message or "")
        if mtype == "error":
            raise bedrock_error(headers.get(":error-code"), headers.get(":error-message") or "")
        if mtype != "event":
            return
        event = headers.get(":event-type")
        obj = loads(payload) if payload else {}
        if event == "contentBlockDelta":
            self._delta(obj, out)
        elif event == "contentBlockStart":
            tool = (obj.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                idx = len(self._tool_index)
                self._tool_index[obj.get("contentBlockIndex", idx)] = idx
                out.append(ToolCallDelta(idx, id=tool.get("toolUseId"), name=tool.get("name")))
        elif event == "messageStop":
            reason = obj.get("stopReason")
            out.append(Finished(FINISH.get(reason, "unknown") if reason else "stop"))
        elif event == "metadata" and isinstance(obj.get("usage"), dict):
            out.append(UsageReport(converse_usage(obj["usage"])))
        # messageStart, contentBlockStop and future events carry nothing callm shows

    def _delta(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = obj.get("delta") or {}
        if delta.get("text"):
            out.append(TextDelta(delta["text"]))
        elif isinstance(delta.get("toolUse"), dict):
            part = delta["toolUse"].get("input")
            idx = self._tool_index.get(obj.get("contentBlockIndex", -1))
            if part and idx is not None:
                out.append(ToolCallDelta(idx, arguments=part))
        elif isinstance(delta.get("reasoningContent"), dict):
            text = delta["reasoningContent"].get("text")
            if text:
                out.append(ReasoningDelta(text))


def _corrupt(exc: Exception) -> BadResponseError:
    what = "checksum mismatch" if "Checksum" in type(exc).__name__ else type(exc).__name__
    return BadResponseError(f"corrupt event-stream frame from the provider ({what}): {exc}")
