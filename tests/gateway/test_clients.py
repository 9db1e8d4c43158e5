"""`callm serve` with the real clients: the official openai and anthropic SDKs and the ollama
client call a gateway subprocess on 127.0.0.1, routed to loopback upstreams speaking OpenAI,
Anthropic and Ollama, and to sim. One gateway serves the whole module (start-up costs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from gateway_server import (
    Gateway,
    Upstreams,
    anthropic_sse,
    anthropic_text,
    anthropic_tool_use,
    callm,
    env_for,
    error_reply,
    ledger_rows,
    ollama_ndjson,
    openai_json,
    openai_sse,
    upstreams,
    write_config,
)

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
ROUTES = """
[pricing."up-openai/*"]
input = 100000.0
output = 100000.0
[routes.cheap-first]
models = ["up-openai/gpt-up", "sim/sim-large"]
strategy = "priority"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("gateway")
    env = env_for(root)
    with upstreams() as up:
        write_config(env, up, ROUTES)
        made = callm(env, "serve", "token", "create", "tester")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        limited = callm(env, "serve", "token", "create", "limited", "-m", "fast")
        assert limited.returncode == 0, limited.stderr
        budgeted = callm(env, "serve", "token", "create", "budgeted", "--budget", "1")
        assert budgeted.returncode == 0, budgeted.stderr
        listed = callm(env, "serve", "token", "list")
        assert "budgeted" in listed.stdout and "$1/day" in listed.stdout
        assert token not in listed.stdout + listed.stderr  # shown once, never again
        gw = Gateway(env)
        try:
            yield {
                "budgeted": budgeted.stdout.strip(),
                "env": env,
                "up": up,
                "gw": gw,
                "token": token,
                "limited": limited.stdout.strip(),
            }
        finally:
            code, err = gw.stop()
            assert code == 0, err
            assert "Traceback" not in err, err


@pytest.fixture
def up(world: dict[str, Any]) -> Upstreams:
    for s in (world["up"].openai, world["up"].anthropic, world["up"].ollama):
        s.replies.clear()
        s.seen.clear()
    return world["up"]


@pytest.fixture
def oai(world: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["token"], max_retries=0)


@pytest.fixture
def ant(world: dict[str, Any]) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world["gw"].url, api_key=world["token"], max_retries=0)


@pytest.fixture
def oll(world: dict[str, Any]) -> ollama.Client:
    return ollama.Client(
        host=world["gw"].url, headers={"Authorization": f"Bearer {world['token']}"}
    )


# ---- OpenAI Chat Completions ---------------------------------------------------------------


def test_openai_sdk_plain_reply_from_sim(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hello"}], max_tokens=7
    )
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content
    assert r.usage is not None and r.usage.completion_tokens == 7
    assert r.model == "fast"


def test_openai_sdk_streams_from_an_anthropic_upstream(oai: openai.OpenAI, up: Upstreams) -> None:
    up.anthropic.add(anthropic_sse(["Bonjour", ", le", " monde"], usage=(11, 5)))
    stream = oai.chat.completions.create(
        model="up-anthropic/claude-up",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Say hello in French"},
        ],
        stream=True,
        stream_options={"include_usage": True},
        stop=["\n\n"],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Bonjour, le monde"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 5)
    sent = up.anthropic.seen[0].json
    assert sent["system"] == "Be brief."
    assert sent["stop_sequences"] == ["\n\n"]
    assert up.anthropic.seen[0].headers["x-api-key"] == "sk-test-FAKE-upstream-0000"


def test_openai_sdk_tool_call_round_trip_through_anthropic(
    oai: openai.OpenAI, up: Upstreams
) -> None:
    up.anthropic.add(anthropic_tool_use("get_weather", {"city": "Paris"}))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    msgs: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    r = oai.chat.completions.create(model="up-anthropic/claude-up", messages=msgs, tools=tools)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert up.anthropic.seen[0].json["tools"][0]["input_schema"] == WEATHER
    # the tool's result goes back as Anthropic tool_result blocks
    up.anthropic.add(anthropic_text("Sunny."))
    msgs += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "22 C, sunny"},
    ]
    r2 = oai.chat.completions.create(model="up-anthropic/claude-up", messages=msgs, tools=tools)
    assert r2.choices[0].message.content == "Sunny."
    sent = up.anthropic.seen[1].json["messages"]
    assert sent[1]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_up1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_up1", "content": "22 C, sunny"}],
    }


