"""A Bedrock stand-in on 127.0.0.1 for tests: it recomputes every request's SigV4 signature
with botocore from the fake credentials the test set (or checks a Bearer API key) and refuses
a wrong one with a 403 as AWS does; it serves Converse replies, ConverseStream event-stream
frames (built by the small encoder below: botocore only decodes) and the control-plane lists.

Test-only code: nothing here is imported by callm."""

from __future__ import annotations

import binascii
import json
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "fake-secret-key-for-tests-0000000000000"
API_KEY = "bedrock-api-key-FAKE-test-123"
REGION = "us-east-1"


# ---- event-stream encoder (the AWS framing botocore.eventstream decodes) ------------------


def _crc(data: bytes) -> bytes:
    return struct.pack("!I", binascii.crc32(data) & 0xFFFFFFFF)


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One frame: prelude (total length, headers length, CRC), string headers, payload, CRC."""
    raw = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        raw += struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v
    prelude = struct.pack("!II", 12 + len(raw) + len(payload) + 4, len(raw))
    message = prelude + _crc(prelude) + raw + payload
    return message + _crc(message)


def event(kind: str, body: dict[str, Any]) -> bytes:
    # AWS pads events with a random "p" field (against length side channels): kept here
    body = {**body, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGH"[: len(kind)]}
    return frame(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(body).encode(),
    )


def exception(kind: str, message: str) -> bytes:
    return frame(
        {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )


def text_stream(
    *parts: str, stop: str = "end_turn", usage: dict[str, int] | None = None
) -> list[bytes]:
    frames = [event("messageStart", {"role": "assistant"})]
    frames += [
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in parts
    ]
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event("messageStop", {"stopReason": stop}))
    u = usage or {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}
    frames.append(event("metadata", {"usage": u, "metrics": {"latencyMs": 120}}))
    return frames


def converse_reply(text: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": usage or {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13},
        "metrics": {"latencyMs": 120},
    }


_FM = "arn:aws:bedrock:us-east-1::foundation-model/"
_IP = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
FOUNDATION_MODELS = {
    "modelSummaries": [
        {
            "modelArn": _FM + "anthropic.claude-haiku-4-5-20251001-v1:0",
            "modelId": "anthropic.claude-haiku-4-5-20251001-v1:0",
            "modelName": "Claude Haiku 4.5",
            "providerName": "Anthropic",
            "inputModalities": ["TEXT", "IMAGE"],
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": True,
            "inferenceTypesSupported": ["INFERENCE_PROFILE"],
            "modelLifecycle": {"status": "ACTIVE"},
        },
        {
            "modelArn": _FM + "amazon.nova-lite-v1:0",
            "modelId": "amazon.nova-lite-v1:0",
            "modelName": "Nova Lite",
            "providerName": "Amazon",
            "inputModalities": ["TEXT", "IMAGE", "VIDEO"],
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": True,
            "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
            "modelLifecycle": {"status": "ACTIVE"},
        },
        {
            "modelArn": _FM + "amazon.titan-embed-text-v2:0",
            "modelId": "amazon.titan-embed-text-v2:0",
            "modelName": "Titan Text Embeddings V2",
            "providerName": "Amazon",
            "inputModalities": ["TEXT"],
            "outputModalities": ["EMBEDDING"],
            "responseStreamingSupported": False,
            "inferenceTypesSupported": ["ON_DEMAND"],
            "modelLifecycle": {"status": "ACTIVE"},
        },
    ]
}


def profiles_page(ids: list[str], next_token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "inferenceProfileSummaries": [
            {
                "inferenceProfileId": pid,
                "inferenceProfileName": f"US {pid}",
                "inferenceProfileArn": _IP + pid,
                "status": "ACTIVE",
                "type": "SYSTEM_DEFINED",
            }
            for pid in ids
        ]
    }
    if next_token:
        page["nextToken"] = next_token
    return page


# ---- the SigV4 check ----------------------------------------------------------------------

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>[0-9a-f]+)"
)


def sigv4_problem(
    method: str, path: str, headers: dict[str, str], body: bytes, service: str = "bedrock"
) -> str | None:
    """None when the request is signed right for ACCESS_KEY/SECRET_KEY; else what is wrong.
    The signature is recomputed by botocore from what arrived on the wire."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {k.lower(): v for k, v in headers.items()}
    m = _AUTH.fullmatch(lower.get("authorization", ""))
    if not m:
        return "Missing Authentication Token"
    if m["key"] != ACCESS_KEY:
        return "The security token included in the request is invalid."
    if m["region"] != REGION or m["service"] != service:
        return (
            f"Credential should be scoped to {REGION}/{service}, not {m['region']}/{m['service']}"
        )
    signed = m["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    for name in ("content-type", "x-amz-security-token"):
        if lower.get(name) and name not in signed:
            return f"{name} was sent but not signed"
    url = f"http://{lower['host']}{path}"
    request = AWSRequest(method=method, url=url, data=body, headers={h: lower[h] for h in signed})
    request.context["timestamp"] = lower["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != m["sig"]:
        return (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return None


# ---- the server ---------------------------------------------------------------------------


@dataclass
class Stream:
    """A ConverseStream reply: frames, sent in pieces of `chunk` bytes (0 = all at once)."""

    frames: list[bytes]
    chunk: int = 0
    status: int = 200
    content_type: str = "application/vnd.amazon.eventstream"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    refused: str | None  # why the auth check refused it

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeBedrock:
    """`with FakeBedrock() as aws: aws.streams.append(Stream(...)); aws.url`"""

    streams: list[Stream] = field(default_factory=list)  # served in order, last repeats
    replies: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    profile_pages: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    api_key: str | None = None  # when set, Bearer with this key is accepted too

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeBedrock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, items: list[Any], counter: str) -> Any:
        with self._lock:
            n = getattr(self, counter, 0)
            setattr(self, counter, n + 1)
            return items[min(n, len(items) - 1)]

    def _profiles(self, raw_path: str) -> dict[str, Any]:
        """The page after the one whose nextToken the request carries (the first without)."""
        from urllib.parse import parse_qs

        token = parse_qs(urlsplit(raw_path).query).get("nextToken", [None])[0]
        pages = self.profile_pages or [profiles_page([])]
        if token is None:
            return pages[0]
        after = [i for i, p in enumerate(pages) if p.get("nextToken") == token]
        return pages[after[0] + 1] if after else {"message": "bad token"}

    def _auth_problem(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if auth.startswith("Bearer "):
            if self.api_key and auth == f"Bearer {self.api_key}":
                return None
            return "Invalid API Key format: Must start with pre-defined prefix"
        return sigv4_problem(method, path, headers, body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                h = {"Content-Type": "application/json", "x-amzn-RequestId": "req-1"}
                self._send(status, json.dumps(obj).encode(), {**h, **(headers or {})})

            def _serve(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = dict(self.headers.items())
                problem = fake._auth_problem(self.command, self.path, headers, body)
                with fake._lock:
                    fake.seen.append(Seen(self.command, self.path, headers, body, problem))
                if problem:
                    kind = (
                        "UnrecognizedClientException"
                        if "token" in problem
                        else "InvalidSignatureException"
                    )
                    if "API Key" in problem:
                        kind = "AccessDeniedException"
                    self._json(
                        403,
                        {"message": problem},
                        {
                            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"
                        },
                    )
                    return
                path = urlsplit(self.path).path
                if path == "/foundation-models":
                    self._json(200, FOUNDATION_MODELS)
                elif path == "/inference-profiles":
                    self._json(200, fake._profiles(self.path))
                elif path.startswith("/model/") and path.endswith("/converse-stream"):
                    self._stream(fake._next(fake.streams, "_streams"))
                elif path.startswith("/model/") and path.endswith("/converse"):
                    status, obj, extra = fake._next(fake.replies, "_replies")
                    self._json(status, obj, extra)
                else:
                    self._json(404, {"message": f"no route {unquote(path)}"})

            def _stream(self, s: Stream) -> None:
                data = b"".join(s.frames)
                self.send_response(s.status)
                self.send_header("Content-Type", s.content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                step = s.chunk or len(data) or 1
                try:
                    for i in range(0, len(data), step):
                        piece = data[i : i + step]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                        if s.chunk:
                            time.sleep(0)  # let the client read piece by piece
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _serve

        return Handler
