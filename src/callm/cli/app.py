"""The root command: global options, sub-command groups, and the one place where errors
become exit codes and one-line messages."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import importlib
import os
import sys
from collections.abc import Callable, Iterator, MutableMapping
from functools import partial
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from callm import __version__

# The sub-commands, imported and built only when used: typer inspects the signature of every
# command it builds, so building them all would cost `callm --help` (and each command) more
# than importing typer. name -> (module, attribute, short help shown by `callm --help`; a
# test keeps it equal to the command's own).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "chat": ("callm.cli.chat", "chat", "Call a model."),
    "providers": ("callm.cli.providers", "app", "Register, inspect and verify providers."),
    "models": ("callm.cli.models", "app", "Model lists with prices and context windows."),
    "usage": ("callm.cli.usage", "app", "What your calls cost."),
    "serve": (
        "callm.cli.serve",
        "app",
        "Serve the OpenAI, Anthropic and Ollama APIs locally.",
    ),
    "routes": ("callm.cli.routes", "app", "Routes: one name for several models and a strategy."),
    "schema": ("callm.cli.schema", "schema", "Print the JSON Schema of a --json output."),
    "logs": ("callm.cli.logs", "app", "Logged calls: list, search, show, remove; logging on/off."),
    "templates": ("callm.cli.templates", "app", "Saved prompts: save, list, show, edit, rm."),
    "ledger": ("callm.cli.ledger", "app", "The ledger: SQLite file or shared PostgreSQL."),
}


def _build(name: str) -> Any:
    """The click command for COMMANDS[name]: a Typer app's group, or a command function."""
    module_name, attribute, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    target = getattr(module, attribute)
    if isinstance(target, typer.Typer):
        target.rich_markup_mode = None  # as the root's (add_typer would pass it down)
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False, rich_markup_mode=None)
        single.command(name, help=getattr(module, "HELP", None))(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyCommands(MutableMapping[str, Any]):
    """name -> click command, each built on first lookup. Listing names builds nothing."""

    def __init__(self, loaders: dict[str, Callable[[], Any]]) -> None:
        self._loaders = loaders
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._loaders[name]()  # KeyError for unknown names
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command
        self._loaders.setdefault(name, lambda: command)

    def __delitem__(self, name: str) -> None:
        del self._loaders[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


class LazyGroup(TyperGroup):
    """The root group: COMMANDS are built on first use; `callm --help` builds none of them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        eager = dict(self.commands)
        self.commands = _LazyCommands({name: partial(_build, name) for name in COMMANDS})
        self.commands.update(eager)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.commands if name in COMMANDS]
        rows += [
            (name, self.commands[name].get_short_help_str())
            for name in self.commands
            if name not in COMMANDS and not self.commands[name].hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="callm",
    cls=LazyGroup,
    help="Manage LLM providers and call any model the same way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help imports rich.markdown, markdown-it, pygments and
    # rich.traceback (~0.35 s, more than typer itself) just to draw boxes around --help.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"callm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", metavar="PATH", help="Config file (default: CALLM_CONFIG or XDG)."
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine output: one JSON document on stdout.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or cost lines.")
    ] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colours (also NO_COLOR).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show details and tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    # imported here, not at the top: `callm --help` never runs this callback
    from callm.cli.context import State
    from callm.ledger import backend
    from callm.render.output import Output

    backend.set_config_override(config)  # the ledger URL is read from this config
    ctx.obj = State(
        config_override=config,
        out=Output(json_mode=json_out, quiet=quiet, verbose=verbose, no_color=no_color),
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Never lets a traceback reach the user (unless --verbose)."""
    args = sys.argv[1:] if argv is None else argv
    # pydantic looks for plugins (an entry-point scan of every installed package: ~30% of
    # building the config schema) unless told not to; callm uses none. A user's own
    # PYDANTIC_DISABLE_PLUGINS setting wins (set it to "" to let plugins load).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _stop_on_signals()
    _closed_streams()
    code = run(args)
    sys.exit(code)


def _closed_streams() -> None:
    """`callm ... >&-` or `2>&-` leave sys.stdout/sys.stderr None: write to the null device
    instead (marked, so `chat` can refuse to spend money on a reply nobody can read)."""
    import os

    for name in ("stderr", "stdout"):
        if getattr(sys, name) is None:
            stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives until exit
            stream.callm_closed = True  # type: ignore[attr-defined]
            setattr(sys, name, stream)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP (`timeout`, a closed terminal, a service manager) stop a call the
    way Ctrl-C does, so its text and its usage row are kept. A second signal while that
    cleanup runs is ignored: the row must not be lost half-written."""
    import signal

    from callm.errors import Interrupted

    def stop(signum: int, frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, stop)


GLOBAL_FLAGS = frozenset({"--json", "--quiet", "-q", "--no-color", "--verbose", "-v"})


def hoist_global_options(args: list[str]) -> list[str]:
    """Let global options stand anywhere (`callm providers list --json`, as users type it):
    move them before the sub-command, where click expects them. Nothing after `--` moves."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        if a in ("-q", "--query") and rest[:1] == ["logs"]:  # `logs -q TEXT` searches
            rest.append(a)
        elif a in GLOBAL_FLAGS:
            front.append(a)
        elif a == "--config" and i + 1 < len(args):
            front += [a, args[i + 1]]
            i += 1
        elif a.startswith("--config="):
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest


def _check_args(args: list[str]) -> None:
    """Bytes that are not UTF-8 arrive as lone surrogates: a usage error, named here."""
    for i, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            from callm.errors import UsageError

            bad = arg[exc.start].encode("utf-8", "surrogateescape").hex()
            raise UsageError(
                f"argument {i} is not valid UTF-8 (byte 0x{bad} at character {exc.start})"
            ) from None


def _command_index(args: list[str]) -> int:
    """Where the sub-command's name is, once global options are in front."""
    i = 0
    while i < len(args) and (args[i] in GLOBAL_FLAGS or args[i].startswith("--config")):
        i += 2 if args[i] == "--config" else 1
    return i


def run(args: list[str]) -> int:
    # pydantic looks for plugins (an entry-point scan of every installed package, ~25-50 ms)
    # when it builds the first model; callm uses none. A value the user set still wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = hoist_global_options(args)
    i = _command_index(args)
    if args[i : i + 1] == ["logs"]:
        from callm.cli.logs import default_to_list

        args = args[:i] + default_to_list(args[i:])
    try:
        _check_args(args)
        result = app(args=args, prog_name="callm", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except BaseException as exc:  # this is the one place that decides
        from callm.cli.errors import handle

        return handle(exc, verbose="--verbose" in args or "-v" in args, json_mode="--json" in args)
