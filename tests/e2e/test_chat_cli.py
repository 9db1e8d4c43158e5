"""End to end: the installed `callm` in a subprocess, against `sim` and a loopback server
speaking OpenAI's wire format. Checks stdout, stderr, exit codes, and that no traceback or
key ever reaches the user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from replay_server import Reply, serving

CALLM = str(Path(sys.executable).with_name("callm"))
FAKE_KEY = "sk-test-FAKE-e2e-0000"


def sse(*objs: Any, done: bool = True) -> bytes:
    text = "".join(f"data: {json.dumps(o)}\n\n" for o in objs)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def delta(text: str) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


FINISH = {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {
    "id": "c1",
    "choices": [],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


def run(
    args: list[str], env: dict[str, str], stdin: str | None = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CALLM, *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CALLM_") and not k.endswith("_API_KEY")
    }
    e.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        CALLM_DATA_DIR=str(tmp_path / "callm-data"),
        CALLM_LAB_KEY=FAKE_KEY,
        NO_COLOR="1",
    )
    return e


def write_config(env: dict[str, str], base_url: str, attempts: int = 1, extra: str = "") -> None:
    path = Path(env["XDG_CONFIG_HOME"]) / "callm" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[providers.lab]\ndriver = "openai"\nbase_url = "{base_url}/v1"\n'
        f'key_env = "CALLM_LAB_KEY"\n{extra}'
        f"[retry]\nattempts = {attempts}\nbase_delay = 0\n"
    )


def assert_clean(p: subprocess.CompletedProcess[str]) -> None:
    for stream in (p.stdout, p.stderr):
        assert "Traceback" not in stream
        assert FAKE_KEY not in stream
    assert "\x1b[" not in p.stdout, "piped output must have no ANSI codes"


def test_sim_with_piped_stdin(env: dict[str, str]) -> None:
    p = run(["chat", "-m", "sim", "summarise this"], env, stdin="a long document\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()
    assert "sim/" in p.stderr and "tokens" in p.stderr  # the usage line goes to stderr
    assert_clean(p)
    again = run(["chat", "-m", "sim", "summarise this"], env, stdin="a long document\n")
    assert again.stdout == p.stdout, "sim is deterministic"


def test_sim_json(env: dict[str, str]) -> None:
    p = run(["chat", "-m", "sim", "--json", "hi"], env)
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert {
        "model",
        "provider",
        "text",
        "finish_reason",
        "usage",
        "cost_usd",
        "latency_ms",
        "attempts",
    } <= set(obj)
    assert obj["provider"] == "sim" and obj["finish_reason"] == "stop"
    assert obj["usage"]["output_tokens"] > 0
    assert obj["attempts"][0]["outcome"] == "ok"


def test_no_prompt_is_a_usage_error(env: dict[str, str]) -> None:
    p = run(["chat", "-m", "sim"], env, stdin="")
    assert p.returncode == 2
    assert p.stderr.startswith("error: no prompt")


@pytest.mark.parametrize(
    ("fail", "code", "kind"),
    [
        ("auth", 3, "auth"),
        ("rate_limit", 4, "rate_limit"),
        ("server", 1, "server"),
        ("mid_stream", 1, "mid_stream"),
    ],
)
def test_sim_failures_map_to_exit_codes(
    env: dict[str, str], fail: str, code: int, kind: str
) -> None:
    p = run(["chat", "-m", "sim", "-o", f"fail={fail}", "-o", "retry_after=0", "--json", "hi"], env)
    assert p.returncode == code, p.stderr
    obj = json.loads(p.stdout)
    assert obj["error"]["kind"] == kind
    assert p.stderr.count("error:") == 1
    assert_clean(p)
    if fail == "mid_stream":
        assert obj["text"], "a broken stream keeps the text that arrived"


def test_openai_stream_end_to_end(env: dict[str, str]) -> None:
    body = sse(delta("Hello"), delta(", world"), FINISH, USAGE)
    with serving(Reply(200, {"content-type": "text/event-stream"}, body)) as srv:
        write_config(env, srv.url)
        p = run(["chat", "-m", "lab/gpt-test", "hi"], env)
        sent = srv.seen[0]
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Hello, world\n"
    assert "7 in" in p.stderr and "3 out" in p.stderr
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}
    assert_clean(p)


def _error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps({"error": {"message": message, "type": "x", "code": None}}).encode()
    return Reply(status, {"content-type": "application/json", **(headers or {})}, body)


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (401, 3, "authentication failed"),
        (429, 4, "rate-limited"),
        (404, 2, "not found"),
        (500, 1, "server error"),
    ],
)
def test_http_errors_exit_codes(env: dict[str, str], status: int, code: int, words: str) -> None:
    # the vendor echoes the key, as OpenAI does ("Incorrect API key provided: sk-...")
    reply = _error_reply(status, f"Incorrect API key provided: {FAKE_KEY}", {"retry-after": "0"})
    with serving(reply) as srv:
        write_config(env, srv.url)
        p = run(["chat", "-m", "lab/gpt-test", "hi"], env)
    assert p.returncode == code, p.stderr
    first = p.stderr.splitlines()[0]
    assert first.startswith("error: ") and words in first and "(lab/gpt-test)" in first
    assert_clean(p)


def test_mid_stream_reset_keeps_text(env: dict[str, str]) -> None:
    chunks = [sse(delta("partial "), done=False), sse(delta("answer"), done=False), b""]
    reply = Reply(200, {"content-type": "text/event-stream"}, chunks=chunks, reset_after=2)
    with serving(reply) as srv:
        write_config(env, srv.url, attempts=3)
        p = run(["chat", "-m", "lab/gpt-test", "--json", "hi"], env)
        requests = len(srv.seen)
    assert p.returncode == 1, p.stderr
    obj = json.loads(p.stdout)
    assert obj["text"] == "partial answer"
    assert obj["error"]["kind"] == "mid_stream"
    assert requests == 1, "no retry once text was shown"
    assert_clean(p)


def test_head_exits_quietly(env: dict[str, str]) -> None:
    if not shutil.which("head"):
        pytest.skip("no head(1)")
    p = subprocess.run(
        f"set -o pipefail; '{CALLM}' chat -m sim -o length=5000 hi | head -1",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_sim_needs_no_network(env: dict[str, str]) -> None:
    """In a fresh network namespace there is no network at all, not even loopback."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("cannot create a network namespace here (needs unshare and root)")
    p = subprocess.run(
        ["unshare", "-n", CALLM, "chat", "-m", "sim", "--json", "offline?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        input="",
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["text"]


@pytest.mark.parametrize("how", ["--timeout", "deadline"])
def test_a_trickling_stream_ends_at_the_deadline(env: dict[str, str], how: str) -> None:
    """A token every 0.3 s, forever: the read timeout never trips; `--timeout 1` (or the
    provider's `deadline = 1`) ends the call, keeping the text that arrived."""
    drip: list[bytes | float] = [sse(delta("tick "), done=False)]
    chunks: list[bytes | float] = drip + [0.3, *drip] * 60
    with serving(Reply(200, {"content-type": "text/event-stream"}, chunks=chunks)) as srv:
        write_config(env, srv.url, extra="deadline = 1\n" if how == "deadline" else "")
        args = ["--timeout", "1"] if how == "--timeout" else []
        start = time.monotonic()
        p = run(["chat", "-m", "lab/gpt-test", "--json", *args, "hi"], env)
        took = time.monotonic() - start
    assert p.returncode == 1, p.stderr
    obj = json.loads(p.stdout)
    assert obj["text"].startswith("tick tick")
    assert obj["error"]["kind"] == "mid_stream"
    assert "did not finish within the 1 s deadline" in obj["error"]["message"]
    assert took < 10
    assert_clean(p)


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_timeout_must_be_positive_and_finite(env: dict[str, str], value: str) -> None:
    p = run(["chat", "-m", "sim", "--timeout", value, "hi"], env)
    assert p.returncode == 2, p.stderr
    assert "--timeout must be a number of seconds greater than 0" in p.stderr
    assert_clean(p)


def test_a_missing_ca_bundle_is_a_config_error(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "corp-ca.pem"
    with serving(Reply(200, {}, b"{}")) as srv:
        write_config(env, srv.url, extra=f'ca_bundle = "{missing}"\n')
        p = run(["chat", "-m", "lab/gpt-test", "hi"], env)
        seen = len(srv.seen)
    assert p.returncode == 2, p.stderr
    first = p.stderr.splitlines()[0]
    assert first.startswith(f"error: providers.lab.ca_bundle: no such file: {missing}")
    assert seen == 0
    assert_clean(p)
