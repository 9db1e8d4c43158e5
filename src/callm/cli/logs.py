"""`callm logs ...`: find, read and remove logged calls; turn logging on and off.
Thin: the SQL lives in callm.ledger.logs."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

from typing import Annotated, Any

import typer

from callm.cli.context import state

app = typer.Typer(
    help="Logged calls: list, search, show, remove; logging on/off.", no_args_is_help=False
)

SUBCOMMANDS = ("list", "show", "rm", "path", "on", "off", "status")


def default_to_list(args: list[str]) -> list[str]:
    """`callm logs` and `callm logs -q TEXT` mean `callm logs list ...` (as in llm)."""
    if not args or args[0] != "logs":
        return args
    rest = args[1:]
    if not rest or (rest[0].startswith("-") and rest[0] not in ("-h", "--help")):
        return ["logs", "list", *rest]
    return args


@app.command("list")
def list_(
    ctx: typer.Context,
    count: Annotated[int, typer.Option("-n", "--count", metavar="N", min=1, help="How many.")] = 20,
    model: Annotated[str | None, typer.Option(metavar="MODEL", help="Only this model.")] = None,
    provider: Annotated[str | None, typer.Option(metavar="P", help="Only this provider.")] = None,
    since: Annotated[
        str | None, typer.Option(metavar="WHEN", help="From: 7d, 24h, today, 2026-11-01...")
    ] = None,
    cid: Annotated[
        str | None, typer.Option("--cid", metavar="ID", help="Only this conversation.")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option("-q", "--query", metavar="TEXT", help="Full-text search (every word)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="A JSON list.")] = False,
) -> None:
    """Logged calls, newest first."""
    from callm.ledger import logs
    from callm.ledger.report import parse_when

    st = state(ctx)
    lo = parse_when(since) if since else None
    if model and "/" in model and provider is None:
        provider, model = model.split("/", 1)
    conn = logs.connect()
    try:
        entries = logs.list_entries(
            conn, limit=count, model=model, provider=provider, since=lo, cid=cid, query=query
        )
    finally:
        conn.close()
    if json_out or st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("logs", [e.as_dict() for e in entries]))
        return
    if not entries:
        st.out.info(
            "no logged calls match"
            if (model or provider or since or cid or query)
            else "no logged calls yet"
        )
        return
    rows = [
        [
            str(e.id),
            e.time[:16].replace("T", " "),
            f"{e.provider}/{e.model}",
            e.cid or "",
            _snip(e.prompt),
            ("[interrupted] " if e.interrupted else "") + _snip(e.reply),
        ]
        for e in entries
    ]
    columns = ["id", "time", "model", "cid", "prompt", "reply"]
    if st.out.rich_stdout:  # narrower: month-day time, and the conversation's first 8
        for r in rows:
            r[1], r[3] = r[1][5:], r[3][:8]
        _rich_table(st.out, columns, rows)
    else:
        st.out.table(columns, rows)


def _rich_table(out: Any, columns: list[str], rows: list[list[str]]) -> None:
    """One line per call on a terminal: prompt and reply share what the other columns leave
    of the width, cut with an ellipsis, never wrapped."""
    from rich.table import Table
    from rich.text import Text

    console = out.console()
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    fixed = sum(widths[:-2]) + 3 * len(columns)  # padding and a separator per column
    long = max(12, (console.width - fixed) // 2)
    t = Table(show_edge=False, header_style="bold")
    for i, c in enumerate(columns):
        width = long if i >= len(columns) - 2 else widths[i]
        t.add_column(c, no_wrap=True, overflow="ellipsis", width=width)
    for r in rows:
        t.add_row(*(Text(cell) for cell in r))  # text, never rich markup
    console.print(t)


def _snip(text: str | None, width: int = 40) -> str:
    one = " ".join((text or "").split())
    return one if len(one) <= width else one[: width - 1] + "…"


@app.command("show")
def show(
    ctx: typer.Context,
    log_id: Annotated[int | None, typer.Argument(metavar="ID", help="A call's id.")] = None,
    cid: Annotated[
        str | None, typer.Option("--cid", metavar="ID", help="A whole conversation.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON: a list of calls.")] = False,
) -> None:
    """A logged call, or a whole conversation: Markdown on a terminal, plain when piped."""
    from callm.ledger import logs

    st = state(ctx)
    _one_of(log_id, cid)
    conn = logs.connect()
    try:
        entries = [logs.get(conn, log_id)] if log_id is not None else _conv(conn, cid or "")
    finally:
        conn.close()
    if json_out or st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("logs", [e.as_dict() for e in entries]))
        return
    text = "\n\n".join(_markdown(e) for e in entries)
    if st.out.rich_stdout:
        from rich.markdown import Markdown

        st.out.console().print(Markdown(text))
    else:
        st.out.data(text)


def _conv(conn: Any, cid: str) -> list[Any]:
    from callm.ledger import logs

    return logs.conversation(conn, logs.resolve_cid(conn, cid))


def _one_of(log_id: int | None, cid: str | None) -> None:
    from callm.errors import UsageError

    if (log_id is None) == (cid is None):
        raise UsageError("give a log ID or --cid ID (one of them)", hint="see `callm logs list`")


def _markdown(e: Any) -> str:
    cost = "unknown" if e.cost_usd is None else f"${e.cost_usd:.6f}".rstrip("0").rstrip(".")
    head = [
        f"## {e.time.replace('T', ' ')} · {e.provider}/{e.model} · id {e.id}",
        "",
        f"conversation `{e.cid}` · {e.input_tokens} in / {e.output_tokens} out tokens"
        f" · cost {cost} · {e.outcome}",
    ]
    if e.options:
        head.append("options: " + ", ".join(f"{k}={v}" for k, v in e.options.items()))
    for a in e.attachments:
        head.append(f"attachment: {a.get('name')} sha256 {a.get('sha256', '?')}")
    if e.system:
        head += ["", "### System", "", e.system]
    head += ["", "### Prompt", "", e.prompt or "", "", "### Reply", "", e.reply or ""]
    if e.interrupted:
        head += ["", "*(interrupted: the reply above is what arrived)*"]
    return "\n".join(head)


@app.command("rm")
def rm(
    ctx: typer.Context,
    log_id: Annotated[int | None, typer.Argument(metavar="ID", help="A call's id.")] = None,
    cid: Annotated[
        str | None, typer.Option("--cid", metavar="ID", help="A whole conversation.")
    ] = None,
) -> None:
    """Forget the text of a call or a conversation. Its usage rows (cost) stay."""
    from callm.ledger import logs

    st = state(ctx)
    _one_of(log_id, cid)
    conn = logs.connect()
    try:
        n = logs.remove(conn, log_id=log_id, cid=cid)
    finally:
        conn.close()
    st.out.info(f"removed the log of {n} call(s); their usage rows stay for `callm usage`")


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Where the log lives (the data DB: a file, or the shared PostgreSQL ledger)."""
    from callm.ledger.backend import where

    state(ctx).out.data(where())


