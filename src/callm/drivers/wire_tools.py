"""Tools, tool results, images, stop sequences and response formats of a canonical request,
written in each vendor's request format. Pure functions; a plain text conversation comes out
exactly as the drivers always wrote it ({"role", "content"})."""

from __future__ import annotations

import json
from typing import Any

from callm.types import ChatRequest, Message


def _args(text: str) -> Any:
    """Tool-call arguments as an object (Anthropic, Ollama, Gemini want one, not a string)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"value": value}


def _data_url(url: str) -> tuple[str, str] | None:
    """("image/png", base64) for a data: URL; None for an http(s) URL."""
    if not url.startswith("data:"):
        return None
    head, _, data = url.partition(",")
    return head[5:].split(";")[0] or "image/png", data


# ---- OpenAI Chat Completions -----------------------------------------------------------------


def openai_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
    if m.images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
        parts += [{"type": "image_url", "image_url": {"url": u}} for u in m.images]
        return {"role": m.role, "content": parts}
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {
                "id": c.id or f"call_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments or "{}"},
            }
            for i, c in enumerate(m.tool_calls)
        ]
    return out


def openai_fields(req: ChatRequest, body: dict[str, Any]) -> None:
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in req.tools
        ]
    if req.tool_choice in ("auto", "none", "required"):
        body["tool_choice"] = req.tool_choice
    elif req.tool_choice:
        body["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice}}
    if req.stop:
        body["stop"] = list(req.stop)
    rf = req.response_format
    if rf and rf.get("type") == "json_schema":
        schema = {"name": rf.get("name") or "response", "schema": rf.get("schema") or {}}
        if rf.get("strict") is not None:
            schema["strict"] = rf["strict"]
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif rf:
        body["response_format"] = {"type": rf.get("type", "json_object")}


# ---- OpenAI Responses ------------------------------------------------------------------------


def responses_input(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            items.append(
                {"type": "function_call_output", "call_id": m.tool_call_id, "output": m.content}
            )
            continue
        if m.images:
            parts: list[dict[str, Any]] = (
                [{"type": "input_text", "text": m.content}] if m.content else []
            )
            parts += [{"type": "input_image", "image_url": u} for u in m.images]
            items.append({"role": m.role, "content": parts})
        elif m.content or not m.tool_calls:
            items.append({"role": m.role, "content": m.content})
        for i, c in enumerate(m.tool_calls):
            items.append(
                {
                    "type": "function_call",
                    "call_id": c.id or f"call_{i}",
                    "name": c.name,
                    "arguments": c.arguments or "{}",
                }
            )
    return items


def responses_fields(req: ChatRequest, body: dict[str, Any]) -> None:
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
            }
            for t in req.tools
        ]
    if req.tool_choice in ("auto", "none", "required"):
        body["tool_choice"] = req.tool_choice
    elif req.tool_choice:
        body["tool_choice"] = {"type": "function", "name": req.tool_choice}
    rf = req.response_format
    if rf and rf.get("type") == "json_schema":
        fmt = {"type": "json_schema", "name": rf.get("name") or "response"}
        fmt["schema"] = rf.get("schema") or {}
        body["text"] = {"format": fmt}
    elif rf:
        body["text"] = {"format": {"type": "json_object"}}


# ---- Anthropic Messages ----------------------------------------------------------------------


def anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Tool results become user turns of tool_result blocks (consecutive ones merged)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if not m.tool_calls and not m.images:
            out.append({"role": m.role, "content": m.content})
            continue
        blocks: list[dict[str, Any]] = []
        for url in m.images:
            data = _data_url(url)
            src = (
                {"type": "base64", "media_type": data[0], "data": data[1]}
                if data
                else {"type": "url", "url": url}
            )
            blocks.append({"type": "image", "source": src})
        if m.content:
            blocks.append({"type": "text", "text": m.content})
        for i, c in enumerate(m.tool_calls):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": c.id or f"toolu_{i}",
                    "name": c.name,
                    "input": _args(c.arguments),
                }
            )
        out.append({"role": m.role, "content": blocks})
    return out


def anthropic_fields(req: ChatRequest, body: dict[str, Any]) -> None:
    if req.tools:
        body["tools"] = [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": t.parameters or {"type": "object", "properties": {}},
            }
            for t in req.tools
        ]
    if req.tool_choice == "required":
        body["tool_choice"] = {"type": "any"}
    elif req.tool_choice in ("auto", "none"):
        body["tool_choice"] = {"type": req.tool_choice}
    elif req.tool_choice:
        body["tool_choice"] = {"type": "tool", "name": req.tool_choice}
    if req.stop:
        body["stop_sequences"] = list(req.stop)


# ---- Ollama ------------------------------------------------------------------------------------


def ollama_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.role == "tool" and m.tool_name:
        out["tool_name"] = m.tool_name
    if m.images:  # Ollama takes base64 data only
        out["images"] = [d[1] for d in map(_data_url, m.images) if d]
    if m.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": _args(c.arguments)}} for c in m.tool_calls
        ]
    return out


def ollama_fields(req: ChatRequest, body: dict[str, Any], options: dict[str, Any]) -> None:
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in req.tools
        ]
    if req.stop:
        options["stop"] = list(req.stop)
    rf = req.response_format
    if rf and rf.get("type") == "json_schema" and rf.get("schema"):
        body["format"] = rf["schema"]
    elif rf:
        body["format"] = "json"


# ---- Gemini ------------------------------------------------------------------------------------


def gemini_parts(m: Message, names: dict[str, str]) -> list[dict[str, Any]]:
    """The parts of one turn; `names` maps tool-call ids to names (a result needs its name)."""
    if m.role == "tool":
        name = m.tool_name or names.get(m.tool_call_id or "", "tool")
        return [{"functionResponse": {"name": name, "response": {"content": m.content}}}]
    parts: list[dict[str, Any]] = [{"text": m.content}] if m.content or not m.tool_calls else []
    for url in m.images:
        data = _data_url(url)
        if data:
            parts.append({"inlineData": {"mimeType": data[0], "data": data[1]}})
        else:
            parts.append({"fileData": {"fileUri": url}})
    for c in m.tool_calls:
        names[c.id or c.name] = c.name
        parts.append({"functionCall": {"name": c.name, "args": _args(c.arguments)}})
    return parts


def gemini_fields(req: ChatRequest, body: dict[str, Any], config: dict[str, Any]) -> None:
    if req.tools:
        decls = [
            {"name": t.name, "description": t.description, "parameters": t.parameters}
            if t.parameters
            else {"name": t.name, "description": t.description}
            for t in req.tools
        ]
        body["tools"] = [{"functionDeclarations": decls}]
    if req.tool_choice:
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(req.tool_choice)
        fc: dict[str, Any] = {"mode": mode or "ANY"}
        if mode is None:
            fc["allowedFunctionNames"] = [req.tool_choice]
        body["toolConfig"] = {"functionCallingConfig": fc}
    if req.stop:
        config["stopSequences"] = list(req.stop)
    rf = req.response_format
    if rf:
        config["responseMimeType"] = "application/json"
        if rf.get("type") == "json_schema" and rf.get("schema"):
            config["responseJsonSchema"] = rf["schema"]
