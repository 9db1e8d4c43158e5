"""The only network I/O in callm: sends a driver's HttpRequest with httpx and maps every
failure to a canonical error naming the provider, URL and phase.

`send`/`stream` run on one httpx.Client per process, `asend`/`astream` on an
httpx.AsyncClient; both walk the same hops (policy.hops: request building and the redirect
policy), decode with the same Decoder (bounded, capped) and map errors with errors.map_error.
httpx is imported on the first call, so `callm --help` never pays for it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from callm.errors import CallmError
from callm.transport.policy import (
    MAX_BODY,
    MAX_REDIRECTS,
    USER_AGENT,
    CannotSendError,
    Decoder,
    Response,
    StreamResponse,
    Timeouts,
    public,
)
from callm.types import HttpRequest, Tls

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUTS = Timeouts()

__all__ = [
    "MAX_BODY",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "AsyncStreamResponse",
    "CannotSendError",
    "Response",
    "StreamResponse",
    "Timeouts",
    "Tls",
    "asend",
    "astream",
    "public",
    "reset",
    "send",
    "stream",
    "warm_up",
]


def warm_up(urls: list[str] | tuple[str, ...] = ()) -> None:
    """Import httpx and build the clients (and TLS contexts) these URLs need before worker
    threads start, so they do not queue on it and each latency measures the network."""
    from callm.transport import clients

    for url in urls:
        try:
            clients.sync_client(url, None, None)
        except CallmError:
            pass  # a bad URL: its call will say so


def reset() -> None:
    """Forget the clients, their pooled connections and TLS contexts."""
    import sys

    if "callm.transport.clients" in sys.modules:
        from callm.transport import clients

        clients.reset()


def _stop(t: Timeouts) -> float | None:
    return time.monotonic() + t.deadline if t.deadline else None


def _request(client: Any, hop: Any, t: Timeouts) -> httpx.Request:
    from callm.transport.httpx_lib import httpx

    timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect)
    return client.build_request(
        hop.method, hop.url, headers=hop.headers, content=hop.body, timeout=timeout
    )


def _fail(exc: Exception, url: str, t: Timeouts, provider: str | None, stop: float | None) -> Any:
    """A CallmError for `exc` (httpx's, or a timeout), or None: not ours to map."""
    from callm.transport.errors import map_error
    from callm.transport.httpx_lib import httpx

    if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL, TimeoutError)):
        return map_error(exc, url, t, provider, stop)
    return None


@contextmanager
def _mapped(url: str, t: Timeouts, provider: str | None, stop: float | None) -> Iterator[None]:
    """Re-raise httpx's errors and timeouts from the block as canonical errors (sync and async
    paths alike; only their I/O calls differ)."""
    try:
        yield
    except Exception as exc:
        if (mapped := _fail(exc, url, t, provider, stop)) is None:
            raise
        raise mapped from None


# ---- sync ------------------------------------------------------------------------------------


def _open(req: HttpRequest, t: Timeouts, provider: str | None, tls: Tls | None) -> Any:
    """Send `req` along its hops; returns (httpx.Response with its head read, stop)."""
    from callm.transport import clients, policy

    stop, walk = _stop(t), policy.hops(req, provider)
    hop = next(walk)
    while True:
        client = clients.sync_client(hop.url, tls, provider)
        with _mapped(hop.url, t, provider, stop), clients.deadline(stop):
            resp = client.send(_request(client, hop, t), stream=True)
        try:
            hop = walk.send((resp.status_code, resp.headers.get("location")))
        except StopIteration:
            return resp, stop
        except BaseException:
            resp.close()
            raise
        resp.close()


def _chunks(
    resp: Any, url: str, t: Timeouts, provider: str | None, stop: float | None, cap: int | None
) -> Iterator[bytes]:
    from callm.transport import clients

    raw = resp.iter_raw()
    try:
        decoder = Decoder(resp.headers.get("content-encoding", ""), cap, provider)
        plain = decoder.passthrough  # per piece, two generators fewer
        while True:
            try:  # what _mapped does, inline: this runs once per streamed piece
                with clients.deadline(stop):
                    part = next(raw, None)
            except Exception as exc:
                if (mapped := _fail(exc, url, t, provider, stop)) is None:
                    raise
                raise mapped from None
            if part is None:
                break
            if stop is not None and time.monotonic() > stop:  # in case _Backend is not in place
                raise _fail(TimeoutError(), url, t, provider, stop)
            if plain:
                if part:
                    yield part
            else:
                yield from decoder.feed(part)
        yield from decoder.flush()
    finally:
        resp.close()


