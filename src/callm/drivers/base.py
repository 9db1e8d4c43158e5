"""The driver contract, shared error mapping, and the accumulator that turns events into a
result. Drivers are sans-IO: they build `HttpRequest`s and read bytes; callm.transport sends."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from callm.errors import (
    AuthError,
    BadRequestError,
    BadResponseError,
    CallmError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from callm.types import (
    ChatRequest,
    ChatResult,
    Endpoint,
    Finished,
    HttpRequest,
    ModelInfo,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    UsageReport,
)


class StreamParser(Protocol):
    def feed(self, data: bytes) -> list[StreamEvent]:
        """Parse more bytes. Raises CallmError for an error the vendor sent inside the stream."""
        ...

    def close(self) -> list[StreamEvent]:
        """The connection ended cleanly; flush what is buffered."""
        ...


class Driver(Protocol):
    """How to talk to one wire format. No I/O: every method is a pure function."""

    name: str
    local: bool  # True only for sim: no HTTP at all

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest: ...

    def stream_parser(self) -> StreamParser: ...

    def parse_response(self, body: bytes) -> list[StreamEvent]:
        """A complete non-streamed reply, as the same events a stream would give."""
        ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
        """A non-2xx reply as a canonical error (secrets are scrubbed later, by the caller)."""
        ...

    def models_request(self, ep: Endpoint, page_token: str | None = None) -> HttpRequest: ...

    def parse_models(self, ep: Endpoint, body: bytes) -> tuple[list[ModelInfo], str | None]:
        """One page of the model list, and the token of the next page (None when done)."""
        ...


class LocalDriver(Protocol):
    """A driver that produces events itself (sim)."""

    name: str
    local: bool

    def run(self, ep: Endpoint, req: ChatRequest) -> Iterator[StreamEvent]: ...

    def list_models(self, ep: Endpoint) -> list[ModelInfo]: ...


# ---- helpers for drivers ----------------------------------------------------------------


def loads(data: bytes | str) -> Any:
    """json.loads that reports unreadable bytes (invalid JSON or UTF-8) as BadResponseError."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8; nested too deep
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        start = raw[:200].lstrip().lower()
        if start.startswith((b"<!doctype", b"<html", b"<head", b"<body")):
            # a proxy's or captive portal's page: its title says more than its first bytes
            raise BadResponseError(f"expected JSON, got an HTML page: {body_text(raw)}") from None
        snippet = raw[:120].decode("utf-8", "replace")
        raise BadResponseError(f"invalid JSON from provider: {snippet!r}") from exc


# What reading vendor JSON of an unexpected shape raises (a list where an object belongs, a
# number where a string does...). Parsers turn these into BadResponseError (see as_error).
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError)
# What a parser's loop catches: an error to raise (or defer) as a CallmError.
READ_ERRORS = (CallmError, *SHAPE_ERRORS)


def as_error(exc: BaseException) -> CallmError:
    """A CallmError as is; a shape error (SHAPE_ERRORS) as a BadResponseError."""
    if isinstance(exc, CallmError):
        return exc
    detail = f"{type(exc).__name__}: {exc}"
    return BadResponseError(f"unexpected data from the provider ({detail[:160]})")


def defer_after_events(exc: BaseException, out: list[StreamEvent]) -> CallmError:
    """An error met while decoding one read. Raised at once when nothing came before it;
    otherwise returned, for the parser to raise on its next call, so the events decoded
    before it (the text that arrived) are handed over first."""
    err = as_error(exc)
    if not out:
        raise err from None
    return err


_F = TypeVar("_F", bound=Callable[..., Any])


def reads_json(method: _F) -> _F:
    """For a driver's parse_response / parse_models: a shape error becomes a
    BadResponseError. (Not for stream parsers' feed(): see their loops.)"""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except SHAPE_ERRORS as exc:
            raise as_error(exc) from None

    return guarded  # type: ignore[return-value]


