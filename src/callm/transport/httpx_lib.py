"""httpx, imported without its command-line tool.

httpx/__init__ imports httpx._main (click, rich.console, rich.progress, rich.syntax and
pygments) only to offer `httpx.main`, the `httpx` command, which callm never runs. That import
is about 50 ms of every command that makes a call (bench/RESULTS.md, "Where the time goes").
A None entry in sys.modules makes that one import fail, a case httpx handles (its `main` then
asks for httpx[cli]); the entry is removed right after, so a later explicit import of
httpx._main works. Upstream: encode/httpx#3547 (lazy import of the CLI).
"""

from __future__ import annotations

import sys

_block_cli = "httpx" not in sys.modules and "httpx._main" not in sys.modules
if _block_cli:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
try:
    import httpx
finally:
    if _block_cli and sys.modules.get("httpx._main", 0) is None:
        del sys.modules["httpx._main"]

__all__ = ["httpx"]
