"""The only module that does network I/O. Sends a driver's HttpRequest with httpx and maps
every transport failure to a canonical error that names the provider, URL and phase."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from callm import __version__
from callm.errors import CallmError, CallTimeoutError, NetworkError
from callm.types import HttpRequest

USER_AGENT = f"callm/{__version__}"


class CannotSendError(NetworkError):
    """The request cannot be sent at all (a bad URL, a header value that is not ASCII):
    the same every time, so it is neither retried nor counted against the provider."""

    retryable = False


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0  # longest silence between two bytes


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class StreamResponse:
    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]  # raw bytes as they arrive; raises CallmError on failure

    def read_all(self, limit: int = 4 * 1024 * 1024) -> bytes:
        """The whole body (for error replies), capped: an error page is never huge."""
        parts: list[bytes] = []
        size = 0
        for chunk in self.chunks:
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)


_client: httpx.Client | None = None
_lock = threading.Lock()
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16)


class _LazyTLSTransport(httpx.BaseTransport):
    """The https transport, built on first use: loading the CA store costs ~90 ms, which a
    call to a local server (Ollama, vLLM, sim, our tests) never needs."""

    def __init__(self) -> None:
        self._inner: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    self._inner = httpx.HTTPTransport(limits=_LIMITS)  # verifies certificates
        return self._inner.handle_request(request)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


def client() -> httpx.Client:
    """One pooled client per process (thread-safe), so concurrent checks share connections."""
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(
                headers={"User-Agent": USER_AGENT},
                follow_redirects=True,
                # https:// goes to the lazily built, verifying transport; plain http:// needs
                # no TLS context at all (verify=False only skips building one: no TLS is
                # ever spoken on that transport).
                transport=_LazyTLSTransport(),
                mounts={"http://": httpx.HTTPTransport(verify=False, limits=_LIMITS)},
            )
        return _client


def _timeout(t: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect)


def _build(c: httpx.Client, req: HttpRequest, t: Timeouts) -> httpx.Request:
    kw: dict[str, Any] = {"headers": req.headers, "timeout": _timeout(t)}
    if req.json is not None:
        import json

        kw["content"] = json.dumps(req.json, ensure_ascii=False).encode()
        kw["headers"] = {"Content-Type": "application/json", **req.headers}
    return c.build_request(req.method, req.url, **kw)


def map_error(exc: Exception, req: HttpRequest, t: Timeouts, provider: str | None) -> CallmError:
    """httpx's failures in the user's terms: what, where, and in which phase."""
    url = req.url.split("?", 1)[0]
    if isinstance(exc, httpx.ConnectTimeout):
        return CallTimeoutError(
            f"could not connect to {url} within {t.connect:g} s (connect phase)", provider=provider
        )
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return CallTimeoutError(
            f"{url} sent nothing for {t.read:g} s (read phase)",
            provider=provider,
            hint="raise the provider's `timeout` in the config if the model is slow",
        )
    if isinstance(exc, httpx.ConnectError):
        reason = str(exc) or "connection failed"
        if "refused" in reason.lower():
            reason = "connection refused"
        return NetworkError(f"cannot reach {url}: {reason}", provider=provider)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return NetworkError(
            f"connection to {url} broke: {exc or type(exc).__name__}", provider=provider
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        where = f"{provider}'s" if provider else "the provider's"
        return CannotSendError(
            f"bad URL {url}: {exc}", provider=provider, hint=f"check {where} base_url in the config"
        )
    return NetworkError(f"{type(exc).__name__} talking to {url}: {exc}", provider=provider)


def _unencodable(exc: UnicodeError, provider: str | None) -> CannotSendError:
    # The message names the position, never the value: the value may be the key.
    reason = exc.reason if isinstance(exc, UnicodeEncodeError) else str(exc)
    return CannotSendError(
        f"cannot send the request: a header value is not plain ASCII ({reason})",
        provider=provider,
        hint=f"check {provider or 'the provider'}'s `headers` in the config, and its key",
    )


def send(req: HttpRequest, t: Timeouts = Timeouts(), provider: str | None = None) -> Response:
    """A complete request/response (listings, non-streamed chat)."""
    c = client()
    try:
        r = c.send(_build(c, req, t))
        return Response(r.status_code, dict(r.headers), r.content)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise map_error(exc, req, t, provider) from None
    except UnicodeError as exc:  # e.g. a non-ASCII header value
        raise _unencodable(exc, provider) from None


@contextmanager
def stream(
    req: HttpRequest, t: Timeouts = Timeouts(), provider: str | None = None
) -> Iterator[StreamResponse]:
    """Open a streamed response; its chunks iterator yields raw bytes as they arrive."""
    c = client()
    try:
        r = c.send(_build(c, req, t), stream=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise map_error(exc, req, t, provider) from None
    except UnicodeError as exc:
        raise _unencodable(exc, provider) from None

    def chunks() -> Iterator[bytes]:
        try:
            # No chunk_size: httpx would hold bytes back until a chunk fills. iter_bytes (not
            # iter_raw) undoes gzip for us.
            yield from r.iter_bytes()
        except httpx.HTTPError as exc:
            raise map_error(exc, req, t, provider) from None

    try:
        yield StreamResponse(r.status_code, dict(r.headers), chunks())
    finally:
        r.close()
