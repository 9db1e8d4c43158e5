"""A `callm serve` subprocess on 127.0.0.1 in front of loopback upstreams that answer in each
vendor's wire format (shared by the gateway tests and bench/gateway_load.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from replay_server import ReplayServer, Reply

UPSTREAM_KEY = "sk-test-FAKE-upstream-0000"


# ---- upstream replies in each vendor's wire format (shapes as the vendors send them) --------


def openai_sse(text_parts: list[str], usage: tuple[int, int] = (9, 4), **kw: Any) -> Reply:
    frames = [
        {
            "id": "chatcmpl-up",
            "object": "chat.completion.chunk",
            "model": "gpt-up",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        },
    ]
    frames += [
        {
            "id": "chatcmpl-up",
            "object": "chat.completion.chunk",
            "model": "gpt-up",
            "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}],
        }
        for t in text_parts
    ]
    frames.append(
        {
            "id": "chatcmpl-up",
            "object": "chat.completion.chunk",
            "model": "gpt-up",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
    )
    frames.append(
        {
            "id": "chatcmpl-up",
            "object": "chat.completion.chunk",
            "model": "gpt-up",
            "choices": [],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }
    )
    chunks: list[bytes | float] = [f"data: {json.dumps(f)}\n\n".encode() for f in frames]
    chunks.append(b"data: [DONE]\n\n")
    return Reply(200, {"content-type": "text/event-stream"}, chunks=chunks, **kw)


def openai_json(
    message: dict[str, Any], finish: str = "stop", usage: tuple[int, int] = (9, 4)
) -> Reply:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-up",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }
    return Reply(200, {"content-type": "application/json"}, json.dumps(body).encode())


def anthropic_tool_use(name: str, args: dict[str, Any], usage: tuple[int, int] = (21, 12)) -> Reply:
    body = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_up1", "name": name, "input": args},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }
    return Reply(200, {"content-type": "application/json"}, json.dumps(body).encode())


def anthropic_text(text: str, usage: tuple[int, int] = (11, 5)) -> Reply:
    body = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }
    return Reply(200, {"content-type": "application/json"}, json.dumps(body).encode())


def anthropic_sse(text_parts: list[str], usage: tuple[int, int] = (11, 5)) -> Reply:
    def ev(kind: str, obj: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **obj})}\n\n".encode()

    chunks: list[bytes | float] = [
        ev(
            "message_start",
            {
                "message": {
                    "id": "msg_up",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-up",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage[0], "output_tokens": 1},
                }
            },
        ),
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    chunks += [
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}})
        for t in text_parts
    ]
    chunks += [
        ev("content_block_stop", {"index": 0}),
        ev(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage[1]},
            },
        ),
        ev("message_stop", {}),
    ]
    return Reply(200, {"content-type": "text/event-stream"}, chunks=chunks)


def ollama_ndjson(text_parts: list[str], usage: tuple[int, int] = (13, 6)) -> Reply:
    lines = [
        {
            "model": "llama-up",
            "created_at": "2026-11-30T00:00:00Z",
            "message": {"role": "assistant", "content": t},
            "done": False,
        }
        for t in text_parts
    ]
    lines.append(
        {
            "model": "llama-up",
            "created_at": "2026-11-30T00:00:01Z",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": usage[0],
            "eval_count": usage[1],
        }
    )
    chunks: list[bytes | float] = [json.dumps(x).encode() + b"\n" for x in lines]
    return Reply(200, {"content-type": "application/x-ndjson"}, chunks=chunks)


def error_reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    h = {"content-type": "application/json", **(headers or {})}
    return Reply(status, h, json.dumps(body).encode())


# ---- the gateway process ---------------------------------------------------------------------


@dataclass
class Upstreams:
    openai: ReplayServer
    anthropic: ReplayServer
    ollama: ReplayServer


def env_for(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CALLM_") and not k.endswith(("_API_KEY", "_API_TOKEN"))
    }
    env.update(
        HOME=str(root / "home"),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_DATA_HOME=str(root / "data"),
        XDG_CACHE_HOME=str(root / "cache"),
        CALLM_DATA_DIR=str(root / "callm-data"),
        CALLM_UP_KEY=UPSTREAM_KEY,
        NO_COLOR="1",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    return env


def write_config(env: dict[str, str], up: Upstreams, extra: str = "") -> Path:
    path = Path(env["XDG_CONFIG_HOME"]) / "callm" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[providers.up-openai]\ndriver = "openai"\nbase_url = "{up.openai.url}/v1"\n'
        'key_env = "CALLM_UP_KEY"\n'
        f'[providers.up-anthropic]\ndriver = "anthropic"\nbase_url = "{up.anthropic.url}/v1"\n'
        'key_env = "CALLM_UP_KEY"\n'
        f'[providers.up-ollama]\ndriver = "ollama"\nbase_url = "{up.ollama.url}"\nkey = "none"\n'
        "[retry]\nattempts = 1\nbase_delay = 0\n"
        '[aliases]\nfast = "sim/sim-small"\n' + extra,
        encoding="utf-8",
    )
    return path


def callm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Gateway:
    """`callm serve --port 0` as a subprocess; `url` once it listens."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callm", "serve", "--port", "0", "--log", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "listening on " not in line:
            self.proc.kill()
            raise RuntimeError(f"callm serve did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split("listening on ")[1].split()[0]
        self.log: list[dict[str, Any]] = []  # the JSON lines it writes on stderr
        self.other: list[str] = []  # anything else it writes there
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self._wait_ready()

    def last_log(self, n: int, timeout: float = 10) -> dict[str, Any]:
        """The JSON line of the n-th request (1-based), once it has been read."""
        deadline = time.monotonic() + timeout
        while len(self.log) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.log[n - 1]

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.log.append(json.loads(line))
            except ValueError:
                self.other.append(line)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("callm serve never answered /healthz")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode, "".join(self.other)


@contextmanager
def upstreams() -> Iterator[Upstreams]:
    servers = [ReplayServer().start() for _ in range(3)]
    try:
        yield Upstreams(*servers)
    finally:
        for s in servers:
            s.stop()


def ledger_rows(
    env: dict[str, str], wait_for: int = 0, timeout: float = 10
) -> list[dict[str, Any]]:
    """The usage rows; waits until there are at least `wait_for` of them."""
    import sqlite3

    db = Path(env["CALLM_DATA_DIR"]) / "callm.db"
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while True:
        if db.exists():
            conn = sqlite3.connect(db)
            conn.row_factory = sqlite3.Row
            try:
                rows = [dict(r) for r in conn.execute("SELECT * FROM usage ORDER BY id")]
            except sqlite3.OperationalError:
                rows = []
            finally:
                conn.close()
        if len(rows) >= wait_for or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)
