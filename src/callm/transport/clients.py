"""The process's httpx clients, made on first use and kept: one per kind of destination
(loopback or not; whether it may speak TLS) and per provider TLS setting. Loopback servers
get a client that ignores the proxy variables, since httpx would send 127.0.0.1 through
HTTP_PROXY. Also the per-call deadline for the sync client (see _Backend)."""

from __future__ import annotations

import os
import ssl
import threading
import time
from contextvars import ContextVar
from typing import Any

import httpcore

from callm.errors import ConfigError
from callm.transport.httpx_lib import httpx
from callm.transport.policy import is_loopback, origin
from callm.types import Tls

Key = tuple[bool, bool, Tls | None]  # (loopback, may do TLS, the provider's TLS setting)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=16)

_lock = threading.Lock()
_sync: dict[Key, httpx.Client] = {}
_async: dict[Key, tuple[object, httpx.AsyncClient]] = {}  # (event loop, client)
_DEADLINE: ContextVar[float | None] = ContextVar("callm_transport_deadline", default=None)


def key(url: str, tls: Tls | None) -> Key:
    scheme, host, _ = origin(url)
    loopback = is_loopback(host)
    # plain http to a loopback server never needs the CA store (loading it costs ~20 ms);
    # elsewhere an https proxy might
    return loopback, scheme == "https" or not loopback, tls if tls and tls != Tls() else None


def sync_client(url: str, tls: Tls | None, provider: str | None) -> httpx.Client:
    k = key(url, tls)
    with _lock:
        client = _sync.get(k)
        if client is None:
            client = _sync[k] = httpx.Client(**_options(k, provider))
            _bound_reads(client)
    return client


def async_client(url: str, tls: Tls | None, provider: str | None) -> httpx.AsyncClient:
    """Connections belong to the event loop that opened them: a new loop, a new client."""
    import asyncio

    loop = asyncio.get_running_loop()
    k = key(url, tls)
    with _lock:
        entry = _async.get(k)
        if entry is None or entry[0] is not loop:
            entry = _async[k] = (loop, httpx.AsyncClient(**_options(k, provider)))
    return entry[1]


def reset() -> None:
    """Close every client (tests change the environment: proxies, SSL_CERT_FILE)."""
    with _lock:
        clients, _ = list(_sync.values()), _async.clear()
        _sync.clear()
    for c in clients:
        c.close()


def _options(k: Key, provider: str | None) -> dict[str, Any]:
    loopback, secure, tls = k
    return {
        "verify": _context(tls, provider)
        if secure or tls
        else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        "trust_env": not loopback,  # proxies (and NO_PROXY) from the environment, as httpx reads
        "follow_redirects": False,  # policy.hops decides, so no key header leaves its origin
        "limits": LIMITS,
        "cookies": _no_cookies(),
    }


def _no_cookies() -> Any:
    """A jar that keeps nothing: a shared client would otherwise send one provider's cookies
    (a gateway's session) to every other provider on the same host, whatever the port."""
    from http.cookiejar import CookieJar, DefaultCookiePolicy

    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _context(tls: Tls | None, provider: str | None) -> ssl.SSLContext:
    """certifi's CAs (or SSL_CERT_FILE / SSL_CERT_DIR), or the provider's own bundle, plus
    its client certificate. A missing file is a config error naming the field."""
    if tls is None or not tls.ca_bundle:
        ctx = httpx.create_ssl_context()
    else:
        path = _file(tls.ca_bundle, "ca_bundle", provider, allow_dir=True)
        try:
            if os.path.isdir(path):
                ctx = ssl.create_default_context(capath=path)
            else:
                ctx = ssl.create_default_context(cafile=path)
        except (ssl.SSLError, OSError) as exc:
            raise _bad(provider, "ca_bundle", f"not a PEM CA bundle: {path} ({exc})") from None
    if tls is not None and tls.client_key and not tls.client_cert:
        raise _bad(provider, "client_key", "set client_cert too (the certificate it belongs to)")
    if tls is not None and tls.client_cert:
        cert = _file(tls.client_cert, "client_cert", provider)
        pem_key = _file(tls.client_key, "client_key", provider) if tls.client_key else None
        try:
            ctx.load_cert_chain(cert, pem_key)
        except (ssl.SSLError, OSError) as exc:
            field = "client_key" if pem_key else "client_cert"
            raise _bad(provider, field, f"cannot load the client certificate ({exc})") from None
    return ctx


def _file(path: str, field: str, provider: str | None, allow_dir: bool = False) -> str:
    full = os.path.expanduser(path)
    if not (os.path.isfile(full) or (allow_dir and os.path.isdir(full))):
        raise _bad(provider, field, f"no such file: {path}")
    return full


def _bad(provider: str | None, field: str, message: str) -> ConfigError:
    return ConfigError(f"providers.{provider or '?'}.{field}: {message}", provider=provider)


# ---- the deadline of a sync call ---------------------------------------------------------------
# httpx times each read, so a server that trickles a byte every few seconds never trips the
# read timeout. Every socket operation of a sync call is therefore bounded by what is left of
# the call's deadline (set with `deadline()` around each step of the call). Async calls use a
# cancel scope instead (see __init__).


class deadline:  # lower case: used like a function, `with deadline(stop): ...`
    """Bound the socket operations inside the block by `stop` (time.monotonic()). A class,
    not @contextmanager: it is entered once per streamed piece, and a generator costs more."""

    __slots__ = ("_stop", "_token")

    def __init__(self, stop: float | None) -> None:
        self._stop = stop

    def __enter__(self) -> None:
        self._token = _DEADLINE.set(self._stop)

    def __exit__(self, *exc: object) -> None:
        _DEADLINE.reset(self._token)


def _left(timeout: float | None, late: type[Exception]) -> float | None:
    stop = _DEADLINE.get()
    if stop is None:
        return timeout
    left = stop - time.monotonic()
    if left <= 0:
        raise late("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
        )
        return _Stream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bound_reads(client: httpx.Client) -> None:
    """Put _Backend under each connection pool of `client` (its own and its proxies').
    httpx has no option for a network backend, so this reaches into its transports;
    tests/test_transport_limits.py's trickle tests fail if a release renames what it touches."""
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        inner = getattr(pool, "_network_backend", None)
        if inner is not None and not isinstance(inner, _Backend):
            pool._network_backend = _Backend(inner)  # type: ignore[union-attr]
