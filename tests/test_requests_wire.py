"""Issue 13 through a loopback server: the exact bodies `callm chat` sends for typed options,
ranges, api-versions, roles, structured output and attachments, and what the user sees."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from loopback import Loopback, Reply, chat_reply, json_reply
from test_request_specs import PDF, png

FAKE_KEY = "sk-test-FAKE-requests-0000"


@pytest.fixture
def srv() -> Iterator[Loopback]:
    with Loopback() as s:
        yield s


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_TEST_KEY", FAKE_KEY)


def configure(env: Any, name: str, driver: str, base_url: str, extra: str = "") -> None:
    env.write_config(
        f'[providers.{name}]\ndriver = "{driver}"\nbase_url = "{base_url}"\n'
        f'key_env = "CALLM_TEST_KEY"\n{extra}'
        "[retry]\nattempts = 1\nbase_delay = 0\n"
    )


def body(srv: Loopback, i: int = -1) -> Any:
    return json.loads(srv.requests[i].body)


# ---- options, ranges, versions, roles, usage -------------------------------------------------


def test_o_sends_strings_and_o_colon_equals_sends_json(cli, isolated_env, srv) -> None:
    srv.route("/v1/chat/completions", chat_reply())
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    r = cli(
        "chat", "-m", "lab/gpt-x", "--no-stream", "-o", "user=12345", "-o", "stop=2024",
        "-o", "seed:=42", "-o", "logit_bias:={\"50256\": -100}", "-o", "top_p=0.5", "hi",
    )  # fmt: skip
    assert r.code == 0, r.output
    assert body(srv) == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "user": "12345",
        "stop": "2024",
        "seed": 42,
        "logit_bias": {"50256": -100},
        "top_p": 0.5,  # a known number: read as one
    }


def test_bad_typed_option_is_a_usage_error(cli, isolated_env, srv) -> None:
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    r = cli("chat", "-m", "lab/gpt-x", "-o", "seed:=nope", "hi")
    assert r.code == 2 and "-o seed:= wants a JSON value" in r.stderr
    r = cli("chat", "-m", "lab/gpt-x", "-o", "top_p=lots", "hi")
    assert r.code == 2 and "option top_p must be a number, not 'lots'" in r.stderr
    assert srv.requests == []


def test_temperature_above_anthropic_maximum_is_refused_before_sending(
    cli, isolated_env, srv
) -> None:
    configure(isolated_env, "claude", "anthropic", f"{srv.url}/v1")
    r = cli("chat", "-m", "claude/claude-x", "--temperature", "1.5", "hi")
    assert r.code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "error: temperature 1.5 is out of range for anthropic: 0 to 1"
    assert srv.requests == []


def test_responses_max_tokens_below_16_is_refused_and_the_probe_sends_16(
    cli, isolated_env, srv
) -> None:
    done = {
        "id": "r1",
        "object": "response",
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "OK"}]}],
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    srv.route("/v1/responses", json_reply(done))
    srv.route("/v1/models", json_reply({"data": [{"id": "gpt-r"}]}))
    configure(isolated_env, "resp", "openai-responses", f"{srv.url}/v1")
    r = cli("chat", "-m", "resp/gpt-r", "--max-tokens", "5", "hi")
    assert r.code == 2 and "minimum for openai-responses: 16" in r.stderr
    assert srv.requests == []
    r = cli("providers", "verify", "resp", "--probe", "gpt-r", "--json")
    assert r.code == 0, r.output
    sent = [json.loads(s.body) for s in srv.requests if s.path.endswith("/responses")]
    assert sent == [
        {
            "model": "gpt-r",
            "input": [{"role": "user", "content": sent[0]["input"][0]["content"]}],
            "max_output_tokens": 16,
            "stream": False,
            "store": False,
        }
    ]


SSE_OK = (
    'data: {"id":"c","choices":[{"index":0,"delta":{"content":"OK"},"finish_reason":null}]}\n\n'
    'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)


@pytest.mark.parametrize(
    ("version", "expect"),
    [
        ("2024-06-01", {"max_tokens": 50}),
        ("2024-10-21", {"max_completion_tokens": 50, "stream_options": {"include_usage": True}}),
    ],
)
def test_azure_fields_follow_the_api_version(
    cli, isolated_env, srv, version: str, expect: dict[str, Any]
) -> None:
    path = "/openai/deployments/dep/chat/completions"
    srv.route(path, Reply(200, SSE_OK, {"content-type": "text/event-stream"}))
    configure(isolated_env, "az", "azure-openai", srv.url, f'api_version = "{version}"\n')
    r = cli("chat", "-m", "az/dep", "--max-tokens", "50", "-s", "Be brief.", "hi")
    assert r.code == 0, r.output
    assert srv.requests[-1].query == {"api-version": version}
    assert body(srv) == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        **expect,
    }


def test_ollama_logprobs_are_top_level_fields(cli, isolated_env, srv) -> None:
    reply = {
        "model": "llama3",
        "message": {"role": "assistant", "content": "OK"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 1,
    }
    srv.route("/api/chat", json_reply(reply))
    configure(isolated_env, "local", "ollama", srv.url)
    r = cli(
        "chat", "-m", "local/llama3", "--no-stream", "-o", "logprobs:=true",
        "-o", "top_logprobs=3", "-o", "num_ctx=4096", "hi",
    )  # fmt: skip
    assert r.code == 0, r.output
    assert body(srv) == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "logprobs": True,
        "top_logprobs": 3,
        "options": {"num_ctx": 4096},
    }


@pytest.mark.parametrize(
    ("model", "role"),
    [
        ("o3-mini", "developer"),
        ("gpt-5.1", "developer"),
        ("o1-mini", "system"),
        ("gpt-4o", "system"),
    ],
)
def test_reasoning_models_get_the_system_prompt_as_developer(
    cli, isolated_env, srv, model: str, role: str
) -> None:
    srv.route("/v1/chat/completions", chat_reply())
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    r = cli("chat", "-m", f"lab/{model}", "--no-stream", "-s", "Be terse.", "hi")
    assert r.code == 0, r.output
    assert body(srv)["messages"] == [
        {"role": role, "content": "Be terse."},
        {"role": "user", "content": "hi"},
    ]


def test_negative_usage_is_not_trusted_and_totals_stay_positive(cli, isolated_env, srv) -> None:
    srv.route(
        "/v1/chat/completions",
        chat_reply("Hello there", {"prompt_tokens": -50, "completion_tokens": -7}),
    )
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    r = cli("chat", "-m", "lab/gpt-x", "--no-stream", "--json", "hi")
    assert r.code == 0, r.output
    usage = json.loads(r.stdout)["usage"]
    assert usage["source"] == "estimated"
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    rep = cli("usage", "report", "--json")
    assert rep.code == 0, rep.output
    totals = json.loads(rep.stdout)["totals"]
    assert (totals["input_tokens"], totals["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )


# ---- structured output -----------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def test_schema_goes_as_strict_json_schema_and_the_reply_is_parsed(cli, isolated_env, srv) -> None:
    srv.route("/v1/chat/completions", chat_reply('{"name": "Ada", "age": 36}'))
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    r = cli("chat", "-m", "lab/gpt-x", "--no-stream", "--schema", "name, age int", "a person")
    assert r.code == 0, r.output
    assert json.loads(r.stdout) == {"name": "Ada", "age": 36}
    assert body(srv)["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "output",
            "strict": True,
            "schema": {**PERSON, "additionalProperties": False},
        },
    }


def test_schema_violation_exits_1_with_kind_schema(cli, isolated_env, srv, tmp_path) -> None:
    srv.route("/v1/chat/completions", chat_reply('{"name": "Ada", "age": "old"}'))
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(PERSON))
    r = cli("chat", "-m", "lab/gpt-x", "--no-stream", "--schema", str(schema), "a person")
    assert r.code == 1
    assert r.stdout == ""  # the raw text stays out of stdout
    assert "does not match the schema: $.age: 'old' is not of type 'integer'" in r.stderr
    r = cli("chat", "-m", "lab/gpt-x", "--no-stream", "--json", "--schema", str(schema), "x")
    out = json.loads(r.stdout)
    assert r.code == 1 and out["error"]["kind"] == "schema"
    assert out["text"] == '{"name": "Ada", "age": "old"}' and "parsed" not in out


def test_schema_reply_that_is_not_json(cli, isolated_env, srv) -> None:
    srv.route("/v1/chat/completions", chat_reply("Sure! Ada, 36."))
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    r = cli("chat", "-m", "lab/gpt-x", "--no-stream", "--schema", "name, age int", "x")
    assert r.code == 1 and "the reply is not valid JSON" in r.stderr


def anthropic_reply(content: list[dict[str, Any]], stop: str = "end_turn") -> Reply:
    return json_reply(
        {
            "id": "m1",
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )


def test_anthropic_schema_native_or_forced_tool(cli, isolated_env, srv) -> None:
    srv.route(
        "/v1/messages",
        anthropic_reply([{"type": "text", "text": '{"name": "Ada", "age": 36}'}]),
        anthropic_reply(
            [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "json_output",
                    "input": {"name": "Bo", "age": 9},
                }
            ],
            "tool_use",
        ),
    )
    configure(isolated_env, "claude", "anthropic", f"{srv.url}/v1")
    args = ["--no-stream", "--schema", "name, age int", "a person"]
    r = cli("chat", "-m", "claude/claude-sonnet-4-5", *args)
    assert r.code == 0, r.output
    assert json.loads(r.stdout) == {"name": "Ada", "age": 36}
    sent = body(srv)
    assert sent["output_format"] == {
        "type": "json_schema",
        "schema": {**PERSON, "additionalProperties": False},
    }
    assert srv.requests[-1].header("anthropic-beta") == "structured-outputs-2025-11-13"
    r = cli("chat", "-m", "claude/claude-3-5-haiku-20241022", *args)
    assert r.code == 0, r.output
    assert json.loads(r.stdout) == {"name": "Bo", "age": 9}
    sent = body(srv)
    assert sent["tools"] == [
        {
            "name": "json_output",
            "description": "Reply by calling this tool with the answer.",
            "input_schema": PERSON,
        }
    ]
    assert sent["tool_choice"] == {"type": "tool", "name": "json_output"}
    assert "output_format" not in sent


def test_gemini_ollama_and_responses_schema_fields(cli, isolated_env, srv) -> None:
    gem = {
        "candidates": [
            {"content": {"parts": [{"text": '{"name":"A","age":1}'}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
    }
    srv.route("/v1beta/models/g:generateContent", json_reply(gem))
    configure(isolated_env, "gem", "gemini", f"{srv.url}/v1beta")
    r = cli("chat", "-m", "gem/g", "--no-stream", "--schema", "name, age int", "x")
    assert r.code == 0, r.output
    assert body(srv)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"}},
            "required": ["name", "age"],
        },
    }


# ---- attachments -----------------------------------------------------------------------------


def test_attachments_in_each_vendor_format(cli, isolated_env, srv, tmp_path) -> None:
    img = tmp_path / "photo.bin"  # the name says nothing: the bytes do
    img.write_bytes(png(640, 480))
    doc = tmp_path / "paper.pdf"
    doc.write_bytes(PDF.data)
    b64_img = base64.b64encode(img.read_bytes()).decode()
    b64_pdf = base64.b64encode(PDF.data).decode()
    srv.route("/v1/chat/completions", chat_reply())
    configure(isolated_env, "lab", "openai", f"{srv.url}/v1")
    r = cli("chat", "-m", "lab/gpt-x", "--no-stream", "-a", str(img), "-a", str(doc), "what?")
    assert r.code == 0, r.output
    assert body(srv)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64_img}"}},
                {
                    "type": "file",
                    "file": {
                        "filename": "paper.pdf",
                        "file_data": f"data:application/pdf;base64,{b64_pdf}",
                    },
                },
            ],
        }
    ]
    srv.route("/v1/messages", anthropic_reply([{"type": "text", "text": "OK"}]))
    configure(isolated_env, "claude", "anthropic", f"{srv.url}/v1")
    r = cli("chat", "-m", "claude/claude-x", "--no-stream", "-a", str(img), "-a", str(doc), "what?")
    assert r.code == 0, r.output
    assert body(srv)["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64_img}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": b64_pdf},
            "title": "paper.pdf",
        },
        {"type": "text", "text": "what?"},
    ]


def test_ollama_images_gemini_inline_data_and_responses_parts(
    cli, isolated_env, srv, tmp_path
) -> None:
    img = tmp_path / "x.png"
    img.write_bytes(png())
    b64_img = base64.b64encode(img.read_bytes()).decode()
    srv.route(
        "/api/chat",
        json_reply({"message": {"role": "assistant", "content": "OK"}, "done": True}),
    )
    configure(isolated_env, "local", "ollama", srv.url)
    r = cli("chat", "-m", "local/llava", "--no-stream", "-a", str(img), "what?")
    assert r.code == 0, r.output
    assert body(srv)["messages"] == [{"role": "user", "content": "what?", "images": [b64_img]}]
    r = cli("chat", "-m", "local/llava", "-a", str(tmp_path / "missing.pdf"), "x")
    assert r.code == 2 and "cannot read attachment" in r.stderr
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(PDF.data)
    r = cli("chat", "-m", "local/llava", "-a", str(pdf), "x")
    assert r.code == 2 and "ollama does not take PDF attachments" in r.stderr

    gem = {"candidates": [{"content": {"parts": [{"text": "OK"}]}, "finishReason": "STOP"}]}
    srv.route("/v1beta/models/g:generateContent", json_reply(gem))
    configure(isolated_env, "gem", "gemini", f"{srv.url}/v1beta")
    r = cli("chat", "-m", "gem/g", "--no-stream", "-a", str(img), "what?")
    assert r.code == 0, r.output
    assert body(srv)["contents"] == [
        {
            "role": "user",
            "parts": [
                {"inlineData": {"mimeType": "image/png", "data": b64_img}},
                {"text": "what?"},
            ],
        }
    ]

    done = {"status": "completed", "output": [], "usage": {"input_tokens": 1, "output_tokens": 1}}
    srv.route("/v1/responses", json_reply(done))
    configure(isolated_env, "resp", "openai-responses", f"{srv.url}/v1")
    cli("chat", "-m", "resp/r", "--no-stream", "-a", str(img), "what?")
    assert body(srv)["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what?"},
                {
                    "type": "input_image",
                    "image_url": f"data:image/png;base64,{b64_img}",
                    "detail": "auto",
                },
            ],
        }
    ]


def test_model_without_vision_is_refused_unknown_model_is_not(
    cli, isolated_env, srv, tmp_path
) -> None:
    img = tmp_path / "x.png"
    img.write_bytes(png())
    srv.route("/v1/chat/completions", chat_reply())
    configure(isolated_env, "deepseek", "openai-compatible", f"{srv.url}/v1")
    r = cli("chat", "-m", "deepseek/deepseek-v4-pro", "-a", str(img), "what?")
    assert r.code == 2
    assert "deepseek/deepseek-v4-pro cannot take images or PDFs" in r.stderr
    assert srv.requests == []
    r = cli("chat", "-m", "deepseek/some-new-model", "--no-stream", "-a", str(img), "what?")
    assert r.code == 0, r.output


def test_unsupported_and_oversized_attachments(cli, isolated_env, srv, tmp_path) -> None:
    blob = tmp_path / "x.bin"
    blob.write_bytes(b"\x00\x01\x02binary")
    configure(isolated_env, "claude", "anthropic", f"{srv.url}/v1")
    r = cli("chat", "-m", "claude/claude-x", "-a", str(blob), "x")
    assert r.code == 2 and "unsupported file type" in r.stderr
    big = tmp_path / "big.png"
    big.write_bytes(png() + b"\x00" * (5 * 1024 * 1024 + 1))
    r = cli("chat", "-m", "claude/claude-x", "-a", str(big), "x")
    assert r.code == 2 and "anthropic takes image files up to 5 MB" in r.stderr
    assert srv.requests == []


def test_attachments_count_in_the_estimate(cli, isolated_env, tmp_path) -> None:
    img = tmp_path / "x.png"
    img.write_bytes(png(1024, 1024))
    r = cli("chat", "-m", "sim", "--estimate", "--json", "hi")
    base = json.loads(r.stdout)["input_tokens"]
    r = cli("chat", "-m", "sim", "--estimate", "--json", "-a", str(img), "hi")
    assert json.loads(r.stdout)["input_tokens"] == base + 258


def test_attachment_token_rules() -> None:
    from callm.attachments import attachment_tokens
    from callm.types import Attachment

    a = Attachment("x.png", "image/png", b"", 1024, 1024)
    assert attachment_tokens("openai", a) == 85 + 170 * 4  # 768x768: 2x2 tiles
    assert attachment_tokens("anthropic", a) == 1399  # 1024*1024/750, rounded up
    assert attachment_tokens("gemini", a) == 258


# ---- offline -----------------------------------------------------------------------------------


def test_sim_answers_valid_json_for_a_schema(cli) -> None:
    r = cli("chat", "-m", "sim", "--schema", "name, age int, tall bool", "a person")
    assert r.code == 0, r.output
    obj = json.loads(r.stdout)
    assert set(obj) == {"name", "age", "tall"}
    assert isinstance(obj["name"], str) and type(obj["age"]) is int and type(obj["tall"]) is bool


def test_pdf_on_stdin_with_a_schema_file(cli, tmp_path) -> None:
    schema = tmp_path / "invoice.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {
                    "total": {"type": "number", "minimum": 0},
                    "lines": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["total", "lines"],
            }
        )
    )
    r = cli.sub(
        "chat", "-m", "sim", "-a", "-", "--schema", str(schema), "extract", stdin=PDF.data.decode()
    )
    assert r.code == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["total"] >= 0 and isinstance(obj["lines"], list)


def test_azure_old_api_version_gets_json_mode_and_the_schema_in_words(
    cli, isolated_env, srv
) -> None:
    srv.route("/openai/deployments/dep/chat/completions", chat_reply('{"name": "A", "age": 3}'))
    configure(isolated_env, "az", "azure-openai", srv.url, 'api_version = "2024-06-01"\n')
    r = cli("chat", "-m", "az/dep", "--no-stream", "--schema", "name, age int", "x")
    assert r.code == 0, r.output
    assert json.loads(r.stdout) == {"name": "A", "age": 3}
    sent = body(srv)
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][0]["content"].startswith("Reply with one JSON object")
    assert '"required":["name","age"]' in sent["messages"][0]["content"]


def test_sim_numbers_given_as_strings(cli) -> None:
    r = cli("chat", "-m", "sim", "--json", "-o", "length=5", "-o", "seed=3", "hi")
    assert r.code == 0, r.output
    assert json.loads(r.stdout)["usage"]["output_tokens"] == 5
    r = cli("chat", "-m", "sim", "-o", "length=five", "hi")
    assert r.code == 2 and "length must be a number" in r.stderr


def test_unreadable_usage_from_anthropic_is_estimated_not_a_failure(cli, isolated_env, srv) -> None:
    reply = {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello there"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": "5", "cache_read_input_tokens": 2, "output_tokens": -3},
    }
    srv.route("/v1/messages", json_reply(reply))
    configure(isolated_env, "claude", "anthropic", f"{srv.url}/v1")
    r = cli("chat", "-m", "claude/claude-x", "--no-stream", "--json", "hi")
    assert r.code == 0, r.output
    out = json.loads(r.stdout)
    assert out["text"] == "Hello there"
    assert out["usage"]["source"] == "estimated" and out["usage"]["output_tokens"] > 0
