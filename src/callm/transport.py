"""The only module that does network I/O. Sends a driver's HttpRequest over http11.py,
follows redirects, and maps every transport failure to a canonical error that names the
provider, URL and phase."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from callm import __version__, http11
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


_pool = http11.Pool()
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
# Headers that may follow a redirect to another origin; the rest (keys, custom headers) stay
# with the origin they were configured for.
_PORTABLE = {"user-agent", "accept", "accept-encoding", "content-type", "connection"}
_DEFAULTS = {
    "User-Agent": USER_AGENT,
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
}


def warm_up(urls: list[str] | tuple[str, ...] = ()) -> None:
    """Build what the first request to these URLs needs (the TLS context, for https) before
    worker threads start, so they do not queue on it and each latency measures the network."""
    if any(u.lower().startswith("https:") for u in urls):
        http11.tls_context()


def reset() -> None:
    """Forget pooled connections and the TLS context (tests change the environment)."""
    _pool.clear()
    http11.forget_tls_context()


def _body(req: HttpRequest) -> tuple[dict[str, str], bytes | None]:
    """The headers to send (the caller's win over the defaults, whatever their case) and the
    encoded JSON body."""
    merged = {k.lower(): (k, v) for k, v in _DEFAULTS.items()}
    body = None
    if req.json is not None:
        import json

        merged["content-type"] = ("Content-Type", "application/json")
        body = json.dumps(req.json, ensure_ascii=False).encode()
    merged.update((k.lower(), (k, v)) for k, v in req.headers.items())
    return dict(merged.values()), body


def _open(req: HttpRequest, t: Timeouts, provider: str | None) -> http11.Reply:
    """Send `req`, following redirects; the reply's head has arrived."""
    method, url = req.method, req.url
    headers, body = _body(req)
    if req.aws is not None:  # SigV4 covers the exact bytes sent, so it is computed last
        from callm.aws_auth import sign

        headers = sign(req.aws, method, url, headers, body)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            reply = http11.request(_pool, method, url, headers, body, t.connect, t.read)
        except http11.HttpError as exc:
            raise map_error(exc, url, t, provider) from None
        location = reply.headers.get("location")
        if reply.status not in _REDIRECTS or not location:
            return reply
        reply.close()
        from urllib.parse import urljoin

        target = urljoin(url, location)
        if reply.status in (301, 302, 303) and method not in ("GET", "HEAD"):
            method, body = "GET", None  # what browsers and httpx do
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if _origin(target) != _origin(url):
            headers = {k: v for k, v in headers.items() if k.lower() in _PORTABLE}
        url = target
    raise NetworkError(
        f"{public(req.url)} redirected more than {MAX_REDIRECTS} times", provider=provider
    )


def public(url: str) -> str:
    """The URL as errors show it: no query (it may carry a key) and no user:password@."""
    url = url.split("?", 1)[0]
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if sep and "@" in host:
        url = f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
    return url


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        return http11.parse_url(url).origin
    except http11.BadURL:
        return None


def map_error(exc: http11.HttpError, url: str, t: Timeouts, provider: str | None) -> CallmError:
    """A transport failure in the user's terms: what, where, and in which phase."""
    url = public(url)
    if isinstance(exc, http11.ConnectTimeout):
        return CallTimeoutError(
            f"could not connect to {url} within {t.connect:g} s (connect phase)", provider=provider
        )
    if isinstance(exc, http11.ReadTimeout):
        return CallTimeoutError(
            f"{url} sent nothing for {t.read:g} s (read phase)",
            provider=provider,
            hint="raise the provider's `timeout` in the config if the model is slow",
        )
    if isinstance(exc, http11.ConnectError):
        return NetworkError(f"cannot reach {url}: {exc}", provider=provider)
    if isinstance(exc, http11.ProtocolError):
        return NetworkError(f"connection to {url} broke: {exc}", provider=provider)
    if isinstance(exc, http11.BadHeader):
        return CannotSendError(
            f"cannot send the request: {exc}",
            provider=provider,
            hint=f"check {provider or 'the provider'}'s `headers` in the config, and its key",
        )
    where = f"{provider}'s" if provider else "the provider's"
    return CannotSendError(
        f"bad URL {url}: {exc}", provider=provider, hint=f"check {where} base_url in the config"
    )


def send(req: HttpRequest, t: Timeouts = Timeouts(), provider: str | None = None) -> Response:
    """A complete request/response (listings, non-streamed chat)."""
    reply = _open(req, t, provider)
    try:
        body = b"".join(reply.body(req.method))
    except http11.HttpError as exc:
        raise map_error(exc, req.url, t, provider) from None
    finally:
        reply.close()
    return Response(reply.status, reply.headers, body)


@contextmanager
def stream(
    req: HttpRequest, t: Timeouts = Timeouts(), provider: str | None = None
) -> Iterator[StreamResponse]:
    """Open a streamed response; its chunks iterator yields raw bytes as they arrive."""
    reply = _open(req, t, provider)

    def chunks() -> Iterator[bytes]:
        try:
            yield from reply.body(req.method)
        except http11.HttpError as exc:
            raise map_error(exc, req.url, t, provider) from None

    try:
        yield StreamResponse(reply.status, reply.headers, chunks())
    finally:
        reply.close()
