"""The root command: global options, sub-command groups, and the one place where errors
become exit codes and one-line messages."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from callm import __version__
from callm.cli import chat, models, providers, usage
from callm.cli.context import State
from callm.render.output import Output

app = typer.Typer(
    name="callm",
    help="Manage LLM providers and call any model the same way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(providers.app, name="providers")
app.add_typer(models.app, name="models")
app.add_typer(usage.app, name="usage")
app.command("chat", help=chat.HELP, context_settings={"ignore_unknown_options": False})(
    chat.chat
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"callm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Optional[str],
        typer.Option("--config", metavar="PATH", help="Config file (default: CALLM_CONFIG or XDG).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine output: one JSON document on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or cost lines.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours (also NO_COLOR).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details and tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    ctx.obj = State(
        config_override=config,
        out=Output(json_mode=json_out, quiet=quiet, verbose=verbose, no_color=no_color),
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Never lets a traceback reach the user (unless --verbose)."""
    args = sys.argv[1:] if argv is None else argv
    code = run(args)
    sys.exit(code)


def run(args: list[str]) -> int:
    from callm.cli.errors import handle

    try:
        result = app(args=args, prog_name="callm", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except BaseException as exc:  # noqa: BLE001 - this is the one place that decides
        return handle(exc, verbose="--verbose" in args or "-v" in args, json_mode="--json" in args)