def test_openai_sdk_streamed_tool_call_from_sim(oai: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    stream = oai.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "weather?"}], tools=tools, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    reasons = []
    for c in stream:
        for tc in c.choices[0].delta.tool_calls or ():
            slot = calls.setdefault(tc.index, {"name": "", "args": ""})
            slot["name"] += tc.function.name or ""
            slot["args"] += tc.function.arguments or ""
        reasons.append(c.choices[0].finish_reason)
    assert calls == {0: {"name": "get_weather", "args": '{"city": "sim"}'}}
    assert reasons[-1] == "tool_calls"


def test_openai_sdk_response_format_reaches_the_upstream(oai: openai.OpenAI, up: Upstreams) -> None:
    up.openai.add(openai_json({"content": '{"ok": true}'}))
    r = oai.chat.completions.create(
        model="up-openai/gpt-up",
        messages=[{"role": "user", "content": "json please"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object"}},
        },
    )
    assert json.loads(r.choices[0].message.content or "") == {"ok": True}
    assert up.openai.seen[0].json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}},
    }


def test_openai_sdk_errors_are_typed(
    oai: openai.OpenAI, world: dict[str, Any], up: Upstreams
) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    bad = openai.OpenAI(base_url=world["gw"].url + "/v1", api_key="callm-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="fast", messages=msgs)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="nowhere/none", messages=msgs)
    up.openai.add(
        error_reply(
            429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"retry-after": "7"}
        )
    )
    with pytest.raises(openai.RateLimitError) as rl:
        oai.chat.completions.create(model="up-openai/gpt-up", messages=msgs)
    assert rl.value.response.headers["retry-after"] == "7"
    up.openai.add(
        error_reply(400, {"error": {"message": "bad temperature", "type": "invalid_request_error"}})
    )
    with pytest.raises(openai.BadRequestError) as br:
        oai.chat.completions.create(model="up-openai/gpt-up", messages=msgs)
    assert "bad temperature" in str(br.value)
    up.openai.add(error_reply(500, {"error": {"message": "boom"}}))
    with pytest.raises(openai.InternalServerError) as ise:
        oai.chat.completions.create(model="up-openai/gpt-up", messages=msgs, stream=True)
    assert ise.value.status_code == 502
    assert "Traceback" not in ise.value.response.text
    limited = openai.OpenAI(
        base_url=world["gw"].url + "/v1", api_key=world["limited"], max_retries=0
    )
    with pytest.raises(openai.PermissionDeniedError):
        limited.chat.completions.create(model="sim", messages=msgs)
    assert limited.chat.completions.create(model="fast", messages=msgs).choices[0].message.content


def test_a_token_over_its_daily_budget_is_refused(world: dict[str, Any], up: Upstreams) -> None:
    client = openai.OpenAI(
        base_url=world["gw"].url + "/v1", api_key=world["budgeted"], max_retries=0
    )
    msgs = [{"role": "user", "content": "hi"}]
    up.openai.add(openai_json({"content": "first"}, usage=(9, 4)))  # $1.30 at the test price
    assert client.chat.completions.create(model="up-openai/gpt-up", messages=msgs)
    ledger_rows(world["env"], 1)
    with pytest.raises(openai.RateLimitError) as over:
        client.chat.completions.create(model="up-openai/gpt-up", messages=msgs)
    assert "daily budget" in str(over.value)
    assert over.value.response.headers["x-should-retry"] == "false"
    assert len(up.openai.seen) == 1  # the second call never reached the upstream