def reads_error_body(method: _F) -> _F:
    """For a driver's parse_error(status, headers, body): a body too odd to read gives the
    status-only error (its kind, its retry) rather than a shape error."""

    @functools.wraps(method)
    def guarded(self: Any, status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
        try:
            return method(self, status, headers, body)  # type: ignore[no-any-return]
        except SHAPE_ERRORS:
            return error_from_http(status, body_text(body), headers=headers)

    return guarded  # type: ignore[return-value]


def whole_tool_call(index: int, id_: Any, name: Any, args: Any) -> ToolCallDelta:
    """A tool call that a non-streamed reply gives whole: its input object as JSON text."""
    arguments = json.dumps(args if args is not None else {})
    return ToolCallDelta(index=index, id=id_, name=name, arguments=arguments)


def reply_end(
    usage: Any, reason: Any, to_usage: Callable[[dict[str, Any]], Any], finish: Mapping[str, Any]
) -> list[StreamEvent]:
    """A non-streamed reply's usage report and finish reason (either may be absent)."""
    out: list[StreamEvent] = []
    if isinstance(usage, dict):
        out.append(UsageReport(to_usage(usage)))
    if reason:
        out.append(Finished(finish.get(reason, "unknown")))
    return out


def count(value: Any) -> int:
    """A reported token count: an int >= 0 as is, missing as 0, anything else -1, which the
    engine reads as untrusted (it estimates instead). Lets a driver add counts up safely."""
    if value is None:
        return 0
    if type(value) is int and value >= 0:
        return value
    return -1


def total(*counts: int) -> int:
    """The sum of counts from count(); -1 when any of them is untrusted."""
    return -1 if any(c < 0 for c in counts) else sum(counts)


def join_url(base: str, path: str) -> str:
    """`base` + "/" + `path`. A query in `base` (a gateway's `?key=...`) stays a query: it goes
    after the joined path, after `path`'s own (`.../v1/models?limit=5&key=X`)."""
    base, _, base_query = base.partition("?")
    path, _, path_query = path.partition("?")
    query = "&".join(q for q in (path_query, base_query) if q)
    url = base.rstrip("/") + "/" + path.lstrip("/")
    return f"{url}?{query}" if query else url


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) and Retry-After-Ms; the larger
    when both are sent. Header names are matched case-insensitively."""
    lower = {k.lower(): v for k, v in headers.items()}
    waits: list[float] = []
    ms = lower.get("retry-after-ms")
    if ms:
        try:
            waits.append(float(ms) / 1000.0)
        except ValueError:
            pass
    ra = lower.get("retry-after")
    if ra:
        ra = ra.strip()
        try:
            waits.append(float(ra))
        except ValueError:
            import email.utils  # only for an HTTP-date; it costs ~8 ms to import

            try:
                when = email.utils.parsedate_to_datetime(ra)
                waits.append(max(0.0, when.timestamp() - (now if now is not None else time.time())))
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    waits = [w for w in waits if w >= 0]
    return max(waits) if waits else None


def parse_duration(text: str | None) -> float | None:
    """Google's protobuf Duration as JSON: "48s", "1.5s", "250ms"."""
    if not text or not isinstance(text, str):
        return None
    t = text.strip()
    try:
        if t.endswith("ms"):
            return float(t[:-2]) / 1000.0
        if t.endswith("s"):
            return float(t[:-1])
        return float(t)
    except ValueError:
        return None


_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "input is too long",
    "exceeds the maximum number of tokens",
    "input token count",
    "reduce the length",
    "string_above_max_length",
)
_NOT_FOUND_MARKERS = (
    "model_not_found",
    "does not exist",
    "not found",
    "unknown model",
    "no such model",
)
_AUTH_MARKERS = (
    "api_key_invalid",
    "invalid api key",
    "invalid_api_key",
    "incorrect api key",
    "unauthorized",
)


