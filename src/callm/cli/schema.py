"""`callm schema [NAME]`: the JSON Schema of a `--json` output, for scripts that check what
they parse. The models live in callm.outputs; copies are committed under docs/schemas/."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

from typing import Annotated

import typer

from callm.cli.context import state

HELP = """Print the JSON Schema of a --json output. With no NAME, list the names.

Names: chat, chat-estimate, error, providers-list, providers-show, providers-verify,
models-list, models-show, models-sync, usage-report, ledger-status, ledger-copy, and config
(the config file)."""


def schema(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Which output.")] = None,
) -> None:
    from callm.errors import UsageError
    from callm.outputs import SCHEMAS, schema_text

    out = state(ctx).out
    if name is None:
        if out.json_mode:
            out.emit_json(list(SCHEMAS))
        else:
            out.data("\n".join(SCHEMAS))
        return
    if name not in SCHEMAS:
        raise UsageError(f"unknown schema {name!r} (one of: {', '.join(SCHEMAS)})")
    out.stdout.write(schema_text(name))
    out.stdout.flush()
