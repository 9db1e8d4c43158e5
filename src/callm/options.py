"""`-o` options the way HTTPie writes request fields: `key=value` is always a string,
`key:=json` is a JSON value (number, boolean, null, array, object)."""

from __future__ import annotations

import json
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
                opts[key] = json.loads(raw)
            except ValueError as exc:
                raise UsageError(
                    f"-o {key}:= wants a JSON value, got {raw!r} ({exc.msg})",
                    hint=f"for a string use -o {key}={raw}",
                ) from None
        else:
            opts[key] = raw
    return opts