@app.command("on")
def on(ctx: typer.Context) -> None:
    """Log every call (log_prompts = true in the config; the default)."""
    _set(ctx, True)


@app.command("off")
def off(ctx: typer.Context) -> None:
    """Stop logging prompts and replies (usage rows are still kept)."""
    _set(ctx, False)


def _set(ctx: typer.Context, value: bool) -> None:
    from callm.config.schema import updated

    st = state(ctx)
    cfg = st.config()
    if cfg.log_prompts != value:
        st.update(lambda now: updated(now, log_prompts=value))
    st.out.info(
        f"logging {'on' if value else 'off'} (log_prompts = {str(value).lower()} in "
        f"{st.config_path})"
    )


@app.command("status")
def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Whether logging is on, where the log is, how many calls and conversations it holds."""
    from callm.ledger import logs
    from callm.ledger.backend import where

    st = state(ctx)
    on = st.config().log_prompts
    conn = logs.connect()
    try:
        calls, convs = logs.counts(conn)
    finally:
        conn.close()
    if json_out or st.out.json_mode:
        st.out.emit_json({"logging": on, "path": where(), "calls": calls, "conversations": convs})
        return
    st.out.data(
        f"logging is {'on' if on else 'off'}\nlog: {where()}\n"
        f"{calls} logged call(s) in {convs} conversation(s)"
    )
