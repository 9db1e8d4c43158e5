"""`-o` options the way HTTPie writes request fields: `key=value` is always a string,
`key:=json` is a JSON value (number, boolean, null, array, object)."""

from __future__ import annotations

import json
import math
from typing import Any

from callm.errors import UsageError


def parse_options(items: list[str]) -> dict[str, Any]:
    """-o KEY=VALUE (a string) and -o KEY:=JSON (typed); a later KEY wins."""
    opts: dict[str, Any] = {}
    for item in items:
        eq = item.find("=")
        if eq < 0:
            raise UsageError(
                f"-o wants KEY=VALUE or KEY:=JSON, got {item!r}",
                hint="-o user=12345 sends a string; -o seed:=42 sends a number",
            )
        typed = eq > 0 and item[eq - 1] == ":"
        key = item[: eq - 1 if typed else eq].strip()
        raw = item[eq + 1 :]
        if not key:
            raise UsageError(f"-o wants KEY=VALUE or KEY:=JSON, got {item!r}")
        if typed:
            try:
                opts[key] = json.loads(raw, parse_constant=_refuse, parse_float=_finite)
            except ValueError as exc:
                raise UsageError(
                    f"-o {key}:= wants a JSON value, got {raw!r} ({getattr(exc, 'msg', exc)})",
                    hint=f"for a string use -o {key}={raw}",
                ) from None
        else:
            opts[key] = raw
    return opts


# Python's json reads NaN, Infinity and 1e999 (as inf); JSON has no such numbers, so a
# request carrying one would not parse at the vendor.
def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value
