"""AzureOpenAIDriver: deployment URLs, api-key auth, api-version, and the OpenAI parser reused
on recorded OpenAI-format replies (including the Azure-hosted 429)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from driver_replay import (
    Interaction,
    cases,
    chunkings,
    expected_reading,
    interactions,
    reading,
    run_stream,
)

from callm.drivers import get_driver
from callm.drivers.azure import DEFAULT_API_VERSION, DEPLOYMENTS_API_VERSION, AzureOpenAIDriver
from callm.drivers.openai import ChatStreamParser, OpenAIChatDriver
from callm.errors import MissingKeyError, RateLimitError
from callm.types import ChatRequest, Endpoint, Message

D = AzureOpenAIDriver()
EP = Endpoint(
    "azure-openai", "azure-openai", "https://res.openai.azure.com", key="az-key-0123456789"
)


def _req(**kw: Any) -> ChatRequest:
    base: dict[str, Any] = {"model": "my-gpt4o", "messages": (Message("user", "Hi"),)}
    base.update(kw)
    return ChatRequest(**base)


def test_registry_and_reuse() -> None:
    d = get_driver("azure-openai")
    assert type(d) is AzureOpenAIDriver and d.name == "azure-openai" and d.local is False
    assert isinstance(d, OpenAIChatDriver)  # parser, errors and listings are OpenAI's
    assert type(d.stream_parser()) is ChatStreamParser


def test_chat_request_shape() -> None:
    ep = Endpoint(EP.name, EP.driver, EP.base_url + "/", key=EP.key, headers={"X-Trace": "1"})
    r = D.chat_request(ep, _req(system="sys", temperature=0.1, max_tokens=20))
    assert r.method == "POST"
    assert r.url == (
        "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions"
        f"?api-version={DEFAULT_API_VERSION}"
    )
    assert r.headers["api-key"] == "az-key-0123456789"
    assert "Authorization" not in r.headers
    assert r.headers["X-Trace"] == "1"
    assert "model" not in r.json
    assert r.json["messages"][0] == {"role": "system", "content": "sys"}
    assert r.json["max_completion_tokens"] == 20 and r.json["temperature"] == 0.1
    assert r.json["stream"] is True and r.json["stream_options"] == {"include_usage": True}
    assert "az-key" not in repr(r)


def test_api_version_and_base_forms() -> None:
    ep = Endpoint("a", "azure-openai", "https://res.openai.azure.com/openai/", key="k",
                  api_version="2025-01-01-preview")  # fmt: skip
    r = D.chat_request(ep, _req(model="dep name/x", stream=False))
    assert r.url == (
        "https://res.openai.azure.com/openai/deployments/dep%20name%2Fx/chat/completions"
        "?api-version=2025-01-01-preview"
    )
    assert "stream_options" not in r.json


def test_v1_base_url_uses_openai_paths() -> None:
    ep = Endpoint("a", "azure-openai", "https://res.openai.azure.com/openai/v1", key="k")
    r = D.chat_request(ep, _req())
    assert r.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert r.json["model"] == "my-gpt4o" and r.headers["api-key"] == "k"
    assert D.models_request(ep).url == "https://res.openai.azure.com/openai/v1/models"


def test_key_is_required() -> None:
    with pytest.raises(MissingKeyError):
        D.chat_request(Endpoint("a", "azure-openai", EP.base_url), _req())


def test_models_request_lists_deployments() -> None:
    r = D.models_request(EP)
    assert r.method == "GET"
    assert r.url == (
        f"https://res.openai.azure.com/openai/deployments?api-version={DEPLOYMENTS_API_VERSION}"
    )
    assert r.headers == {"api-key": "az-key-0123456789"}


def test_deployment_listing_shape() -> None:
    """The documented deployments list: id is the deployment, model the underlying one."""
    body = json.dumps(
        {
            "data": [
                {"id": "chat-prod", "model": "gpt-4o", "status": "succeeded", "object": "x"},
                {"id": "embed", "model": "text-embedding-3-small", "status": "succeeded"},
            ],
            "object": "list",
        }
    ).encode()
    models, token = D.parse_models(EP, body)
    assert token is None
    assert [(m.id, m.extra["model"]) for m in models] == [
        ("chat-prod", "gpt-4o"),
        ("embed", "text-embedding-3-small"),
    ]


@pytest.mark.parametrize("it", cases(["openai-chat"], provider="azure-ai-foundry"))
def test_recorded_azure_rate_limit(it: Interaction) -> None:
    resp = it.response
    err = D.parse_error(resp["status"], resp["headers"], it.body_bytes)
    assert isinstance(err, RateLimitError)
    assert err.kind == it.expect["error"] and err.retry_after == it.expect["retry_after_s"]


@pytest.mark.parametrize(
    "it",
    [
        p
        for p in cases(["openai-chat"], provider="openai")
        if p.values[0].response["status"] < 300 and p.values[0].expect.get("stream")
    ],
)
def test_openai_format_streams_parse_the_same(it: Interaction) -> None:
    for name, chunks in chunkings(it.body_bytes):
        assert reading(run_stream(D.stream_parser, chunks)) == expected_reading(it.expect), name


def test_prompt_filter_chunk_and_content_filter_finish() -> None:
    """Azure's first chunk has empty choices and prompt_filter_results; a filtered answer
    ends with finish_reason content_filter."""
    chunks = [
        {"choices": [], "prompt_filter_results": [{"prompt_index": 0}], "model": ""},
        {"choices": [{"index": 0, "delta": {"content": "Sorry"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                      "content_filter_results": {"hate": {"filtered": True}}}]},
    ]  # fmt: skip
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    r = run_stream(D.stream_parser, [body + b"data: [DONE]\n\n"])
    assert (r.text, r.finish_reason) == ("Sorry", "content_filter")


def test_listing_parser_reads_the_openai_recording() -> None:
    it = next(i for i in interactions("models") if i.provider == "openai")
    models, _ = D.parse_models(EP, it.body_bytes)
    assert (len(models), models[0].id) == (it.expect["models"], it.expect["first"])
