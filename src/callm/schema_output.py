"""`--schema`: read a JSON schema (a file, inline JSON, or the short form `name, age int`),
and check a reply against it. jsonschema is imported only when a schema is given."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from callm.errors import SchemaError, UsageError
from callm.types import ChatResult

_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_FIELD = re.compile(r"^([A-Za-z_][\w-]*)(?:\s+(\w+))?\s*(?::\s*(.*))?$", re.S)


def concise_schema(text: str) -> dict[str, Any]:
    """`name, age int, bio: a short bio` -> an object schema. Fields are separated by
    commas, or by newlines when there are any (then a description may hold commas).
    Types: str (default), int, float, bool."""
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    props: dict[str, Any] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        m = _FIELD.match(part)
        if not m:
            raise UsageError(f"cannot read schema field {part!r}", hint="e.g. 'name, age int'")
        name, typ, desc = m.groups()
        if (typ or "str").lower() not in _TYPES:
            raise UsageError(f"unknown type {typ!r} for field {name!r}: use str, int, float, bool")
        prop: dict[str, Any] = {"type": _TYPES[(typ or "str").lower()]}
        if desc and desc.strip():
            prop["description"] = desc.strip()
        props[name] = prop
    if not props:
        raise UsageError("the schema names no fields", hint="e.g. --schema 'name, age int'")
    return {"type": "object", "properties": props, "required": list(props)}


def load_schema(arg: str) -> dict[str, Any]:
    """--schema FILE | JSON | short form. The schema itself is checked (draft 2020-12)."""
    text = arg
    src = "--schema"
    if not arg.lstrip().startswith("{"):
        path = Path(arg).expanduser()
        try:
            is_file = path.is_file()
        except OSError:  # a long short-form string is no path
            is_file = False
        if is_file:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read schema file {arg}: {exc}") from None
            src = arg
        else:
            return concise_schema(arg)
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{src} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise UsageError(f"{src} must be a JSON object (a JSON schema)")
    if schema.get("type") != "object":
        raise UsageError(
            f'{src}: the top level must be an object schema ("type": "object")',
            hint='wrap a list in an object: {"type": "object", "properties": {...}}',
        )
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as BadSchema

    try:
        Draft202012Validator.check_schema(schema)
    except BadSchema as exc:
        raise UsageError(f"{src} is not a valid JSON schema: {exc.message}") from None
    return schema


def reply_text(result: ChatResult) -> str:
    """The JSON the model answered: its text, or the arguments of the forced tool call
    (Anthropic models without native structured output answer that way)."""
    from callm.drivers.structured import SCHEMA_TOOL

    if result.text.strip():
        return result.text
    for call in result.tool_calls:
        if call.name == SCHEMA_TOOL:
            return call.arguments
    return result.text


def _strip_fence(text: str) -> str:
    """A reply wrapped in one ```json fence (some models add it whatever they are told)."""
    t = text.strip()
    if t.startswith("```") and t.endswith("```") and t.count("```") == 2:
        t = t[3:-3]
        first, _, rest = t.partition("\n")
        return rest if first.strip().lower() in ("", "json") else t
    return t


def check_reply(result: ChatResult, schema: dict[str, Any]) -> Any:
    """The parsed reply; SchemaError (exit 1) for invalid JSON or the first violation."""
    text = reply_text(result)
    try:
        obj = json.loads(_strip_fence(text))
    except ValueError as exc:
        snippet = text.strip()[:60]
        raise SchemaError(f"the reply is not valid JSON ({exc.msg}): {snippet!r}") from None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    err = best_match(Draft202012Validator(schema).iter_errors(obj))
    if err is not None:
        where = err.json_path if err.path else "the reply"
        raise SchemaError(f"the reply does not match the schema: {where}: {err.message}")
    return obj
