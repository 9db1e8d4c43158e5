"""Tools, tool calls, tool results, images, stop sequences and response formats in each
driver's request body (the canonical request written in every vendor's format)."""

from __future__ import annotations

from typing import Any

from callm.drivers import get_driver
from callm.types import ChatRequest, Endpoint, Message, Tool, ToolCall

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PNG = "data:image/png;base64,iVBORw0KGgo="
CONVERSATION = (
    Message("user", "Weather in Paris?", images=(PNG,)),
    Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)),
    Message("tool", "22 C", tool_call_id="call_1", tool_name="get_weather"),
)


def _body(driver: str, **kw: Any) -> dict[str, Any]:
    ep = Endpoint("p", driver, "http://127.0.0.1:9/v1", key="test-key-123")
    req = ChatRequest(
        model="m",
        messages=CONVERSATION,
        tools=(Tool("get_weather", "the weather", SCHEMA),),
        tool_choice="get_weather",
        stop=("END",),
        stream=False,
        **kw,
    )
    return get_driver(driver).chat_request(ep, req).json  # type: ignore[no-any-return]


def test_openai_chat() -> None:
    b = _body("openai", response_format={"type": "json_object"})
    assert b["messages"][0]["content"] == [
        {"type": "text", "text": "Weather in Paris?"},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]
    assert b["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert b["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "22 C"}
    assert b["tools"][0]["function"]["parameters"] == SCHEMA
    assert b["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert b["stop"] == ["END"] and b["response_format"] == {"type": "json_object"}


def test_plain_messages_are_written_as_before() -> None:
    ep = Endpoint("p", "openai", "http://127.0.0.1:9/v1", key="test-key-123")
    req = ChatRequest(model="m", messages=(Message("user", "hi"),))
    body = get_driver("openai").chat_request(ep, req).json
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "tools" not in body and "stop" not in body


def test_anthropic() -> None:
    b = _body("anthropic")
    user, assistant, result = b["messages"]
    assert user["content"][0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert result == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "22 C"}],
    }
    assert b["tools"] == [
        {"name": "get_weather", "description": "the weather", "input_schema": SCHEMA}
    ]
    assert b["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert b["stop_sequences"] == ["END"]


def test_ollama() -> None:
    b = _body("ollama", response_format={"type": "json_schema", "schema": SCHEMA})
    user, assistant, result = b["messages"]
    assert user["images"] == ["iVBORw0KGgo="]
    assert assistant["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert result == {"role": "tool", "content": "22 C", "tool_name": "get_weather"}
    assert b["tools"][0]["function"]["name"] == "get_weather"
    assert b["options"]["stop"] == ["END"] and b["format"] == SCHEMA


def test_gemini() -> None:
    b = _body("gemini", response_format={"type": "json_object"})
    user, model, result = b["contents"]
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert model == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    assert result["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"content": "22 C"}}}
    ]
    assert b["tools"][0]["functionDeclarations"][0]["parameters"] == SCHEMA
    assert b["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["get_weather"],
    }
    assert b["generationConfig"]["stopSequences"] == ["END"]
    assert b["generationConfig"]["responseMimeType"] == "application/json"


def test_openai_responses() -> None:
    b = _body("openai-responses")
    user, call, output = b["input"]
    assert user["content"][1] == {"type": "input_image", "image_url": PNG}
    assert call == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert output == {"type": "function_call_output", "call_id": "call_1", "output": "22 C"}
    assert b["tools"][0] == {
        "type": "function",
        "name": "get_weather",
        "description": "the weather",
        "parameters": SCHEMA,
    }
    assert b["tool_choice"] == {"type": "function", "name": "get_weather"}