def test_openai_sdk_responses_api(oai: openai.OpenAI, up: Upstreams) -> None:
    up.ollama.add(ollama_ndjson(["Hel", "lo"], usage=(13, 6)))
    r = oai.responses.create(model="up-ollama/llama-up", input="hi", instructions="be nice")
    assert r.output_text == "Hello"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (13, 6)
    assert up.ollama.seen[0].json["messages"][0] == {"role": "system", "content": "be nice"}
    up.ollama.add(ollama_ndjson(["Str", "eam"]))
    events = list(oai.responses.create(model="up-ollama/llama-up", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Stream"
    assert events[-1].response.output_text == "Stream"


def test_openai_sdk_lists_models_routes_and_aliases(oai: openai.OpenAI) -> None:
    ids = {m.id for m in oai.models.list()}
    assert {"fast", "cheap-first", "sim/sim-small"} <= ids


def test_a_route_falls_back_in_order(oai: openai.OpenAI, up: Upstreams) -> None:
    up.openai.add(error_reply(503, {"error": {"message": "down"}}))
    r = oai.chat.completions.create(
        model="cheap-first", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert r.choices[0].message.content  # answered by sim/sim-large after the 503
    assert len(up.openai.seen) == 1


# ---- Anthropic Messages --------------------------------------------------------------------


def test_anthropic_sdk_streams_from_an_openai_upstream(
    ant: anthropic.Anthropic, up: Upstreams
) -> None:
    up.openai.add(openai_sse(["Hi", " there"], usage=(9, 4)))
    with ant.messages.stream(
        model="up-openai/gpt-up",
        max_tokens=100,
        system="terse",
        messages=[{"role": "user", "content": "hello"}],
        stop_sequences=["END"],
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hi there"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 4)
    sent = up.openai.seen[0].json
    assert sent["messages"][0] == {"role": "system", "content": "terse"}
    assert sent["stop"] == ["END"]
    assert sent["max_completion_tokens"] == 100


def test_anthropic_sdk_tool_use_and_result(ant: anthropic.Anthropic, up: Upstreams) -> None:
    tools = [{"name": "get_weather", "description": "weather", "input_schema": WEATHER}]
    msg = ant.messages.create(
        model="sim", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "Paris?"}]
    )
    assert msg.stop_reason == "tool_use"
    (block,) = [b for b in msg.content if b.type == "tool_use"]
    assert (block.name, block.input) == ("get_weather", {"city": "sim"})
    up.openai.add(openai_json({"content": "It is sunny."}))
    msg2 = ant.messages.create(
        model="up-openai/gpt-up",
        max_tokens=50,
        tools=tools,
        messages=[
            {"role": "user", "content": "Paris?"},
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
            },
        ],
    )
    assert msg2.content[0].text == "It is sunny."
    sent = up.openai.seen[0].json["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "sim"}',
    }
    assert sent[2] == {"role": "tool", "tool_call_id": block.id, "content": "sunny"}
    assert sent and up.openai.seen[0].json["tools"][0]["function"]["parameters"] == WEATHER


def test_anthropic_sdk_streamed_tool_use(ant: anthropic.Anthropic) -> None:
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    with ant.messages.stream(
        model="sim", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "x"}]
    ) as s:
        final = s.get_final_message()
    (block,) = final.content
    assert block.type == "tool_use" and block.input == {"city": "sim"}
    assert final.stop_reason == "tool_use"


def test_anthropic_sdk_errors_are_typed(
    ant: anthropic.Anthropic, world: dict[str, Any], up: Upstreams
) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    bad = anthropic.Anthropic(base_url=world["gw"].url, api_key="callm-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="fast", max_tokens=5, messages=msgs)
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.create(model="nowhere/none", max_tokens=5, messages=msgs)
    up.ollama.add(error_reply(429, {"error": "too many"}, {"retry-after": "3"}))
    with pytest.raises(anthropic.RateLimitError) as rl:
        ant.messages.create(model="up-ollama/llama-up", max_tokens=5, messages=msgs, stream=True)
    assert rl.value.response.headers["retry-after"] == "3"
    assert rl.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.BadRequestError):  # max_tokens is required
        ant.post("/v1/messages", body={"model": "fast", "messages": msgs}, cast_to=object)


