"""Retries: which failures are retried, how long callm waits (what the server asked, capped),
what it says on stderr, and what the user sees when retries run out."""

from __future__ import annotations

import time

import pytest
from faults import (
    SSE,
    anthropic_error,
    anthropic_overloaded,
    anthropic_stream,
    gemini_rate_limited,
    gemini_stream,
    html_page,
    http_date,
    openai_error,
    openai_ok,
    rate_limited,
    when_in,
)
from harness import callm

from replay_server import ReplayServer, Reply

CHAT = ("chat", "-m", "lab/gpt-test", "hi")


def gap(srv: ReplayServer, i: int = 0) -> float:
    """Seconds between request i and request i+1, as the server saw them."""
    return srv.seen[i + 1].at - srv.seen[i].at


@pytest.mark.parametrize("form", ["seconds", "ms"])
def test_429_wait_is_what_the_server_asked(server: ReplayServer, configure, form: str) -> None:
    server.add(rate_limited(form, 1.0), openai_ok("after the wait"))
    configure({"lab": ("openai", server.url)}, max_delay=5)
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.stdout == "after the wait\n"
    assert len(server.seen) == 2
    assert r.stderr.splitlines()[0] == "rate-limited by lab, retrying in 1.0 s (attempt 2/3)"
    assert gap(server) == pytest.approx(1.0, rel=0.10)
    r.assert_clean()


def test_429_retry_after_http_date(server: ReplayServer, configure) -> None:
    """Retry-After as an HTTP date: wait until then (measured from when the 429 was sent)."""
    until = when_in(3.0)
    server.add(
        openai_error(429, "Rate limit reached", {"retry-after": http_date(until)}),
        openai_ok("after the date"),
    )
    configure({"lab": ("openai", server.url)}, max_delay=5)
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.stdout == "after the date\n"
    wall_at_429 = time.time() - (time.monotonic() - server.seen[0].at)
    expected = until - wall_at_429
    notice = r.stderr.splitlines()[0]
    assert notice.startswith("rate-limited by lab, retrying in ")
    assert notice.endswith(" s (attempt 2/3)")
    asked = float(notice.split("retrying in ")[1].split(" s")[0])
    assert asked == pytest.approx(expected, abs=0.15)
    assert gap(server) == pytest.approx(expected, rel=0.10)
    r.assert_clean()


def test_gemini_retry_info_in_the_body(server: ReplayServer, configure) -> None:
    server.add(gemini_rate_limited("1.2s"), gemini_stream("gemini waited"))
    configure({"gem": ("gemini", server.url)}, max_delay=5)
    r = callm("chat", "-m", "gem/gemini-test", "hi")
    assert r.code == 0, r.stderr
    assert r.stdout == "gemini waited\n"
    assert r.stderr.splitlines()[0] == "rate-limited by gem, retrying in 1.2 s (attempt 2/3)"
    assert gap(server) == pytest.approx(1.2, rel=0.10)
    r.assert_clean()


def test_wait_is_capped_by_max_delay(server: ReplayServer, configure) -> None:
    server.add(openai_error(429, "slow down", {"retry-after": "0.5"}), openai_ok())
    configure({"lab": ("openai", server.url)}, max_delay=0.6)
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert "retrying in 0.5 s (attempt 2/3)" in r.stderr
    assert gap(server) == pytest.approx(0.5, rel=0.15)


def test_a_wait_longer_than_max_delay_fails_at_once(server: ReplayServer, configure) -> None:
    """Issue 12: sleeping max_delay would not satisfy the server; say what it asked."""
    server.add(openai_error(429, "slow down", {"retry-after": "3600"}), openai_ok())
    configure({"lab": ("openai", server.url)}, max_delay=0.6)
    r = callm(*CHAT)
    assert r.code == 4, r.stderr
    assert len(server.seen) == 1
    assert "the server asked to wait 3600.0 s, more than retry.max_delay (0.6 s)" in r.stderr


def test_backoff_without_retry_after_grows(server: ReplayServer, configure) -> None:
    """Exponential backoff with jitter: base * 2**(n-1) * (0.5 .. 1.5)."""
    server.add(openai_error(500), openai_error(500), openai_ok())
    configure({"lab": ("openai", server.url)}, base_delay=0.3, max_delay=5)
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    first, second = gap(server, 0), gap(server, 1)
    assert 0.15 * 0.9 <= first <= 0.45 * 1.1 + 0.05
    assert 0.30 * 0.9 <= second <= 0.90 * 1.1 + 0.05
    lines = r.stderr.splitlines()
    assert lines[0].startswith("server error from lab, retrying in ")
    assert lines[0].endswith("(attempt 2/3)") and lines[1].endswith("(attempt 3/3)")


def test_rate_limit_after_all_retries(server: ReplayServer, configure) -> None:
    server.default = rate_limited("seconds", 0.1)
    configure({"lab": ("openai", server.url)})
    r = callm("chat", "-m", "lab/gpt-test", "--json", "hi")
    assert r.code == 4
    assert r.first_err == "error: rate-limited (lab/gpt-test): Rate limit reached"
    assert len(server.seen) == 3
    obj = r.json
    assert obj["error"]["kind"] == "rate_limit"
    assert obj["attempts"] == [
        {
            "model": "lab/gpt-test",
            "outcome": "error",
            "error_kind": "rate_limit",
            "latency_ms": obj["attempts"][0]["latency_ms"],
            "tries": 3,
        }
    ]
    r.assert_clean()


