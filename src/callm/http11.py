"""HTTP/1.1 on the standard library: one request, one reply, nothing more than callm's calls
need (JSON in, JSON or an event stream out, keep-alive, gzip, proxies from the environment,
TLS). Redirects and the mapping to callm's errors belong to transport.py.

Why not httpx: importing httpx, httpcore and h11 costs ~150 ms of CPU, more than everything
else `callm chat` does before its request leaves (bench/RESULTS.md); socket is needed anyway,
and ssl and the CA store are loaded only for https."""

from __future__ import annotations

import os
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

MAX_LINE = 64 * 1024  # a status, header or chunk-size line longer than this is not HTTP
MAX_HEADERS = 256
MAX_IDLE = 16  # kept-alive connections per origin
_RECV = 64 * 1024
_LOOPBACK = ("localhost", "::1")  # and 127.*: never sent through a proxy


class HttpError(Exception):
    """Base of what this module raises; the message never holds a header value."""


class BadURL(HttpError):
    pass


class BadHeader(HttpError):
    """A header value that cannot go on the wire (not ASCII, or a line break in it)."""


class ConnectError(HttpError):
    """No connection: refused, name lookup, TLS handshake, or a proxy that said no."""


class ConnectTimeout(HttpError):
    pass


class ReadTimeout(HttpError):
    """The server was silent (or would not take our bytes) for longer than the read timeout."""


class ProtocolError(HttpError):
    """The reply is not HTTP, or the connection closed before the reply ended."""


class _Closed(Exception):
    """The peer closed the connection (EOF) where bytes were expected."""


# ---- URLs and proxies -----------------------------------------------------------------------


@dataclass(frozen=True)
class Url:
    scheme: str  # http | https
    host: str  # lower case, ASCII (IDNA), no brackets
    port: int
    target: str  # path and query, percent-encoded
    auth: str | None = field(default=None, compare=False)  # Basic, from user:pass@ in the URL

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def authority(self) -> str:
        """The Host header: the default port is left out, IPv6 goes in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def absolute(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


def parse_url(url: str) -> Url:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range"
        raise BadURL(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadURL(f"unsupported scheme {scheme!r}" if scheme else "no scheme (http or https)")
    host = parts.hostname
    if not host:
        raise BadURL("no host")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise BadURL(f"bad host name: {exc}") from None
    if any(c in host for c in " \t\r\n/\\"):
        raise BadURL("bad host name")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    port = port or (443 if scheme == "https" else 80)
    auth = _basic(parts.username, parts.password) if parts.username is not None else None
    return Url(scheme, host, port, path + (f"?{query}" if query else ""), auth)


def _basic(username: str, password: str | None) -> str:
    import base64

    pair = f"{unquote(username)}:{unquote(password or '')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class Proxy:
    url: Url
    auth: str | None  # the Proxy-Authorization value, from user:pass in the proxy URL

    @property
    def name(self) -> str:
        return self.url.authority  # never the credentials


def proxy_for(url: Url, env: dict[str, str] | os._Environ[str] = os.environ) -> Proxy | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, with
    NO_PROXY exceptions), as curl and httpx read them. Loopback hosts never go through one."""
    if url.host in _LOOPBACK or url.host.startswith("127."):
        return None
    if _bypassed(url, env.get("NO_PROXY") or env.get("no_proxy") or ""):
        return None
    raw = (
        env.get(f"{url.scheme.upper()}_PROXY")
        or env.get(f"{url.scheme}_proxy")
        or env.get("ALL_PROXY")
        or env.get("all_proxy")
    )
    if not raw:
        return None
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    if parts.scheme.lower() != "http":
        raise BadURL(f"proxy scheme {parts.scheme!r} is not supported (use http://)")
    auth = _basic(parts.username, parts.password) if parts.username is not None else None
    host = parts.hostname or ""
    where = f"[{host}]" if ":" in host else host
    return Proxy(parse_url(f"http://{where}:{parts.port or 80}/"), auth)