def test_anthropic_sdk_lists_models(ant: anthropic.Anthropic) -> None:
    ids = {m.id for m in ant.models.list()}
    assert {"fast", "cheap-first"} <= ids


# ---- Ollama ----------------------------------------------------------------------------------


def test_ollama_client_chat_streamed_and_not(oll: ollama.Client, up: Upstreams) -> None:
    up.openai.add(openai_sse(["Good", " day"], usage=(9, 4)))
    parts = list(
        oll.chat(
            model="up-openai/gpt-up", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(p.message.content or "" for p in parts) == "Good day"
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert (parts[-1].prompt_eval_count, parts[-1].eval_count) == (9, 4)
    r = oll.chat(
        model="fast", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 4}
    )
    assert r.message.content and r.done_reason == "length" and r.eval_count == 4


def test_ollama_client_generate(oll: ollama.Client, up: Upstreams) -> None:
    up.anthropic.add(anthropic_sse(["Once", " upon"], usage=(11, 5)))
    parts = list(
        oll.generate(model="up-anthropic/claude-up", prompt="a story", system="short", stream=True)
    )
    assert "".join(p.response for p in parts) == "Once upon"
    assert parts[-1].done and (parts[-1].prompt_eval_count, parts[-1].eval_count) == (11, 5)
    sent = up.anthropic.seen[0].json
    assert sent["system"] == "short" and sent["messages"] == [
        {"role": "user", "content": "a story"}
    ]
    r = oll.generate(model="fast", prompt="hi", options={"num_predict": 3})
    assert r.response and r.done_reason == "length" and r.eval_count == 3


def test_ollama_client_tool_calls(oll: ollama.Client) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    r = oll.chat(
        model="sim", messages=[{"role": "user", "content": "x"}], tools=tools, stream=False
    )
    (call,) = r.message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "sim"}


def test_ollama_client_errors_and_listings(oll: ollama.Client, world: dict[str, Any]) -> None:
    logged = len(world["gw"].log)
    with pytest.raises(ollama.ResponseError) as nf:
        oll.chat(model="nowhere/none", messages=[{"role": "user", "content": "hi"}])
    assert nf.value.status_code == 404
    line = world["gw"].last_log(logged + 1)
    assert (line["outcome"], line["status"], line["path"]) == ("refused", 404, "/api/chat")
    bad = ollama.Client(host=world["gw"].url)
    with pytest.raises(ollama.ResponseError) as un:
        bad.chat(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert un.value.status_code == 401
    assert {m.model for m in oll.list().models} >= {"fast", "cheap-first"}
    assert httpx.get(world["gw"].url + "/api/version").json()["version"]


# ---- the ledger ------------------------------------------------------------------------------


def test_every_request_has_a_row_with_its_token(world: dict[str, Any], oai: openai.OpenAI) -> None:
    import time

    logged = len(world["gw"].log)
    t0 = time.time()
    oai.chat.completions.create(model="fast", messages=[{"role": "user", "content": "row"}])
    line = world["gw"].last_log(logged + 1)
    assert (line["model"], line["asked"], line["token"]) == ("sim/sim-small", "fast", "tester")
    deadline = time.monotonic() + 10
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:  # rows of earlier tests may land late
        mine = [r for r in ledger_rows(world["env"]) if r["ts"] >= t0 - 0.01]
    assert [(r["token"], r["outcome"]) for r in mine] == [("tester", "ok")]
    assert line["outcome"] == "ok" and line["output_tokens"] == mine[0]["output_tokens"]
    rep = callm(world["env"], "--json", "usage", "report", "--by", "token")
    keys = {g["key"] for g in json.loads(rep.stdout)["groups"]}
    assert "tester" in keys


def test_a_config_budget_is_a_429_that_no_sdk_retries(
    tmp_path: Path, up: Upstreams, world: dict[str, Any]
) -> None:
    env = env_for(tmp_path)  # its own gateway: [budgets] would refuse the other tests' calls
    write_config(env, up, ROUTES + "[budgets]\ndaily = 0.5\n")
    gw = Gateway(env, "--no-auth")
    try:
        msgs = [{"role": "user", "content": "hi"}]
        oai = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=2)
        with pytest.raises(openai.RateLimitError) as over:
            oai.chat.completions.create(model="up-openai/gpt-up", messages=msgs, max_tokens=50)
        headers = over.value.response.headers
        assert headers["x-should-retry"] == "false" and "retry-after" not in headers
        assert "budget" in str(over.value)
        ant = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=2)
        with pytest.raises(anthropic.RateLimitError):
            ant.messages.create(model="up-openai/gpt-up", max_tokens=50, messages=msgs)  # type: ignore[arg-type]
        assert up.openai.seen == []  # refused before any upstream call, and never retried
        gw.last_log(2)
        assert len(gw.log) == 2  # one request per client: no retry
    finally:
        code, err = gw.stop()
        assert code == 0 and "Traceback" not in err, err


