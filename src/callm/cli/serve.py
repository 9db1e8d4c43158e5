"""`callm serve`: the local gateway (OpenAI, Anthropic and Ollama APIs), and its tokens."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import sys
from typing import Annotated

import typer

from callm.cli.context import state

HINT = "callm serve needs the serve extra: pip install 'callm[serve]'"

HELP = """Serve the OpenAI, Anthropic and Ollama APIs locally.

Clients point their base URL here: http://127.0.0.1:4141/v1 (OpenAI) or http://127.0.0.1:4141
(Anthropic, Ollama), with a token from `callm serve token create NAME` as their API key.
MODEL is provider/model, an alias or a route."""

app = typer.Typer(help=HELP, invoke_without_command=True)
token_app = typer.Typer(help="Access tokens for callm serve.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", min=0, max=65535)] = 4141,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept requests without a token (loopback only).")
    ] = False,
    grace: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0.0, help="On SIGTERM, let open streams finish."),
    ] = 30.0,
    live: Annotated[
        bool | None,
        typer.Option(
            "--live/--log", help="Live table, or a JSON line per request (default: by terminal)."
        ),
    ] = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from callm.errors import UsageError

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        sys.stderr.write(f"error: {HINT}\n")
        raise typer.Exit(2) from None
    from callm.gateway.server import is_loopback
    from callm.gateway.server import serve as run

    if no_auth and not is_loopback(host):
        raise UsageError(
            f"--no-auth only on a loopback address, not {host}",
            hint="create a token: callm serve token create NAME",
        )
    st = state(ctx)
    cfg = st.config()
    show_live = sys.stderr.isatty() if live is None else live
    raise typer.Exit(run(cfg, host, port, auth=not no_auth, grace=grace, live=show_live))


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who or what uses it.")],
    budget: Annotated[
        float | None,
        typer.Option(metavar="USD", min=0.0, help="Refuse its calls once it spent this today."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", metavar="MODEL", help="Allow only this model or route."),
    ] = None,
) -> None:
    """Create a token. It is printed once; only its hash is kept."""
    from callm.gateway.tokens import create

    st = state(ctx)
    token = create(name, budget, list(model or []) or None)
    if st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("serve-token-create", {"name": name, "token": token}))
        return
    st.out.data(token)
    st.out.info(f"token {name!r} created; it is shown only this once")


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """The tokens (names, budgets, allowed models; never the tokens)."""
    import time

    from callm.gateway.tokens import list_all

    st = state(ctx)
    tokens = list_all()
    if st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(
            dump(
                "serve-token-list",
                [
                    {
                        "name": t.name,
                        "created": t.created,
                        "budget_usd_day": t.budget_usd_day,
                        "models": list(t.models) if t.models is not None else None,
                    }
                    for t in tokens
                ],
            ),
        )
        return
    rows = [
        [
            t.name,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(t.created)),
            "-" if t.budget_usd_day is None else f"${t.budget_usd_day:g}/day",
            "any" if t.models is None else ", ".join(t.models),
        ]
        for t in tokens
    ]
    if not rows:
        st.out.info("no tokens; create one with: callm serve token create NAME")
        return
    st.out.table(["name", "created", "budget", "models"], rows)


@token_app.command("rm")
def token_rm(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Remove a token: clients using it get 401 within seconds."""
    from callm.errors import UsageError
    from callm.gateway.tokens import remove

    if not remove(name):
        raise UsageError(f"no token named {name!r}", hint="see callm serve token list")
    state(ctx).out.info(f"token {name!r} removed")
