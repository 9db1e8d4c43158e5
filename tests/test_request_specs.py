"""Every request body each driver builds, over a matrix of flags, validated against the
vendor's published request schema (tests/specs/, see its NOTICE). A body a spec rejects
fails the build. The same checks that the engine runs first (drivers.limits) run here too."""

from __future__ import annotations

import itertools
import json
import struct
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from callm.drivers import get_driver
from callm.drivers.limits import check_request
from callm.errors import UsageError
from callm.schema_output import concise_schema
from callm.types import Attachment, ChatRequest, Endpoint, Message

SPECS = Path(__file__).parent / "specs"


def png(w: int = 3, h: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


PNG = Attachment("dot.png", "image/png", png(), 3, 2)
PDF = Attachment("a.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj<</Type /Page>>endobj\n", pages=1)
TXT = Attachment("notes.txt", "text/plain", "línea one\nline two\n".encode())

# driver -> (spec file, endpoint, options a user might pass with -o, as -o would send them)
CASES: dict[str, tuple[str, Endpoint, dict[str, Any]]] = {
    "openai": (
        "openai-chat-request",
        Endpoint("openai", "openai", "https://api.openai.com/v1", key="sk-test-1"),
        {"user": "12345", "stop": "2024", "seed": 42, "top_p": "0.9", "logprobs": True},
    ),
    "openai-compatible": (
        "openai-chat-request",
        Endpoint("lab", "openai-compatible", "http://127.0.0.1:9/v1"),
        {"user": "12345", "presence_penalty": "0.5", "include_usage": "false"},
    ),
    "openai-responses": (
        "openai-responses-request",
        Endpoint("resp", "openai-responses", "https://api.openai.com/v1", key="sk-test-1"),
        {"user": "12345", "top_p": "0.5", "reasoning": {"effort": "low"}},
    ),
    "anthropic": (
        "anthropic-messages-request",
        Endpoint("anthropic", "anthropic", "https://api.anthropic.com/v1", key="sk-ant-test"),
        {"top_k": "5", "stop_sequences": ["END"], "metadata": {"user_id": "12345"}},
    ),
    "anthropic@structured-output": (
        "anthropic-messages-request",
        Endpoint("anthropic", "anthropic", "https://api.anthropic.com/v1", key="sk-ant-test"),
        {"top_p": "0.9"},
    ),
    "gemini": (
        "gemini-generate-content-request",
        Endpoint("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta", key="g"),
        {"top_k": "40", "top_p": "0.9", "stop_sequences": ["END"], "candidate_count": "1"},
    ),
    "ollama": (
        "ollama-chat-request",
        Endpoint("ollama", "ollama", "http://127.0.0.1:11434"),
        {"num_ctx": "8192", "logprobs": True, "top_logprobs": 3, "keep_alive": "5m"},
    ),
    "azure-openai": (
        "openai-chat-request",
        Endpoint("az", "azure-openai", "https://r.openai.azure.com", key="az-test"),
        {"user": "12345", "seed": "3"},
    ),
    "azure-openai@v1": (
        "openai-chat-request",
        Endpoint("az", "azure-openai", "https://r.openai.azure.com/openai/v1", key="az-test"),
        {"user": "12345"},
    ),
    "azure-openai@2024-06-01": (
        "azure-2024-06-01-chat-request",
        Endpoint(
            "az", "azure-openai", "https://r.openai.azure.com", key="az", api_version="2024-06-01"
        ),
        {"user": "12345", "seed": "3"},
    ),
}
MODELS = {"openai": "o3-mini", "anthropic": "claude-3-5-haiku-20241022"}
SCHEMA = concise_schema("name, age int: years, score float, ok bool")
NESTED = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
        "note": {"type": "string"},
    },
    "required": ["items"],
}


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SPECS / f"{name}.json").read_text()))


