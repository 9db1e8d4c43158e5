"""`callm chat`."""

from __future__ import annotations

HELP = "Call a model."


def chat() -> None:
    pass
