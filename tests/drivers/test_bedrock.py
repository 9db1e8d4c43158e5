"""BedrockDriver: request shape, event-stream frames split at every byte, in-stream
exceptions, replies, errors and the control-plane listing. (End to end with signing:
tests/e2e/test_bedrock_cli.py.)"""

from __future__ import annotations

import json

import pytest

from aws_fake import event, exception, frame, profiles_page, text_stream
from callm.drivers import get_driver
from callm.drivers.base import StreamAccumulator
from callm.drivers.bedrock import BedrockDriver, BedrockStreamParser, control_plane
from callm.errors import (
    AuthError,
    BadRequestError,
    BadResponseError,
    CallmError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
    UsageError,
)
from callm.types import (
    AwsSigning,
    ChatRequest,
    Endpoint,
    Finished,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)

BASE = "https://bedrock-runtime.eu-west-1.amazonaws.com"
EP = Endpoint("bedrock", "bedrock", BASE, region="eu-west-1", profile="work")
KEYED = Endpoint("bedrock", "bedrock", BASE, key="bedrock-api-key-FAKE", region="eu-west-1")
D = BedrockDriver()


def _req(**kw: object) -> ChatRequest:
    base: dict[str, object] = {
        "model": "anthropic.claude-haiku-4-5-20251001-v1:0",
        "messages": (Message("user", "Hi"),),
    }
    base.update(kw)
    return ChatRequest(**base)  # type: ignore[arg-type]


def _fold(events: list[object]) -> StreamAccumulator:
    acc = StreamAccumulator()
    for ev in events:
        acc.add(ev)  # type: ignore[arg-type]
    return acc


# ---- requests ------------------------------------------------------------------------------


def test_registry_names_this_driver() -> None:
    assert isinstance(get_driver("bedrock"), BedrockDriver)


def test_a_signed_stream_request() -> None:
    r = D.chat_request(EP, _req(stream=True))
    assert r.method == "POST"
    assert r.url == f"{BASE}/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream"
    assert r.aws == AwsSigning(region="eu-west-1", service="bedrock", profile="work")
    assert "Authorization" not in r.headers
    assert r.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert r.json == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}


def test_a_keyed_request_is_bearer_and_not_signed() -> None:
    r = D.chat_request(KEYED, _req(stream=False))
    assert r.url.endswith("/converse")
    assert r.aws is None
    assert r.headers["Authorization"] == "Bearer bedrock-api-key-FAKE"


def test_profiles_and_arns_are_url_encoded_into_the_path() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x"
    r = D.chat_request(EP, _req(model=arn))
    assert r.url == f"{BASE}/model/{arn.replace(':', '%3A').replace('/', '%2F')}/converse-stream"


def test_system_turns_and_inference_config() -> None:
    req = _req(
        messages=(
            Message("system", "Second rule."),
            Message("user", "a"),
            Message("user", "b"),
            Message("assistant", "c"),
            Message("user", "d"),
        ),
        system="First rule.",
        temperature=0.3,
        max_tokens=200,
        options={"top_p": 0.8, "stop": "###", "top_k": 40},
    )
    body = D.chat_request(EP, req).json
    assert body["system"] == [{"text": "First rule."}, {"text": "Second rule."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},  # merged: roles alternate
        {"role": "assistant", "content": [{"text": "c"}]},
        {"role": "user", "content": [{"text": "d"}]},
    ]
    assert body["inferenceConfig"] == {
        "maxTokens": 200,
        "temperature": 0.3,
        "topP": 0.8,
        "stopSequences": ["###"],
    }
    assert body["additionalModelRequestFields"] == {"top_k": 40}  # the model's own parameter


