"""Property tests of stream framing: however the network splits a stream, the same events
come out; whatever bytes arrive, the parsers raise nothing but a CallmError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callm.drivers import get_driver
from callm.drivers.sse import MAX_LINE_BYTES, NDJSONDecoder, SSEDecoder
from callm.errors import BadResponseError, CallmError

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HTTP_DRIVERS = ["openai", "openai-compatible", "azure-openai", "openai-responses", "anthropic",
                "gemini", "ollama"]  # fmt: skip

# ---- splitting ------------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (any order, duplicates allowed: empty reads too)."""
    points = sorted(c % (len(data) + 1) for c in cuts)
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=40)

# ---- SSE ------------------------------------------------------------------------------------

# Text of a field value: anything but CR and LF (which end a line), unicode included so that
# reads split multi-byte characters.
value_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30
)
event_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.", min_size=1, max_size=12)
ENDINGS = ["\n", "\r\n", "\r"]


@st.composite
def sse_stream(draw: st.DrawFn) -> tuple[bytes, list[tuple[str | None, bytes]]]:
    """A valid event stream and the events it carries. Each event: optional comment lines,
    an optional `event:` line, data lines (`data:` or `data: `), optional id:/retry: lines,
    then a blank line; line endings LF, CRLF or CR, mixed within the stream."""
    lines: list[str] = []
    expected: list[tuple[str | None, bytes]] = []
    for _ in range(draw(st.integers(0, 6))):
        for c in draw(st.lists(value_text, max_size=2)):
            lines.append(":" + c)
        name = draw(st.none() | event_name)
        if name is not None:
            lines.append(f"event: {name}")
        data = draw(st.lists(value_text, max_size=3))
        for d in data:
            tight = draw(st.booleans()) and not d.startswith(" ")
            lines.append(("data:" if tight else "data: ") + d)
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["id: 7", "retry: 1000", "id"])))
        lines.append("")
        if data:
            expected.append((name, "\n".join(data).encode()))
    if lines and not draw(st.booleans()):
        lines.pop()  # the last event may end at the end of the stream, without a blank line
    out: list[str] = []
    prev = ""
    for line in lines:
        ending = draw(st.sampled_from(ENDINGS))
        if prev == "\r" and line == "" and ending == "\n":
            ending = "\r"  # CR then an LF blank line would read as one CRLF
        out.append(line + ending)
        prev = ending
    return "".join(out).encode(), expected


