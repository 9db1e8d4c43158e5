"""A real HTTP server on 127.0.0.1 that answers with scripted responses (status, headers,
body, optionally in timed chunks or with a dropped connection) and records the requests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes | float] | None = None  # sent one by one (chunked) with `delay`;
    # a number in the list is a pause of that many seconds at that point
    delay: float = 0.0  # before each chunk (or before the body)
    reset_after: int | None = None  # drop the connection after this many chunks
    stall: float = 0.0  # sleep this long before answering at all
    drop: bool = False  # reset the connection (RST) without answering at all


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when the request had been read

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a timeout or reset test) is no error worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ReplayServer:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.default: Reply | None = None
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with server._lock:
                    server.seen.append(
                        Seen(self.command, self.path, dict(self.headers.items()), body)
                    )
                    reply = server.replies.pop(0) if server.replies else server.default
                if reply is None:
                    reply = Reply(
                        404, {"content-type": "application/json"}, b'{"error": "no script"}'
                    )
                try:
                    server._answer(self, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to do

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _answer(self, h: BaseHTTPRequestHandler, r: Reply) -> None:
        if r.stall:
            time.sleep(r.stall)
        if r.drop:
            _reset(h)
            return
        h.send_response(r.status)
        skip = {"content-length", "transfer-encoding", "connection", "content-encoding"}
        for k, v in r.headers.items():
            if k.lower() not in skip:
                h.send_header(k, v)
        if r.chunks is None and r.reset_after is None:
            if r.delay:
                time.sleep(r.delay)
            h.send_header("Content-Length", str(len(r.body)))
            h.end_headers()
            h.wfile.write(r.body)
            h.wfile.flush()
            return
        chunks = r.chunks if r.chunks is not None else [r.body]
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i, c in enumerate(chunks):
            if r.reset_after is not None and i >= r.reset_after:
                _reset(h)
                return
            if isinstance(c, float | int):
                time.sleep(c)
                continue
            if r.delay:
                time.sleep(r.delay)
            if c:
                h.wfile.write(f"{len(c):x}\r\n".encode() + c + b"\r\n")
                h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def start(self) -> ReplayServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Abort the TCP connection (RST), as a crashed upstream would."""
    import struct

    h.wfile.flush()
    sock = h.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    h.close_connection = True


@contextmanager
def serving(*replies: Reply) -> Iterator[ReplayServer]:
    srv = ReplayServer().start()
    srv.add(*replies)
    try:
        yield srv
    finally:
        srv.stop()