def test_a_client_that_hangs_up_cancels_the_call(world: dict[str, Any], up: Upstreams) -> None:
    slow = openai_sse(["a"] * 40)
    slow.chunks = [x for c in slow.chunks or [] for x in (c, 0.05)]
    up.openai.add(slow)
    before = len(ledger_rows(world["env"]))
    body = {
        "model": "up-openai/gpt-up",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    headers = {"authorization": f"Bearer {world['token']}"}
    with httpx.stream(
        "POST", world["gw"].url + "/v1/chat/completions", json=body, headers=headers
    ) as r:
        for _ in r.iter_bytes():
            break
    rows = ledger_rows(world["env"], before + 1)
    assert rows[-1]["outcome"] == "client_gone"
    assert rows[-1]["error_kind"] == "client_gone"


def test_a_client_that_hangs_up_before_a_reply_cancels_the_call(
    world: dict[str, Any], up: Upstreams
) -> None:
    late = openai_json({"content": "too late"})
    late.stall = 1.0
    up.openai.add(late)
    before = len(ledger_rows(world["env"]))
    body = {"model": "up-openai/gpt-up", "messages": [{"role": "user", "content": "x"}]}
    headers = {"authorization": f"Bearer {world['token']}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            world["gw"].url + "/v1/chat/completions", json=body, headers=headers, timeout=0.3
        )
    rows = ledger_rows(world["env"], before + 1)
    assert rows[-1]["outcome"] == "client_gone"


def test_no_python_detail_in_a_bad_body(world: dict[str, Any]) -> None:
    headers = {"authorization": f"Bearer {world['token']}"}
    r = httpx.post(world["gw"].url + "/v1/chat/completions", content=b"{nope", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(world["gw"].url + "/v1/chat/completions", json={"model": 3}, headers=headers)
    assert r.status_code == 400 and "Traceback" not in r.text


def test_sigterm_lets_an_open_stream_finish(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    with upstreams() as up:
        write_config(env, up)
        slow = openai_sse(["x"] * 10)
        slow.chunks = [x for c in slow.chunks or [] for x in (c, 0.1)]
        up.openai.add(slow)
        gw = Gateway(env, "--no-auth", "--grace", "10")
        body = {
            "model": "up-openai/gpt-up",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        }
        got = b""
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as r:
            stream = r.iter_bytes()
            got += next(stream)
            gw.proc.terminate()
            for chunk in stream:
                got += chunk
        assert got.rstrip().endswith(b"data: [DONE]")
        code, err = gw.stop()
        assert code == 0, err
        rows = ledger_rows(env, 1)
        assert [r["outcome"] for r in rows] == ["ok"]


def test_serve_refuses_no_auth_off_loopback(tmp_path: Path) -> None:
    p = callm(env_for(tmp_path), "serve", "--host", "0.0.0.0", "--no-auth")
    assert p.returncode == 2 and "loopback" in p.stderr and "Traceback" not in p.stderr


def test_serve_without_the_extra_prints_a_hint(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['uvicorn'] = None; from callm.cli.app import main; main(['serve'])"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2
    assert (
        p.stderr.strip() == "error: callm serve needs the serve extra: pip install 'callm[serve]'"
    )
