"""`callm usage ...` (filled in by the ledger work)."""

from __future__ import annotations

import typer

app = typer.Typer(help="What your calls cost.", no_args_is_help=True)
