"""`callm models ...`: model lists with prices and context windows. Heavy imports stay inside
the commands; the logic lives in callm.sync and callm.model_query."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

from typing import TYPE_CHECKING, Annotated

import typer

from callm.cli.context import number, state

if TYPE_CHECKING:
    from callm.model_query import Row
    from callm.render.output import Output
    from callm.sync import SyncResult

app = typer.Typer(help="Model lists with prices and context windows.", no_args_is_help=True)

SHOW_IDS = 20  # added/removed ids listed per provider on a terminal (all of them in --json)


@app.command("sync")
def sync(
    ctx: typer.Context,
    providers: Annotated[
        list[str] | None, typer.Argument(help="Providers to sync (default: all enabled).")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per provider.")] = 30.0,
) -> None:
    """Fetch each provider's model list and store it, merged with the built-in catalog."""
    from callm.errors import EXIT_FAILED
    from callm.sync import sync_many

    number(timeout, "--timeout", positive=True)
    st = state(ctx)
    results = sync_many(st.config(), providers or [], timeout)
    out = st.out
    if out.json_mode:
        from callm.outputs import dump

        out.emit_json(dump("models-sync", [r.as_dict() for r in results]))
    else:
        if not results:
            out.info("no enabled providers to sync; add one with `callm providers add NAME`")
        for r in results:
            _print_sync(out, r)
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_FAILED)


def _print_sync(out: "Output", r: "SyncResult") -> None:
    if not r.ok:
        out.data(f"{r.provider}: failed at {r.stage}: {r.error}")
        return
    if r.first_sync:
        out.data(f"{r.provider}: {r.models} models (first sync)")
        return
    out.data(f"{r.provider}: {r.models} models, {len(r.added)} added, {len(r.removed)} removed")
    for sign, ids in (("+", r.added), ("-", r.removed)):
        for mid in ids[:SHOW_IDS]:
            out.data(f"  {sign} {mid}")
        if len(ids) > SHOW_IDS:
            out.data(f"  {sign} ... and {len(ids) - SHOW_IDS} more (see --json)")


@app.command("list")
def list_(
    ctx: typer.Context,
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Only this provider.")
    ] = None,
    capability: Annotated[
        list[str] | None,
        typer.Option(
            "--capability", "-c", help="vision|tools|reasoning|json|streaming (repeatable)."
        ),
    ] = None,
    sort: Annotated[str, typer.Option("--sort", help="price | context | name.")] = "name",
) -> None:
    """Known models, from the cache (no network), with prices per million tokens."""
    from callm.model_query import rows, select

    st = state(ctx)
    chosen = select(rows(st.config(), provider), capability, sort)
    out = st.out
    if out.json_mode:
        from callm.outputs import dump

        out.emit_json(dump("models-list", [r.as_dict() for r in chosen]))
        return
    if not chosen:
        out.info("no models match" + (f" for {provider}" if provider else ""))
        return
    out.table(
        [
            "model",
            "context",
            "max out",
            "input $/M",
            "output $/M",
            "cached $/M",
            "capabilities",
            "source",
        ],
        [_list_row(r) for r in chosen],
    )


def _usd(v: float | None) -> str:
    return "unknown" if v is None else f"{v:g}"


def _tokens(n: int | None) -> str:
    """1M, 128K, 64K (65,536), 1050K: short, and exact when the number is round."""
    if n is None:
        return "-"
    for unit, size in (("M", 1_048_576), ("M", 1_000_000), ("K", 1024), ("K", 1000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n:,}"


def _list_row(r: "Row") -> list[str]:
    m, p = r.info, r.info.price
    return [
        f"{m.provider}/{m.id}",
        _tokens(m.context_window),
        _tokens(m.max_output),
        _usd(p.input if p else None),
        _usd(p.output if p else None),
        _usd(p.cached_input if p else None),
        ",".join(m.capabilities) or "-",
        r.source,
    ]


@app.command("show")
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="PROVIDER/MODEL")],
) -> None:
    """One model in full: limits, prices with their source and date, capabilities."""
    from callm.model_query import find

    st = state(ctx)
    row = find(st.config(), model)
    d = row.as_dict()
    if st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("models-show", d))
        return
    p = d.pop("price") or {}
    extra = d.pop("extra") or {}
    lines: dict[str, str] = {
        "model": d["name"],
        "display name": d["display_name"] or "-",
        "context window": _tokens(d["context_window"]),
        "max output": _tokens(d["max_output"]),
        "input $/M": _usd(p.get("input")),
        "output $/M": _usd(p.get("output")),
        "cached input $/M": _usd(p.get("cached_input")),
        "cache write $/M": _usd(p.get("cache_write")),
        "price source": p.get("source") or "unknown",
        "capabilities": ", ".join(d["capabilities"]) or "-",
        "from": d["source"],
    }
    if extra.get("price_url") or extra.get("source"):
        lines["price page"] = str(extra.get("price_url") or extra.get("source"))
    if extra.get("notes") or extra.get("price_notes"):
        lines["notes"] = str(extra.get("notes") or extra.get("price_notes"))
    width = max(len(k) for k in lines)
    for k, v in lines.items():
        st.out.data(f"{k.ljust(width)}  {v}")


@app.command("default")
def default(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="PROVIDER/MODEL, alias or provider.")] = None,
) -> None:
    """Show the default model, or set it (the provider must exist)."""
    from callm.model_query import known, set_default

    st = state(ctx)
    cfg = st.config()
    out = st.out
    if model is None:
        if out.json_mode:
            out.emit_json({"default_model": cfg.default_model})
        elif cfg.default_model:
            out.data(cfg.default_model)
        else:
            out.info("no default model set; try `callm models default sim/sim-small`")
        return
    new = st.update(lambda now: set_default(now, model))
    if out.json_mode:
        out.emit_json({"default_model": model})
        return
    out.info(f"default model: {model}")
    if not known(new, model):
        out.warn(f"{model} is not in the model cache or catalog; its cost will show as unknown")
