"""Inbound Ollama: POST /api/chat (NDJSON stream, or one object with "stream": false),
GET /api/tags, GET /api/version; errors as {"error": "message"}."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import partial
from types import SimpleNamespace
from typing import Any

from callm.call_types import CallOutcome
from callm.gateway.common import BadRequest, Inbound, model_of, tool, tool_call, want
from callm.types import Message, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta

MEDIA_TYPE = "application/x-ndjson"
# The Ollama API level this gateway speaks (clients compare it with what they need).
API_VERSION = "0.12.0"
_DONE_REASON = {"stop": "stop", "length": "length", "tool_call": "stop"}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": message}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _message(m: Any) -> Message:
    if not isinstance(m, dict):
        raise BadRequest("every message must be an object")
    role = m.get("role")
    content = m.get("content") or ""
    if not isinstance(content, str):
        raise BadRequest("message content must be a string")
    images = tuple(
        f"data:image/png;base64,{b}" for b in m.get("images") or () if isinstance(b, str)
    )
    if role == "tool":
        return Message("tool", content, tool_name=m.get("tool_name") or m.get("name"))
    if role == "assistant":
        calls = tuple(
            tool_call(
                None,
                (c.get("function") or {}).get("name"),
                (c.get("function") or {}).get("arguments"),
            )
            for c in m.get("tool_calls") or ()
            if isinstance(c, dict)
        )
        return Message("assistant", content, tool_calls=calls)
    if role in ("system", "user"):
        return Message(role, content, images=images)
    raise BadRequest(f"unknown message role {role!r}")


def parse(body: Any) -> Inbound:
    model = model_of(body, "model is required")
    messages = want(body, "messages", list) or []
    opts = dict(want(body, "options", dict) or {})
    tools = []
    for t in want(body, "tools", list) or ():
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict):
            tools.append(tool(fn.get("name"), fn.get("description"), fn.get("parameters")))
    fmt = body.get("format")
    rf: dict[str, Any] | None = None
    if fmt == "json":
        rf = {"type": "json_object"}
    elif isinstance(fmt, dict):
        rf = {"type": "json_schema", "name": "response", "schema": fmt}
    stop = opts.pop("stop", None)
    stop = (stop,) if isinstance(stop, str) else tuple(s for s in stop or () if isinstance(s, str))
    temperature = opts.pop("temperature", None)
    max_tokens = opts.pop("num_predict", None)
    options = {k: v for k, v in opts.items() if k in ("top_p", "top_k", "seed")}
    return Inbound(
        model=model,
        messages=[_message(m) for m in messages],
        stream=body.get("stream") is not False,  # Ollama streams unless told not to
        temperature=temperature if isinstance(temperature, (int, float)) else None,
        max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        tools=tuple(tools),
        stop=stop,
        response_format=rf,
        options=options,
    )


def parse_generate(body: Any) -> Inbound:
    """/api/generate: one prompt (with its system prompt and images) instead of messages."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    prompt = want(body, "prompt", str) or ""
    images = [b for b in want(body, "images", list) or () if isinstance(b, str)]
    chat = {k: v for k, v in body.items() if k not in ("prompt", "images", "system")}
    chat["messages"] = [{"role": "user", "content": prompt, "images": images}]
    inb = parse(chat)
    inb.system = want(body, "system", str)
    return inb


def _args(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def _final(inb: Inbound, out: CallOutcome, message: dict[str, Any]) -> dict[str, Any]:
    ns = int(out.latency_ms * 1_000_000)
    return {
        "model": inb.model,
        "created_at": _now(),
        "message": message,
        "done": True,
        "done_reason": _DONE_REASON.get(out.result.finish_reason or "stop", "stop"),
        "total_duration": ns,
        "load_duration": 0,
        "prompt_eval_count": out.usage.input_tokens,
        "prompt_eval_duration": 0,
        "eval_count": out.usage.output_tokens,
        "eval_duration": ns,
    }


def _calls(out: CallOutcome) -> list[dict[str, Any]]:
    return [
        {"function": {"name": c.name, "arguments": _args(c.arguments)}}
        for c in out.result.tool_calls
    ]


def complete_generate(inb: Inbound, out: CallOutcome) -> dict[str, Any]:
    final = _final(inb, out, {})
    del final["message"]
    final["response"] = out.result.text
    if out.result.reasoning:
        final["thinking"] = out.result.reasoning
    return final


def complete(inb: Inbound, out: CallOutcome) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": out.result.text}
    if out.result.reasoning:
        msg["thinking"] = out.result.reasoning
    if out.result.tool_calls:
        msg["tool_calls"] = _calls(out)
    return _final(inb, out, msg)


class Renderer:
    """Canonical events -> NDJSON lines. Tool calls go out whole, when the call ends."""

    media_type = MEDIA_TYPE

    def __init__(self, inb: Inbound, generate: bool = False) -> None:
        self.inb = inb
        self.generate = generate  # /api/generate: "response" text, not a "message"

    def _line(self, message: dict[str, Any]) -> bytes:
        obj: dict[str, Any] = {"model": self.inb.model, "created_at": _now()}
        if self.generate:
            obj["response"] = message.get("content", "")
            if message.get("thinking"):
                obj["thinking"] = message["thinking"]
        else:
            obj["message"] = message
        obj["done"] = False
        return json.dumps(obj).encode() + b"\n"

    def start(self) -> list[bytes]:
        return []

    def event(self, ev: StreamEvent) -> list[bytes]:
        if isinstance(ev, TextDelta):
            return [self._line({"role": "assistant", "content": ev.text})]
        if isinstance(ev, ReasoningDelta):
            return [self._line({"role": "assistant", "content": "", "thinking": ev.text})]
        if isinstance(ev, ToolCallDelta):
            return []  # sent whole at the end
        return []

    def end(self, out: CallOutcome) -> list[bytes]:
        frames = []
        if out.result.tool_calls:
            frames.append(
                self._line({"role": "assistant", "content": "", "tool_calls": _calls(out)})
            )
        final = _final(self.inb, out, {"role": "assistant", "content": ""})
        if self.generate:
            del final["message"]
            final["response"] = ""
        frames.append(json.dumps(final).encode() + b"\n")
        return frames

    def fail(self, status: int, message: str) -> list[bytes]:
        return [json.dumps({"error": message}).encode() + b"\n"]


def tags(models: list[tuple[str, str]]) -> dict[str, Any]:
    """/api/tags: every model name the gateway answers to, as a local model list."""
    now = _now()
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "modified_at": now,
                "size": 0,
                "digest": "",
                "details": {
                    "parent_model": "",
                    "format": "",
                    "family": owner,
                    "families": [owner],
                    "parameter_size": "",
                    "quantization_level": "",
                },
            }
            for name, owner in models
        ]
    }


# /api/generate, shaped like a format module for the app's one request flow
GENERATE = SimpleNamespace(
    MEDIA_TYPE=MEDIA_TYPE,
    parse=parse_generate,
    complete=complete_generate,
    Renderer=partial(Renderer, generate=True),
    error_body=error_body,
)
