"""transport's limits and per-provider settings, against the raw-socket servers of
test_transport.py: the whole-call deadline (a server that trickles), the cap on bodies read
whole, bounded decompression (a gzip bomb), TLS settings per provider, and the async API."""

# ruff: noqa: F811 - the fixtures imported from test_transport are parameters here

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from callm import transport
from callm.errors import BadResponseError, CallTimeoutError, ConfigError, NetworkError
from callm.types import HttpRequest
from test_transport import (  # noqa: F401 - fixtures are found by name
    CHUNKED_HEAD,
    FAKE_KEY,
    KEY_HEADERS,
    Conn,
    RawServer,
    ServerFactory,
    assert_no_leak,
    cert,
    chunk,
    collect,
    each,
    fresh_transport,
    post,
    reply,
    serve,
)

MiB = 1024 * 1024


# ---------------------------------------------------------------- the deadline
def trickles(prefix: bytes, drip: bytes, every: float = 0.2) -> object:
    """Sends `prefix`, then `drip` one byte every `every` s: never silent for long enough to
    trip a read timeout, never done."""

    def handler(conn: Conn) -> None:
        conn.read_request()
        conn.send(prefix)
        for i in range(len(drip)):
            if conn.server.stop.wait(every):
                return
            conn.send(drip[i : i + 1])

    return handler


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
DEADLINE = transport.Timeouts(connect=2, read=2, deadline=1)


def _late(exc: BaseException, url: str, start: float) -> None:
    assert isinstance(exc, CallTimeoutError), exc
    assert exc.message == f"{url} did not finish within the 1 s deadline"
    assert "deadline" in (exc.hint or "") and "--timeout" in (exc.hint or "")
    assert 0.9 < time.monotonic() - start < 1.8
    assert_no_leak(exc)


@pytest.mark.parametrize("phase", ["head", "body"])
def test_a_trickling_server_is_cut_at_the_deadline(serve: ServerFactory, phase: str) -> None:
    """One byte every 0.2 s, read timeout 2 s: only the 1 s deadline ends the call."""
    prefix, drip = (b"", HEAD) if phase == "head" else (HEAD, b"x" * 1000)
    srv = serve(trickles(prefix, drip))
    url = srv.url("/v1/x")
    start = time.monotonic()
    with pytest.raises(CallTimeoutError) as info:
        transport.send(post(url + "?key=" + FAKE_KEY), DEADLINE, provider="acme")
    _late(info.value, url, start)
    assert info.value.provider == "acme"


def test_a_trickling_stream_keeps_what_arrived_then_stops_at_the_deadline(
    serve: ServerFactory,
) -> None:
    srv = serve(trickles(CHUNKED_HEAD + chunk(b"data: 1\n\n"), chunk(b"y" * 100)))
    start = time.monotonic()
    with transport.stream(post(srv.url("/v1/x")), DEADLINE) as s:
        got, exc = collect(s.chunks)
    assert got.startswith(b"data: 1\n\n")
    assert exc is not None
    _late(exc, srv.url("/v1/x"), start)


def test_the_deadline_holds_on_a_reused_connection(serve: ServerFactory) -> None:
    """The second call's connection comes from the pool: its head trickles too."""

    def handler(conn: Conn) -> None:
        conn.read_request()
        conn.send(reply(b"ok"))
        conn.read_request()
        for b in HEAD:
            if conn.server.stop.wait(0.2):
                return
            conn.send(bytes([b]))

    srv = serve(handler)
    assert transport.send(post(srv.url("/v1/x")), DEADLINE).body == b"ok"
    start = time.monotonic()
    with pytest.raises(CallTimeoutError) as info:
        transport.send(post(srv.url("/v1/x")), DEADLINE)
    _late(info.value, srv.url("/v1/x"), start)
    assert srv.connections == 1


def test_no_deadline_means_the_read_timeout_rules(serve: ServerFactory) -> None:
    srv = serve(trickles(HEAD, b"x" * 1000, every=0.05))
    with pytest.raises(CallTimeoutError) as info:
        transport.send(post(srv.url("/v1/x")), transport.Timeouts(read=0.5, deadline=0.6))
    assert "0.6 s deadline" in info.value.message
    srv2 = serve(trickles(HEAD.replace(b"1000", b"20"), b"x" * 20, every=0.05))
    assert transport.send(post(srv2.url("/v1/x")), transport.Timeouts(read=0.5)).body == b"x" * 20


# ---------------------------------------------------------------- caps and decompression
def test_a_body_read_whole_is_capped_after_decompression(serve: ServerFactory) -> None:
    """33 MiB plain, or 33 MiB of zeros in 33 KB of gzip: refused at 32 MiB either way."""
    plain = b"x" * (33 * MiB)
    packed = gzip.compress(b"\0" * (33 * MiB))
    assert len(packed) < 100_000

    def answer(req: object) -> bytes:
        if getattr(req, "target", "") == "/plain":
            return reply(plain)
        return reply(packed, headers=[("Content-Encoding", "gzip")])

    srv = serve(each(answer))
    for path in ("/plain", "/gzip"):
        with pytest.raises(BadResponseError) as info:
            transport.send(HttpRequest("GET", srv.url(path)))
        assert info.value.one_line() == "unreadable response: reply larger than 32 MiB"
        assert info.value.kind == "bad_response"
    ok = b"y" * (32 * MiB)
    srv2 = serve(each(lambda req: reply(gzip.compress(ok), headers=[("Content-Encoding", "gzip")])))
    assert transport.send(HttpRequest("GET", srv2.url("/"))).body == ok


