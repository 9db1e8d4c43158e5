"""Google Gemini API: generateContent / streamGenerateContent (SSE with alt=sse, or the JSON
array stream Google sends without it), google.rpc.Status error bodies."""

from __future__ import annotations

import json
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
    parse_duration,
    parse_retry_after,
    reads_error_body,
    reads_json,
    total,
)
from callm.drivers.sse import MAX_LINE_BYTES, SSEDecoder
from callm.drivers.structured import gemini_schema
from callm.drivers.wire_tools import gemini_fields, gemini_parts
from callm.errors import (
    AuthError,
    BadResponseError,
    CallmError,
    OverloadedError,
    RateLimitError,
)
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

_FINISH: dict[str | int, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    # the same as numbers, as sent with `$alt=json;enum-encoding=int` (Go SDK)
    1: "stop",
    2: "length",
    3: "content_filter",
    4: "content_filter",
    7: "content_filter",
    8: "content_filter",
    9: "content_filter",
    10: "error",
    11: "content_filter",
}
# Request fields that live beside generationConfig rather than inside it.
_TOP_LEVEL = {"safetySettings", "tools", "toolConfig", "cachedContent", "labels"}
_THINKING = {"thinkingBudget", "includeThoughts", "thinkingLevel"}
_WS = b" \t\r\n"
_SEP = frozenset(b" \t\r\n,[]")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _usage(u: Mapping[str, Any]) -> Usage:
    thoughts = count(u.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=count(u.get("promptTokenCount")),  # cached tokens are already included
        output_tokens=total(count(u.get("candidatesTokenCount")), thoughts),
        cache_read_tokens=count(u.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _error(err: Any, http_status: int, headers: Mapping[str, str] | None = None) -> CallmError:
    """A google.rpc.Status (`{"code", "message", "status", "details"}`) as a canonical error."""
    if not isinstance(err, dict):
        err = {"message": str(err)}
    code = err.get("code")
    status = http_status if http_status >= 400 else (code if isinstance(code, int) else 500)
    msg = err.get("message") or f"HTTP {status}"
    rpc = err.get("status") or ""
    reasons: list[str] = []
    delay: float | None = None
    for d in err.get("details") or ():
        if not isinstance(d, dict):
            continue
        if d.get("reason"):
            reasons.append(str(d["reason"]))
        if "retryDelay" in d:
            delay = parse_duration(d["retryDelay"])
    if "API_KEY_INVALID" in reasons or rpc in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return AuthError(msg, status=status)
    if status == 429 or rpc == "RESOURCE_EXHAUSTED":
        wait = parse_retry_after(headers) if headers is not None else None
        if delay is not None:
            wait = delay if wait is None else max(wait, delay)
        return RateLimitError(msg, status=status, retry_after=wait)
    if status == 503 or rpc == "UNAVAILABLE":
        wait = parse_retry_after(headers) if headers is not None else None
        return OverloadedError(msg, status=status, retry_after=wait)
    return error_from_http(status, msg, code=rpc, headers=headers, retry_after=delay)


def _with_user_headers(headers: dict[str, str], user: Mapping[str, str]) -> dict[str, str]:
    """The provider's configured headers win, whatever their letter case."""
    if user:
        lower = {k.lower() for k in user}
        headers = {k: v for k, v in headers.items() if k.lower() not in lower}
        headers.update(user)
    return headers


class _JSONSplitter:
    """Cuts top-level JSON objects out of a byte stream: `[{...},\\r\\n{...}]`, a single
    object, or objects back to back. Inside an object it jumps between quotes and braces with
    bytes.find, so the Python loop runs per structural byte, never per byte of text or
    indentation."""

    __slots__ = ("_buf", "_depth", "_in_str", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._depth = 0
        self._in_str = False

    def feed(self, data: bytes) -> list[bytearray]:
        buf = self._buf
        buf += data
        out: list[bytearray] = []
        i, depth, in_str, n = self._pos, self._depth, self._in_str, len(buf)
        start = 0
        q = o = c = -1  # next `"`, `{`, `}` at or after i (n: none left in this buffer)
        while i < n:
            if in_str:
                j = buf.find(b'"', i)
                if j < 0:
                    i = n
                    break
                k = j - 1
                while buf[k] == 92:  # count the backslashes before the quote
                    k -= 1
                in_str = (j - 1 - k) % 2 == 1
                i = j + 1
            elif depth == 0:  # between objects: only `[`, `,`, `]` and blanks may appear
                ch = buf[i]
                if ch == 123:
                    start = i
                    depth = 1
                elif ch not in _SEP:
                    snippet = bytes(buf[i : i + 80]).decode("utf-8", "replace")
                    raise BadResponseError(f"unexpected data in JSON stream: {snippet!r}")
                i += 1
            else:  # inside an object: jump from one structural byte to the next
                if q < i:
                    q = buf.find(b'"', i) % (n + 1)  # -1 becomes n
                if o < i:
                    o = buf.find(b"{", i) % (n + 1)
                if c < i:
                    c = buf.find(b"}", i) % (n + 1)
                j = min(q, o, c)
                if j >= n:
                    i = n
                    break
                i = j + 1
                if j == q:
                    in_str = True
                elif j == o:
                    depth += 1
                else:
                    depth -= 1
                    if depth == 0:
                        out.append(buf[start:i])
        if depth == 0:
            buf.clear()
            i = 0
        elif start:
            del buf[:start]
            i -= start
        if len(buf) > MAX_LINE_BYTES:
            raise BadResponseError(f"stream object longer than {MAX_LINE_BYTES} bytes")
        self._pos, self._depth, self._in_str = i, depth, in_str
        return out

    def close(self) -> None:
        if self._depth or self._in_str:
            raise BadResponseError("stream ended inside a JSON object")


class GeminiStreamParser:
    __slots__ = ("_error", "_head", "_json", "_mode", "_sse", "_tools")

    def __init__(self) -> None:
        self._mode = ""  # "" until the first non-blank byte says "sse" or "json"
        self._head = b""
        self._sse: SSEDecoder | None = None
        self._json: _JSONSplitter | None = None
        self._tools = 0
        self._error: CallmError | None = None

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._error:
            raise self._error
        if not self._mode:
            data = self._head + data
            stripped = data.lstrip(_WS)
            if not stripped:
                self._head = data
                return []
            self._head = b""
            first = stripped[:1]
            if first in (b"[", b"{"):
                self._mode, self._json = "json", _JSONSplitter()
            elif first in (b"d", b"e", b":", b"i", b"r"):  # data: event: comment id: retry:
                self._mode, self._sse = "sse", SSEDecoder()
            else:
                raise BadResponseError(f"not a Gemini stream: {body_text(stripped, 80)!r}")
        if self._json is not None:
            return self._items(self._json.feed(data))
        assert self._sse is not None
        return self._items([p for _e, p in self._sse.feed(data) if p and p != b"[DONE]"])

    def close(self) -> list[StreamEvent]:
        if self._error:
            raise self._error
        if self._json is not None:
            self._json.close()
        elif self._sse is not None:
            return self._items([p for _e, p in self._sse.close() if p and p != b"[DONE]"])
        return []

    def _items(self, items: list[bytearray] | list[bytes]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        try:
            for item in items:
                self.handle(loads(item), out)
        except READ_ERRORS as exc:
            self._error = defer_after_events(exc, out)
        return out

    def handle(self, obj: Any, out: list[StreamEvent]) -> None:
        """One GenerateContentResponse as events."""
        if not isinstance(obj, dict):
            raise BadResponseError(f"unexpected stream item: {str(obj)[:80]!r}")
        if "error" in obj:
            raise _error(obj["error"], 200)
        finish: FinishReason | None = None
        cands = obj.get("candidates")
        if cands:
            cand = cands[0]
            for part in (cand.get("content") or {}).get("parts") or ():
                text = part.get("text")
                if text:
                    out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
                fc = part.get("functionCall")
                if fc:
                    out.append(
                        ToolCallDelta(
                            index=self._tools,
                            id=fc.get("id"),
                            name=fc.get("name"),
                            arguments=json.dumps(fc.get("args") or {}),
                        )
                    )
                    self._tools += 1
            reason = cand.get("finishReason")
            if reason:
                finish = _FINISH.get(reason, "unknown")
                if finish == "stop" and self._tools:
                    finish = "tool_call"
        feedback = obj.get("promptFeedback")
        if feedback and feedback.get("blockReason"):
            finish = "content_filter"
        usage = obj.get("usageMetadata")
        if usage:
            out.append(UsageReport(_usage(usage)))
        if finish:
            out.append(Finished(finish))


def _model_path(model: str) -> str:
    path = model if "/" in model else "models/" + model
    return quote(path, safe="/-_.@")


class GeminiDriver:
    name = "gemini"
    local = False

    def _headers(self, ep: Endpoint, json_body: bool = True) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if json_body else {}
        if ep.key:  # a header, never ?key=: URLs end up in logs
            headers["x-goog-api-key"] = ep.key
        return _with_user_headers(headers, ep.headers)

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest:
        systems = [req.system] if req.system else []
        contents: list[dict[str, Any]] = []
        names: dict[str, str] = {}
        for m in req.messages:
            if m.role == "system":
                systems.append(m.content)
            else:
                role = "model" if m.role == "assistant" else "user"
                contents.append({"role": role, "parts": gemini_parts(m, names)})
        if req.attachments:
            parts.gemini(contents, req.attachments)
        body: dict[str, Any] = {"contents": contents}
        if systems:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(systems)}]}
        config: dict[str, Any] = {}
        if req.temperature is not None:
            config["temperature"] = req.temperature
        if req.max_tokens:
            config["maxOutputTokens"] = req.max_tokens
        gemini_fields(req, body, config)
        if req.schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = gemini_schema(req.schema)
        for key, value in req.options.items():
            k = _camel(key)
            if k in _TOP_LEVEL:
                body[k] = value
            elif k in _THINKING:
                config.setdefault("thinkingConfig", {})[k] = value
            else:
                config[k] = value
        if config:
            body["generationConfig"] = config
        method = "streamGenerateContent?alt=sse" if req.stream else "generateContent"
        url = join_url(ep.base_url, f"{_model_path(req.model)}:{method}")
        return HttpRequest("POST", url, self._headers(ep), body)

    def stream_parser(self) -> GeminiStreamParser:
        return GeminiStreamParser()

    @reads_json
    def parse_response(self, body: bytes) -> list[StreamEvent]:
        obj = loads(body)
        parser = GeminiStreamParser()
        out: list[StreamEvent] = []
        for item in obj if isinstance(obj, list) else (obj,):
            parser.handle(item, out)
        return out

    @reads_error_body
    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
        text = body.strip()
        if text.startswith(b"data:"):  # an error sent as text/event-stream
            text = text[5:].strip()
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, list) and obj:
            obj = obj[0]
        if isinstance(obj, dict) and "error" in obj:
            return _error(obj["error"], status, headers)
        return error_from_http(status, body_text(body), headers=headers)

    def models_request(self, ep: Endpoint, page_token: str | None = None) -> HttpRequest:
        url = join_url(ep.base_url, "models?pageSize=1000")
        if page_token:
            url += "&pageToken=" + quote(page_token, safe="")
        return HttpRequest("GET", url, self._headers(ep, json_body=False))

    @reads_json
    def parse_models(self, ep: Endpoint, body: bytes) -> tuple[list[ModelInfo], str | None]:
        obj = loads(body)
        if not isinstance(obj, dict):
            raise BadResponseError(f"unexpected model list: {body_text(body, 80)!r}")
        models: list[ModelInfo] = []
        for m in obj.get("models") or ():
            name = m.get("name")
            if not name:
                continue
            extra = {"name": name}
            for k in ("version", "description", "thinking", "baseModelId"):
                if k in m:
                    extra[k] = m[k]
            models.append(
                ModelInfo(
                    provider=ep.name,
                    id=name.removeprefix("models/"),
                    context_window=m.get("inputTokenLimit"),
                    max_output=m.get("outputTokenLimit"),
                    capabilities=tuple(m.get("supportedGenerationMethods") or ()),
                    display_name=m.get("displayName"),
                    extra=extra,
                )
            )
        return models, obj.get("nextPageToken") or None
