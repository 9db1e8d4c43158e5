"""The offline simulator: deterministic Markdown replies, token usage, optional delay and
injected failures (`-o length=N -o delay_ms=N -o seed=N -o fail=KIND`; numbers may be given
as strings, the way `-o` sends them). With a schema it answers JSON valid for it; attachments
are acknowledged and counted. No network at all: time.sleep is its only side effect."""

from __future__ import annotations

import json
import math
import random
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from callm.errors import (
    AuthError,
    BadRequestError,
    CallmError,
    CallTimeoutError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
    UsageError,
)
from callm.types import (
    Attachment,
    ChatRequest,
    Endpoint,
    Finished,
    FinishReason,
    ModelInfo,
    Price,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

DEFAULT_LENGTH = 60
FAIL_MODES = (
    "rate_limit",
    "auth",
    "server",
    "overloaded",
    "mid_stream",
    "timeout",
    "not_found",
    "context_length",
    "bad_request",
)

_WORD_TEXT = (
    "adapter alpha anchor array batch beacon buffer cache canvas channel cipher cluster "
    "compass context cursor delta digest domain engine entropy event fabric feature filter "
    "format gateway gradient graph harbor header index kernel ladder lattice layer ledger "
    "matrix measure meridian module network node offset orbit packet parser pattern pipeline "
    "prism protocol query quorum ratio record relay request router sample schema segment "
    "signal socket source spectrum stream syntax system tensor thread token topology trace "
    "vector velocity vertex window"
)
_WORDS = _WORD_TEXT.split()
_GLUE_TEXT = "the a of to and in with for on by as from into across over"
_GLUE = _GLUE_TEXT.split()


def _pieces(rng: random.Random) -> Iterator[str]:
    """An endless Markdown document, one token (a word with its leading markup) at a time:
    a heading, a paragraph, a list, a paragraph, and round again."""

    def word() -> str:
        return rng.choice(_GLUE) if rng.random() < 0.3 else rng.choice(_WORDS)

    def sentence(lead: str) -> Iterator[str]:
        n = rng.randint(6, 13)
        for i in range(n):
            w = rng.choice(_WORDS).capitalize() if i == 0 else word()
            if i and rng.random() < 0.05:
                w = f"`{rng.choice(_WORDS)}`"
            end = "." if i == n - 1 else ("," if rng.random() < 0.08 else "")
            yield (lead if i == 0 else " ") + w + end

    first = True
    while True:
        title = [rng.choice(_WORDS) for _ in range(rng.randint(2, 4))]
        lead = "" if first else "\n\n"
        first = False
        for i, w in enumerate(title):
            yield (lead + "## " + w.capitalize()) if i == 0 else " " + w
        for s in range(rng.randint(2, 3)):
            yield from sentence("\n\n" if s == 0 else " ")
        for item in range(rng.randint(3, 4)):
            n = rng.randint(3, 7)
            for i in range(n):
                w = rng.choice(_WORDS)
                if i == 0:
                    yield ("\n\n- " if item == 0 else "\n- ") + f"**{w.capitalize()}**:"
                else:
                    yield " " + (word() if i < n - 1 else w)
        for s in range(rng.randint(1, 2)):
            yield from sentence("\n\n" if s == 0 else " ")


def _option(
    opts: Mapping[str, Any], key: str, default: float, convert: Callable[[Any], Any]
) -> Any:
    value = opts.get(key)
    if value is None or value == "":
        return default
    try:
        result = convert(float(value))
    except (TypeError, ValueError):
        raise UsageError(f"sim option {key} must be a number, not {value!r}") from None
    if result < 0:
        raise UsageError(f"sim option {key} must not be negative")
    return result


def estimate_tokens(text: str) -> int:
    """The usual rough rule: a token is about four characters."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _prompt(req: ChatRequest) -> str:
    parts = [req.system] if req.system else []
    parts.extend(m.content for m in req.messages)
    return "\n".join(parts)


def _describe(a: Attachment) -> str:
    if a.width and a.height:
        return f"{a.name} ({a.mime}, {a.width}x{a.height})"
    if a.pages:
        return f"{a.name} ({a.mime}, {a.pages} page{'s' if a.pages > 1 else ''})"
    return f"{a.name} ({a.mime}, {len(a.data)} bytes)"


def _input_tokens(req: ChatRequest, prompt: str) -> int:
    """The prompt, and each attachment: text by length, images and PDF pages 258 each
    (Gemini's flat rule: the simulator does not pretend to know better)."""
    n = estimate_tokens(prompt)
    for a in req.attachments:
        if a.kind == "text":
            n += estimate_tokens(a.data.decode("utf-8", "replace"))
        else:
            n += 258 * (a.pages or 1)
    return n


def sample(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value valid for a JSON schema (the common keywords: type, enum, const,
    properties/required, items, minimum/maximum, minItems/maxItems, anyOf/oneOf)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample(schema[key][0], rng, depth + 1)
    t = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object":
        props = schema.get("properties") or {}
        return {k: sample(v, rng, depth + 1) for k, v in props.items()}
    if t == "array":
        lo = int(schema.get("minItems", 1))
        hi = max(lo, min(int(schema.get("maxItems", 3)), lo + 2))
        return [
            sample(schema.get("items") or {}, rng, depth + 1) for _ in range(rng.randint(lo, hi))
        ]
    if t in ("integer", "number"):
        lo = schema.get("minimum", 0)
        hi = schema.get("maximum", max(lo, 0) + 100)
        if t == "integer":
            return rng.randint(math.ceil(lo), math.floor(hi))
        return round(rng.uniform(lo, hi), 2)
    if t == "boolean":
        return rng.random() < 0.5
    if t == "null":
        return None
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    words = words.ljust(int(schema.get("minLength", 0)), "x")
    return words[: int(schema.get("maxLength", len(words)))]


def _failure(kind: str, ep: Endpoint, req: ChatRequest, opts: Mapping[str, Any]) -> CallmError:
    where = {"provider": ep.name, "model": req.model}
    if kind == "rate_limit":
        wait = _option(opts, "retry_after", 1.0, float)
        return RateLimitError(
            "simulated rate limit: too many requests", retry_after=wait, status=429, **where
        )
    if kind == "auth":
        return AuthError("simulated authentication failure: invalid API key", status=401, **where)
    if kind == "server":
        return ServerError("simulated internal server error", status=500, **where)
    if kind == "overloaded":
        return OverloadedError("simulated overload: try again later", status=529, **where)
    if kind == "timeout":
        return CallTimeoutError(f"simulated timeout after {ep.timeout:g}s", **where)
    if kind == "not_found":
        return NotFoundError(f"simulated: model {req.model!r} not found", status=404, **where)
    if kind == "context_length":
        return ContextLengthError("simulated: prompt is too long", status=400, **where)
    return BadRequestError("simulated bad request", status=400, **where)


def _wants_tool(req: ChatRequest) -> bool:
    """With tools offered, sim calls one, unless told not to or answering a tool's result."""
    if not req.tools or req.tool_choice == "none":
        return False
    return not (req.messages and req.messages[-1].role == "tool")


def _tool_call(req: ChatRequest, prompt: str, delay: float) -> Iterator[StreamEvent]:
    """A call of the chosen (or first) tool, its required string/number arguments filled."""
    tool = next((t for t in req.tools if t.name == req.tool_choice), req.tools[0])
    props = tool.parameters.get("properties") or {}
    fill = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    args = {
        name: fill.get((props.get(name) or {}).get("type"), "sim")
        for name in tool.parameters.get("required") or ()
    }
    call_id = f"call_sim_{zlib.crc32(prompt.encode('utf-8')):08x}"
    text = json.dumps(args)
    yield UsageReport(Usage(input_tokens=estimate_tokens(prompt)))
    if delay:
        time.sleep(delay)
    yield ToolCallDelta(0, call_id, tool.name, text)
    yield UsageReport(Usage(estimate_tokens(prompt), estimate_tokens(tool.name + text)))
    yield Finished("tool_call")


class SimDriver:
    name = "sim"
    local = True

    def run(self, ep: Endpoint, req: ChatRequest) -> Iterator[StreamEvent]:
        """A generator: like a real call, nothing happens (and nothing fails) until the
        first event is asked for."""
        opts = req.options
        fail = str(opts.get("fail") or "none").strip().lower().replace("-", "_")
        if fail != "none" and fail not in FAIL_MODES:
            raise UsageError(f"unknown sim failure {fail!r}", hint="fail=" + "|".join(FAIL_MODES))
        length = _option(opts, "length", DEFAULT_LENGTH, int)
        delay = _option(opts, "delay_ms", 0, float) / 1000.0
        prompt = _prompt(req)
        seed = _option(opts, "seed", zlib.crc32(prompt.encode("utf-8")), int)
        if fail not in ("none", "mid_stream"):
            raise _failure(fail, ep, req, opts)
        if req.schema is not None:
            yield from self._json(req, prompt, seed)
            return
        if _wants_tool(req):
            yield from _tool_call(req, prompt, delay)
            return
        n = length
        finish: FinishReason = "stop"
        if req.max_tokens is not None and req.max_tokens < length:
            n, finish = req.max_tokens, "length"
        yield from self._stream(ep, req, prompt, seed, n, finish, delay, fail == "mid_stream")

    def _stream(
        self,
        ep: Endpoint,
        req: ChatRequest,
        prompt: str,
        seed: int,
        n: int,
        finish: FinishReason,
        delay: float,
        break_midway: bool,
    ) -> Iterator[StreamEvent]:
        sizes = random.Random(seed ^ 0x5EED)  # chunking never changes the text
        usage = Usage(input_tokens=_input_tokens(req, prompt))
        yield UsageReport(Usage(input_tokens=usage.input_tokens))
        pieces = _pieces(random.Random(seed))
        produced = 0
        last = ""
        if req.attachments:  # say what was received, as a vision model would
            seen = ", ".join(_describe(a) for a in req.attachments)
            yield TextDelta(f"Attached: {seen}.\n\n")
        half = n // 2
        while produced < n:
            take = min(sizes.randint(1, 3), n - produced)
            if break_midway and produced + take > half:
                take = half - produced
            if take:
                chunk = "".join(next(pieces) for _ in range(take))
                if delay:
                    time.sleep(delay)
                produced += take
                last = chunk
                yield TextDelta(chunk)
            if break_midway and produced >= half:
                break
        if break_midway:
            raise ServerError("connection reset by sim", provider=ep.name, model=req.model)
        if finish == "stop" and last and last[-1] not in ".:":
            yield TextDelta(".")  # end a natural reply on a full sentence
        usage.output_tokens = produced
        yield UsageReport(usage)
        yield Finished(finish)

    def _json(self, req: ChatRequest, prompt: str, seed: int) -> Iterator[StreamEvent]:
        """A reply that matches the schema, in a few chunks, as a structured-output model
        would stream it."""
        text = json.dumps(sample(req.schema, random.Random(seed)), ensure_ascii=False)
        yield UsageReport(Usage(input_tokens=_input_tokens(req, prompt)))
        step = max(1, len(text) // 4)
        for i in range(0, len(text), step):
            yield TextDelta(text[i : i + step])
        yield UsageReport(Usage(_input_tokens(req, prompt), estimate_tokens(text)))
        yield Finished("stop")

    def list_models(self, ep: Endpoint) -> list[ModelInfo]:
        price = Price(input=0.0, output=0.0, cached_input=0.0, cache_write=0.0, source="sim")
        return [
            ModelInfo(
                provider=ep.name,
                id="sim-small",
                context_window=8192,
                max_output=4096,
                price=price,
                capabilities=("streaming", "tools"),
                display_name="Simulator (small)",
            ),
            ModelInfo(
                provider=ep.name,
                id="sim-large",
                context_window=200_000,
                max_output=16_384,
                price=price,
                capabilities=("streaming", "tools"),
                display_name="Simulator (large)",
            ),
        ]