@pytest.mark.parametrize(
    ("reply", "kind", "first_err", "notice"),
    [
        (
            openai_error(500, "The server had an error processing your request."),
            "server",
            "error: server error (lab/gpt-test): The server had an error processing your request.",
            "server error from lab",
        ),
        (
            html_page(502),
            "server",
            "error: server error (lab/gpt-test): 502 Bad Gateway",
            "server error from lab",
        ),
        (
            openai_error(503, "The engine is currently overloaded, please try again later"),
            "overloaded",
            "error: provider overloaded (lab/gpt-test): The engine is currently overloaded,"
            " please try again later",
            "lab is overloaded",
        ),
        (
            html_page(503, "503 Service Temporarily Unavailable"),
            "server",
            "error: server error (lab/gpt-test): 503 Service Temporarily Unavailable",
            "server error from lab",
        ),
    ],
    ids=["500", "502-html", "503-overloaded", "503-html"],
)
def test_server_errors_are_retried(
    server: ReplayServer, configure, reply, kind: str, first_err: str, notice: str
) -> None:
    server.default = reply
    configure({"lab": ("openai", server.url)}, attempts=2, base_delay=0.05)
    r = callm("chat", "-m", "lab/gpt-test", "--json", "hi")
    assert r.code == 1
    assert len(server.seen) == 2
    assert r.stderr.splitlines()[0].startswith(f"{notice}, retrying in ")
    assert r.first_err == first_err
    assert r.json["error"]["kind"] == kind
    assert r.json["attempts"][0]["tries"] == 2
    r.assert_clean()


def test_anthropic_529_overloaded_then_ok(server: ReplayServer, configure) -> None:
    server.add(anthropic_overloaded(), anthropic_stream("claude is back"))
    configure({"claude": ("anthropic", server.url)})
    r = callm("chat", "-m", "claude/claude-test", "hi")
    assert r.code == 0, r.stderr
    assert r.stdout == "claude is back\n"
    assert r.stderr.splitlines()[0].startswith("claude is overloaded, retrying in ")
    r.assert_clean()


def test_anthropic_529_after_all_retries(server: ReplayServer, configure) -> None:
    server.default = anthropic_overloaded()
    configure({"claude": ("anthropic", server.url)}, attempts=2)
    r = callm("chat", "-m", "claude/claude-test", "hi")
    assert r.code == 1
    assert r.first_err == "error: provider overloaded (claude/claude-test): Overloaded"
    assert len(server.seen) == 2
    r.assert_clean()


@pytest.mark.parametrize(
    ("reply", "code", "first_err"),
    [
        (
            openai_error(401, "Incorrect API key provided: sk-test-FAKE-lab-0000"),
            3,
            "error: authentication failed (lab/gpt-test): Incorrect API key provided: sk-...0000",
        ),
        (
            openai_error(400, "Invalid value for 'temperature'"),
            1,
            "error: request rejected (lab/gpt-test): Invalid value for 'temperature'",
        ),
        (
            openai_error(404, "The model `gpt-test` does not exist", code="model_not_found"),
            2,
            "error: model or endpoint not found (lab/gpt-test): The model `gpt-test` does not"
            " exist",
        ),
        (
            openai_error(
                400,
                "This model's maximum context length is 8192 tokens",
                code="context_length_exceeded",
            ),
            1,
            "error: prompt too long for the model's context window (lab/gpt-test): This model's"
            " maximum context length is 8192 tokens",
        ),
    ],
    ids=["auth", "bad_request", "not_found", "context_length"],
)
def test_never_retried(server: ReplayServer, configure, reply, code: int, first_err: str) -> None:
    server.default = reply
    configure({"lab": ("openai", server.url)}, attempts=5)
    r = callm(*CHAT)
    assert r.code == code
    assert len(server.seen) == 1, "not retried"
    assert r.stderr.splitlines()[0] == first_err
    assert "retrying" not in r.stderr
    r.assert_clean()


def test_anthropic_auth_not_retried(server: ReplayServer, configure) -> None:
    server.default = anthropic_error(401, "authentication_error", "invalid x-api-key")
    configure({"claude": ("anthropic", server.url)})
    r = callm("chat", "-m", "claude/claude-test", "hi")
    assert r.code == 3
    assert r.first_err == "error: authentication failed (claude/claude-test): invalid x-api-key"
    assert len(server.seen) == 1
    r.assert_clean()


def test_short_waits_are_shown_with_their_digits(server: ReplayServer, configure) -> None:
    server.add(rate_limited("ms", 0.05), openai_ok())
    configure({"lab": ("openai", server.url)})
    r = callm(*CHAT)
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines()[0] == "rate-limited by lab, retrying in 0.05 s (attempt 2/3)"


ANTHROPIC_OVERLOADED_EVENT = (
    b"event: error\n"
    b'data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
)


def test_anthropic_overloaded_event_inside_a_200_stream(server: ReplayServer, configure) -> None:
    """Anthropic also reports overload as an SSE error event after a 200: before any text it
    is retried like a 529."""
    server.add(Reply(200, SSE, ANTHROPIC_OVERLOADED_EVENT), anthropic_stream("second try"))
    configure({"claude": ("anthropic", server.url)})
    r = callm("chat", "-m", "claude/claude-test", "hi")
    assert r.code == 0, r.stderr
    assert r.stdout == "second try\n"
    assert r.stderr.splitlines()[0].startswith("claude is overloaded, retrying in ")

    server.default = Reply(200, SSE, ANTHROPIC_OVERLOADED_EVENT)
    r = callm("chat", "-m", "claude/claude-test", "hi")
    assert r.code == 1
    assert r.first_err == "error: provider overloaded (claude/claude-test): Overloaded"
    r.assert_clean()
