"""`callm ledger ...`: where the record of calls lives (SQLite file or a shared PostgreSQL
database), its schema, and moving a SQLite ledger into PostgreSQL. The work is in
callm.ledger.admin."""

# No `from __future__ import annotations` in modules that define commands (see cli/usage.py).

from typing import Annotated, Any

import typer

from callm.cli.context import state

app = typer.Typer(help="The ledger: SQLite file or shared PostgreSQL.", no_args_is_help=True)


def _load(ctx: typer.Context) -> Any:
    """The config, loaded: a bad `[ledger] url` (a password in it) stops here, exit 2."""
    from callm.ledger import backend

    st = state(ctx)
    st.config()
    backend.url()  # CALLM_LEDGER_URL is checked too
    return st


@app.command("status")
def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Backend, schema version, row counts and the spill backlog."""
    from callm.ledger import admin
    from callm.outputs import dump

    st = _load(ctx)
    data = admin.status()
    if json_out or st.out.json_mode:
        st.out.emit_json(dump("ledger-status", data))
    else:
        _show(st.out, data)
    if not data["reachable"]:
        raise typer.Exit(1)


@app.command("migrate")
def migrate(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Bring the schema up to date and write spilled rows in (both also happen on first use)."""
    from callm.ledger import admin
    from callm.outputs import dump

    st = _load(ctx)
    data = admin.migrate()
    if json_out or st.out.json_mode:
        st.out.emit_json(dump("ledger-status", data))
        return
    _show(st.out, data)
    st.out.info(f"schema at version {data['schema_version']}; imported {data['imported']} row(s)")


@app.command("copy")
def copy(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="URL", help="postgresql://user@host/db")],
    source: Annotated[
        str | None, typer.Option("--from", metavar="PATH", help="SQLite ledger (default: yours).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Copy a SQLite ledger into PostgreSQL; running it again adds nothing twice."""
    from pathlib import Path

    from callm.ledger import admin

    st = state(ctx)
    added = admin.copy(to, Path(source).expanduser() if source else None)
    if json_out or st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("ledger-copy", {"added": added}))
        return
    parts = ", ".join(f"{n} {t}" for t, n in added.items())
    st.out.info(f"copied: {parts}")


@app.command("login")
def login(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Argument(metavar="[URL]", help="Default: the configured ledger.")
    ] = None,
) -> None:
    """Store the PostgreSQL password in the OS keychain (read from standard input)."""
    import sys

    from callm.errors import UsageError
    from callm.ledger import backend, pg
    from callm.secrets import keychain_set

    _load(ctx)
    target = backend.check_url(url) if url else backend.url()
    if not target:
        raise UsageError("no PostgreSQL ledger configured: give its URL or set [ledger] url")
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("PostgreSQL password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("no password given")
    keychain_set(pg.keychain_entry(target), password)
    state(ctx).out.info(f"password stored in the keychain for {backend.describe(target)}")


def _show(out: Any, data: dict[str, Any]) -> None:
    version = data["schema_version"]
    lines = [
        f"backend:        {data['backend']}",
        f"location:       {data['location']}",
        f"schema version: {'?' if version is None else version} (latest {data['latest_version']})",
        f"spill backlog:  {data['spill_backlog']} row(s)",
    ]
    if not data["reachable"]:
        lines.append(f"unreachable:    {data['error']}")
    width = max((len(t) for t in data["rows"]), default=0)
    for table, n in data["rows"].items():
        lines.append(f"  {table:<{width}} {n}")
    out.data("\n".join(lines))