def error_from_http(
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
) -> CallmError:
    """Map an HTTP status plus the vendor's code/message to a canonical error."""
    low = f"{code or ''} {message}".lower()
    if retry_after is None and headers is not None:
        retry_after = parse_retry_after(headers)
    elif headers is not None:
        header_wait = parse_retry_after(headers)
        if header_wait is not None:
            retry_after = max(retry_after, header_wait)
    msg = message or f"HTTP {status}"
    # The status decides first; the vendor's words only refine an ambiguous 4xx (Gemini sends
    # a bad key as 400 API_KEY_INVALID) or an error that arrived inside a 200 stream.
    if status in (401, 403):
        return AuthError(msg, status=status)
    if status == 429:
        return RateLimitError(msg, status=status, retry_after=retry_after)
    if status == 529 or (status >= 500 and "overloaded" in low):
        return OverloadedError(msg, status=status, retry_after=retry_after)
    if status >= 500 or status == 408:
        return ServerError(msg, status=status, retry_after=retry_after)
    if status == 404:
        return NotFoundError(msg, status=status)
    if any(m in low for m in _AUTH_MARKERS):
        return AuthError(msg, status=status)
    if any(m in low for m in _CONTEXT_MARKERS):
        return ContextLengthError(msg, status=status)
    if "model_not_found" in low:
        return NotFoundError(msg, status=status)
    if "overloaded" in low:
        return OverloadedError(msg, status=status, retry_after=retry_after)
    if 400 <= status < 500:
        return BadRequestError(msg, status=status)
    return BadResponseError(msg, status=status)


def body_text(body: bytes, limit: int = 300) -> str:
    """A short readable excerpt of a non-JSON body (an HTML page: its title)."""
    text = body[:4096].decode("utf-8", "replace")
    if "<html" in text.lower() or "<!doctype" in text.lower():
        import re

        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else "an HTML page without a title"
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


# ---- accumulator --------------------------------------------------------------------------


class StreamAccumulator:
    """Folds canonical events into a ChatResult. The same for every driver and for non-streamed
    replies (which are turned into events first)."""

    __slots__ = ("_reasoning", "_refusal", "_text", "_tools", "result")

    def __init__(self) -> None:
        self.result = ChatResult()
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._tools: dict[int, list[Any]] = {}  # index -> [id, name, [argument fragments]]

    def add(self, ev: StreamEvent) -> None:
        t = type(ev)
        if (t is TextDelta or t is ReasoningDelta or t is RefusalDelta) and type(
            ev.text  # type: ignore[union-attr]
        ) is not str:
            # a vendor sent e.g. {"content": 5}: unreadable, not a crash later in join()
            raise BadResponseError(f"unexpected text value from the provider: {ev!r:.80}")
        if t is TextDelta:
            self._text.append(ev.text)  # type: ignore[union-attr]
        elif t is UsageReport:
            self.result.usage = ev.usage  # type: ignore[union-attr]  # last value wins
        elif t is Finished:
            self.result.finish_reason = ev.reason  # type: ignore[union-attr]
        elif t is ReasoningDelta:
            self._reasoning.append(ev.text)  # type: ignore[union-attr]
        elif t is RefusalDelta:
            self._refusal.append(ev.text)  # type: ignore[union-attr]
        elif t is ToolCallDelta:
            slot = self._tools.setdefault(ev.index, [None, None, []])  # type: ignore[union-attr]
            if ev.id:  # type: ignore[union-attr]
                slot[0] = ev.id  # type: ignore[union-attr]
            if ev.name:  # type: ignore[union-attr]
                slot[1] = ev.name  # type: ignore[union-attr]
            if ev.arguments:  # type: ignore[union-attr]
                slot[2].append(ev.arguments)  # type: ignore[union-attr]

    @property
    def text(self) -> str:
        return "".join(self._text)

    def finish(self) -> ChatResult:
        r = self.result
        r.text = "".join(self._text)
        r.reasoning = "".join(self._reasoning)
        r.refusal = "".join(self._refusal)
        r.tool_calls = [
            ToolCall(id=s[0], name=s[1] or "", arguments="".join(s[2]))
            for _, s in sorted(self._tools.items())
        ]
        return r
