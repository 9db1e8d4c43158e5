"""Inbound OpenAI Responses: POST /v1/responses, a `response` object or typed SSE events
(response.created ... response.output_text.delta ... response.completed)."""

from __future__ import annotations

import json
import time
from typing import Any

from callm.call_types import CallOutcome
from callm.gateway.common import BadRequest, Inbound, model_of, new_id, sse, tool, tool_call, want
from callm.gateway.openai_chat import error_body, text_of
from callm.types import Message, StreamEvent, TextDelta, ToolCallDelta

__all__ = ["MEDIA_TYPE", "Renderer", "complete", "error_body", "parse"]

MEDIA_TYPE = "text/event-stream"


def _items(raw: Any) -> list[Message]:
    if isinstance(raw, str):
        return [Message("user", raw)]
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'input' must be a string or a non-empty list")
    out: list[Message] = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("every input item must be an object")
        kind = item.get("type", "message")
        if kind == "function_call":
            call = tool_call(item.get("call_id"), item.get("name"), item.get("arguments"))
            last = out[-1] if out else None
            if last and last.role == "assistant":  # calls after the assistant's text
                out[-1] = Message("assistant", last.content, (*last.tool_calls, call))
            else:
                out.append(Message("assistant", "", (call,)))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            out.append(Message("tool", text, tool_call_id=item.get("call_id")))
        elif kind == "message":
            role = item.get("role")
            images: list[str] = []
            text = text_of(item.get("content"), images)
            if role in ("system", "developer"):
                out.append(Message("system", text))
            elif role in ("user", "assistant"):
                out.append(Message(role, text, images=tuple(images)))
            else:
                raise BadRequest(f"unknown message role {role!r}")
    return out


def parse(body: Any) -> Inbound:
    model = model_of(body, "'model' is required")
    tools = tuple(
        tool(t.get("name"), t.get("description"), t.get("parameters"))
        for t in want(body, "tools", list) or ()
        if isinstance(t, dict) and t.get("type") == "function"
    )
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = choice.get("name")
    fmt = ((want(body, "text", dict) or {}).get("format")) or {}
    rf: dict[str, Any] | None = None
    if fmt.get("type") == "json_schema":
        rf = {"type": "json_schema", "name": fmt.get("name"), "schema": fmt.get("schema") or {}}
    elif fmt.get("type") == "json_object":
        rf = {"type": "json_object"}
    return Inbound(
        model=model,
        messages=_items(body.get("input")),
        stream=bool(body.get("stream")),
        system=want(body, "instructions", str),
        temperature=want(body, "temperature", (int, float)),
        max_tokens=want(body, "max_output_tokens", int),
        tools=tools,
        tool_choice=choice if isinstance(choice, str) else None,
        response_format=rf,
        options={k: body[k] for k in ("top_p",) if body.get(k) is not None},
    )


def _usage(out: CallOutcome) -> dict[str, Any]:
    u = out.usage
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _response(
    inb: Inbound, rid: str, created: int, status: str, output: list[Any], out: CallOutcome | None
) -> dict[str, Any]:
    incomplete = out is not None and out.result.finish_reason == "length"
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "incomplete" if incomplete else status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None,
        "model": inb.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": inb.tool_choice or "auto",
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
            }
            for t in inb.tools
        ],
        "instructions": inb.system,
        "temperature": inb.temperature,
        "max_output_tokens": inb.max_tokens,
        "usage": _usage(out) if out is not None else None,
    }


def _message_item(mid: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    )
    return {"type": "message", "id": mid, "status": status, "role": "assistant", "content": content}


def complete(inb: Inbound, out: CallOutcome) -> dict[str, Any]:
    r = out.result
    output: list[Any] = [_message_item(new_id("msg_"), r.text)] if r.text else []
    for i, c in enumerate(r.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": new_id("fc_"),
                "call_id": c.id or f"call_{i}",
                "name": c.name,
                "arguments": c.arguments,
                "status": "completed",
            }
        )
    return _response(inb, new_id("resp_"), int(time.time()), "completed", output, out)


class Renderer:
    """Canonical events -> typed Responses SSE events, each with its sequence_number."""

    media_type = MEDIA_TYPE

    def __init__(self, inb: Inbound) -> None:
        self.inb = inb
        self.rid = new_id("resp_")
        self.created = int(time.time())
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the output item being streamed
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    def _ev(self, kind: str, **fields: Any) -> bytes:
        obj = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return sse(obj, kind)

    def start(self) -> list[bytes]:
        resp = _response(self.inb, self.rid, self.created, "in_progress", [], None)
        return [
            self._ev("response.created", response=resp),
            self._ev("response.in_progress", response=resp),
        ]

    def _close(self) -> list[bytes]:
        item, self.open = self.open, None
        if item is None:
            return []
        idx = len(self.output)
        frames: list[bytes] = []
        if item["type"] == "message":
            text = "".join(self.text)
            part = {"type": "output_text", "text": text, "annotations": []}
            common = {"item_id": item["id"], "output_index": idx, "content_index": 0}
            frames.append(self._ev("response.output_text.done", **common, text=text))
            frames.append(self._ev("response.content_part.done", **common, part=part))
            item = _message_item(item["id"], text)
        else:
            item = {**item, "status": "completed"}
            frames.append(
                self._ev(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=idx,
                    arguments=item["arguments"],
                )
            )
        frames.append(self._ev("response.output_item.done", output_index=idx, item=item))
        self.output.append(item)
        return frames

    def event(self, ev: StreamEvent) -> list[bytes]:
        frames: list[bytes] = []
        idx = len(self.output)
        if isinstance(ev, TextDelta):
            if self.open is None or self.open["type"] != "message":
                frames += self._close()
                idx = len(self.output)
                self.open = _message_item(new_id("msg_"), "", "in_progress")
                self.text = []
                frames.append(
                    self._ev("response.output_item.added", output_index=idx, item=self.open)
                )
                part = {"type": "output_text", "text": "", "annotations": []}
                frames.append(
                    self._ev(
                        "response.content_part.added",
                        item_id=self.open["id"],
                        output_index=idx,
                        content_index=0,
                        part=part,
                    )
                )
            self.text.append(ev.text)
            frames.append(
                self._ev(
                    "response.output_text.delta",
                    item_id=self.open["id"],
                    output_index=idx,
                    content_index=0,
                    delta=ev.text,
                )
            )
        elif isinstance(ev, ToolCallDelta):
            if ev.index not in self.calls:
                frames += self._close()
                idx = len(self.output)
                item = {
                    "type": "function_call",
                    "id": new_id("fc_"),
                    "call_id": ev.id or f"call_{ev.index}",
                    "name": ev.name or "",
                    "arguments": "",
                    "status": "in_progress",
                }
                self.calls[ev.index] = item
                self.open = item
                frames.append(
                    self._ev("response.output_item.added", output_index=idx, item=dict(item))
                )
            item = self.calls[ev.index]
            if ev.arguments:
                item["arguments"] += ev.arguments
                frames.append(
                    self._ev(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=idx,
                        delta=ev.arguments,
                    )
                )
        return frames

    def end(self, out: CallOutcome) -> list[bytes]:
        frames = self._close()
        resp = _response(self.inb, self.rid, self.created, "completed", self.output, out)
        kind = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        frames.append(self._ev(kind, response=resp))
        return frames

    def fail(self, status: int, message: str) -> list[bytes]:
        resp = _response(self.inb, self.rid, self.created, "failed", self.output, None)
        resp["error"] = {"code": "server_error", "message": message}
        return [self._ev("response.failed", response=resp)]