def _body(driver: str, ep: Endpoint, req: ChatRequest) -> Any:
    req = check_request(ep.driver, req)  # what the engine does before building a request
    body = get_driver(ep.driver).chat_request(ep, req).json
    if driver == "azure-openai" and "model" not in body:
        body = {**body, "model": req.model}  # the v1-style spec wants it; Azure takes the path
    return body


def _matrix(driver: str) -> list[dict[str, Any]]:
    # Ollama takes no PDFs; nor do Azure's dated api-versions (text and image_url parts only)
    pdf_ok = driver != "ollama" and driver not in ("azure-openai", "azure-openai@2024-06-01")
    files = (PNG, PDF, TXT) if pdf_ok else (PNG, TXT)
    axes = {
        "system": (None, "Answer briefly."),
        "temperature": (None, 0.7),
        "max_tokens": (None, 16, 300),
        "options": (False, True),
        "stream": (True, False),
        "schema": (None, SCHEMA, NESTED),
        "attachments": ((), files),
    }
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def _errors(spec: str, body: Any) -> str | None:
    err = best_match(validator(spec).iter_errors(body))
    if err is None:
        return None
    return f"{list(err.absolute_path)}: {err.message[:300]}"


@pytest.mark.parametrize("driver", list(CASES))
def test_every_request_body_matches_the_vendor_spec(driver: str) -> None:
    spec, ep, options = CASES[driver]
    model = MODELS.get(ep.driver, "model-x")
    if driver == "anthropic@structured-output":
        model = "claude-sonnet-4-5"  # output_format rather than a forced tool
    failures = []
    for flags in _matrix(driver):
        req = ChatRequest(
            model=model,
            messages=(Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Go")),
            system=flags["system"],
            temperature=flags["temperature"],
            max_tokens=flags["max_tokens"],
            stream=flags["stream"],
            options=dict(options) if flags["options"] else {},
            schema=flags["schema"],
            attachments=flags["attachments"],
        )
        problem = _errors(spec, _body(driver, ep, req))
        if problem:
            failures.append(f"{flags | {'attachments': len(flags['attachments'])}} -> {problem}")
    assert not failures, f"{len(failures)} bodies rejected, first: {failures[0]}"


def test_the_schemas_reject_what_the_issue_found() -> None:
    """The vendored specs do catch the requests callm used to send."""
    assert _errors("openai-responses-request", {"model": "m", "input": "x", "max_output_tokens": 1})
    assert _errors("openai-chat-request", {"model": "m", "messages": [], "user": 12345})
    assert _errors(
        "anthropic-messages-request",
        {"model": "m", "max_tokens": 5, "messages": [], "temperature": 1.5},
    )
    msgs = [{"role": "user", "content": "hi"}]
    assert _errors("azure-2024-06-01-chat-request", {"messages": msgs, "max_completion_tokens": 5})
    assert _errors(
        "azure-2024-06-01-chat-request",
        {"messages": msgs, "stream_options": {"include_usage": True}},
    )
    assert _errors(
        "gemini-generate-content-request", {"contents": [], "generationConfig": {"maxTokens": 5}}
    )
    assert not _errors("azure-2024-06-01-chat-request", {"messages": msgs, "max_tokens": 5})


@pytest.mark.parametrize(
    ("driver", "kw", "limit"),
    [
        ("anthropic", {"temperature": 1.5}, "0 to 1"),
        ("openai", {"temperature": 2.5}, "0 to 2"),
        ("openai", {"options": {"top_p": "1.5"}}, "0 to 1"),
        ("gemini", {"options": {"top_p": 2}}, "0 to 1"),
        ("openai-responses", {"max_tokens": 1}, "minimum for openai-responses: 16"),
        ("openai-responses", {"options": {"max_output_tokens": "8"}}, "8 is below the minimum"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_limit(
    driver: str, kw: dict[str, Any], limit: str
) -> None:
    req = ChatRequest(model="m", messages=(Message("user", "hi"),), **kw)
    with pytest.raises(UsageError) as info:
        check_request(driver, req)
    assert limit in info.value.message and "\n" not in info.value.message
