"""Pieces shared by the OpenAI-style drivers (chat, compatible, azure, responses): the SSE
JSON reader, `-o` option handling, error bodies (HTTP and in-stream), and model listings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from callm.drivers.base import body_text, error_from_http, loads
from callm.drivers.sse import SSEDecoder
from callm.errors import BadResponseError, CallmError, UsageError
from callm.types import Endpoint, ModelInfo, Price

_json_loads = json.loads
_raw_decode = json.JSONDecoder().raw_decode


# ---- SSE -> JSON objects ------------------------------------------------------------------


def json_payload(payload: bytes) -> Any:
    """json.loads for one SSE payload. Plain UTF-8 JSON (the usual case) goes straight to the
    C scanner, skipping json.loads's encoding sniffing and whitespace regexes."""
    try:
        text = payload.decode()
        obj, end = _raw_decode(text)
        if end == len(text):
            return obj
    except ValueError:
        pass
    return _json_loads(payload)  # surrounding whitespace, other encodings, or the error


class SSEJSONReader:
    """The JSON objects of an SSE stream, until `data: [DONE]`. A frame sent as
    `event: error` whose JSON has no "error" member comes back as {"error": <payload>}.
    A frame that is not JSON raises BadResponseError; when objects came before it in the
    same read, they are returned first and the error is raised by the next feed()/close().

    Fast path: while the SSEDecoder holds nothing, a read of whole `data: <json>` events
    separated by blank lines is parsed in place with the C JSON scanner. At the first part
    that is not exactly that (a comment, `event:`, [DONE], CR framing, a half event) the
    decoder takes over from there, so the result is the decoder's. One leniency: a raw CR/LF
    *inside* a JSON value (only a broken server sends one) is read as JSON whitespace."""

    __slots__ = ("_idle", "_pending", "_sse", "done")

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._idle = True  # the decoder holds nothing: the next read starts an event
        self._pending: CallmError | None = None  # an error to raise on the next call
        self.done = False  # [DONE] seen (or the owner stopped reading)

    def feed(self, data: bytes) -> list[Any]:
        if self.done:  # set too when an error is pending
            if self._pending is not None:
                err, self._pending = self._pending, None
                raise err
            return []
        if self._idle:
            return self._scan(data, [])
        cut = data.find(b"\n\n")  # the end of the event the decoder holds
        if cut < 0:
            return self._decode(data, [])
        objs = self._decode(data[: cut + 2], [])
        rest = data[cut + 2 :]
        if rest and not self.done:
            (self._scan if self._idle else self._decode)(rest, objs)
        return objs

    def close(self) -> list[Any]:
        """End of stream: a final event without its blank line still counts."""
        return self.feed(b"\n\n")

    def _scan(self, data: bytes, objs: list[Any]) -> list[Any]:
        """Append the objects of `data` to `objs`; return `objs`."""
        cut = data.rfind(b"\n\n") + 2  # whole events end here; the rest is a half event
        if cut < 2:
            return self._decode(data, objs)
        try:
            text = (data if cut == len(data) else data[:cut]).decode()
        except UnicodeDecodeError:
            return self._decode(data, objs)
        pos, n = 0, len(text)
        while text.startswith("data: ", pos):
            try:
                obj, end = _raw_decode(text, pos + 6)
            except (ValueError, RecursionError):  # the decoder says what is wrong
                break
            if not text.startswith("\n\n", end):
                break
            objs.append(obj)
            pos = end + 2
        if pos < n:
            return self._decode(text[pos:].encode() + data[cut:], objs)
        if cut < len(data):
            return self._decode(data[cut:], objs)
        return objs

    def _decode(self, data: bytes, objs: list[Any]) -> list[Any]:
        """The general path: SSEDecoder framing, then JSON. The one place a read fails:
        the error is raised now, or kept for the next call when `objs` has objects of this
        read to hand over first. Either way nothing after it is read."""
        sse = self._sse
        try:
            frames = sse.feed(data)
            self._idle = sse.idle
            for event, payload in frames:
                try:
                    obj = json_payload(payload)
                except (ValueError, RecursionError):
                    if payload == b"[DONE]":
                        self.done = True
                        break
                    if not payload.strip():
                        continue
                    if event == "error":
                        raise stream_error(payload.decode("utf-8", "replace")) from None
                    raise BadResponseError(f"invalid JSON in stream: {payload[:120]!r}") from None
                if event == "error" and not (isinstance(obj, dict) and obj.get("error")):
                    obj = {"error": obj or "error event"}
                objs.append(obj)
        except CallmError as exc:
            self.done = True
            if not objs:
                raise
            self._pending = exc
        return objs


INTERNAL_OPTIONS = frozenset({"include_usage"})
RESERVED_OPTIONS = frozenset({"model", "messages", "stream", "input"})


# ---- options ------------------------------------------------------------------------------


def apply_options(body: dict[str, Any], options: Mapping[str, Any]) -> None:
    """Copy `-o` options into the body, except driver-internal ones (INTERNAL_OPTIONS:
    `include_usage=false` drops stream_options). Fields callm sets itself are refused."""
    for key, value in options.items():
        if key in INTERNAL_OPTIONS:
            continue
        if key in RESERVED_OPTIONS:
            raise UsageError(f"option {key!r} is set by callm and cannot be given with -o")
        if key == "n" and value not in (1, "1"):  # the parsers read one answer
            raise UsageError("option 'n' must be 1: callm reads one answer per call")
        body[key] = value


# ---- errors -------------------------------------------------------------------------------