def decode_sse(chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    dec = SSEDecoder()
    events: list[tuple[str | None, bytes]] = []
    for c in chunks:
        events.extend(dec.feed(c))
    events.extend(dec.close())
    return events


@PROPS
@given(sse_stream(), cuts)
def test_sse_any_split_gives_the_same_events(stream: Any, at: list[int]) -> None:
    data, expected = stream
    assert decode_sse([data]) == expected
    assert decode_sse(split(data, at)) == expected


@PROPS
@given(sse_stream(), st.integers(1, 7))
def test_sse_byte_by_byte_and_small_reads(stream: Any, size: int) -> None:
    data, expected = stream
    assert decode_sse([data[i : i + size] for i in range(0, len(data), size)]) == expected


def test_sse_comments_and_crlf_examples() -> None:
    data = b': ping\r\nevent: delta\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: x\rdata:tight\r\r'
    want = [("delta", b'{"a":\n1}'), (None, b"tight")]
    for cut in range(len(data) + 1):
        assert decode_sse([data[:cut], data[cut:]]) == want


def test_sse_long_line_over_many_reads() -> None:
    line = b"data: " + b"y" * 300_000 + b"\r\n\r\n"
    chunks = [line[i : i + 1000] for i in range(0, len(line), 1000)]
    assert decode_sse(chunks) == [(None, b"y" * 300_000)]


def test_sse_line_over_the_cap_is_refused() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: ")
    piece = b"z" * (1 << 20)
    with pytest.raises(BadResponseError, match="longer than"):
        for _ in range(MAX_LINE_BYTES // len(piece) + 1):
            dec.feed(piece)


# ---- NDJSON ---------------------------------------------------------------------------------

json_obj = st.dictionaries(
    st.text(max_size=5),
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    max_size=4,
)


@st.composite
def ndjson_stream(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    objs = draw(st.lists(json_obj, max_size=6))
    parts: list[str] = []
    expected: list[bytes] = []
    for o in objs:
        text = json.dumps(o, ensure_ascii=draw(st.booleans()))
        expected.append(text.encode())
        parts.append(draw(st.sampled_from(["", " ", "\t"])) + text)
        parts.append(draw(st.sampled_from(["\n", "\r\n", " \n", "\n\n"])))
    if parts and draw(st.booleans()):
        parts.pop()  # the last line may end without a newline
    return "".join(parts).encode(), expected


def decode_ndjson(chunks: list[bytes]) -> list[bytes]:
    dec = NDJSONDecoder()
    lines: list[bytes] = []
    for c in chunks:
        lines.extend(dec.feed(c))
    lines.extend(dec.close())
    return lines


@PROPS
@given(ndjson_stream(), cuts)
def test_ndjson_any_split_gives_the_same_lines(stream: Any, at: list[int]) -> None:
    data, expected = stream
    assert decode_ndjson([data]) == expected
    assert decode_ndjson(split(data, at)) == expected
    assert [json.loads(x) for x in decode_ndjson(split(data, at))] == [
        json.loads(x) for x in expected
    ]


def test_ndjson_long_line_over_many_reads() -> None:
    line = b'{"k": "' + b"q" * 300_000 + b'"}'
    chunks = [line[i : i + 999] for i in range(0, len(line), 999)]
    assert decode_ndjson(chunks) == [line]
    assert decode_ndjson([*chunks, b"\n"]) == [line]


# ---- random bytes: only CallmError ---------------------------------------------------------

# Bytes that look like the streams' syntax, so the parsers get past their first checks.
SYNTAX = [b"data: ", b"data:", b"event: error\n", b"\n", b"\r\n", b"\r", b"\n\n", b": c\n",
          b"{", b"}", b"[", b"]", b",", b'"', b"\\", b":", b"[DONE]", b"\xff", b"\xe2\x82",
          b"null", b"1e999", b'"error"', b'"choices"', b'"candidates"', b'"type"', b'"delta"',
          b'"message"', b'"done"', b"true"]  # fmt: skip
noise = st.lists(st.binary(max_size=40) | st.sampled_from(SYNTAX), max_size=40).map(b"".join)


def run_parser(make: Callable[[], Any], chunks: list[bytes]) -> None:
    """Feed until the parser raises (a parser may hold an error for the next call), then
    close. Anything but a CallmError escapes and fails the test."""
    p = make()
    try:
        for c in chunks:
            p.feed(c)
        p.close()
    except CallmError:
        pass


@PROPS
@given(noise, cuts)
def test_random_bytes_sse_decoder(data: bytes, at: list[int]) -> None:
    run_parser(SSEDecoder, split(data, at))


@PROPS
@given(noise, cuts)
def test_random_bytes_ndjson_decoder(data: bytes, at: list[int]) -> None:
    run_parser(NDJSONDecoder, split(data, at))


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
@PROPS
@given(data=noise, at=cuts)
def test_random_bytes_driver_stream_parser(driver: str, data: bytes, at: list[int]) -> None:
    run_parser(get_driver(driver).stream_parser, split(data, at))


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
@PROPS
@given(data=st.binary(max_size=300))
def test_random_bytes_driver_parse_response_and_error(driver: str, data: bytes) -> None:
    d = get_driver(driver)
    try:
        d.parse_response(data)
    except CallmError:
        pass
    for status in (400, 429, 500, 529):
        err = d.parse_error(status, {"retry-after": "1"}, data)
        assert isinstance(err, CallmError)


# ---- valid frames, unexpected JSON shapes ---------------------------------------------------

FIELDS = ["choices", "delta", "content", "candidates", "parts", "text", "message", "type",
          "index", "usage", "error", "done", "finish_reason", "tool_calls", "function",
          "content_block", "output", "response"]  # fmt: skip
json_any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=12,
)


def framed(objs: list[Any], driver: str) -> bytes:
    if driver == "ollama":
        return b"".join(json.dumps(o).encode() + b"\n" for o in objs)
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs)


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
@PROPS
@given(objs=st.lists(json_any, min_size=1, max_size=4))
def test_odd_json_through_the_engines_guard(driver: str, objs: list[Any]) -> None:
    """What the engine does with a parser: any JSON, of any shape, in valid framing, ends as
    events or a CallmError (the engine turns a driver's TypeError & co. into a bad response)."""
    from callm.engine import _reading

    try:
        with _reading():
            run_parser(get_driver(driver).stream_parser, [framed(objs, driver)])
    except CallmError:
        pass


# Found by the property above run on a driver alone (without the engine's guard): each
# driver once raised TypeError/AttributeError/KeyError on these. The drivers now raise a
# BadResponseError themselves.
ODD_SHAPES = [
    ("openai", [{"choices": {"choices": None}}]),
    ("azure-openai", [{"choices": {"choices": None}}]),
    ("openai-responses", [{"choices": None, "type": []}]),
    ("gemini", [{"candidates": 1}]),
    ("gemini", [{"candidates": [5]}]),
    ("ollama", [{"message": True}]),
    ("anthropic", [{"type": "content_block_delta", "delta": 5}]),
]


@pytest.mark.parametrize(("driver", "objs"), ODD_SHAPES)
def test_odd_json_driver_alone(driver: str, objs: list[Any]) -> None:
    """Each odd shape ends as events or a BadResponseError, from the driver alone."""
    try:
        run_parser(get_driver(driver).stream_parser, [framed(objs, driver)])
    except Exception as exc:  # run_parser lets only non-CallmErrors out
        pytest.fail(f"{driver} raised {type(exc).__name__}: {exc}")
    p = get_driver(driver).stream_parser()
    with pytest.raises(BadResponseError, match="unexpected"):
        p.feed(framed(objs, driver))
        p.close()


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
@PROPS
@given(objs=st.lists(json_any, min_size=1, max_size=4), at=cuts)
def test_odd_json_driver_alone_any_shape(driver: str, objs: list[Any], at: list[int]) -> None:
    """The same, for any JSON in valid framing, however it is split, without the engine."""
    run_parser(get_driver(driver).stream_parser, split(framed(objs, driver), at))


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
@PROPS
@given(obj=json_any)
def test_odd_json_driver_alone_parse_functions(driver: str, obj: Any) -> None:
    """parse_response / parse_models raise only a CallmError; parse_error returns one."""
    from callm.types import Endpoint

    d = get_driver(driver)
    body = json.dumps(obj).encode()
    ep = Endpoint(name="lab", driver=driver, base_url="http://x")
    for call in (lambda: d.parse_response(body), lambda: d.parse_models(ep, body)):
        try:
            call()
        except CallmError:
            pass
    for status in (400, 429, 500):
        assert isinstance(d.parse_error(status, {}, body), CallmError)


# ---- each driver: any split of a valid stream gives the same events ------------------------

texts = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6)


