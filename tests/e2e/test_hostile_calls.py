"""Issue 12, calls that went wrong in ways the messages must name: a Retry-After longer than
retry.max_delay, an empty stream, a 200 HTML page, a probe of another provider's model.
The installed `callm` in a subprocess with a temporary HOME (isolated_env)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from isolation import CALLM, IsolatedEnv
from replay_server import Reply, serving

FAKE_KEY = "test-key-123"


def lab(env: IsolatedEnv, url: str, retry: str = "attempts = 3\nbase_delay = 0\n") -> None:
    env.write_config(
        f'[providers.lab]\ndriver = "openai-compatible"\nbase_url = "{url}/v1"\n'
        f'key_env = "CALLM_LAB_KEY"\n[retry]\n{retry}'
    )


def chat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CALLM, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CALLM_LAB_KEY": FAKE_KEY},
    )


@pytest.mark.parametrize(
    ("retry_after", "shown"),
    [("100000", "100000.0"), ("Thu, 01 Jan 2099 00:00:00 GMT", "")],
)
def test_retry_after_longer_than_max_delay_fails_at_once(
    isolated_env: IsolatedEnv, retry_after: str, shown: str
) -> None:
    body = b'{"error": {"message": "slow down", "type": "rate_limit_exceeded"}}'
    reply = Reply(status=429, headers={"Retry-After": retry_after}, body=body)
    with serving() as srv:
        srv.default = reply
        lab(isolated_env, srv.url)
        began = time.monotonic()
        p = chat("chat", "-m", "lab/m", "hi")
        took = time.monotonic() - began
        seen = len(srv.seen)
    assert p.returncode == 4, p.stderr
    assert seen == 1, "no retry: waiting max_delay would not satisfy the server"
    assert took < 20
    hint = p.stderr.splitlines()[-1]
    assert hint.startswith(f"hint: the server asked to wait {shown}"), p.stderr
    assert "more than retry.max_delay (30.0 s); try again later" in hint


def test_stream_of_only_done_is_an_empty_reply(isolated_env: IsolatedEnv) -> None:
    reply = Reply(headers={"content-type": "text/event-stream"}, body=b"data: [DONE]\n\n")
    with serving() as srv:
        srv.default = reply
        lab(isolated_env, srv.url, "attempts = 1\n")
        p = chat("chat", "-m", "lab/m", "hi")
    assert p.returncode == 1
    assert "empty reply" in p.stderr.splitlines()[0], p.stderr


def test_a_200_html_page_is_not_called_an_error_page(isolated_env: IsolatedEnv) -> None:
    page = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
    reply = Reply(headers={"content-type": "text/html"}, body=page)
    with serving() as srv:
        srv.default = reply
        lab(isolated_env, srv.url, "attempts = 1\n")
        p = chat("chat", "-m", "lab/m", "--no-stream", "hi")
    assert p.returncode == 1
    first = p.stderr.splitlines()[0]
    assert "error page" not in first, first
    assert first.endswith("got an HTML page: Welcome to nginx!") or "HTML page" in first, first


def test_verify_probe_of_another_providers_model_is_a_usage_error(
    isolated_env: IsolatedEnv,
) -> None:
    lab(isolated_env, "http://127.0.0.1:9")
    p = chat("providers", "verify", "lab", "--probe", "nosuch/xx")
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.splitlines()[0].startswith("error: --probe nosuch/xx"), p.stderr