def test_tool_config_and_structured_output_pass_through() -> None:
    tools = {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": {"type": "object"}}}}]}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = D.chat_request(EP, _req(options={"toolConfig": tools, "json_schema": schema})).json
    assert body["toolConfig"] == tools
    fmt = body["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema"
    assert json.loads(fmt["structure"]["jsonSchema"]["schema"]) == schema
    assert "additionalModelRequestFields" not in body


def test_control_plane_host() -> None:
    assert control_plane(BASE) == "https://bedrock.eu-west-1.amazonaws.com"
    assert control_plane("http://127.0.0.1:9/") == "http://127.0.0.1:9"
    r = D.models_request(EP)
    assert r.url == "https://bedrock.eu-west-1.amazonaws.com/foundation-models"
    assert r.aws is not None and r.aws.service == "bedrock"


# ---- streams ---------------------------------------------------------------------------------

TOOL_STREAM = [
    event("messageStart", {"role": "assistant"}),
    event(
        "contentBlockDelta",
        {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}},
    ),
    event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Let me look."}}),
    event(
        "contentBlockStart",
        {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t1", "name": "weather"}}},
    ),
    event(
        "contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"city":'}}}
    ),
    event(
        "contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '"Oslo"}'}}}
    ),
    event("contentBlockStop", {"contentBlockIndex": 2}),
    event("messageStop", {"stopReason": "tool_use"}),
    event(
        "metadata",
        {
            "usage": {
                "inputTokens": 5,
                "outputTokens": 7,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 20,
                "totalTokens": 132,
            }
        },
    ),
]


def _all_at_once(data: bytes) -> list[object]:
    p = BedrockStreamParser()
    return [*p.feed(data), *p.close()]


def test_a_tool_stream_with_reasoning_and_cache_usage() -> None:
    result = _fold(_all_at_once(b"".join(TOOL_STREAM))).finish()
    assert result.text == "Let me look."
    assert result.reasoning == "hmm"
    assert [(t.id, t.name, t.arguments) for t in result.tool_calls] == [
        ("t1", "weather", '{"city":"Oslo"}')
    ]
    assert result.finish_reason == "tool_call"
    u = result.usage
    assert u is not None
    assert (u.input_tokens, u.output_tokens) == (125, 7)  # cached prompt tokens included
    assert (u.cache_read_tokens, u.cache_write_tokens) == (100, 20)


@pytest.mark.parametrize("stream", [text_stream("Hello", ", world"), TOOL_STREAM])
def test_split_at_every_byte_boundary(stream: list[bytes]) -> None:
    data = b"".join(stream)
    whole = _all_at_once(data)
    for cut in range(1, len(data)):
        p = BedrockStreamParser()
        assert [*p.feed(data[:cut]), *p.feed(data[cut:]), *p.close()] == whole, cut
    p = BedrockStreamParser()
    one_by_one = [ev for i in range(len(data)) for ev in p.feed(data[i : i + 1])]
    assert one_by_one + p.close() == whole


def test_every_corrupted_byte_is_caught() -> None:
    """Flip any byte of a frame: a CRC or length check fails, never a wrong reading."""
    good = b"".join(text_stream("ok"))
    for i in range(0, len(good), 3):
        bad = bytearray(good)
        bad[i] ^= 0x5A
        p = BedrockStreamParser()
        events: list[object] = []
        with pytest.raises(CallmError):
            events += p.feed(bytes(bad))
            events += p.close()
        assert all(isinstance(e, (TextDelta, Finished, UsageReport)) for e in events)


def test_a_bad_crc_after_text_keeps_what_came_first() -> None:
    frames = text_stream("first", "second")
    broken = bytearray(frames[2])
    broken[-2] ^= 1
    p = BedrockStreamParser()
    events = p.feed(b"".join([*frames[:2], bytes(broken), *frames[3:]]))
    assert events == [TextDelta("first")]
    with pytest.raises(BadResponseError, match="checksum"):
        p.feed(b"")


def test_a_stream_cut_inside_a_frame() -> None:
    data = b"".join(text_stream("x"))
    p = BedrockStreamParser()
    p.feed(data[:-5])
    with pytest.raises(BadResponseError, match="inside a frame"):
        p.close()


@pytest.mark.parametrize(
    ("kind", "message", "error"),
    [
        ("throttlingException", "Too many requests", RateLimitError),
        ("validationException", "Input is too long for requested model.", ContextLengthError),
        ("validationException", "messages: text field is blank", BadRequestError),
        ("modelStreamErrorException", "Model stream error", ServerError),
        ("internalServerException", "Internal error", ServerError),
        ("serviceUnavailableException", "Service unavailable", OverloadedError),
        ("modelNotReadyException", "Model is not ready", OverloadedError),
        ("accessDeniedException", "No access to this model", AuthError),
        ("resourceNotFoundException", "Model not found", NotFoundError),
    ],
)
def test_exception_frames_map_to_error_kinds(
    kind: str, message: str, error: type[CallmError]
) -> None:
    p = BedrockStreamParser()
    with pytest.raises(error, match=message) as info:
        p.feed(event("messageStart", {"role": "assistant"}) + exception(kind, message))
    assert type(info.value) is error


def test_an_error_frame() -> None:
    err = frame(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b""
    )
    with pytest.raises(CallmError, match="boom"):
        BedrockStreamParser().feed(err)


def test_unknown_events_are_skipped() -> None:
    data = event("futureThing", {"x": 1}) + b"".join(text_stream("fine"))
    assert _fold(_all_at_once(data)).finish().text == "fine"


# ---- replies and errors -------------------------------------------------------------------------


def test_a_converse_reply() -> None:
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "s"}}},
                    {"text": "Answer."},
                    {"toolUse": {"toolUseId": "t9", "name": "f", "input": {"a": 1}}},
                ],
            }
        },
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
    }
    events = D.parse_response(json.dumps(body).encode())
    assert events[:2] == [ReasoningDelta("think"), TextDelta("Answer.")]
    assert events[2] == ToolCallDelta(0, id="t9", name="f", arguments='{"a": 1}')
    assert events[-1] == Finished("length")
    r = _fold(events).finish()
    assert r.usage is not None and r.usage.input_tokens == 3


def test_guardrail_is_content_filter() -> None:
    body = {"output": {"message": {"content": []}}, "stopReason": "guardrail_intervened"}
    assert D.parse_response(json.dumps(body).encode()) == [Finished("content_filter")]


