"""--schema parsing and checking, and attachment sniffing, sizes and page counts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from callm.attachments import image_size, load, pdf_pages, sniff
from callm.drivers.structured import gemini_schema, strict_schema
from callm.errors import SchemaError, UsageError
from callm.schema_output import check_reply, concise_schema, load_schema
from callm.types import ChatResult, ToolCall


def test_concise_schema_commas_types_and_descriptions() -> None:
    assert concise_schema("name, age int, score float: 0 to 1, ok bool") == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number", "description": "0 to 1"},
            "ok": {"type": "boolean"},
        },
        "required": ["name", "age", "score", "ok"],
    }


def test_concise_schema_newlines_let_descriptions_hold_commas() -> None:
    s = concise_schema("title: the title, in full\nyear int\n")
    assert s["properties"] == {
        "title": {"type": "string", "description": "the title, in full"},
        "year": {"type": "integer"},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name, age number2", "unknown type 'number2'"),
        (" , ", "names no fields"),
        ("9lives", "cannot read"),
    ],
)
def test_concise_schema_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        concise_schema(text)


def test_load_schema_inline_json_file_and_errors(tmp_path: Path) -> None:
    obj = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert load_schema(json.dumps(obj)) == obj
    f = tmp_path / "s.json"
    f.write_text(json.dumps(obj))
    assert load_schema(str(f)) == obj
    f.write_text("{nope")
    with pytest.raises(UsageError, match="is not valid JSON"):
        load_schema(str(f))
    with pytest.raises(UsageError, match="top level must be an object"):
        load_schema('{"type": "array"}')
    with pytest.raises(UsageError, match="not a valid JSON schema"):
        load_schema('{"type": "object", "properties": {"a": {"type": "strung"}}}')


def test_check_reply_parses_fenced_json_and_the_forced_tool() -> None:
    schema = concise_schema("name, age int")
    fenced = ChatResult(text='```json\n{"name": "A", "age": 1}\n```')
    assert check_reply(fenced, schema) == {"name": "A", "age": 1}
    tool = ChatResult(tool_calls=[ToolCall("t", "json_output", '{"name": "B", "age": 2}')])
    assert check_reply(tool, schema) == {"name": "B", "age": 2}
    with pytest.raises(SchemaError, match=r"\$: 'age' is a required property|required"):
        check_reply(ChatResult(text='{"name": "A"}'), schema)
    with pytest.raises(SchemaError) as info:
        check_reply(ChatResult(text="no"), schema)
    assert info.value.kind == "schema" and info.value.exit_code == 1


def test_strict_schema_closes_objects_and_keeps_optional_fields_nullable() -> None:
    s = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "object", "properties": {"c": {"type": "integer"}}},
        },
        "required": ["a"],
    }
    assert strict_schema(s) == {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {
                "type": ["object", "null"],
                "properties": {"c": {"type": ["integer", "null"]}},
                "required": ["c"],
                "additionalProperties": False,
            },
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    }


def test_gemini_schema_upper_cases_types_and_drops_unknown_keys() -> None:
    s = {
        "$schema": "x",
        "type": "object",
        "additionalProperties": False,
        "properties": {"n": {"type": ["integer", "null"], "minimum": 0}},
    }
    assert gemini_schema(s) == {
        "type": "OBJECT",
        "properties": {"n": {"type": "INTEGER", "nullable": True, "minimum": 0}},
    }


# ---- attachments --------------------------------------------------------------------------


def jpeg(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def webp(kind: bytes, w: int, h: int) -> bytes:
    if kind == b"VP8X":
        payload = b"\x00" * 4 + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    elif kind == b"VP8L":
        bits = (w - 1) | ((h - 1) << 14)
        payload = b"\x2f" + bits.to_bytes(4, "little")
    else:
        payload = b"\x00" * 6 + struct.pack("<HH", w, h)
    return b"RIFF" + b"\x00" * 4 + b"WEBP" + kind + b"\x00" * 4 + payload


@pytest.mark.parametrize(
    ("data", "mime", "size"),
    [
        (jpeg(800, 600), "image/jpeg", (800, 600)),
        (b"GIF89a" + struct.pack("<HH", 32, 16), "image/gif", (32, 16)),
        (webp(b"VP8X", 1000, 700), "image/webp", (1000, 700)),
        (webp(b"VP8L", 64, 48), "image/webp", (64, 48)),
        (webp(b"VP8 ", 320, 200), "image/webp", (320, 200)),
    ],
)
def test_sniff_and_image_size(data: bytes, mime: str, size: tuple[int, int]) -> None:
    assert sniff(data) == mime
    assert image_size(data, mime) == size


def test_sniff_text_pdf_and_binary() -> None:
    assert sniff("naïve text\n".encode()) == "text/plain"
    assert sniff(b"  %PDF-1.7\n") == "application/pdf"
    assert sniff(b"\x00\x01") is None
    assert sniff(b"\xff\xfe\xfa") is None  # not UTF-8
    pdf = b"%PDF-1.4 /Type /Pages /Type /Page /Type/Page /Type /Catalog"
    assert pdf_pages(pdf) == 2


def test_load_names_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "report.txt"
    f.write_bytes(jpeg(10, 20))  # a JPEG, whatever the name says
    a = load(str(f))
    assert (a.name, a.mime, a.kind, a.width, a.height) == (
        "report.txt",
        "image/jpeg",
        "image",
        10,
        20,
    )
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(UsageError, match="is empty"):
        load(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="cannot read attachment"):
        load(str(tmp_path / "nope.png"))
