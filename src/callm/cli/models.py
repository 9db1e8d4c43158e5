"""`callm models ...` (filled in by the models work)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Model lists with prices and context windows.", no_args_is_help=True)