@pytest.mark.parametrize(
    ("status", "etype", "message", "error"),
    [
        (403, "UnrecognizedClientException", "The security token included is invalid.", AuthError),
        (403, "AccessDeniedException", "You don't have access to the model", AuthError),
        (429, "ThrottlingException", "Too many requests", RateLimitError),
        (400, "ValidationException", "Input is too long for requested model.", ContextLengthError),
        (400, "ValidationException", "The provided model identifier is invalid.", BadRequestError),
        (404, "ResourceNotFoundException", "Model not found", NotFoundError),
        (503, "ServiceUnavailableException", "Service unavailable", OverloadedError),
        (424, "ModelErrorException", "The model errored", ServerError),
        (500, None, "", ServerError),
    ],
)
def test_http_errors(status: int, etype: str | None, message: str, error: type[CallmError]) -> None:
    headers = {"x-amzn-ErrorType": f"{etype}:http://internal.amazon.com/coral/"} if etype else {}
    body = json.dumps({"message": message}).encode() if message else b""
    err = D.parse_error(status, headers, body)
    assert type(err) is error
    assert err.status == status
    if message:
        assert err.message == message


def test_the_error_type_in_the_body() -> None:
    body = b'{"__type": "com.amazon.coral#ThrottlingException", "Message": "slow down"}'
    err = D.parse_error(400, {}, body)
    assert isinstance(err, RateLimitError) and err.message == "slow down"


# ---- listing --------------------------------------------------------------------------------


def test_foundation_models_then_profile_pages() -> None:
    from aws_fake import FOUNDATION_MODELS

    models, token = D.parse_models(EP, json.dumps(FOUNDATION_MODELS).encode())
    assert [m.id for m in models] == [
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "amazon.nova-lite-v1:0",
    ]
    assert "vision" in models[0].capabilities and "streaming" in models[0].capabilities
    assert models[0].extra["providerName"] == "Anthropic"
    assert token == "profiles:"
    assert D.models_request(EP, token).url.endswith("/inference-profiles?maxResults=1000")
    page = profiles_page(["us.amazon.nova-lite-v1:0"], next_token="abc=")
    models, token = D.parse_models(EP, json.dumps(page).encode())
    assert [m.id for m in models] == ["us.amazon.nova-lite-v1:0"]
    assert token == "profiles:abc="
    assert D.models_request(EP, token).url.endswith("&nextToken=abc%3D")
    models, token = D.parse_models(EP, json.dumps(profiles_page(["x"])).encode())
    assert token is None


def test_a_signature_error_keeps_its_first_paragraph() -> None:
    body = json.dumps(
        {
            "message": "The request signature we calculated does not match the signature you "
            "provided.\n\nThe Canonical String for this request should have been\n'POST\n/model'"
        }
    ).encode()
    err = D.parse_error(403, {"x-amzn-ErrorType": "InvalidSignatureException"}, body)
    assert isinstance(err, AuthError)
    assert "\n" not in err.message and err.message.endswith("you provided.")


def test_inference_options_given_as_strings_are_typed() -> None:
    body = D.chat_request(EP, _req(options={"top_p": "0.5", "max_tokens": "64"})).json
    assert body["inferenceConfig"] == {"topP": 0.5, "maxTokens": 64}
    with pytest.raises(UsageError, match="topP must be a number"):
        D.chat_request(EP, _req(options={"top_p": "high"}))


def test_control_plane_for_fips_vpc_and_gateways() -> None:
    fips = "https://bedrock-runtime-fips.us-east-1.amazonaws.com"
    assert control_plane(fips) == "https://bedrock-fips.us-east-1.amazonaws.com"
    vpce = "https://vpce-0a1.bedrock-runtime.eu-west-1.vpce.amazonaws.com"
    assert control_plane(vpce) == "https://vpce-0a1.bedrock.eu-west-1.vpce.amazonaws.com"
    ep = Endpoint("gw", "bedrock", "https://gw.example/aws?tenant=7", region="us-east-1")
    assert D.models_request(ep).url == "https://gw.example/aws/foundation-models?tenant=7"
    assert D.chat_request(ep, _req()).url == (
        "https://gw.example/aws/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream"
        "?tenant=7"
    )


def test_attachments_and_schema() -> None:
    from callm.types import Attachment

    png = Attachment("chart.png", "image/png", b"\x89PNG\r\n\x1a\nfake")
    pdf = Attachment("Q3 report (final).v2.pdf", "application/pdf", b"%PDF-1.7 fake")
    txt = Attachment("notes.txt", "text/plain", b"hello")
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = _req(attachments=(png, pdf, txt), schema=schema, stream=False)
    body = D.chat_request(EP, req).json
    (turn,) = body["messages"]
    image, doc, text_doc, prompt = turn["content"]
    assert image == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgpmYWtl"}}}
    assert doc["document"]["format"] == "pdf"
    assert doc["document"]["name"] == "Q3 report (final)-v2-pdf"
    assert text_doc["document"]["format"] == "txt" and text_doc["document"]["name"] == "notes-txt"
    assert prompt == {"text": "Hi"}
    assert json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]) == (
        schema
    )
