"""callm.transport against raw-socket servers on 127.0.0.1: the test writes every byte the client
reads (framing, chunk boundaries, timing), so these tests pin down the HTTP/1.1 the transport
speaks itself: bodies, live streaming, compression, keep-alive, redirects, proxies, TLS, and
the canonical errors (which must never show the key that was in the request)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from callm import transport
from callm.errors import CallmError, CallTimeoutError, NetworkError
from callm.types import HttpRequest
from loopback import closed_port

FAKE_KEY = "sk-test-FAKE-0000"
KEY_HEADERS = {
    "Authorization": f"Bearer {FAKE_KEY}",
    "x-api-key": FAKE_KEY,
    "api-key": FAKE_KEY,
    "x-goog-api-key": FAKE_KEY,
}
WAIT = 5.0  # the longest any server thread waits on the test (a failing test, not a hang)


# ---------------------------------------------------------------- the raw server
@dataclass
class Req:
    """One request as the server read it off the wire."""

    line: str  # "POST /v1/x?a=1 HTTP/1.1"
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def method(self) -> str:
        return self.line.split(" ")[0]

    @property
    def target(self) -> str:
        return self.line.split(" ")[1]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class Conn:
    """The server's end of one accepted connection (number: 1 for the first accepted)."""

    def __init__(self, sock: socket.socket, number: int, server: RawServer) -> None:
        self.sock, self.number, self.server = sock, number, server
        self._rfile = sock.makefile("rb")

    def read_request(self) -> Req | None:
        """The next request (Content-Length body), or None when the client closed."""
        line = self._rfile.readline()
        if not line:
            return None
        req = Req(line.decode("latin-1").rstrip("\r\n"), [])
        while (h := self._rfile.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = h.decode("latin-1").partition(":")
            req.headers.append((k.strip(), v.strip()))
        req.body = self._rfile.read(int(req.header("content-length") or 0))
        with self.server.lock:
            self.server.requests.append(req)
        return req

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        """Close now: the socket stays open while its makefile() reader does."""
        self._rfile.close()
        self.sock.close()


Handler = Callable[[Conn], None]


class RawServer:
    """Accepts on 127.0.0.1 and runs `handler(conn)` in a thread per connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler, self.tls = handler, tls
        self.requests: list[Req] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self.lock:
                self.connections += 1
                self._socks.append(sock)
                t = threading.Thread(target=self._run, args=(sock, self.connections), daemon=True)
                self._threads.append(t)
            t.start()

    def _run(self, sock: socket.socket, number: int) -> None:
        try:
            sock.settimeout(WAIT)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self.lock:
                    self._socks.append(sock)  # the plain one is detached now
            self.handler(Conn(sock, number, self))
        except (OSError, ValueError):
            pass  # the client went away, or refused our TLS certificate
        finally:
            sock.close()

    def close(self) -> None:
        self.stop.set()
        self._threads[0].join(timeout=WAIT)
        self._listener.close()
        with self.lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked in a read
            except OSError:
                pass
        for t in threads:
            t.join(timeout=WAIT)


ServerFactory = Callable[..., RawServer]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    """`serve(handler)` starts a RawServer; every one is closed (threads joined) afterwards."""
    started: list[RawServer] = []

    def start(handler: Handler, tls: ssl.SSLContext | None = None) -> RawServer:
        started.append(RawServer(handler, tls))
        return started[-1]

    yield start
    for s in started:
        s.close()


@pytest.fixture(autouse=True)
def fresh_transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy from the developer's shell, and no pooled connection or cached TLS context
    carried from one test to the next (env changes must take effect)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    transport.reset()
    yield
    transport.reset()


def each(answer: Callable[[Req], bytes]) -> Handler:
    """A keep-alive handler: answer every request on the connection with `answer(req)`."""

    def handler(conn: Conn) -> None:
        while (req := conn.read_request()) is not None:
            conn.send(answer(req))

    return handler


def reply(
    body: bytes = b"", status: str = "200 OK", headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    head = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def chunk(data: bytes, ext: str = "") -> bytes:
    return f"{len(data):x}{ext}\r\n".encode() + data + b"\r\n"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def post(url: str, headers: dict[str, str] | None = None) -> HttpRequest:
    return HttpRequest("POST", url, {**KEY_HEADERS, **(headers or {})}, {"model": "m", "n": 1})


def collect(chunks: Iterator[bytes]) -> tuple[bytes, CallmError | None]:
    """What the chunks iterator yielded before it ended or raised, and what it raised."""
    got = b""
    try:
        for c in chunks:
            got += c
    except CallmError as exc:
        return got, exc
    return got, None


def assert_no_leak(exc: CallmError) -> None:
    for text in (str(exc), exc.message, exc.hint or "", repr(exc)):
        assert FAKE_KEY not in text


# ---------------------------------------------------------------- 1-3: bodies and streams

BODY = b"".join(b'{"i": %d, "text": "caf\xc3\xa9"}\n' % i for i in range(60))


def _framed(framing: str) -> bytes:
    if framing == "length":
        return reply(BODY, headers=[("Content-Type", "application/json")])
    if framing == "chunked":
        parts = [BODY[i : i + 7] for i in range(0, len(BODY), 7)]
        body = b"".join(chunk(p, ";foo=bar" if n % 3 == 0 else "") for n, p in enumerate(parts))
        return CHUNKED_HEAD + body + b"0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\n\r\n" + BODY  # neither: the body ends when the server closes


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_body_framings_give_the_exact_body(serve: ServerFactory, framing: str) -> None:
    """Each way HTTP/1.1 delimits a body, via send() then stream(); after a delimited reply
    (trailers included) the same connection serves the next request cleanly."""

    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.send(_framed(framing))
            if framing == "close":
                return

    srv = serve(handler)
    r = transport.send(post(srv.url("/v1/x")))
    assert (r.status, r.body) == (200, BODY)
    with transport.stream(post(srv.url("/v1/x"))) as s:
        assert s.status == 200
        assert b"".join(s.chunks) == BODY
    assert srv.connections == (2 if framing == "close" else 1)


def test_headers_are_lower_case_and_repeats_joined(serve: ServerFactory) -> None:
    """Drivers look headers up in lower case (retry-after, x-ratelimit-*); an error status is
    a Response, not an exception: the driver maps it."""
    head = [("Retry-After", "7"), ("X-Multi", "a"), ("x-multi", "b"), ("Content-Type", "text/x")]
    srv = serve(each(lambda req: reply(b"slow down", "429 Too Many Requests", head)))
    r = transport.send(post(srv.url("/v1/x")))
    assert (r.status, r.body) == (429, b"slow down")
    assert r.headers["retry-after"] == "7" and r.headers["content-type"] == "text/x"
    assert r.headers["x-multi"] == "a, b"
    with transport.stream(post(srv.url("/v1/x"))) as s:
        assert (s.status, s.headers["x-multi"], s.read_all()) == (429, "a, b", b"slow down")


def test_stream_yields_each_chunk_before_the_next_is_sent(serve: ServerFactory) -> None:
    """The server sends chunk 2 only once the test holds chunk 1: a transport that buffers
    (waits for more bytes, or for the end) would time out here instead."""
    first, second = b"data: one\n\n", b"data: two\n\n"
    go = threading.Event()

    def handler(conn: Conn) -> None:
        conn.read_request()
        conn.send(CHUNKED_HEAD + chunk(first))
        go.wait(WAIT)
        conn.send(chunk(second) + b"0\r\n\r\n")

    srv = serve(handler)
    with transport.stream(post(srv.url("/v1/chat")), transport.Timeouts(read=3)) as s:
        got = b""
        while len(got) < len(first):
            got += next(s.chunks)
        assert got == first
        go.set()
        assert b"".join(s.chunks) == second


TEXT = b"".join(b'data: {"delta": "token %d %s"}\n\n' % (i, b"x" * (i % 13)) for i in range(400))


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_decoded(serve: ServerFactory, encoding: str) -> None:
    """Whole (send, Content-Length) and split across many small chunks (stream); the client
    asked for gzip."""
    packed = gzip.compress(TEXT) if encoding == "gzip" else zlib.compress(TEXT)
    pieces = [packed[i : i + 50] for i in range(0, len(packed), 50)]

    def answer(req: Req) -> bytes:
        if req.target == "/whole":
            return reply(packed, headers=[("Content-Encoding", encoding)])
        head = CHUNKED_HEAD[:-2] + b"Content-Encoding: %s\r\n\r\n" % encoding.encode()
        return head + b"".join(chunk(p) for p in pieces) + b"0\r\n\r\n"

    srv = serve(each(answer))
    assert transport.send(post(srv.url("/whole"))).body == TEXT
    with transport.stream(post(srv.url("/split"))) as s:
        assert b"".join(s.chunks) == TEXT
    assert len(srv.requests) == 2
    for req in srv.requests:
        assert "gzip" in (req.header("accept-encoding") or "")


# ---------------------------------------------------------------- 4: keep-alive
@pytest.mark.parametrize("connection", ["keep-alive", "close"])
def test_sequential_requests_reuse_a_connection_unless_told_not_to(
    serve: ServerFactory, connection: str
) -> None:
    """After `Connection: close` the server here keeps the socket open (and would answer):
    only the connection count tells whether the client obeyed."""
    srv = serve(each(lambda req: reply(b"ok", headers=[("Connection", connection)])))
    for _ in range(3):
        assert transport.send(post(srv.url("/v1/x"))).body == b"ok"
    assert srv.connections == (1 if connection == "keep-alive" else 3)


def test_idle_connection_closed_by_the_server_is_replaced(serve: ServerFactory) -> None:
    """Servers drop idle keep-alive connections; the next call must not fail because of it."""
    closed = threading.Event()

    def handler(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.send(reply(b"ok"))
            if conn.number == 1:
                conn.close()
                closed.set()
                return

    srv = serve(handler)
    assert transport.send(post(srv.url("/v1/x"))).body == b"ok"
    assert closed.wait(WAIT)
    assert transport.send(post(srv.url("/v1/x"))).body == b"ok"
    assert srv.connections == 2


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_abandoned_stream_leaves_no_garbage_for_the_next_request(
    serve: ServerFactory, framing: str
) -> None:
    """The caller leaves the `with` after the first event. Should the client reuse that
    connection, the server sends the rest of reply 1 before reply 2, as a real one would: the
    client must drop (or finish) the connection, never hand it to the next request as is."""
    tail = b"data: 2\n\n" * 8
    if framing == "chunked":
        opening, rest = CHUNKED_HEAD + chunk(b"data: 1\n\n"), chunk(tail) + b"0\r\n\r\n"
    else:
        opening, rest = reply(b"data: 1\n\n" + tail)[: -len(tail)], tail

    def handler(conn: Conn) -> None:
        while (req := conn.read_request()) is not None:
            if req.target == "/long":
                conn.send(opening)
                if conn.read_request() is None:  # dropped: the right thing
                    return
                conn.send(rest)  # the client reused it: reply 1's tail comes first
            conn.send(reply(b"second reply"))

    srv = serve(handler)
    with transport.stream(post(srv.url("/long")), transport.Timeouts(read=3)) as s:
        assert next(s.chunks).startswith(b"data: 1")
    r = transport.send(post(srv.url("/next")), transport.Timeouts(read=3))
    assert (r.status, r.body) == (200, b"second reply")


# ---------------------------------------------------------------- 5: the request on the wire
def test_request_line_and_headers(serve: ServerFactory) -> None:
    """What vendors' servers need: origin-form target, Host with the port, a JSON body."""
    srv = serve(each(lambda req: reply(b"{}")))
    payload = {"model": "m", "messages": [{"role": "user", "content": "héllo"}]}
    req = HttpRequest(
        "POST", srv.url("/v1/x?a=1"), {**KEY_HEADERS, "anthropic-version": "v1"}, payload
    )
    transport.send(req)
    [seen] = srv.requests
    assert seen.line == "POST /v1/x?a=1 HTTP/1.1"
    assert seen.header("host") == f"127.0.0.1:{srv.port}"
    assert seen.header("content-type") == "application/json"
    assert seen.header("content-length") == str(len(seen.body))
    assert json.loads(seen.body.decode("utf-8")) == payload
    for name, value in {**KEY_HEADERS, "anthropic-version": "v1"}.items():
        assert seen.header(name) == value
    assert (seen.header("user-agent") or "").startswith("callm/")


def test_caller_headers_replace_the_defaults_whatever_their_case(serve: ServerFactory) -> None:
    """Config `headers` may say `user-agent` or `content-type` in lower case: the request must
    carry each header once, with the caller's value (a duplicate may be rejected or joined)."""
    srv = serve(each(lambda req: reply(b"{}")))
    mine = {"user-agent": "myapp/1.0", "content-type": "application/json; charset=utf-8"}
    transport.send(post(srv.url("/v1/x"), mine))
    [seen] = srv.requests
    for name, value in mine.items():
        assert [v for k, v in seen.headers if k.lower() == name] == [value]


def test_host_and_content_length_are_each_sent_once(serve: ServerFactory) -> None:
    """A caller's `host` (a virtual host behind a gateway) replaces ours; a caller's
    Content-Length never goes out beside the real one."""
    srv = serve(each(lambda req: reply(b"{}")))
    transport.send(post(srv.url("/v1/x"), {"host": "gateway.internal", "Content-Length": "1"}))
    [seen] = srv.requests
    assert [v for k, v in seen.headers if k.lower() == "host"] == ["gateway.internal"]
    assert [v for k, v in seen.headers if k.lower() == "content-length"] == [str(len(seen.body))]


def test_credentials_in_the_url_become_basic_auth_and_stay_out_of_errors(
    serve: ServerFactory,
) -> None:
    """`http://user:pass@host/v1` (a self-hosted server behind basic auth) works as with httpx,
    and an error shows the URL without them."""
    srv = serve(each(lambda req: reply(b"{}")))
    url = f"http://lab:s3cret-FAKE@127.0.0.1:{srv.port}/v1/x"
    transport.send(HttpRequest("GET", url))
    [seen] = srv.requests
    assert seen.header("authorization") == "Basic " + base64.b64encode(b"lab:s3cret-FAKE").decode()
    dead = f"http://lab:s3cret-FAKE@127.0.0.1:{closed_port()}/v1/x"
    with pytest.raises(NetworkError) as info:
        transport.send(HttpRequest("GET", dead))
    assert "s3cret-FAKE" not in str(info.value) and "lab:" not in info.value.message
    assert info.value.message.startswith("cannot reach http://127.0.0.1:")


# ---------------------------------------------------------------- 6: redirects
def _redirecting(status: str, location: str) -> Callable[[Req], bytes]:
    """/a redirects to `location`; any other path answers "at <path>"."""
    moved = reply(status=status, headers=[("Location", location)])
    return lambda req: moved if req.target == "/a" else reply(b"at " + req.target.encode())


STATUSES = ["301 Moved Permanently", "302 Found", "303 See Other", "307 Temporary", "308 Perm"]


@pytest.mark.parametrize("status", STATUSES)
def test_a_post_is_never_redirected(serve: ServerFactory, status: str) -> None:
    """A POST may have been acted on and its body holds the prompt: a redirect is reported
    (not retried), never followed, even to the same origin."""
    srv = serve(each(_redirecting(status, "/b")))
    with pytest.raises(transport.CannotSendError) as info:
        transport.send(post(srv.url("/a")), provider="acme")
    assert [r.target for r in srv.requests] == ["/a"]
    code = status.split()[0]
    assert info.value.message == (
        f"{srv.url('/a')} answered HTTP {code}, a redirect to {srv.url('/b')}: "
        "callm does not follow a redirect of a POST"
    )
    assert info.value.retryable is False and "base_url" in (info.value.hint or "")
    with pytest.raises(transport.CannotSendError), transport.stream(post(srv.url("/a"))):
        pass
    assert_no_leak(info.value)


@pytest.mark.parametrize("status", STATUSES)
def test_a_get_follows_a_redirect_within_its_origin(serve: ServerFactory, status: str) -> None:
    """Model lists: the same scheme, host and port, keys and all."""
    srv = serve(each(_redirecting(status, "/b?page=2")))
    r = transport.send(HttpRequest("GET", srv.url("/a"), dict(KEY_HEADERS)))
    assert r.body == b"at /b?page=2"
    _, second = srv.requests
    assert (second.method, second.target) == ("GET", "/b?page=2")
    for name, value in KEY_HEADERS.items():
        assert second.header(name) == value, name


@pytest.mark.parametrize("custom", ["X-Gateway-Key", "api-key"])
def test_no_key_leaves_its_origin_on_a_redirect(serve: ServerFactory, custom: str) -> None:
    """httpx drops only Authorization on a cross-origin redirect; x-api-key, api-key,
    x-goog-api-key and a provider's own key header would follow. callm does not follow it at
    all: the second server (another port) records that nothing reached it."""
    other = serve(each(lambda req: reply(b"at " + req.target.encode())))
    srv = serve(each(_redirecting("302 Found", other.url("/b"))))
    headers = {**KEY_HEADERS, custom: FAKE_KEY}
    with pytest.raises(transport.CannotSendError) as info:
        transport.send(HttpRequest("GET", srv.url("/a"), headers), provider="acme")
    assert "same scheme, host and port" in info.value.message
    assert other.requests == [] and other.connections == 0
    assert_no_leak(info.value)


@pytest.mark.parametrize(
    "location",
    ["http://[::1/b", "http://127.0.0.1:99999/b", "ftp://127.0.0.1/b", "http:// bad host/"],
    ids=["unclosed-ipv6", "bad-port", "ftp", "space"],
)
def test_a_malformed_location_is_a_clean_error(serve: ServerFactory, location: str) -> None:
    srv = serve(each(_redirecting("302 Found", location)))
    with pytest.raises(transport.CannotSendError) as info:
        transport.send(HttpRequest("GET", srv.url("/a"), dict(KEY_HEADERS)))
    assert info.value.message == f"{srv.url('/a')} redirected to a malformed Location"
    assert info.value.retryable is False


def test_redirect_loop_ends_in_an_error(serve: ServerFactory) -> None:
    srv = serve(each(lambda req: reply(status="302 Found", headers=[("Location", "/loop")])))
    with pytest.raises(NetworkError) as info:
        transport.send(HttpRequest("GET", srv.url("/loop"), dict(KEY_HEADERS)))
    assert len(srv.requests) == transport.MAX_REDIRECTS + 1
    assert "redirected more than" in info.value.message
    assert_no_leak(info.value)


# ---------------------------------------------------------------- 7-8: errors
def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1/x"
    with pytest.raises(NetworkError) as info:
        transport.send(post(url + f"?key={FAKE_KEY}"), provider="acme")
    assert type(info.value) is NetworkError
    assert info.value.message.startswith(f"cannot reach {url}: connection refused")
    assert info.value.provider == "acme"
    assert_no_leak(info.value)


def test_connect_timeout() -> None:
    """A listener whose accept queue is full drops further SYNs: a connect that never ends."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        addr = listener.getsockname()
        fillers = [socket.socket() for _ in range(4)]
        try:
            for f in fillers:
                f.setblocking(False)
                f.connect_ex(addr)
            try:
                socket.create_connection(addr, timeout=0.3).close()
                pytest.skip("this kernel accepts past the backlog: no way to stall a connect")
            except TimeoutError:
                pass
            start = time.monotonic()
            with pytest.raises(CallTimeoutError) as info:
                url = f"http://127.0.0.1:{addr[1]}/v1/x"
                transport.send(post(url), transport.Timeouts(connect=0.3))
            assert time.monotonic() - start < 3
            assert "(connect phase)" in info.value.message
            assert_no_leak(info.value)
        finally:
            for f in fillers:
                f.close()


def stalls_after(data: bytes) -> Handler:
    """Reads the request, sends `data`, then says nothing until the test ends."""

    def handler(conn: Conn) -> None:
        conn.read_request()
        conn.send(data)
        conn.server.stop.wait(WAIT)

    return handler


def test_read_timeout(serve: ServerFactory) -> None:
    """A server that accepts and never answers: the read timeout, not a hang."""
    srv = serve(stalls_after(b""))
    start = time.monotonic()
    with pytest.raises(CallTimeoutError) as info:
        transport.send(post(srv.url("/v1/x?a=1")), transport.Timeouts(read=0.3))
    assert time.monotonic() - start < 2.5
    assert info.value.message == f"{srv.url('/v1/x')} sent nothing for 0.3 s (read phase)"
    assert_no_leak(info.value)


def test_read_timeout_mid_stream(serve: ServerFactory) -> None:
    """Silence after some chunks: the chunks iterator raises, after what did arrive."""
    srv = serve(stalls_after(CHUNKED_HEAD + chunk(b"data: 1\n\n")))
    with transport.stream(post(srv.url("/v1/x")), transport.Timeouts(read=0.3)) as s:
        got, exc = collect(s.chunks)
    assert got == b"data: 1\n\n"
    assert isinstance(exc, CallTimeoutError) and "(read phase)" in exc.message


CUT = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
    "chunked": CHUNKED_HEAD + chunk(b"hello") + chunk(b"world"),
}


@pytest.mark.parametrize("framing", list(CUT))
def test_connection_cut_mid_body(serve: ServerFactory, framing: str) -> None:
    """send() fails; stream() first yields what arrived, then raises 'broke'."""

    def cuts(conn: Conn) -> None:
        if conn.read_request() is not None:
            conn.send(CUT[framing])

    srv = serve(cuts)
    url = srv.url("/v1/x")
    with pytest.raises(NetworkError) as info:
        transport.send(post(url))
    assert f"connection to {url} broke" in info.value.message
    assert_no_leak(info.value)
    with transport.stream(post(url)) as s:
        got, exc = collect(s.chunks)
    assert got == (b"0123456789" if framing == "length" else b"helloworld")
    assert isinstance(exc, NetworkError) and f"connection to {url} broke" in exc.message
    assert_no_leak(exc)


@pytest.mark.parametrize(
    "wire",
    [
        b"HELLO THERE\r\n\r\n",
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"\r\n" + reply(b"{}"),
        CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n",
        CHUNKED_HEAD + b"+5\r\nhello\r\n0\r\n\r\n",
        CHUNKED_HEAD + b"0_5\r\nhello\r\n0\r\n\r\n",
        CHUNKED_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunkedx\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=[
        "status-line",
        "status-code",
        "empty-line-first",  # RFC 9112 2.2 asks servers, not clients, to skip one
        "chunk-size-zz",
        "chunk-size-plus",
        "chunk-size-underscore",
        "chunk-size-0x",
        "content-length-negative",
        "transfer-encoding-xchunkedx",
    ],
)
def test_malformed_reply(serve: ServerFactory, wire: bytes) -> None:
    """Not HTTP: a NetworkError at once (not a timeout, not a crash), from send() and from
    stream() (its head, or its chunks), never a body read by a guess."""
    srv = serve(each(lambda req: wire))
    with pytest.raises(NetworkError) as info:
        transport.send(post(srv.url("/v1/x")), transport.Timeouts(read=3))
    assert not isinstance(info.value, CallTimeoutError)
    assert info.value.message.startswith(f"connection to {srv.url('/v1/x')} broke: ")
    assert "\n" not in info.value.message
    assert_no_leak(info.value)
    with pytest.raises(NetworkError), transport.stream(post(srv.url("/v1/x"))) as s:
        got, exc = collect(s.chunks)
        assert got == b""
        raise exc or AssertionError("no error")


def test_a_huge_reply_head_fails_fast(serve: ServerFactory) -> None:
    """A 50 MB folded header: refused after a bounded amount, in well under a second of
    work (a reader without a head limit took 19 s and 97 MiB)."""
    line = b"X-Big: a\r\n" + b" " + b"b" * 1023 + b"\r\n"

    def handler(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\n" + line[:11])
        try:
            for _ in range(50 * 1024):
                conn.send(line[11:])
        except OSError:
            pass  # the client hung up: the point

    srv = serve(handler)
    start = time.monotonic()
    with pytest.raises(NetworkError) as info:
        transport.send(post(srv.url("/v1/x")), transport.Timeouts(read=3))
    assert time.monotonic() - start < 2
    assert not isinstance(info.value, CallTimeoutError)
    assert info.value.message.startswith(f"connection to {srv.url('/v1/x')} broke: ")


@pytest.mark.parametrize(
    "url",
    ["http://[::1/v1/x", "ftp://127.0.0.1/v1/x", "127.0.0.1/v1/x"],
    ids=["unclosed-ipv6", "ftp", "no-scheme"],
)
def test_bad_url(url: str) -> None:
    """A config typo: the same every time, so CannotSendError (never retried)."""
    with pytest.raises(transport.CannotSendError) as info:
        transport.send(post(url))
    assert isinstance(info.value, NetworkError) and info.value.retryable is False
    assert info.value.message.startswith("bad URL")
    assert_no_leak(info.value)


@pytest.mark.parametrize(
    "value",
    [f"Bearer {FAKE_KEY}é", f"Bearer {FAKE_KEY}\r\nX-Injected: 1", f"{FAKE_KEY}\nX: 1"],
    ids=["non-ascii", "crlf", "lf"],
)
@pytest.mark.parametrize("call", ["send", "stream"])
def test_unsendable_header_value(serve: ServerFactory, value: str, call: str) -> None:
    """Refused before anything is written (a CR/LF would inject headers), and the message
    never shows the value: it is usually the key."""
    srv = serve(each(lambda req: reply(b"ok")))
    req = HttpRequest("POST", srv.url("/v1/x"), {"Authorization": value}, {"a": 1})
    with pytest.raises(transport.CannotSendError) as info:
        if call == "send":
            transport.send(req)
        else:
            with transport.stream(req):
                pass
    assert info.value.message.startswith(
        "cannot send the request: a header value is not plain ASCII"
    )
    assert info.value.retryable is False
    assert_no_leak(info.value)
    assert srv.requests == []


# ---------------------------------------------------------------- 9: proxies
@pytest.fixture
def proxy(serve: ServerFactory) -> RawServer:
    """A fake proxy: answers plain requests itself, refuses CONNECT; forwards nothing."""
    refuse, answer = reply(b"no", "403 Forbidden"), reply(b"from the proxy")
    return serve(each(lambda req: refuse if req.method == "CONNECT" else answer))


def basic(user_pass: bytes) -> str:
    return "Basic " + base64.b64encode(user_pass).decode("ascii")


@pytest.mark.parametrize("creds", ["", "user:pa%3Ass@"])
def test_http_proxy_gets_the_absolute_url(
    proxy: RawServer, monkeypatch: pytest.MonkeyPatch, creds: str
) -> None:
    """Credentials in the proxy URL (percent-decoded) become Proxy-Authorization."""
    monkeypatch.setenv("HTTP_PROXY", f"http://{creds}127.0.0.1:{proxy.port}")
    url = "http://models.example.invalid/v1/models"
    r = transport.send(HttpRequest("GET", url, dict(KEY_HEADERS)))
    assert r.body == b"from the proxy"
    [seen] = proxy.requests
    assert seen.line == f"GET {url} HTTP/1.1"
    assert seen.header("host") == "models.example.invalid"
    assert seen.header("proxy-authorization") == (basic(b"user:pa:ss") if creds else None)


def test_https_proxy_is_asked_to_connect(proxy: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CONNECT goes in clear text to the proxy: it must not carry the request's key."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://me:proxy-secret@127.0.0.1:{proxy.port}")
    with pytest.raises(NetworkError) as info:
        url = "https://api.example.invalid/v1/models"
        transport.send(HttpRequest("GET", url, dict(KEY_HEADERS)))
    [seen] = proxy.requests
    assert seen.line == "CONNECT api.example.invalid:443 HTTP/1.1"
    assert FAKE_KEY not in repr(seen)
    assert seen.header("proxy-authorization") == basic(b"me:proxy-secret")
    assert "proxy" in info.value.message.lower() and "403" in info.value.message
    assert "proxy-secret" not in str(info.value)
    assert_no_leak(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("no_proxy", [None, "127.0.0.1,localhost"])
def test_loopback_bypasses_the_proxy(
    serve: ServerFactory,
    proxy: RawServer,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    no_proxy: str | None,
) -> None:
    """Local servers (Ollama, vLLM) are never reached through a proxy, NO_PROXY or not."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url(""))
    if no_proxy is not None:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    srv = serve(each(lambda req: reply(b"direct")))
    r = transport.send(HttpRequest("GET", f"http://{host}:{srv.port}/api/tags"))
    assert r.body == b"direct"
    assert proxy.requests == [] and proxy.connections == 0


# ---------------------------------------------------------------- 10: TLS
@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (made by the openssl command)."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):  # .ci/run installs it: there a missing tool is a failure
            pytest.fail("CI should have installed the openssl command (see .ci/run)")
        pytest.skip("the openssl command is not installed: cannot make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    cmd = f"openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout {key} -out {crt}"
    san = "subjectAltName=DNS:localhost,IP:127.0.0.1"
    subprocess.run([*cmd.split(), "-subj", "/CN=localhost", "-addext", san], check=True)
    return crt, key


@pytest.fixture
def https(serve: ServerFactory, cert: tuple[Path, Path]) -> RawServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return serve(each(lambda req: reply(b"secure " + req.target.encode())), tls=ctx)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_with_a_trusted_certificate(
    https: RawServer, cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    transport.reset()
    url = f"https://{host}:{https.port}/v1/models"
    assert transport.send(HttpRequest("GET", url, dict(KEY_HEADERS))).body == b"secure /v1/models"
    with transport.stream(post(url)) as s:
        assert s.read_all() == b"secure /v1/models"
    assert https.requests[0].header("x-api-key") == FAKE_KEY
    assert https.connections == 1


def test_tls_refuses_an_untrusted_certificate(
    https: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    transport.reset()
    with pytest.raises(NetworkError) as info:
        transport.send(HttpRequest("GET", https.url("/v1/models", "https"), dict(KEY_HEADERS)))
    assert "certificate" in info.value.message.lower()
    assert https.requests == []
    assert_no_leak(info.value)


def test_warm_up_then_a_request(serve: ServerFactory) -> None:
    """warm_up() only prepares: it returns nothing, may be called twice, sends nothing."""
    srv = serve(each(lambda req: reply(b"ok")))
    assert transport.warm_up() is None and transport.warm_up() is None
    assert srv.connections == 0
    assert transport.send(post(srv.url("/v1/x"))).body == b"ok"