def test_a_stream_is_decoded_in_bounded_pieces(serve: ServerFactory) -> None:
    packed = gzip.compress(b"\0" * (40 * MiB))
    srv = serve(each(lambda req: reply(packed, headers=[("Content-Encoding", "gzip")])))
    total = biggest = 0
    with transport.stream(post(srv.url("/v1/x"))) as s:
        for piece in s.chunks:
            total += len(piece)
            biggest = max(biggest, len(piece))
    assert total == 40 * MiB  # a stream is not capped: it is read piece by piece
    assert biggest <= 256 * 1024


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_an_unknown_or_corrupt_encoding_is_a_bad_response(
    serve: ServerFactory, encoding: str
) -> None:
    srv = serve(
        each(lambda req: reply(b"not compressed", headers=[("Content-Encoding", encoding)]))
    )
    with pytest.raises(BadResponseError) as info:
        transport.send(post(srv.url("/v1/x")))
    assert "corrupt" in info.value.message if encoding == "gzip" else "'br'" in info.value.message


GZIP_BOMB = """
import gzip, resource, socket, sys, threading, tracemalloc, zlib
from callm import transport
from callm.errors import BadResponseError
from callm.types import HttpRequest

# 1 GiB of zeros as gzip (about 1 MB): after a full flush deflate starts afresh, so each
# MiB compresses to the same bytes; compressed once, repeated. (No CRC trailer: computing
# it costs seconds, and nothing here reads that far.)
z = zlib.compressobj(9, zlib.DEFLATED, 31)
zeros = bytes(1 << 20)
first = z.compress(zeros) + z.flush(zlib.Z_FULL_FLUSH)
again = z.compress(zeros) + z.flush(zlib.Z_FULL_FLUSH)
packed = first + again * 1023
head = b"HTTP/1.1 200 OK\\r\\nContent-Encoding: gzip\\r\\nContent-Length: %d\\r\\n\\r\\n"

def serve(listener):
    while True:
        conn, _ = listener.accept()
        f = conn.makefile("rb")
        while f.readline() not in (b"\\r\\n", b""):
            pass
        conn.sendall(head % len(packed) + packed)
        f.close(); conn.close()

listener = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=serve, args=(listener,), daemon=True).start()
url = "http://127.0.0.1:%d/v1/models" % listener.getsockname()[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
try:
    transport.send(HttpRequest("GET", url), transport.Timeouts(read=30))
    sys.exit("send() read a 1 GiB reply")
except BadResponseError as exc:
    assert "32 MiB" in exc.message, exc.message
total = 0
with transport.stream(HttpRequest("GET", url), transport.Timeouts(read=30)) as s:
    for piece in s.chunks:  # a stream is not capped: 128 MiB of it, piece by piece
        total += len(piece)
        if total >= 128 << 20:
            break
assert 128 << 20 <= total < 129 << 20, total
peak = tracemalloc.get_traced_memory()[1]
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
print(len(packed), peak // (1 << 20), grew // 1024)
"""


