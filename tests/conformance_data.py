"""Access to tests/conformance/cases: real recorded vendor traffic with expected readings
(third-party recordings; each file names its source, see tests/conformance/NOTICE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).resolve().parent / "conformance" / "cases"


@dataclass(frozen=True)
class Interaction:
    case_file: Path
    index: int
    provider: str  # folder name: openai, anthropic, gemini, ...
    request: dict[str, Any]
    response: dict[str, Any]  # {"status", "headers", "body"}
    expect: dict[str, Any] | None

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.case_file.stem[:70]}#{self.index}"

    @property
    def body_bytes(self) -> bytes:
        return self.response["body"].encode("utf-8")


def interactions(wire: str | None = None) -> Iterator[Interaction]:
    """Every recorded interaction (optionally only those whose expect.wire matches)."""
    for path in sorted(CASES_DIR.glob("*/*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for i, it in enumerate(data["interactions"]):
            exp = it.get("expect")
            if wire is not None and (not exp or exp.get("wire") != wire):
                continue
            yield Interaction(path, i, path.parent.name, it["request"], it["response"], exp)