def _headers(resp: Any) -> dict[str, str]:
    return dict(resp.headers.items())  # lower-case names, repeats joined with ", "


def send(
    req: HttpRequest,
    t: Timeouts = DEFAULT_TIMEOUTS,
    provider: str | None = None,
    tls: Tls | None = None,
) -> Response:
    """A complete request/response (listings, non-streamed chat); the body is decoded and
    capped at MAX_BODY."""
    resp, stop = _open(req, t, provider, tls)
    body = b"".join(_chunks(resp, req.url, t, provider, stop, MAX_BODY))
    return Response(resp.status_code, _headers(resp), body)


@contextmanager
def stream(
    req: HttpRequest,
    t: Timeouts = DEFAULT_TIMEOUTS,
    provider: str | None = None,
    tls: Tls | None = None,
) -> Iterator[StreamResponse]:
    """Open a streamed response; its chunks iterator yields decoded bytes as they arrive."""
    resp, stop = _open(req, t, provider, tls)
    try:
        yield StreamResponse(
            resp.status_code, _headers(resp), _chunks(resp, req.url, t, provider, stop, None)
        )
    finally:
        resp.close()


# ---- async (the same hops, decoder and error mapping; the deadline is a cancel scope) ------


def _scope(stop: float | None) -> Any:
    if stop is None:
        return nullcontext()
    import anyio

    return anyio.fail_after(max(stop - time.monotonic(), 0))


async def _aopen(req: HttpRequest, t: Timeouts, provider: str | None, tls: Tls | None) -> Any:
    from callm.transport import clients, policy

    stop, walk = _stop(t), policy.hops(req, provider)
    hop = next(walk)
    while True:
        client = clients.async_client(hop.url, tls, provider)
        with _mapped(hop.url, t, provider, stop), _scope(stop):
            resp = await client.send(_request(client, hop, t), stream=True)
        try:
            hop = walk.send((resp.status_code, resp.headers.get("location")))
        except StopIteration:
            return resp, stop
        except BaseException:
            await resp.aclose()
            raise
        await resp.aclose()


async def _achunks(
    resp: Any, url: str, t: Timeouts, provider: str | None, stop: float | None, cap: int | None
) -> AsyncIterator[bytes]:
    raw = resp.aiter_raw()
    try:
        decoder = Decoder(resp.headers.get("content-encoding", ""), cap, provider)
        plain = decoder.passthrough  # per piece, two generators fewer
        while True:
            with _mapped(url, t, provider, stop), _scope(stop):
                part = await anext(raw, None)
            if part is None:
                break
            if plain:
                if part:
                    yield part
                continue
            for piece in decoder.feed(part):
                yield piece
        for piece in decoder.flush():
            yield piece
    finally:
        await resp.aclose()


class AsyncStreamResponse:
    """StreamResponse for async callers: `async for chunk in resp.chunks`."""

    def __init__(self, status: int, headers: dict[str, str], chunks: AsyncIterator[bytes]):
        self.status, self.headers, self.chunks = status, headers, chunks

    async def read_all(self, limit: int = 4 * 1024 * 1024) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks:
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)


async def asend(
    req: HttpRequest,
    t: Timeouts = DEFAULT_TIMEOUTS,
    provider: str | None = None,
    tls: Tls | None = None,
) -> Response:
    """send() for async callers."""
    resp, stop = await _aopen(req, t, provider, tls)
    body = b"".join([p async for p in _achunks(resp, req.url, t, provider, stop, MAX_BODY)])
    return Response(resp.status_code, _headers(resp), body)


@asynccontextmanager
async def astream(
    req: HttpRequest,
    t: Timeouts = DEFAULT_TIMEOUTS,
    provider: str | None = None,
    tls: Tls | None = None,
) -> AsyncIterator[AsyncStreamResponse]:
    """stream() for async callers: `async for chunk in resp.chunks`."""
    resp, stop = await _aopen(req, t, provider, tls)
    try:
        chunks = _achunks(resp, req.url, t, provider, stop, None)
        yield AsyncStreamResponse(resp.status_code, _headers(resp), chunks)
    finally:
        await resp.aclose()
