"""What the sync and async paths share, without I/O: the request as it goes out, which
redirects are followed, how a body is decoded and capped, and the shapes callers see.
Standard library only, so importing it costs nothing."""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from callm import __version__
from callm.errors import BadResponseError, NetworkError
from callm.types import HttpRequest

USER_AGENT = f"callm/{__version__}"
MAX_BODY = 32 * 1024 * 1024  # a body read whole (reply, model list, error page), decoded
PIECE = 256 * 1024  # the most one decompression step may produce: a gzip bomb stays small
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
# Sent unless the caller says otherwise. Only what Decoder can undo is offered.
DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}


class CannotSendError(NetworkError):
    """The request cannot be sent at all (a bad URL, a header value that is not ASCII, a
    redirect callm will not follow): the same every time, so it is neither retried nor counted
    against the provider."""

    retryable = False


class RedirectLoopError(NetworkError):
    """More than MAX_REDIRECTS hops: the server's loop answers the same way again, so it is
    not retried."""

    retryable = False


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0  # longest silence between two bytes
    deadline: float | None = None  # the whole call (head and body), however the bytes trickle


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class StreamResponse:
    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]  # decoded bytes as they arrive; raises CallmError on failure

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


def public(url: str) -> str:
    """The URL as errors show it: no query (it may carry a key) and no user:password@."""
    url = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if sep and "@" in host:
        url = f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
    return url


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL already checked by check_url."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: local servers, never reached through a proxy."""
    import ipaddress

    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, provider: str | None) -> str:
    """The reason `url` cannot be requested, as CannotSendError; else the URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
        problem = None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            problem = f"unsupported scheme {scheme!r}" if scheme else "no scheme (http or https)"
        elif not parts.hostname:
            problem = "no host"
        elif any(c in url for c in " \t\r\n\0"):
            problem = "a space or line break in the URL"
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range"
        problem = str(exc)
    if problem:
        where = f"{provider}'s" if provider else "the provider's"
        raise CannotSendError(
            f"bad URL {public(url)}: {problem}",
            provider=provider,
            hint=f"check {where} base_url in the config",
        )
    return url


def _check_headers(headers: dict[str, str], provider: str | None) -> None:
    for name, value in headers.items():
        problem = None
        if any(c in value for c in "\r\n\0") or any(c in name for c in "\r\n\0: "):
            problem = "it has a line break"
        try:
            (name + value).encode("ascii")
        except UnicodeEncodeError as exc:
            problem = exc.reason
        if problem:  # never the value: it is usually the key
            raise CannotSendError(
                f"cannot send the request: a header value is not plain ASCII ({problem})",
                provider=provider,
                hint=f"check {provider or 'the provider'}'s `headers` in the config, and its key",
            )


@dataclass(slots=True)
class Hop:
    """One request on the wire."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def hops(req: HttpRequest, provider: str | None) -> Generator[Hop, tuple[int, str | None], None]:
    """The requests one call makes: yields each Hop and is sent back the reply's (status,
    Location). Redirects: never for a POST (it may have been acted on, and its body holds the
    prompt); for GET only to the same origin (scheme, host, port), so keys never leave it."""
    headers = {k.lower(): (k, v) for k, v in DEFAULT_HEADERS.items()}
    body = None
    if req.json is not None:
        import json

        headers["content-type"] = ("Content-Type", "application/json")
        body = json.dumps(req.json, ensure_ascii=False).encode()
    # the caller's win over ours, whatever their case; the real length is httpx's to send
    headers.update((k.lower(), (k, v)) for k, v in req.headers.items())
    headers.pop("content-length", None)
    hop = Hop(req.method.upper(), check_url(req.url, provider), dict(headers.values()), body)
    _check_headers(hop.headers, provider)
    for _ in range(MAX_REDIRECTS + 1):
        if req.aws is not None:  # SigV4 covers the exact URL, headers and body: signed last
            from callm.aws_auth import sign

            hop.headers = sign(req.aws, hop.method, hop.url, hop.headers, hop.body)
        status, location = yield hop
        if status not in REDIRECTS or not location:
            return
        hop.url = _redirect(hop, status, location, provider)
    raise RedirectLoopError(
        f"{public(req.url)} redirected more than {MAX_REDIRECTS} times", provider=provider
    )


def _redirect(hop: Hop, status: int, location: str, provider: str | None) -> str:
    """Where a redirect may take `hop`, or CannotSendError saying why it stops here."""
    here = public(hop.url)
    try:
        target = urljoin(hop.url, location.strip())
        check_url(target, provider)
    except (ValueError, CannotSendError):
        raise malformed_location(hop.url, provider) from None
    why = None
    if hop.method not in ("GET", "HEAD"):
        why = f"callm does not follow a redirect of a {hop.method}"
    elif origin(target) != origin(hop.url):
        why = "callm follows redirects only within the same scheme, host and port"
    if why is None:
        return target
    raise CannotSendError(
        f"{here} answered HTTP {status}, a redirect to {public(target)}: {why}",
        provider=provider,
        hint=f"set {provider or 'the provider'}'s base_url to the address it redirects to",
    )


def malformed_location(url: str, provider: str | None) -> CannotSendError:
    return CannotSendError(f"{public(url)} redirected to a malformed Location", provider=provider)


class Decoder:
    """Undoes Content-Encoding in bounded steps: no step returns more than PIECE bytes, so
    1 MB of gzip that inflates to 1 GiB never sits in memory; `cap` bounds the total."""

    def __init__(self, encoding: str, cap: int | None, provider: str | None) -> None:
        encoding = encoding.strip().lower()
        self.cap, self.provider, self.size = cap, provider, 0
        self._wbits: int | None = {
            "gzip": zlib.MAX_WBITS | 16,
            "x-gzip": zlib.MAX_WBITS | 16,
            "deflate": zlib.MAX_WBITS,
        }.get(encoding)
        if self._wbits is None and encoding not in ("", "identity"):
            raise BadResponseError(
                f"the reply uses content-encoding {encoding!r}, not asked for", provider=provider
            )
        self._z = zlib.decompressobj(self._wbits) if self._wbits is not None else None
        self._first = True

    @property
    def passthrough(self) -> bool:
        """Nothing to undo and no cap: the bytes go through as they came (a stream's case)."""
        return self._z is None and self.cap is None

    def feed(self, raw: bytes) -> Iterator[bytes]:
        if self._z is None:
            yield from self._count(raw)
            return
        data = raw
        while True:
            try:
                out = self._z.decompress(data, PIECE)
            except zlib.error:
                if not (self._first and self._wbits == zlib.MAX_WBITS):
                    raise self._corrupt() from None
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent without header
                self._first = False
                continue
            self._first = False
            data = self._z.unconsumed_tail
            yield from self._count(out)
            if not data and len(out) < PIECE:  # a full piece may leave output inside zlib
                return

    def flush(self) -> Iterator[bytes]:
        if self._z is not None:
            while tail := self._z.decompress(b"", PIECE):
                yield from self._count(tail)

    def _count(self, out: bytes) -> Iterator[bytes]:
        if not out:
            return
        self.size += len(out)
        if self.cap is not None and self.size > self.cap:
            raise BadResponseError(
                f"reply larger than {self.cap // (1024 * 1024)} MiB", provider=self.provider
            )
        yield out

    def _corrupt(self) -> BadResponseError:
        return BadResponseError("the compressed reply is corrupt", provider=self.provider)
