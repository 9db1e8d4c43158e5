"""Fallback chains from config [fallbacks] and `chat --fallback`: order, which failures move
on, the attempts in --json and in the ledger row, and no silent switch once text was shown."""

from __future__ import annotations

import json

import pytest
from faults import SSE, openai_chunk, openai_error, openai_ok, rate_limited, sse
from harness import callm, ledger_rows

from replay_server import ReplayServer, Reply


def providers(*servers: ReplayServer) -> dict[str, tuple[str, str]]:
    names = ("lab", "backup", "third")
    return {n: ("openai", s.url) for n, s in zip(names, servers, strict=False)}


def kinds(attempts: list[dict]) -> list[tuple[str, str, str | None, int]]:
    return [(a["model"], a["outcome"], a["error_kind"], a["tries"]) for a in attempts]


def test_config_fallbacks_in_order(
    server: ReplayServer, server2: ReplayServer, server3: ReplayServer, configure, isolated_env
) -> None:
    server.default = openai_error(503, "upstream unavailable")
    server2.default = rate_limited("seconds", 0.05)
    server3.default = openai_ok("third time lucky")
    configure(
        providers(server, server2, server3),
        attempts=2,
        fallbacks={"lab/gpt-test": ["backup/b-model", "third/t-model"]},
    )
    r = callm("chat", "-m", "lab/gpt-test", "--json", "hi")
    assert r.code == 0, r.stderr
    obj = r.json
    assert obj["text"] == "third time lucky"
    assert (obj["provider"], obj["model"]) == ("third", "t-model")
    want = [
        ("lab/gpt-test", "error", "server", 2),
        ("backup/b-model", "error", "rate_limit", 2),
        ("third/t-model", "ok", None, 1),
    ]
    assert kinds(obj["attempts"]) == want
    assert (len(server.seen), len(server2.seen), len(server3.seen)) == (2, 2, 1)
    assert "lab/gpt-test failed (server); falling back to backup/b-model" in r.stderr
    assert "backup/b-model failed (rate_limit); falling back to third/t-model" in r.stderr
    assert "error:" not in r.stderr
    (row,) = ledger_rows(isolated_env.data_dir)
    assert (row["provider"], row["model"], row["outcome"]) == ("third", "t-model", "fallback")
    assert row["attempts"] == 5
    assert kinds(json.loads(row["attempts_json"])) == want
    r.assert_clean()


def test_cli_fallbacks_come_first_then_config(
    server: ReplayServer, server2: ReplayServer, server3: ReplayServer, configure
) -> None:
    server.default = openai_error(500)
    server2.default = openai_error(500)
    server3.default = openai_ok("from third")
    configure(
        providers(server, server2, server3),
        attempts=1,
        fallbacks={"lab/gpt-test": ["backup/b-model"]},
    )
    r = callm(
        "chat", "-m", "lab/gpt-test", "--fallback", "third/t1", "--fallback", "backup/b2", "--json",
        "hi",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert [a["model"] for a in r.json["attempts"]] == ["lab/gpt-test", "third/t1"]
    server3.default = openai_error(500)
    r = callm(
        "chat", "-m", "lab/gpt-test", "--fallback", "third/t1", "--fallback", "backup/b2", "--json",
        "hi",
    )  # fmt: skip
    assert r.code == 1
    assert [a["model"] for a in r.json["attempts"]] == [
        "lab/gpt-test",
        "third/t1",
        "backup/b2",
        "backup/b-model",
    ]
    assert r.first_err == "error: server error (backup/b-model): boom"
    r.assert_clean()


def test_not_found_moves_on(server: ReplayServer, server2: ReplayServer, configure) -> None:
    server.default = openai_error(404, "The model `gpt-old` does not exist", code="model_not_found")
    server2.default = openai_ok("backup answers")
    configure(providers(server, server2))
    r = callm("chat", "-m", "lab/gpt-old", "--fallback", "backup/b-model", "--json", "hi")
    assert r.code == 0, r.stderr
    assert kinds(r.json["attempts"]) == [
        ("lab/gpt-old", "error", "not_found", 1),
        ("backup/b-model", "ok", None, 1),
    ]
    assert "lab/gpt-old failed (not_found); falling back to backup/b-model" in r.stderr


@pytest.mark.parametrize(
    ("reply", "code", "kind"),
    [
        (
            openai_error(401, "Incorrect API key provided: sk-test-FAKE-lab-0000"),
            3,
            "auth",
        ),
        (openai_error(400, "Invalid 'messages'"), 1, "bad_request"),
        (
            openai_error(400, "maximum context length", code="context_length_exceeded"),
            1,
            "context_length",
        ),
    ],
    ids=["auth", "bad_request", "context_length"],
)
def test_the_users_errors_stop_the_chain(
    server: ReplayServer, server2: ReplayServer, configure, reply: Reply, code: int, kind: str
) -> None:
    server.default = reply
    server2.default = openai_ok("must not be asked")
    configure(providers(server, server2), fallbacks={"lab/gpt-test": ["backup/b-model"]})
    r = callm("chat", "-m", "lab/gpt-test", "--json", "hi")
    assert r.code == code
    assert r.json["error"]["kind"] == kind
    assert len(server.seen) == 1 and len(server2.seen) == 0
    assert kinds(r.json["attempts"]) == [("lab/gpt-test", "error", kind, 1)]
    assert "falling back" not in r.stderr
    r.assert_clean()


def test_no_silent_switch_after_text(
    server: ReplayServer, server2: ReplayServer, configure, isolated_env
) -> None:
    chunks = [sse(openai_chunk("the first half "), done=False), b"never sent"]
    server.default = Reply(200, SSE, chunks=chunks, reset_after=1)
    server2.default = openai_ok("a different answer")
    configure(providers(server, server2), fallbacks={"lab/gpt-test": ["backup/b-model"]})
    r = callm("chat", "-m", "lab/gpt-test", "hi")
    assert r.code == 1
    assert r.stdout.startswith("the first half ")
    assert "a different answer" not in r.stdout
    assert r.first_err.startswith("error: stream broke (lab/gpt-test): connection to ")
    assert len(server.seen) == 1 and len(server2.seen) == 0
    (row,) = ledger_rows(isolated_env.data_dir)
    assert (row["provider"], row["outcome"], row["error_kind"]) == (
        "lab",
        "broken_stream",
        "mid_stream",
    )
    r.assert_clean()


def test_every_model_fails(server: ReplayServer, server2: ReplayServer, configure) -> None:
    server.default = openai_error(500, "lab is down")
    server2.default = rate_limited("seconds", 0.05)
    configure(providers(server, server2), attempts=2)
    r = callm("chat", "-m", "lab/gpt-test", "--fallback", "backup/b-model", "--json", "hi")
    assert r.code == 4, "the last model's failure decides the exit code"
    assert r.first_err == "error: rate-limited (backup/b-model): Rate limit reached"
    assert kinds(r.json["attempts"]) == [
        ("lab/gpt-test", "error", "server", 2),
        ("backup/b-model", "error", "rate_limit", 2),
    ]
    r.assert_clean()


def test_unknown_fallback_is_a_usage_error_before_any_call(server: ReplayServer, configure) -> None:
    server.default = openai_ok()
    configure(providers(server))
    r = callm("chat", "-m", "lab/gpt-test", "--fallback", "nowhere/x", "hi")
    assert r.code == 2
    assert r.first_err.startswith("error: unknown provider 'nowhere'")
    assert len(server.seen) == 0
