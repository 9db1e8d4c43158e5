"""Shared helpers for replaying recorded vendor traffic through a driver's parsers."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from callm.drivers.base import StreamAccumulator, StreamParser  # noqa: E402
from callm.types import ChatResult, StreamEvent  # noqa: E402
from conformance_data import Interaction, interactions  # noqa: E402

__all__ = [
    "Interaction",
    "cases",
    "chunkings",
    "expected_reading",
    "reading",
    "run_events",
    "run_stream",
]


def cases(wires: Iterable[str], provider: str | None = None) -> list[Any]:
    """pytest params for every interaction of the given wire formats (and provider folder)."""
    out = []
    for wire in wires:
        for it in interactions(wire):
            if provider is None or it.provider == provider:
                out.append(pytest.param(it, id=it.id))
    return out


def chunkings(body: bytes, seed: int = 0) -> list[tuple[str, list[bytes]]]:
    """The same body cut several ways: whole, 1-byte chunks, and random sizes."""
    rng = random.Random(seed)
    out = [("whole", [body]), ("bytes", [body[i : i + 1] for i in range(len(body))])]
    for name, top in (("small", 7), ("medium", 97)):
        parts, i = [], 0
        while i < len(body):
            n = rng.randint(1, top)
            parts.append(body[i : i + n])
            i += n
        out.append((name, parts))
    return out


def run_events(events: Iterable[StreamEvent]) -> ChatResult:
    acc = StreamAccumulator()
    for ev in events:
        acc.add(ev)
    return acc.finish()


def run_stream(make_parser: Callable[[], StreamParser], chunks: Iterable[bytes]) -> ChatResult:
    parser = make_parser()
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return run_events(events)


def reading(r: ChatResult) -> dict[str, Any]:
    """What the conformance `expect` block states, read from a result."""
    return {
        "text": r.text,
        "finish": r.finish_reason,
        "tool_calls": [t.name for t in r.tool_calls],
        "input_tokens": r.usage.input_tokens if r.usage else None,
        "output_tokens": r.usage.output_tokens if r.usage else None,
    }


def expected_reading(expect: dict[str, Any]) -> dict[str, Any]:
    return {k: expect[k] for k in ("text", "finish", "tool_calls", "input_tokens", "output_tokens")}
