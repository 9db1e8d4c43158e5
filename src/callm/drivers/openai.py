"""OpenAI Chat Completions, and every server that speaks it (openai-compatible).

Request: POST {base_url}/chat/completions. Streams are SSE `data:` frames ending with
`data: [DONE]`; usage is asked for with `stream_options.include_usage` and arrives in a chunk
whose `choices` is empty (OpenAI), on the finish chunk (DeepSeek, Mistral, OpenRouter) or
in `x_groq.usage` (Groq). Errors the vendor sends inside a 200 stream (OpenRouter: a chunk
with a top-level "error"; Groq: `event: error`) are raised from `feed()`.

Driver-internal `-o` options (never sent): `include_usage=false` drops `stream_options` for
servers that reject it. Every other option is copied into the JSON body as is; `model`,
`messages` and `stream` are set by callm and cannot be overridden, and `n` must be 1 (the
parser reads one answer).

`openai` needs a key and sends `max_completion_tokens` (OpenAI's reasoning models refuse
`max_tokens`); `openai-compatible` works without a key (no Authorization header) and sends
`max_tokens`, which every compatible server reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from callm.drivers import parts
from callm.drivers.base import (
    READ_ERRORS,
    defer_after_events,
    join_url,
    loads,
    reads_error_body,
    reads_json,
)
from callm.drivers.openai_common import (
    SSEJSONReader,
    apply_options,
    parse_openai_error,
    parse_openai_models,
    stream_error,
)
from callm.drivers.structured import SCHEMA_NAME, strict_schema
from callm.drivers.wire_tools import openai_fields, openai_message
from callm.errors import BadResponseError, CallmError, MissingKeyError
from callm.types import (
    ChatRequest,
    Endpoint,
    Finished,
    FinishReason,
    HttpRequest,
    ModelInfo,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "eos": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "tool_use": "tool_call",
    "content_filter": "content_filter",
    "error": "error",
}


# ---- request ----------------------------------------------------------------------------


# Reasoning models take the system prompt as role "developer" (o1-mini and o1-preview
# take neither; they are left as they were).
_DEVELOPER_MODELS = re.compile(
    r"^(?!o1-(?:mini|preview))(?:o[1-9]\d*(?:-|$)|gpt-(?:[5-9]|\d\d))", re.I
)


def system_role(model: str) -> str:
    return "developer" if _DEVELOPER_MODELS.match(model.rpartition("/")[2]) else "system"


def chat_messages(req: ChatRequest, role: str = "system") -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": role, "content": req.system}] if req.system else []
    msgs.extend(openai_message(m) for m in req.messages)
    if req.attachments:
        parts.openai_chat(msgs, req.attachments)
    return msgs


# ---- usage -------------------------------------------------------------------------------


def chat_usage(u: Mapping[str, Any]) -> Usage:
    """Chat Completions usage; prompt_tokens already include cached ones."""
    ptd = u.get("prompt_tokens_details") or {}
    ctd = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=u.get("prompt_tokens") or 0,
        output_tokens=u.get("completion_tokens") or 0,
        cache_read_tokens=ptd.get("cached_tokens") or u.get("prompt_cache_hit_tokens") or 0,
        cache_write_tokens=ptd.get("cache_write_tokens") or 0,
        reasoning_tokens=ctd.get("reasoning_tokens") or 0,
    )


# ---- stream parser -----------------------------------------------------------------------


def _content_parts(parts: Any, append: Callable[[StreamEvent], None]) -> None:
    """`content` given as a list of typed parts (Mistral thinking / text blocks)."""
    if not isinstance(parts, list):
        return
    for p in parts:
        if isinstance(p, str):
            append(TextDelta(p))
        elif isinstance(p, dict):
            kind = p.get("type")
            if kind == "text" and p.get("text"):
                append(TextDelta(p["text"]))
            elif kind == "thinking":
                think = p.get("thinking")
                if isinstance(think, str):
                    think = [{"text": think}]
                for t in think or ():
                    text = t.get("text") if isinstance(t, dict) else t
                    if text:
                        append(ReasoningDelta(text))


def _tool_calls(calls: Any, append: Callable[[StreamEvent], None]) -> None:
    for i, tc in enumerate(calls):
        fn = tc.get("function") or {}
        idx = tc.get("index")
        args = fn.get("arguments") or ""
        if not isinstance(args, str):
            args = json.dumps(args)
        append(ToolCallDelta(i if idx is None else idx, tc.get("id"), fn.get("name"), args))


def _delta_extras(delta: Mapping[str, Any], append: Callable[[StreamEvent], None]) -> None:
    """The rarer fields of a delta or message: reasoning, refusal, tool calls."""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning and isinstance(reasoning, str):
        append(ReasoningDelta(reasoning))
    refusal = delta.get("refusal")
    if refusal:
        append(RefusalDelta(refusal))
    calls = delta.get("tool_calls")
    if calls:
        _tool_calls(calls, append)
    fc = delta.get("function_call")  # legacy single function call
    if fc:
        _tool_calls([{"index": 0, "function": fc}], append)


# GitHub Models: chat under /inference, the model list (a bare JSON array) under /catalog
GITHUB_MODELS = "https://models.github.ai"


class ChatStreamParser:
    """Chat Completions SSE -> events. The hot path per chunk: the JSON scan (see
    SSEJSONReader) and a handful of dict lookups for a text-only delta."""

    __slots__ = ("_pending", "_reader")

    def __init__(self) -> None:
        self._reader = SSEJSONReader()
        self._pending: CallmError | None = None  # an error to raise on the next call

    def close(self) -> list[StreamEvent]:
        """Flush a final event sent without its blank line. Raises a deferred stream error:
        there is no later call to hand it to."""
        events = self.feed(b"\n\n")  # for SSE, the same as the decoder's close()
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
                try:  # the hot path: a text-only delta, nothing else in the chunk
                    ch = obj["choices"][0]
                    delta = ch["delta"]
                    content = delta["content"]
                    if (
                        content.__class__ is str
                        and content
                        and len(delta) == 1
                        and ch["finish_reason"] is None
                        and obj.get("usage") is None
                        and "error" not in obj
                    ):
                        out.append(TextDelta(content))
                        continue
                except (KeyError, IndexError, TypeError, AttributeError):
                    pass
                self._chunk(obj, out)
        except READ_ERRORS as exc:
            self._reader.done = True  # nothing after an error counts
            self._pending = defer_after_events(exc, out)
        return out

    def _chunk(self, obj: Any, out: list[StreamEvent]) -> None:
        """Any chunk but a plain text delta. Raises for an error chunk (after adding the
        usage it may carry) and, as shape errors, for JSON of an unexpected shape."""
        append = out.append
        if not isinstance(obj, dict):
            raise BadResponseError(f"unexpected chunk: {str(obj)[:120]!r}")
        err = obj.get("error")
        if err:  # `"error": null` is no error
            usage = obj.get("usage")
            if isinstance(usage, dict) and usage:
                append(UsageReport(chat_usage(usage)))
            raise stream_error(err)
        choices = obj.get("choices")
        reason = None
        if choices:
            ch = choices[0]
            if not ch.get("index"):  # n > 1 is refused when building the request
                delta = ch.get("delta") or ch.get("message")
                if delta:
                    content = delta.get("content")
                    if content:
                        if content.__class__ is str:
                            append(TextDelta(content))
                        else:
                            _content_parts(content, append)
                    _delta_extras(delta, append)
                reason = ch.get("finish_reason")
                if reason:
                    append(Finished(FINISH.get(reason, "unknown")))
        usage = obj.get("usage")
        if usage:
            append(UsageReport(chat_usage(usage)))
        elif reason or not choices:  # Groq: usage in x_groq on the last chunk
            xg = obj.get("x_groq")
            if xg and xg.get("usage"):
                append(UsageReport(chat_usage(xg["usage"])))


def parse_chat_response(body: bytes) -> list[StreamEvent]:
    """A non-streamed chat.completion object, as the events a stream would give."""
    obj = loads(body)
    if not isinstance(obj, dict):
        raise BadResponseError("unexpected reply: not a JSON object")
    if obj.get("error"):
        raise stream_error(obj["error"])
    out: list[StreamEvent] = []
    append = out.append
    choices = obj.get("choices") or []
    if choices:
        ch = choices[0]
        msg = ch.get("message") or {}
        content = msg.get("content")
        if isinstance(content, str):
            if content:
                append(TextDelta(content))
        else:
            _content_parts(content, append)
        _delta_extras(msg, append)
        reason = ch.get("finish_reason")
        if reason:
            append(Finished(FINISH.get(reason, "unknown")))
    usage = obj.get("usage") or (obj.get("x_groq") or {}).get("usage")
    if usage:
        append(UsageReport(chat_usage(usage)))
    return out


# ---- drivers ------------------------------------------------------------------------------


class OpenAIChatDriver:
    """api.openai.com Chat Completions. Needs a key; `max_completion_tokens`."""

    name = "openai"
    local = False
    key_required = True
    max_tokens_field = "max_completion_tokens"

    def _headers(self, ep: Endpoint) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if ep.key:
            headers["Authorization"] = f"Bearer {ep.key}"
        elif self.key_required and not ep.key_in_headers:
            raise MissingKeyError(
                f"provider {ep.name!r} has no API key",
                provider=ep.name,
                hint=f"run `callm providers set-key {ep.name}`",
            )
        headers.update(ep.headers)
        return headers

    # o-series and newer reasoning models take the system prompt as "developer"
    developer_role = True

    def chat_body(self, req: ChatRequest, developer_role: bool | None = None) -> dict[str, Any]:
        if developer_role is None:
            developer_role = self.developer_role
        role = system_role(req.model) if developer_role else "system"
        body: dict[str, Any] = {"model": req.model, "messages": chat_messages(req, role)}
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.max_tokens is not None:
            body[self.max_tokens_field] = req.max_tokens
        body["stream"] = req.stream
        if req.stream and req.options.get("include_usage", True) not in (False, "false", "0", 0):
            body["stream_options"] = {"include_usage": True}
        openai_fields(req, body)
        if req.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": SCHEMA_NAME,
                    "schema": strict_schema(req.schema),
                    "strict": True,
                },
            }
        apply_options(body, req.options)
        return body

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest:
        return HttpRequest(
            "POST",
            join_url(ep.base_url, "chat/completions"),
            self._headers(ep),
            self.chat_body(req),
        )

    def stream_parser(self) -> ChatStreamParser:
        return ChatStreamParser()

    @reads_json
    def parse_response(self, body: bytes) -> list[StreamEvent]:
        return parse_chat_response(body)

    @reads_error_body
    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
        return parse_openai_error(status, headers, body)

    def models_request(self, ep: Endpoint, page_token: str | None = None) -> HttpRequest:
        headers = self._headers(ep)
        del headers["Content-Type"]
        url = join_url(ep.base_url, "models")
        if ep.base_url.startswith(GITHUB_MODELS):  # its list is /catalog/models, not /inference/
            url = GITHUB_MODELS + "/catalog/models"
        return HttpRequest("GET", url, headers)

    @reads_json
    def parse_models(self, ep: Endpoint, body: bytes) -> tuple[list[ModelInfo], str | None]:
        return parse_openai_models(ep, body)


class OpenAICompatibleDriver(OpenAIChatDriver):
    """Any Chat Completions server: key optional, `max_tokens` (what every clone reads)."""

    name = "openai-compatible"
    key_required = False
    max_tokens_field = "max_tokens"
    developer_role = False  # compatible servers know "system"