def _status_from(err: Mapping[str, Any]) -> int:
    """An HTTP-like status for an error that arrived inside a 200 reply."""
    for key in ("status_code", "status", "code"):
        value = err.get(key)
        if isinstance(value, int) and 400 <= value <= 599:
            return value
    low = f"{err.get('code') or ''} {err.get('type') or ''}".lower()
    if "rate_limit" in low or "quota" in low:
        return 429
    if "overloaded" in low:
        return 529
    if "auth" in low or "api_key" in low or "permission" in low:
        return 401
    if "not_found" in low:
        return 404
    if "invalid" in low or "bad_request" in low or "context_length" in low or "tool_use" in low:
        return 400
    return 500


def error_fields(data: Any) -> tuple[str, str | None]:
    """(message, code) from the error shapes OpenAI-style servers send."""
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return (data if isinstance(data, str) else ""), None
    err = data.get("error")
    if isinstance(err, dict):
        message = str(err.get("message") or err.get("msg") or "")
        raw = (
            (err.get("metadata") or {}).get("raw")
            if isinstance(err.get("metadata"), dict)
            else None
        )
        if isinstance(raw, str) and raw and raw not in message:
            message = f"{message}: {raw}" if message else raw
        parts = [str(v) for v in (err.get("code"), err.get("type")) if v not in (None, "")]
        return message, " ".join(parts) or None
    if isinstance(err, str):
        return err, data.get("code") if isinstance(data.get("code"), str) else None
    detail = data.get("detail")
    if detail is not None:
        if isinstance(detail, list):  # FastAPI validation errors
            detail = "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
            )
        return str(detail), None
    message = data.get("message")
    if message is not None:
        code = data.get("code") or data.get("type")
        return str(message), (str(code) if code is not None else None)
    return "", None


def stream_error(err: Any) -> CallmError:
    """A CallmError for an error object the vendor sent inside a 200 reply."""
    if isinstance(err, dict):
        message, code = error_fields({"error": err})
        return error_from_http(_status_from(err), message or "error in stream", code=code)
    return error_from_http(500, str(err) or "error in stream")


def _json_body(body: bytes) -> Any:
    """Parse an error body whatever its content type (JSON, or JSON inside SSE framing)."""
    text = body.strip()
    if text.startswith(b"data:") or text.startswith(b"event:"):
        for line in text.splitlines():
            if line.startswith(b"data:"):
                text = line[5:].strip()
                break
    try:
        return _json_loads(text)
    except ValueError:
        return None


def parse_openai_error(status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
    """A non-2xx reply: JSON error shapes whatever the content type; an HTML page or plain
    text gives a short readable excerpt; an empty body (or JSON without a message) gives
    "HTTP <status>"."""
    data = _json_body(body)
    if data is None:
        message, code = (body_text(body) if body.strip() else ""), None
    else:
        message, code = error_fields(data)
    return error_from_http(status, message, code=code, headers=headers)


# ---- model listings -----------------------------------------------------------------------


def _per_million(value: Any) -> float | None:
    """OpenRouter prices: strings in USD per token; negative means 'varies'."""
    if value in (None, ""):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return None if d < 0 else float(d * 1_000_000)


def _capabilities(m: Mapping[str, Any]) -> tuple[str, ...]:
    caps: list[str] = []
    params = m.get("supported_parameters")
    if isinstance(params, list):
        if "tools" in params:
            caps.append("tools")
        if "reasoning" in params or "include_reasoning" in params:
            caps.append("reasoning")
        if "response_format" in params or "structured_outputs" in params:
            caps.append("json")
    arch = m.get("architecture")
    if isinstance(arch, dict) and "image" in (arch.get("input_modalities") or ()):
        caps.append("vision")
    flags = m.get("capabilities")  # Azure: {"chat_completion": true, ...}
    if isinstance(flags, dict):
        caps.extend(k for k, v in flags.items() if v is True)
    return tuple(caps)


_EXTRA_KEYS = ("owned_by", "created", "state", "lifecycle_status", "status", "model")


def parse_openai_models(ep: Endpoint, body: bytes) -> tuple[list[ModelInfo], str | None]:
    """`{"data": [...]}` (OpenAI, OpenRouter, Cerebras, Azure) or a bare list of objects
    with `id` / `model_id` (Heroku). One page: these listings are not paginated."""
    data = loads(body)
    rows = data.get("data", data.get("models")) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise BadResponseError("unexpected model list: no 'data' array")
    models: list[ModelInfo] = []
    for m in rows:
        if isinstance(m, str):
            models.append(ModelInfo(provider=ep.name, id=m))
            continue
        if not isinstance(m, dict):
            continue
        mid = m.get("id") or m.get("model_id") or m.get("name")
        if not mid:
            continue
        top = m.get("top_provider") if isinstance(m.get("top_provider"), dict) else {}
        pricing = m.get("pricing")
        price = None
        if isinstance(pricing, dict):
            price = Price(
                input=_per_million(pricing.get("prompt")),
                output=_per_million(pricing.get("completion")),
                cached_input=_per_million(pricing.get("input_cache_read")),
                cache_write=_per_million(pricing.get("input_cache_write")),
                source="vendor sync",
            )
        extra = {k: m[k] for k in _EXTRA_KEYS if k in m}
        models.append(
            ModelInfo(
                provider=ep.name,
                id=str(mid),
                context_window=m.get("context_length")
                or m.get("context_window")
                or top.get("context_length"),
                max_output=top.get("max_completion_tokens") or m.get("max_completion_tokens"),
                price=price,
                capabilities=_capabilities(m),
                display_name=m.get("name") if m.get("name") != mid else None,
                extra=extra,
            )
        )
    return models, None