@pytest.mark.slow
def test_a_gzip_bomb_does_not_grow_memory() -> None:
    """About 1 MB of gzip that inflates to 1 GiB, through send() (refused at the cap) and
    stream() (128 MiB of it read): memory stays far below (limit ~100 MiB), where decoding
    each 64 KiB raw chunk whole would make 64 MiB at once."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GZIP_BOMB)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    size, peak_mib, rss_grew_mib = map(int, proc.stdout.split())
    assert size < 2 * MiB
    assert peak_mib < 100, peak_mib
    assert rss_grew_mib < 100, rss_grew_mib


# ---------------------------------------------------------------- TLS per provider
def _tls_server(
    serve: ServerFactory, cert: tuple[Path, Path], require_client: bool = False
) -> RawServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    if require_client:  # the test certificate doubles as the client's
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cert[0])
    return serve(each(lambda req: reply(b"secure " + req.target.encode())), tls=ctx)


@pytest.fixture
def no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    transport.reset()


def test_a_providers_ca_bundle_is_trusted_for_it_alone(
    serve: ServerFactory, cert: tuple[Path, Path], no_ca_env: None
) -> None:
    srv = _tls_server(serve, cert)
    url = srv.url("/v1/models", "https")
    tls = transport.Tls(ca_bundle=str(cert[0]))
    assert transport.send(HttpRequest("GET", url), tls=tls, provider="corp").body.startswith(
        b"secure"
    )
    with pytest.raises(NetworkError) as info:  # the default CAs (certifi) do not know it
        transport.send(HttpRequest("GET", url), provider="other")
    assert "certificate" in info.value.message


def test_a_client_certificate_is_presented(
    serve: ServerFactory, cert: tuple[Path, Path], no_ca_env: None
) -> None:
    srv = _tls_server(serve, cert, require_client=True)
    url = srv.url("/v1/models", "https")
    bundle = transport.Tls(ca_bundle=str(cert[0]))
    with pytest.raises(NetworkError):
        transport.send(HttpRequest("GET", url), tls=bundle, provider="corp")
    mine = transport.Tls(ca_bundle=str(cert[0]), client_cert=str(cert[0]), client_key=str(cert[1]))
    assert transport.send(HttpRequest("GET", url), tls=mine, provider="corp").body.startswith(
        b"secure"
    )


@pytest.mark.parametrize("field", ["ca_bundle", "client_cert", "client_key"])
def test_a_missing_tls_file_is_a_config_error_naming_the_field(
    cert: tuple[Path, Path], tmp_path: Path, field: str
) -> None:
    files = {"ca_bundle": str(cert[0]), "client_cert": str(cert[0]), "client_key": str(cert[1])}
    missing = str(tmp_path / "nope.pem")
    tls = transport.Tls(**{**files, field: missing})
    with pytest.raises(ConfigError) as info:
        transport.send(
            HttpRequest("GET", "https://127.0.0.1:1/v1/models"), tls=tls, provider="corp"
        )
    assert info.value.message == f"providers.corp.{field}: no such file: {missing}"
    assert info.value.exit_code == 2


def test_https_never_redirects_to_http(serve: ServerFactory, cert: tuple[Path, Path]) -> None:
    plain = serve(each(lambda req: reply(b"plain")))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    moved = reply(status="301 Moved", headers=[("Location", plain.url("/b"))])
    srv = serve(each(lambda req: moved), tls=ctx)
    tls = transport.Tls(ca_bundle=str(cert[0]))
    with pytest.raises(transport.CannotSendError) as info:
        transport.send(HttpRequest("GET", srv.url("/a", "https"), dict(KEY_HEADERS)), tls=tls)
    assert "same scheme, host and port" in info.value.message
    assert plain.connections == 0


# ---------------------------------------------------------------- the async API
def test_async_send_and_stream(serve: ServerFactory) -> None:
    """The same hops, decoding and errors as the sync API, on httpx.AsyncClient."""
    packed = gzip.compress(b"data: 1\n\n" * 100)

    def answer(req: object) -> bytes:
        if getattr(req, "target", "") == "/a":
            return reply(status="307 Temporary", headers=[("Location", "/b")])
        return reply(packed, headers=[("Content-Encoding", "gzip")])

    srv = serve(each(answer))

    async def main() -> tuple[bytes, bytes, str]:
        r = await transport.asend(HttpRequest("GET", srv.url("/a"), dict(KEY_HEADERS)))
        async with transport.astream(post(srv.url("/s"))) as s:
            streamed = b"".join([c async for c in s.chunks])
        try:
            await transport.asend(post(srv.url("/a")))
        except transport.CannotSendError as exc:
            refused = exc.message
        return r.body, streamed, refused

    body, streamed, refused = asyncio.run(main())
    assert body == streamed == b"data: 1\n\n" * 100
    assert "does not follow a redirect of a POST" in refused
    # the 307 is dropped unread (so is its connection); the rest share one pooled connection
    assert srv.connections == 2


@pytest.mark.parametrize("phase", ["head", "body"])
def test_async_deadline(serve: ServerFactory, phase: str) -> None:
    prefix, drip = (b"", HEAD) if phase == "head" else (HEAD, b"x" * 1000)
    srv = serve(trickles(prefix, drip))
    start = time.monotonic()

    async def main() -> BaseException:
        try:
            await transport.asend(post(srv.url("/v1/x")), DEADLINE)
        except CallTimeoutError as exc:
            return exc
        raise AssertionError("no timeout")

    _late(asyncio.run(main()), srv.url("/v1/x"), start)


def test_cookies_are_never_kept(serve: ServerFactory) -> None:
    """One client serves every provider: a cookie one sets must not reach the next request
    (here another port of the same host, which cookies do not tell apart)."""
    setter = serve(each(lambda req: reply(b"ok", headers=[("Set-Cookie", "session=FAKE; Path=/")])))
    other = serve(each(lambda req: reply(b"ok")))
    transport.send(HttpRequest("GET", setter.url("/a")))
    transport.send(HttpRequest("GET", setter.url("/b")))
    transport.send(HttpRequest("GET", other.url("/c")))
    assert [r.header("cookie") for r in setter.requests + other.requests] == [None] * 3


def test_ssl_cert_dir_is_honoured(
    serve: ServerFactory, cert: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hashed CA directory (`openssl rehash`), as SSL_CERT_DIR names it."""
    cas = tmp_path / "cas"
    cas.mkdir()
    (cas / "test-ca.pem").write_bytes(cert[0].read_bytes())
    subprocess.run(["openssl", "rehash", str(cas)], check=True, capture_output=True)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(cas))
    transport.reset()
    srv = _tls_server(serve, cert)
    assert transport.send(HttpRequest("GET", srv.url("/v1/models", "https"))).body.startswith(
        b"secure"
    )