def _bypassed(url: Url, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if port and port != str(url.port):
            continue
        host = host.lstrip(".").strip("[]")
        if url.host == host or url.host.endswith("." + host):
            return True
    return False


# ---- TLS --------------------------------------------------------------------------------------

_tls_lock = threading.Lock()
_tls_context: object | None = None  # ssl.SSLContext, built once: loading CAs costs ~90 ms


def tls_context() -> object:
    """Certificates from SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi's bundle (what
    httpx used), else the system store."""
    global _tls_context
    with _tls_lock:
        if _tls_context is None:
            import ssl

            cafile = os.environ.get("SSL_CERT_FILE") or None
            capath = os.environ.get("SSL_CERT_DIR") or None
            if not cafile and not capath:
                try:
                    import certifi

                    cafile = certifi.where()
                except ImportError:  # pragma: no cover - certifi is a dependency
                    pass
            ctx = ssl.create_default_context(cafile=cafile, capath=capath)
            ctx.set_alpn_protocols(["http/1.1"])
            _tls_context = ctx
        return _tls_context


def forget_tls_context() -> None:
    """Build the TLS context afresh on next use (after SSL_CERT_FILE changed, in tests)."""
    global _tls_context
    with _tls_lock:
        _tls_context = None


# ---- connections -------------------------------------------------------------------------------


class Connection:
    """A socket with a read buffer. Used by one request at a time."""

    def __init__(self, sock: socket.socket, key: tuple[object, ...]) -> None:
        self.sock = sock
        self.key = key
        self.reused = False
        self._buf = b""
        self._pos = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass

    def _more(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            raise _Closed
        self._buf = data if self._pos >= len(self._buf) else self._buf[self._pos :] + data
        self._pos = 0

    def line(self) -> bytes:
        while True:
            end = self._buf.find(b"\n", self._pos)
            if end >= 0:
                out = self._buf[self._pos : end + 1]
                self._pos = end + 1
                return out
            if len(self._buf) - self._pos > MAX_LINE:
                raise ProtocolError("a header line is too long")
            self._more()

    def some(self, limit: int) -> bytes:
        """Up to `limit` bytes: what is buffered, else what the next read brings."""
        if self._pos >= len(self._buf):
            self._more()
        end = min(len(self._buf), self._pos + limit)
        out = self._buf[self._pos : end]
        self._pos = end
        return out

    def idle_and_alive(self) -> bool:
        """A kept-alive connection is worth reusing only if the server has not closed it (or
        sent anything unasked) while it sat in the pool."""
        import select

        if self._pos < len(self._buf):
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


class Pool:
    """Idle kept-alive connections by origin (and proxy), shared by threads."""

    def __init__(self) -> None:
        self._idle: dict[tuple[object, ...], list[Connection]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[object, ...]) -> Connection | None:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                conn = idle.pop()
                if conn.idle_and_alive():
                    conn.reused = True
                    return conn
                conn.close()
        return None

    def give(self, conn: Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(conn.key, [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
            self._idle.clear()


def _open_socket(host: str, port: int, connect_timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except TimeoutError:
        raise ConnectTimeout() from None
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve {host} ({exc.strerror or exc})") from None
    except ConnectionRefusedError:
        raise ConnectError("connection refused") from None
    except OSError as exc:
        raise ConnectError(exc.strerror or str(exc) or type(exc).__name__) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _connect(url: Url, proxy: Proxy | None, connect_timeout: float) -> socket.socket:
    hop = proxy.url if proxy else url
    sock = _open_socket(hop.host, hop.port, connect_timeout)
    try:
        if proxy and url.scheme == "https":
            _tunnel(sock, url, proxy)
        if url.scheme == "https":
            sock = _tls(sock, url.host)
    except BaseException:
        sock.close()
        raise
    return sock


def _tunnel(sock: socket.socket, url: Url, proxy: Proxy) -> None:
    """CONNECT through an http:// proxy; the TLS session then runs inside the tunnel."""
    lines = [f"CONNECT {url.host}:{url.port} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    if proxy.auth:
        lines.append(f"Proxy-Authorization: {proxy.auth}")
    conn = Connection(sock, ())
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        status, _, _ = _read_head(conn)
    except TimeoutError:
        raise ConnectTimeout() from None
    except (_Closed, OSError):
        raise ConnectError(f"proxy {proxy.name} closed the tunnel") from None
    if status != 200:
        raise ConnectError(f"proxy {proxy.name} refused the tunnel (HTTP {status})")


def _tls(sock: socket.socket, host: str) -> socket.socket:
    import ssl

    try:
        return tls_context().wrap_socket(sock, server_hostname=host)  # type: ignore[attr-defined]
    except TimeoutError:
        raise ConnectTimeout() from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(f"TLS certificate check failed ({exc.verify_message})") from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ConnectError(f"TLS handshake failed ({reason})") from None


# ---- one exchange ---------------------------------------------------------------------------


def _read_head(conn: Connection) -> tuple[int, str, list[tuple[str, str]]]:
    """The status line and headers of the final reply (1xx interim replies are skipped)."""
    while True:
        line = conn.line()
        for _ in range(4):  # RFC 9112 2.2: a client should skip stray empty lines here
            if line not in (b"\r\n", b"\n"):
                break
            line = conn.line()
        version, _, rest = line.rstrip(b"\r\n").partition(b" ")
        code, _, _reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError("the reply is not HTTP/1.x")
        headers: list[tuple[str, str]] = []
        while True:
            raw = conn.line()
            if raw in (b"\r\n", b"\n"):
                break
            if len(headers) >= MAX_HEADERS:
                raise ProtocolError("too many headers in the reply")
            if raw[:1] in (b" ", b"\t") and headers:  # obsolete line folding
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {raw.strip().decode('latin-1')}")
                continue
            name, colon, value = raw.partition(b":")
            if not colon:
                raise ProtocolError("a malformed header line in the reply")
            name_s = name.strip().decode("latin-1").lower()
            headers.append((name_s, value.strip().decode("latin-1")))
        status = int(code)
        if 100 <= status < 200 and status != 101:
            continue
        return status, version.decode("ascii", "replace"), headers


def _merge(headers: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class Reply:
    """A reply whose head has arrived. Iterate `body()` once for its (decoded) bytes, then
    `close()`; a connection read to the end goes back to the pool for the next request."""

    def __init__(
        self, conn: Connection, pool: Pool, status: int, version: str, headers: dict[str, str]
    ) -> None:
        self.status = status
        self.headers = headers
        self._conn: Connection | None = conn
        self._pool = pool
        close = "close" in headers.get("connection", "").lower()
        self._keep = version == "HTTP/1.1" and not close

    def body(self, method: str = "GET") -> Iterator[bytes]:
        raw = self._raw(method)
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            return _inflate(raw, zlib.MAX_WBITS | 16)
        if encoding == "deflate":
            return _inflate(raw, zlib.MAX_WBITS)
        if encoding not in ("identity", ""):
            raise ProtocolError(f"the reply uses content-encoding {encoding!r}, not asked for")
        return raw

    def _raw(self, method: str) -> Iterator[bytes]:
        conn = self._conn
        assert conn is not None, "body() read twice"
        if method == "HEAD" or self.status in (204, 304):
            return self._done(iter(()))
        te = self.headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            return self._done(_chunked(conn))
        length = self.headers.get("content-length")
        if length is not None:
            try:
                n = int(length.split(",")[0].strip())
            except ValueError:
                raise ProtocolError("a malformed Content-Length in the reply") from None
            return self._done(_fixed(conn, n))
        self._keep = False  # the body ends when the server closes the connection
        return self._done(_until_close(conn))

    def _done(self, parts: Iterator[bytes]) -> Iterator[bytes]:
        try:
            yield from parts
        except _Closed:
            raise ProtocolError("the connection closed before the reply ended") from None
        except TimeoutError:
            raise ReadTimeout() from None
        except OSError as exc:
            raise ProtocolError(str(exc) or type(exc).__name__) from None
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._keep:
                self._pool.give(conn)
            else:
                conn.close()

    def close(self) -> None:
        """Drop the connection unless its reply was read to the end (then it was pooled)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _chunked(conn: Connection) -> Iterator[bytes]:
    while True:
        line = conn.line()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("a malformed chunk size in the reply") from None
        if size < 0:
            raise ProtocolError("a malformed chunk size in the reply")
        if size == 0:
            while conn.line() not in (b"\r\n", b"\n"):  # trailers, unused
                pass
            return
        while size:
            data = conn.some(size)
            size -= len(data)
            yield data
        if conn.line().strip():
            raise ProtocolError("a chunk longer than its size in the reply")


def _fixed(conn: Connection, left: int) -> Iterator[bytes]:
    while left > 0:
        data = conn.some(min(left, _RECV))
        left -= len(data)
        yield data


def _until_close(conn: Connection) -> Iterator[bytes]:
    while True:
        try:
            data = conn.some(_RECV)
        except _Closed:
            return
        yield data


def _inflate(parts: Iterator[bytes], wbits: int) -> Iterator[bytes]:
    d = zlib.decompressobj(wbits)
    first = True
    for part in parts:
        try:
            out = d.decompress(part)
        except zlib.error:
            if not (first and wbits == zlib.MAX_WBITS):
                raise ProtocolError("the compressed reply is corrupt") from None
            d = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent raw, without zlib header
            try:
                out = d.decompress(part)
            except zlib.error:
                raise ProtocolError("the compressed reply is corrupt") from None
        first = False
        if out:
            yield out
    tail = d.flush()
    if tail:
        yield tail


def _encode_head(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if any(c in value for c in "\r\n\0") or any(c in name for c in "\r\n\0: "):
            raise BadHeader("a header value is not plain ASCII (it has a line break)")
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    except UnicodeEncodeError as exc:
        raise BadHeader(f"a header value is not plain ASCII ({exc.reason})") from None


def request(
    pool: Pool,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    connect_timeout: float,
    read_timeout: float,
) -> Reply:
    """Send one request and read the head of its reply. The body is the caller's to read."""
    u = parse_url(url)
    proxy = proxy_for(u)
    via_proxy = proxy is not None and u.scheme == "http"  # https goes through a tunnel
    given = {k.lower() for k in headers}
    all_headers = {} if "host" in given else {"Host": u.authority}  # a caller's Host wins
    all_headers.update((k, v) for k, v in headers.items() if k.lower() != "content-length")
    if u.auth and "authorization" not in given:
        all_headers["Authorization"] = u.auth
    if body is not None or method in ("POST", "PUT", "PATCH"):
        all_headers["Content-Length"] = str(len(body or b""))
    if via_proxy and proxy is not None and proxy.auth:
        all_headers["Proxy-Authorization"] = proxy.auth
    wire = _encode_head(method, u.absolute() if via_proxy else u.target, all_headers)
    if body:
        wire += body
    key: tuple[object, ...] = (
        ("proxy", proxy.url.origin) if via_proxy and proxy else (*u.origin, proxy)
    )
    for attempt in (1, 2):
        conn = pool.take(key)
        if conn is None:
            conn = Connection(_connect(u, proxy, connect_timeout), key)
        conn.sock.settimeout(read_timeout)
        try:
            conn.sock.sendall(wire)
            status, version, raw_headers = _read_head(conn)
        except (_Closed, ConnectionError) as exc:
            conn.close()
            # A kept-alive connection the server dropped just as we reused it: try once more
            # on a fresh one, for requests that are safe to repeat (a POST may have been
            # acted on; the engine's retry policy decides about those).
            if conn.reused and attempt == 1 and method in ("GET", "HEAD"):
                continue
            if isinstance(exc, _Closed):
                raise ProtocolError("the server closed the connection without replying") from None
            raise ProtocolError(exc.strerror or type(exc).__name__) from None
        except TimeoutError:
            conn.close()
            raise ReadTimeout() from None
        except OSError as exc:
            conn.close()
            raise ProtocolError(exc.strerror or str(exc) or type(exc).__name__) from None
        except HttpError:
            conn.close()
            raise
        return Reply(conn, pool, status, version, _merge(raw_headers))
    raise AssertionError("unreachable")  # pragma: no cover
