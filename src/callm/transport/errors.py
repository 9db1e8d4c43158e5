"""httpx's exceptions in the user's terms: what failed, where (the URL without its query or
credentials) and in which phase. Shared by the sync and async paths."""

from __future__ import annotations

import socket
import ssl
import time

from callm.errors import CallmError, CallTimeoutError, HostNotFoundError, NetworkError
from callm.transport.httpx_lib import httpx
from callm.transport.policy import CannotSendError, Timeouts, malformed_location, public


def map_error(
    exc: BaseException, url: str, t: Timeouts, provider: str | None, stop: float | None
) -> CallmError:
    """`stop`: the call's deadline (time.monotonic()), None without one."""
    url = public(url)
    late = stop is not None and time.monotonic() >= stop
    if late and isinstance(exc, (TimeoutError, httpx.TransportError)):
        return CallTimeoutError(
            f"{url} did not finish within the {round(t.deadline or 0, 1):g} s deadline",
            provider=provider,
            hint="raise the provider's `deadline` in the config, or pass --timeout",
        )
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return CallTimeoutError(
            f"could not connect to {url} within {t.connect:g} s (connect phase)", provider=provider
        )
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout)):
        return CallTimeoutError(
            f"{url} sent nothing for {t.read:g} s (read phase)",
            provider=provider,
            hint="raise the provider's `timeout` in the config if the model is slow",
        )
    if isinstance(exc, httpx.ProxyError):
        return NetworkError(f"cannot reach {url}: the proxy said {exc}", provider=provider)
    if isinstance(exc, httpx.ConnectError) and (dns := _lookup_failure(exc)) is not None:
        host = httpx.URL(url).host or url
        return HostNotFoundError(
            f"cannot resolve the host name {host} ({dns.strerror or dns}): {url}",
            provider=provider,
            hint=f"check {provider or 'the provider'}'s base_url and your network's DNS",
        )
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(f"cannot reach {url}: {_reason(exc)}", provider=provider)
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return CannotSendError(
            f"bad URL {url}: {exc}",
            provider=provider,
            hint=f"check {provider or 'the provider'}'s base_url in the config",
        )
    if isinstance(exc, httpx.LocalProtocolError):
        return CannotSendError(f"cannot send the request to {url}: {exc}", provider=provider)
    if isinstance(exc, httpx.RemoteProtocolError) and "location header" in str(exc):
        return malformed_location(url, provider)  # httpx parses Location even when not following
    # ReadError, WriteError, RemoteProtocolError (the reply is not HTTP, or it was cut short)
    return NetworkError(f"connection to {url} broke: {_reason(exc)}", provider=provider)


def _lookup_failure(exc: BaseException) -> socket.gaierror | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    """The cause in a few words (the OS's or the TLS library's), never a traceback."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"TLS certificate check failed ({seen.verify_message})"
        if isinstance(seen, ssl.SSLError):
            return f"TLS handshake failed ({seen.reason or seen.strerror or type(seen).__name__})"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"cannot resolve the host name ({seen.strerror or seen})"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
