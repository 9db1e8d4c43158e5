"""`callm templates ...`: saved prompts with their model, system prompt and options, kept in
the config as [templates.NAME] tables. Use one with `callm chat -t NAME`."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

from typing import Annotated

import typer

from callm.cli.context import state

app = typer.Typer(help="Saved prompts: save, list, show, edit, rm.", no_args_is_help=True)


@app.command("save")
def save(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Template name.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", metavar="MODEL", help="Model to use.")
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", metavar="TEXT", help="System prompt.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", metavar="KEY=VALUE", help="Driver option (repeatable)."),
    ] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", metavar="SCHEMA", help="JSON schema for replies.")
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option("--prompt", metavar="TEXT", help="Prompt; $input is what chat is given."),
    ] = None,
) -> None:
    """Save (or replace) template NAME in the config."""
    from callm import templates
    from callm.options import parse_options

    st = state(ctx)
    cfg = st.config()
    existed = name in cfg.templates
    st.update(
        lambda now: templates.save(
            now,
            name,
            model=model,
            system=system,
            prompt=prompt,
            options=parse_options(option or []),
            schema=schema,
        )
    )
    st.out.info(f"{'replaced' if existed else 'saved'} template {name!r} in {st.config_path}")


@app.command("list")
def list_(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Saved templates."""
    st = state(ctx)
    tpls = st.config().templates
    if json_out or st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("templates-list", {n: t.to_dict() for n, t in sorted(tpls.items())}))
        return
    if not tpls:
        st.out.info("no templates yet: callm templates save NAME --prompt 'Summarise: $input'")
        return
    rows = [
        [n, t.model or "", " ".join((t.prompt or t.system or "").split())[:50]]
        for n, t in sorted(tpls.items())
    ]
    st.out.table(["name", "model", "prompt"], rows)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Template name.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """A template, as the config holds it."""
    from callm import templates

    st = state(ctx)
    t = templates.get(st.config(), name)
    if json_out or st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("templates-show", {"name": name, **t.to_dict()}))
        return
    st.out.data(templates.as_toml(name, t).strip())


@app.command("rm")
def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Template name.")],
) -> None:
    """Remove a template from the config."""
    from callm import templates

    st = state(ctx)
    st.update(lambda now: templates.remove(now, name))
    st.out.info(f"removed template {name!r}")


@app.command("edit")
def edit(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="Check that this template exists.")
    ] = None,
) -> None:
    """Open the config in $VISUAL/$EDITOR; saved only if it is still valid."""
    from callm import templates
    from callm.cli.edit import edit_config

    st = state(ctx)
    if name is not None:
        templates.get(st.config(), name)
    edit_config(st.config_path, f"[templates.{name}]" if name else "[templates.")
    st.out.info(f"saved {st.config_path}")
