"""Replays EVERY recorded chat interaction in tests/conformance/cases through a real HTTP
server on 127.0.0.1 (same status, headers, body) and checks callm's whole path against the
recording's independent `expect`: request building, HTTP, framing, parsing, error mapping."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from callm.call_types import CallSpec
from callm.config.schema import Config
from callm.engine import call
from callm.types import Message
from conformance_data import Interaction, interactions
from replay_server import Reply, serving

# recorded wire -> (callm driver, path callm must call, relative to the base URL)
WIRES: dict[str, str] = {
    "openai-chat": "openai-compatible",
    "openai-responses": "openai-responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "ollama-chat": "ollama",
    "ollama-generate": "ollama",
}
CHAT_CASES = [
    pytest.param(it, id=it.id)
    for it in interactions()
    if it.expect and it.expect.get("wire") in WIRES
]
FAKE_KEY = "sk-test-FAKE-conf-0000"


def _is_stream(it: Interaction) -> bool:
    body = it.request.get("json") or {}
    if it.expect and it.expect.get("wire") == "gemini":
        return "streamGenerateContent" in it.request["url"]
    if it.expect and it.expect.get("wire", "").startswith("ollama"):
        return bool(body.get("stream", True))
    return bool(body.get("stream", False))


def _base_path(it: Interaction) -> str:
    """The recorded URL's path up to the endpoint, so the base URL mirrors the vendor's."""
    path = urlsplit(it.request["url"]).path
    if not path.startswith("/"):  # a scrubbed host such as <SCRUBBED_OLLAMA_API_URL>/api/chat
        path = "/" + path.split("/", 1)[1] if "/" in path else ""
    for tail in ("/chat/completions", "/responses", "/messages", "/models/", "/api/"):
        if tail in path:
            return path[: path.index(tail)]
    return ""


def _replay(it: Interaction, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    monkeypatch.setenv("CALLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CALLM_REC_KEY", FAKE_KEY)
    resp = it.response
    wire = it.expect["wire"]  # type: ignore[index]
    reply = Reply(resp["status"], dict(resp["headers"]), it.body_bytes)
    with serving(reply) as srv:
        cfg = Config.from_dict(
            {
                "providers": {
                    "rec": {
                        "driver": WIRES[wire],
                        "base_url": srv.url + _base_path(it),
                        "key_env": "CALLM_REC_KEY",
                    }
                },
                "retry": {"attempts": 1},
            }
        )
        model = _recorded_model(it)
        events: list[Any] = []
        spec = CallSpec(
            model=f"rec/{model}",
            messages=[Message("user", "Say hello")],
            stream=_is_stream(it),
        )
        outcome = call(cfg, spec, events.append, lambda _msg: None)
        return outcome, srv.seen


def _recorded_model(it: Interaction) -> str:
    body = it.request.get("json") or {}
    if body.get("model"):
        return str(body["model"])
    path = urlsplit(it.request["url"]).path
    if "/models/" in path:  # gemini: /v1beta/models/{model}:method
        return path.split("/models/", 1)[1].split(":", 1)[0]
    return "recorded-model"


@pytest.mark.parametrize("it", CHAT_CASES)
def test_recorded_interaction(
    it: Interaction, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    exp = it.expect
    assert exp is not None
    outcome, seen = _replay(it, monkeypatch, tmp_path)
    assert len(seen) == 1, "callm must make exactly one request (no retries here)"
    _check_request(it, seen[0])
    r = outcome.result
    if exp.get("error") == "mid_stream":
        assert outcome.error is not None and outcome.error.kind == "mid_stream", outcome.error
        assert r.text == exp["partial_text"]
        return
    if "error" in exp:
        err = outcome.error
        assert err is not None, f"expected {exp['error']}, got text {r.text!r}"
        assert err.kind == exp["error"], err.one_line()
        assert getattr(err, "retry_after", None) == exp.get("retry_after_s")
        assert FAKE_KEY not in err.one_line()
        return
    assert outcome.error is None, outcome.error.one_line()
    assert r.text == exp["text"]
    assert r.finish_reason == exp["finish"]
    assert [t.name for t in r.tool_calls] == exp["tool_calls"]
    assert outcome.usage_source == "reported"
    assert outcome.usage.input_tokens == exp["input_tokens"]
    assert outcome.usage.output_tokens == exp["output_tokens"]
    if "refusal" in exp:
        assert r.refusal == exp["refusal"]


def _check_request(it: Interaction, seen: Any) -> None:
    """Same endpoint and the same top-level fields as the vendor's documented request."""
    recorded_path = urlsplit(it.request["url"]).path
    if it.expect["wire"] == "ollama-generate":  # type: ignore[index]
        assert seen.path.startswith("/api/chat")  # callm always uses /api/chat
        return
    last = recorded_path.rsplit("/", 1)[-1]
    # gemini names the method after a colon (models/{m}:streamGenerateContent); compare that
    tail = ":" + last.split(":", 1)[1] if ":" in last else last
    assert seen.path.split("?")[0].endswith(tail), (seen.path, recorded_path)
    assert FAKE_KEY not in seen.path, "keys never go in URLs"
    sent = seen.json or {}
    recorded = it.request.get("json") or {}
    core = {"model", "messages", "contents", "input", "stream"} & set(recorded)
    missing = {k for k in core if k not in sent and not (k == "model" and "contents" in sent)}
    missing.discard("stream")  # gemini/ollama signal streaming in the URL / default
    assert not missing, f"request lacks {missing}"
