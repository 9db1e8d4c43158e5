"""`callm routes`: the [routes.NAME] of the config, and which model a prompt would go to."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

from typing import Annotated

import typer

from callm.cli.context import state

app = typer.Typer(help="Routes: one name for several models and a strategy.", no_args_is_help=True)


@app.command("list")
def routes_list(ctx: typer.Context) -> None:
    """Each route: its strategy and models."""
    st = state(ctx)
    routes = st.config().routes
    if st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("routes-list", {name: r.to_dict() for name, r in routes.items()}))
        return
    if not routes:
        st.out.info("no routes; add a [routes.NAME] table to the config (see README)")
        return
    rows = [[name, r.strategy, ", ".join(r.models)] for name, r in routes.items()]
    st.out.table(["route", "strategy", "models"], rows)


@app.command("explain")
def explain(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A route.")],
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="The prompt to size.")] = "",
    tools: Annotated[bool, typer.Option("--tools", help="The request offers tools.")] = False,
    image: Annotated[bool, typer.Option("--image", help="The request has images.")] = False,
    max_tokens: Annotated[int | None, typer.Option(metavar="N", min=1)] = None,
) -> None:
    """Which model NAME would pick for PROMPT, and why."""
    from callm.errors import UsageError
    from callm.pricing import estimate_prompt_tokens
    from callm.routing import Needs, choose

    st = state(ctx)
    cfg = st.config()
    if name not in cfg.routes:
        known = ", ".join(sorted(cfg.routes)) or "none"
        raise UsageError(f"no route named {name!r} (routes: {known})")
    needs = Needs(estimate_prompt_tokens(prompt) if prompt else 0, max_tokens or 0, image, tools)
    choice = choose(cfg, name, needs)
    order = [t.label for t in choice.targets]
    if st.out.json_mode:
        from callm.outputs import dump

        data = {"route": name, "chosen": order[0], "order": order, "why": choice.why}
        st.out.emit_json(dump("routes-explain", data))
        return
    st.out.data(order[0])
    for line in choice.why:
        st.out.info(f"  {line}")
    if len(order) > 1:
        st.out.info(f"  then, as fallbacks: {', '.join(order[1:])}")