def _sse_frames(frames: list[tuple[str | None, Any]], eol: str, comment: bool) -> bytes:
    out = [f": keep-alive{eol}{eol}"] if comment else []
    for name, obj in frames:
        head = f"event: {name}{eol}" if name else ""
        out.append(f"{head}data: {json.dumps(obj)}{eol}{eol}")
    return "".join(out).encode()


def valid_stream(driver: str, pieces: list[str], eol: str, comment: bool) -> bytes:
    if driver in ("openai", "openai-compatible", "azure-openai"):
        chunks = [
            {"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
            for t in pieces
        ]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}})
        return (
            _sse_frames([(None, c) for c in chunks], eol, comment)
            + f"data: [DONE]{eol}{eol}".encode()
        )
    if driver == "openai-responses":
        frames: list[tuple[str | None, Any]] = [
            ("response.output_text.delta", {"type": "response.output_text.delta", "delta": t})
            for t in pieces
        ]
        done = {"status": "completed", "usage": {"input_tokens": 2, "output_tokens": 3}}
        frames.append(("response.completed", {"type": "response.completed", "response": done}))
        return _sse_frames(frames, eol, comment)
    if driver == "anthropic":
        frames = [
            ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 2}}})
        ]
        for t in pieces:
            delta = {"type": "text_delta", "text": t}
            frames.append(
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            )
        end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
        frames.append(("message_delta", {**end, "usage": {"output_tokens": 3}}))
        frames.append(("message_stop", {"type": "message_stop"}))
        return _sse_frames(frames, eol, comment)
    if driver == "gemini":
        objs: list[Any] = [{"candidates": [{"content": {"parts": [{"text": t}]}}]} for t in pieces]
        objs[-1]["candidates"][0]["finishReason"] = "STOP"
        objs[-1]["usageMetadata"] = {"promptTokenCount": 2, "candidatesTokenCount": 3}
        if comment:  # the JSON-array form Google sends without alt=sse
            return ("[" + f",{eol}".join(json.dumps(o) for o in objs) + "]").encode()
        return _sse_frames([(None, o) for o in objs], eol, False)
    if driver == "ollama":
        lines = [{"message": {"role": "assistant", "content": t}, "done": False} for t in pieces]
        last = {"message": {"content": ""}, "done": True, "done_reason": "stop"}
        lines.append({**last, "prompt_eval_count": 2, "eval_count": 3})
        return "".join(json.dumps(o) + ("\r\n" if eol == "\r\n" else "\n") for o in lines).encode()
    raise ValueError(driver)


def parse_all(driver: str, chunks: list[bytes]) -> list[Any]:
    p = get_driver(driver).stream_parser()
    events: list[Any] = []
    for c in chunks:
        events.extend(p.feed(c))
    events.extend(p.close())
    return events


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
@settings(max_examples=150, deadline=None)
@given(pieces=texts, eol=st.sampled_from(["\n", "\r\n", "\r"]), comment=st.booleans(), at=cuts)
def test_driver_any_split_gives_the_same_events(
    driver: str, pieces: list[str], eol: str, comment: bool, at: list[int]
) -> None:
    from callm.types import Finished, TextDelta

    if driver == "ollama" and eol == "\r":
        eol = "\n"  # NDJSON has no CR-only line ends
    data = valid_stream(driver, pieces, eol, comment)
    whole = parse_all(driver, [data])
    assert "".join(e.text for e in whole if isinstance(e, TextDelta)) == "".join(pieces)
    assert [e for e in whole if isinstance(e, Finished)] == [Finished("stop")]
    assert parse_all(driver, split(data, at)) == whole
