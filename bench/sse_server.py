"""A fast loopback server speaking OpenAI Chat Completions, for benchmarks only.

Every reply is built once and cached as the exact bytes to send, so the server costs next to
nothing per request and the clients are what gets measured. The path picks the reply:

    POST /t{N}/v1/chat/completions      N tokens, streamed if the body says "stream": true
                                        (one HTTP chunk per SSE event, as uvicorn/vLLM send)
    POST /t{N}g{G}/v1/chat/completions  same, with G SSE events per HTTP chunk
    GET  /t{N}/v1/models                a small model list

Run it as its own process, so it never competes with the client for the GIL:

    python bench/sse_server.py            prints the port on the first line of stdout, then
                                        serves until stdin closes (or SIGTERM/SIGINT)

It binds 127.0.0.1 only. `sse_events(n)` is also imported by the in-process parser benchmark,
so both measure exactly the same bytes.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from functools import lru_cache
from socketserver import BaseRequestHandler, ThreadingTCPServer

MODEL = "gpt-bench"
CREATED = 1763900000
_ID = "chatcmpl-bench0000000000000000000001"
_PATH = re.compile(rb"^/t(\d+)(?:g(\d+))?(/v1)?/(chat/completions|models)(?:\?.*)?$")
WORDS = (
    " the",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " lazy",
    " dog",
    ",",
    " and",
    " then",
    " it",
    " runs",
    " far",
    " away",
    ".",
    " A",
    " new",
    " line",
    " of",
    " text",
)


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_bench0001",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def _usage(n: int) -> dict[str, object]:
    return {
        "prompt_tokens": 8,
        "completion_tokens": n,
        "total_tokens": 8 + n,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def token(i: int) -> str:
    return WORDS[i % len(WORDS)]


def _dump(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@lru_cache(maxsize=8)
def sse_events(n: int) -> tuple[bytes, ...]:
    """The SSE events of an n-token streamed reply, as OpenAI sends them with
    stream_options.include_usage: a role chunk, n one-token chunks, a finish chunk, a usage
    chunk (empty choices), then [DONE]. Each item is one complete `data: ...\\n\\n` event."""
    events = [
        b"data: " + _dump(_chunk({"role": "assistant", "content": "", "refusal": None})) + b"\n\n"
    ]
    # Only the token text differs between chunks: build the JSON once, splice the text in.
    head, tail = _dump(_chunk({"content": "@TOKEN@"})).split(b'"@TOKEN@"')
    events.extend(b"data: " + head + _dump(token(i)) + tail + b"\n\n" for i in range(n))
    usage = {**_chunk({}, "stop"), "choices": [], "usage": _usage(n)}
    events.append(b"data: " + _dump(_chunk({}, "stop")) + b"\n\n")
    events.append(b"data: " + _dump(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return tuple(events)


def completion(n: int) -> bytes:
    """A non-streamed chat.completion with n tokens."""
    return _dump(
        {
            "id": _ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(map(token, range(n)))},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(n),
        }
    )


@lru_cache(maxsize=8)
def _stream_reply(n: int, group: int) -> bytes:
    events = sse_events(n)
    parts = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    ]
    for i in range(0, len(events), group):
        data = b"".join(events[i : i + group])
        parts.append(b"%x\r\n%s\r\n" % (len(data), data))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def _plain(status: str, body: bytes, ctype: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def reply_for(method: bytes, path: bytes, body: bytes) -> bytes:
    m = _PATH.match(path)
    if m is None:
        return _plain(
            "404 Not Found", b'{"error":{"message":"no such path","type":"invalid_request_error"}}'
        )
    n, group = int(m.group(1)), int(m.group(2) or 1)
    if m.group(4) == b"models":
        return _plain(
            "200 OK",
            _dump(
                {
                    "object": "list",
                    "data": [
                        {"id": MODEL, "object": "model", "created": CREATED, "owned_by": "bench"}
                    ],
                }
            ),
        )
    if method != b"POST":
        return _plain("405 Method Not Allowed", b'{"error":{"message":"POST only"}}')
    try:
        stream = bool(json.loads(body or b"{}").get("stream"))
    except ValueError:
        return _plain("400 Bad Request", b'{"error":{"message":"bad JSON"}}')
    return _stream_reply(n, max(1, group)) if stream else _plain("200 OK", completion(n))


class _Handler(BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:  # keep-alive: one request after another on the same connection
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _version = lines[0].split(b" ", 2)
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            while len(buf) < length:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            out = memoryview(reply_for(method, path, body))
            for i in range(0, len(out), 1 << 20):
                sock.sendall(out[i : i + (1 << 20)])
            if close:
                return


class Server(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def start(port: int = 0) -> Server:
    """Serve on 127.0.0.1 in a background thread (for in-process use)."""
    srv = Server(("127.0.0.1", port), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main() -> None:
    import signal

    srv = start(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for n in (200, 200_000):  # build the big replies before announcing the port
        _stream_reply(n, 1)
    print(srv.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    except KeyboardInterrupt:
        pass
    srv.shutdown()


if __name__ == "__main__":
    main()
