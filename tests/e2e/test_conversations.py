"""Conversations end to end: the installed `callm` in subprocesses, loopback servers speaking
OpenAI's and Anthropic's wire formats that record every request body, and the real data DB."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from replay_server import Reply, serving

CALLM = str(Path(sys.executable).with_name("callm"))
FAKE_KEY = "sk-test-FAKE-convo-0000"


def sse(*objs: Any) -> bytes:
    return ("".join(f"data: {json.dumps(o)}\n\n" for o in objs) + "data: [DONE]\n\n").encode()


def openai_reply(text: str, delay: float = 0.0) -> Reply:
    chunks = [
        {"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
    ]
    return Reply(200, {"content-type": "text/event-stream"}, sse(*chunks), stall=delay)


def anthropic_reply(text: str) -> Reply:
    events = [
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 9}}}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 2},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()
    return Reply(200, {"content-type": "text/event-stream"}, body)


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


def configure(
    env: dict[str, str], openai_url: str, anthropic_url: str = "http://127.0.0.1:9"
) -> None:
    path = Path(env["XDG_CONFIG_HOME"]) / "callm" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[providers.lab]\ndriver = "openai-compatible"\nbase_url = "{openai_url}/v1"\n'
        'key_env = "CALLM_LAB_KEY"\n'
        f'[providers.claude-lab]\ndriver = "anthropic"\nbase_url = "{anthropic_url}/v1"\n'
        'key_env = "CALLM_LAB_KEY"\n'
        "[retry]\nattempts = 1\nbase_delay = 0\n"
    )


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CALLM, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def rows(env: dict[str, str]) -> list[tuple[Any, ...]]:
    db = Path(env["CALLM_DATA_DIR"]) / "callm.db"
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT id, cid, prompt, reply, outcome FROM usage ORDER BY id"
        ).fetchall()


def test_continue_carries_the_first_exchange(env: dict[str, str]) -> None:
    with serving(openai_reply("Teal."), openai_reply("Ochre.")) as srv:
        configure(env, srv.url)
        first = run(["chat", "-m", "lab/gpt-x", "name a colour"], env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == "Teal."
        second = run(["chat", "-c", "another one"], env)  # no -m: the conversation's model
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == "Ochre."
        assert [s.json["messages"] for s in srv.seen] == [
            [{"role": "user", "content": "name a colour"}],
            [
                {"role": "user", "content": "name a colour"},
                {"role": "assistant", "content": "Teal."},
                {"role": "user", "content": "another one"},
            ],
        ]
        assert srv.seen[1].json["model"] == "gpt-x"
    (a, b) = rows(env)
    assert a[1] == b[1] and a[1], "both calls belong to one conversation"
    assert (a[2], a[3], b[2], b[3]) == ("name a colour", "Teal.", "another one", "Ochre.")


def test_a_conversation_switches_provider_between_turns(env: dict[str, str]) -> None:
    with serving(openai_reply("Teal.")) as oa, serving(anthropic_reply("Coral.")) as an:
        configure(env, oa.url, an.url)
        assert (
            run(["chat", "-m", "lab/gpt-x", "-s", "Be brief.", "name a colour"], env).returncode
            == 0
        )
        p = run(["chat", "-c", "-m", "claude-lab/claude-x", "another one"], env)
        assert p.returncode == 0, p.stderr
        body = an.seen[0].json
        assert body["system"] == "Be brief.", "the conversation keeps its system prompt"
        assert body["messages"] == [
            {"role": "user", "content": "name a colour"},
            {"role": "assistant", "content": "Teal."},
            {"role": "user", "content": "another one"},
        ]


def test_cid_continues_a_given_conversation_and_new_calls_start_new_ones(
    env: dict[str, str],
) -> None:
    with serving(*(openai_reply(t) for t in ("A.", "B.", "C."))) as srv:
        configure(env, srv.url)
        run(["chat", "-m", "lab/gpt-x", "first"], env)
        run(["chat", "-m", "lab/gpt-x", "unrelated"], env)
        cid = rows(env)[0][1]
        p = run(["chat", "--cid", cid[:6], "follow-up"], env)  # a unique prefix is enough
        assert p.returncode == 0, p.stderr
        assert [m["content"] for m in srv.seen[2].json["messages"]] == ["first", "A.", "follow-up"]
        assert [m["content"] for m in srv.seen[1].json["messages"]] == ["unrelated"]
    assert rows(env)[2][1] == cid
    bad = run(["chat", "--cid", "ffffffffffff", "x"], env)
    assert bad.returncode == 2 and "no conversation" in bad.stderr


def test_no_log_keeps_the_call_out_of_the_log_but_counts_its_cost(env: dict[str, str]) -> None:
    p = run(["chat", "-m", "sim", "--no-log", "secret plans"], env)
    assert p.returncode == 0, p.stderr
    ((_, cid, prompt, reply, outcome),) = rows(env)
    assert (cid, prompt, reply, outcome) == (None, None, None, "ok")


def test_two_processes_continuing_at_once_both_land(env: dict[str, str]) -> None:
    with serving(
        openai_reply("One."), openai_reply("Two.", delay=4.0), openai_reply("Three.")
    ) as srv:
        configure(env, srv.url)
        run(["chat", "-m", "lab/gpt-x", "start"], env)
        out: dict[str, subprocess.CompletedProcess[str]] = {}

        def go(name: str) -> None:
            out[name] = run(["chat", "-c", name], env)

        slow = threading.Thread(target=go, args=("slow",))
        slow.start()
        deadline = time.monotonic() + 30
        while len(srv.seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # until the slow one's request is in flight (it stalls 4 s)
        go("fast")
        slow.join()
        assert out["slow"].returncode == 0 and out["fast"].returncode == 0
    convo = [r for r in rows(env) if r[1] == rows(env)[0][1]]
    assert [r[2] for r in convo] == ["start", "fast", "slow"], "in order of completion"
    with serving(openai_reply("Four.")) as srv:
        configure(env, srv.url)
        assert run(["chat", "-c", "next"], env).returncode == 0
        sent = [m["content"] for m in srv.seen[0].json["messages"]]
    assert sent == ["start", "One.", "fast", "Three.", "slow", "Two.", "next"], "no lost turn"


def test_ctrl_c_keeps_the_partial_reply_and_c_continues_from_it(env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [CALLM, "chat", "-m", "sim", "-o", "delay_ms=40", "-o", "length=400", "tell me"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    proc.stdout.read(20)  # some of the reply has arrived
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    ((_, cid, prompt, partial, outcome),) = rows(env)
    assert outcome == "interrupted" and prompt == "tell me" and partial
    with serving(openai_reply("Fine.")) as srv:
        configure(env, srv.url)
        p = run(["chat", "-c", "-m", "lab/gpt-x", "go on"], env)
        assert p.returncode == 0, p.stderr
        assert srv.seen[0].json["messages"][1] == {"role": "assistant", "content": partial}
    show = run(["logs", "show", "--cid", cid], env)
    assert "interrupted" in show.stdout
