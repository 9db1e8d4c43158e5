"""Ollama's native API: POST /api/chat (NDJSON stream), /api/generate lines, /api/tags and
/api/ps listings, `{"error": "..."}` bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from callm.drivers import parts
from callm.drivers.base import (
    READ_ERRORS,
    body_text,
    defer_after_events,
    error_from_http,
    join_url,
    loads,
    reads_error_body,
    reads_json,
)
from callm.drivers.sse import NDJSONDecoder
from callm.drivers.wire_tools import ollama_fields, ollama_message
from callm.errors import BadResponseError, CallmError, NotFoundError
from callm.types import (
    ChatRequest,
    Endpoint,
    Finished,
    FinishReason,
    HttpRequest,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
# Request fields that sit beside `options` rather than inside it.
_TOP_LEVEL = {
    "format",
    "keep_alive",
    "think",
    "tools",
    "raw",
    "template",
    "context",
    "logprobs",
    "top_logprobs",
}


def _error_message(obj: Any) -> str | None:
    if not isinstance(obj, dict) or "error" not in obj:
        return None
    err = obj["error"]
    if isinstance(err, dict):  # OpenAI-style bodies from ollama.com
        return str(err.get("message") or err)
    return str(err)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> CallmError:
    low = message.lower()
    if "not found" in low and "model" in low and status in (400, 404, 500):
        return NotFoundError(message, status=status)
    return error_from_http(status, message, headers=headers)


def _with_user_headers(headers: dict[str, str], user: Mapping[str, str]) -> dict[str, str]:
    """The provider's configured headers win, whatever their letter case."""
    if user:
        lower = {k.lower() for k in user}
        headers = {k: v for k, v in headers.items() if k.lower() not in lower}
        headers.update(user)
    return headers


class OllamaStreamParser:
    """Lines of /api/chat (`message`) or /api/generate (`response`), streamed or not."""

    __slots__ = ("_error", "_nd", "_tools")

    def __init__(self) -> None:
        self._nd = NDJSONDecoder()
        self._tools = 0
        self._error: CallmError | None = None

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._error:
            raise self._error
        return self._lines(self._nd.feed(data))

    def close(self) -> list[StreamEvent]:
        if self._error:
            raise self._error
        return self._lines(self._nd.close())

    def _lines(self, lines: list[bytes]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        try:
            for line in lines:
                self.handle(loads(line), out)
        except READ_ERRORS as exc:
            self._error = defer_after_events(exc, out)
        return out

    def handle(self, obj: Any, out: list[StreamEvent]) -> None:
        if not isinstance(obj, dict):
            raise BadResponseError(f"unexpected Ollama line: {str(obj)[:80]!r}")
        if "error" in obj:  # a failure after the 200 (model crashed, out of memory...)
            raise _error(500, _error_message(obj) or "error")
        msg = obj.get("message")
        if msg:
            thinking = msg.get("thinking")
            if thinking:
                out.append(ReasoningDelta(thinking))
            content = msg.get("content")
            if content:
                out.append(TextDelta(content))
            for tc in msg.get("tool_calls") or ():
                fn = tc.get("function") or {}
                args = fn.get("arguments")
                out.append(
                    ToolCallDelta(
                        index=self._tools,
                        id=tc.get("id"),
                        name=fn.get("name"),
                        arguments=args if isinstance(args, str) else json.dumps(args or {}),
                    )
                )
                self._tools += 1
        else:
            thinking = obj.get("thinking")
            if thinking:
                out.append(ReasoningDelta(thinking))
            text = obj.get("response")
            if text:
                out.append(TextDelta(text))
        if obj.get("done"):
            if "prompt_eval_count" in obj or "eval_count" in obj:
                usage = Usage(
                    input_tokens=obj.get("prompt_eval_count") or 0,
                    output_tokens=obj.get("eval_count") or 0,
                )
                out.append(UsageReport(usage))
            reason = _FINISH.get(obj.get("done_reason") or "stop", "unknown")
            if reason == "stop" and self._tools:
                reason = "tool_call"
            out.append(Finished(reason))


class OllamaDriver:
    name = "ollama"
    local = False

    def _headers(self, ep: Endpoint, json_body: bool = True) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if json_body else {}
        if ep.key:  # local Ollama needs none; Ollama cloud takes a bearer key
            headers["Authorization"] = f"Bearer {ep.key}"
        return _with_user_headers(headers, ep.headers)

    @staticmethod
    def _url(ep: Endpoint, path: str) -> str:
        base, sep, query = ep.base_url.partition("?")
        base = base.rstrip("/")
        if base.endswith("/api"):  # accept a base URL given with /api
            base = base[:-4]
        return join_url(base + sep + query, path)

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest:
        messages: list[dict[str, Any]] = []
        if req.system:
            messages.append({"role": "system", "content": req.system})
        messages.extend(ollama_message(m) for m in req.messages)
        if req.attachments:
            parts.ollama(messages, req.attachments)
        body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream}
        if req.schema is not None:
            body["format"] = req.schema
        options: dict[str, Any] = {}
        if req.temperature is not None:
            options["temperature"] = req.temperature
        if req.max_tokens:
            options["num_predict"] = req.max_tokens
        ollama_fields(req, body, options)
        for k, v in req.options.items():
            if k in _TOP_LEVEL:
                body[k] = v
            else:
                options[k] = v
        if options:
            body["options"] = options
        return HttpRequest("POST", self._url(ep, "api/chat"), self._headers(ep), body)

    def stream_parser(self) -> OllamaStreamParser:
        return OllamaStreamParser()

    @reads_json
    def parse_response(self, body: bytes) -> list[StreamEvent]:
        # One JSON object; also NDJSON, for a server that streamed anyway.
        parser = OllamaStreamParser()
        out = parser.feed(body)
        out.extend(parser.close())
        return out

    @reads_error_body
    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        message = _error_message(obj) or body_text(body) or f"HTTP {status}"
        return _error(status, message, headers)

    def models_request(self, ep: Endpoint, page_token: str | None = None) -> HttpRequest:
        return HttpRequest("GET", self._url(ep, "api/tags"), self._headers(ep, json_body=False))

    @reads_json
    def parse_models(self, ep: Endpoint, body: bytes) -> tuple[list[ModelInfo], str | None]:
        """/api/tags (installed) or /api/ps (loaded); neither pages."""
        obj = loads(body)
        if not isinstance(obj, dict):
            raise BadResponseError(f"unexpected model list: {body_text(body, 80)!r}")
        models: list[ModelInfo] = []
        for m in obj.get("models") or ():
            mid = m.get("name") or m.get("model")
            if not mid:
                continue
            details = m.get("details") or {}
            extra: dict[str, Any] = {}
            for src, dst in (
                ("parameter_size", "parameter_size"),
                ("family", "family"),
                ("quantization_level", "quantization"),
                ("format", "format"),
            ):
                if details.get(src):
                    extra[dst] = details[src]
            for k in ("size", "modified_at", "digest", "expires_at", "size_vram"):
                if k in m:
                    extra[k] = m[k]
            models.append(ModelInfo(provider=ep.name, id=mid, extra=extra))
        return models, None
