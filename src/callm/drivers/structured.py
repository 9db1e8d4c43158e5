"""Structured output and attachments as each wire format wants them. Sans-IO helpers shared
by the drivers: schema rewrites (OpenAI strict mode, Gemini's OpenAPI subset) and base64
encodings of attached files."""

from __future__ import annotations

import base64
import json
from typing import Any

from callm.types import Attachment

# The forced tool Anthropic models without native structured output answer through.
SCHEMA_TOOL = "json_output"
SCHEMA_NAME = "output"  # the json_schema name OpenAI and Responses require


def strict_schema(schema: Any) -> Any:
    """OpenAI strict mode: every object closes (additionalProperties false) and lists all
    its properties as required. A property the user left optional becomes nullable, so the
    meaning is kept (the model answers null instead of leaving it out)."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    props = out.get("properties")
    if out.get("type") == "object" or isinstance(props, dict):
        props = props if isinstance(props, dict) else {}
        required = set(schema.get("required") or ())
        for name, sub in props.items():
            if name not in required and isinstance(sub, dict):
                props[name] = _nullable(sub)
        out["properties"] = props
        out["required"] = list(props)
        out["additionalProperties"] = False
    return out


def _nullable(sub: dict[str, Any]) -> dict[str, Any]:
    t = sub.get("type")
    if isinstance(t, str) and t != "null":
        return {**sub, "type": [t, "null"]}
    if isinstance(t, list) and "null" not in t:
        return {**sub, "type": [*t, "null"]}
    if t is None:
        return {"anyOf": [sub, {"type": "null"}]}
    return sub


# The keys of Gemini's `Schema` message (an OpenAPI 3.0 subset); others are refused.
_GEMINI_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)


def gemini_schema(schema: Any) -> Any:
    """JSON schema -> Gemini `Schema`: upper-case type names, `["x", "null"]` as nullable,
    keys it does not know left out."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _GEMINI_KEYS:
            continue
        if key == "type":
            types = value if isinstance(value, list) else [value]
            named = [t for t in types if t != "null"]
            if len(named) < len(types):
                out["nullable"] = True
            if named:
                out["type"] = str(named[0]).upper()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: gemini_schema(v) for k, v in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(v) for v in value]
        else:
            out[key] = value
    return out


def schema_instruction(schema: dict[str, Any]) -> str:
    """For a server that takes only "reply in JSON": the schema, said in words."""
    return "Reply with one JSON object that matches this JSON schema:\n" + json.dumps(
        schema, separators=(",", ":")
    )


def b64(att: Attachment) -> str:
    return base64.b64encode(att.data).decode("ascii")


def data_url(att: Attachment) -> str:
    return f"data:{att.mime};base64,{b64(att)}"


def text_of(att: Attachment) -> str:
    """A text attachment as a labelled block of the prompt."""
    return f"<file name={att.name!r}>\n{att.data.decode('utf-8', 'replace')}\n</file>"
