"""A scripted HTTP server on 127.0.0.1 for tests and benches.

Routes map a path (and optionally some query parameters) to replies: status, headers, body,
and an optional delay before answering. Replies of a route are served in order; the last one
repeats. Every request is recorded (method, path, query, headers, body)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops bursts of connects (1 s SYN retry)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        body = self.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("content-type", "application/json")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        return body, headers


def json_reply(obj: Any, status: int = 200, delay: float = 0.0) -> Reply:
    return Reply(status=status, body=obj, delay=delay)


def chat_reply(text: str = "OK", usage: dict[str, Any] | None = None) -> Reply:
    """An OpenAI chat.completion (not streamed) answering `text`."""
    return json_reply(
        {
            "id": "c1",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage or {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
        }
    )


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == low), None)


@dataclass
class _Route:
    path: str
    query: dict[str, str]
    replies: list[Reply]
    served: int = 0

    def next(self) -> Reply:
        r = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return r


class Loopback:
    """`with Loopback() as srv: srv.route("/v1/models", Reply(...)); srv.url`"""

    def __init__(self) -> None:
        self.routes: list[_Route] = []
        self.requests: list[Seen] = []
        self.fallback = Reply(404, {"error": {"message": "no route in the test server"}})
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ---- scripting ----
    def route(self, path: str, *replies: Reply, query: dict[str, str] | None = None) -> Loopback:
        """Answer requests for `path` whose query contains `query` with `replies` in order."""
        if not replies:
            raise ValueError("a route needs at least one reply")
        with self._lock:
            self.routes.append(_Route(path, dict(query or {}), list(replies)))
        return self

    def _pick(self, path: str, query: dict[str, str]) -> Reply:
        with self._lock:
            fits = [
                r
                for r in self.routes
                if r.path == path and all(query.get(k) == v for k, v in r.query.items())
            ]
            if not fits:
                return self.fallback
            best = max(fits, key=lambda r: len(r.query))  # the most specific route wins
            return best.next()

    # ---- server ----
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Loopback:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Loopback:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                seen = Seen(self.command, parts.path, query, dict(self.headers.items()), body)
                with server._lock:
                    server.requests.append(seen)
                reply = server._pick(parts.path, query)
                if reply.delay:
                    time.sleep(reply.delay)
                data, headers = reply.encoded()
                try:
                    self.send_response(reply.status)
                    for k, v in headers.items():
                        if k.lower() not in (
                            "content-length",
                            "transfer-encoding",
                            "content-encoding",
                        ):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to do

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
