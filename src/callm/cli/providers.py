"""`callm providers ...`: register, inspect and check vendors. Heavy imports stay inside."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from callm.cli.context import State, state
from callm.cli.provider_add import add
from callm.cli.provider_common import (
    changed,
    configured,
    credential_like,
    key_source,
    prompt_key,
    stdin_isatty,
    vendor_vars,
)
from callm.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from callm.config.schema import Config

app = typer.Typer(help="Register, inspect and verify providers.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(metavar="NAME", help="A configured provider.")]

app.command("add")(add)  # first in --help, as before


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Configured providers. Reads no keychain and touches no network."""
    from callm.provider_state import read_states
    from callm.urls import safe_url

    st = state(ctx)
    cfg = st.config()
    states = read_states()
    rows = []
    for name, pc in sorted(cfg.providers.items()):
        s = states.get(name)
        rows.append(
            {
                "name": name,
                "driver": pc.driver,
                "base_url": safe_url(pc.base_url),
                "key_source": key_source(name, pc),
                "enabled": pc.enabled,
                "default_model": pc.default_model,
                "last_verified": s.last_verified if s else None,
                "last_verify_ok": s.last_verify_ok if s else None,
                "cooldown_until": s.cooldown_until_iso() if s else None,
            }
        )
    out = st.out
    if out.json_mode:
        from callm.outputs import dump

        out.emit_json(dump("providers-list", rows))
        return
    if not rows:
        out.info("no providers configured; try `callm providers add openai` (or use `-m sim`)")
        return
    table = [
        [
            r["name"],
            r["driver"],
            r["base_url"] or "-",
            r["key_source"],
            "yes" if r["enabled"] else "no",
            r["default_model"] or "-",
            _verified_cell(r["last_verified"], r["last_verify_ok"], r["cooldown_until"]),
        ]
        for r in rows
    ]
    out.table(
        ["name", "driver", "base url", "key", "enabled", "default model", "last verified"], table
    )


def _verified_cell(when: str | None, ok: bool | None, cooldown: str | None) -> str:
    text = "-" if not when else f"{when} ({'ok' if ok else 'failed'})"
    return f"{text}; cooling down until {cooldown}" if cooldown else text


@app.command("show")
def show(ctx: typer.Context, name: Name) -> None:
    """One provider in full; the key is shown masked."""
    from callm.errors import CallmError
    from callm.secrets import mask, resolve_key
    from callm.urls import safe_url

    st = state(ctx)
    _, pc = configured(st, name)
    info = {"name": name, **pc.to_dict(), "key_source": key_source(name, pc)}
    info["base_url"] = safe_url(info.get("base_url"))  # an old config may hold user:pw@
    if isinstance(info.get("headers"), dict):
        info["headers"] = {
            k: mask(v) if credential_like(k) else v for k, v in info["headers"].items()
        }
    try:
        key = resolve_key(name, key_mode=pc.key, key_env=pc.key_env, vendor_vars=vendor_vars(name))
        info["key"] = mask(key) if key else "(none needed)"
    except CallmError as exc:
        aws = pc.driver == "bedrock" and not pc.key_env
        info["key"] = (
            "(none: AWS credentials sign the requests)" if aws else f"(missing: {exc.message})"
        )
    out = st.out
    if out.json_mode:
        from callm.outputs import dump

        out.emit_json(dump("providers-show", info))
        return
    width = max(len(k) for k in info)
    for k, v in info.items():
        out.data(f"{k.ljust(width)}  {v}")


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Remove a provider and delete its keychain entry."""
    from callm.config.schema import updated

    st = state(ctx)
    _cfg, pc = configured(st, name)
    if not yes:
        if not stdin_isatty():
            raise UsageError(f"refusing to remove {name} without confirmation", hint="add --yes")
        if not typer.confirm(f"Remove provider {name} and its stored key?", default=False):
            raise typer.Exit(1)
    st.update(
        lambda now: updated(now, providers={k: v for k, v in now.providers.items() if k != name})
    )
    deleted = _delete_key(st, name) if pc.key == "keychain" else False
    if st.out.json_mode:
        st.out.emit_json(changed({"removed": name, "key_deleted": deleted}))
    else:
        st.out.info(f"removed {name}" + (" and its keychain entry" if deleted else ""))


def _delete_key(st: State, name: str) -> bool:
    from callm.errors import KeychainError
    from callm.secrets import keychain_delete

    try:
        return keychain_delete(name)
    except KeychainError as exc:
        st.out.warn(f"keychain entry not deleted: {exc.message}")
        return False


def _set_enabled(ctx: typer.Context, name: str, enabled: bool) -> None:
    from callm.config.schema import updated

    st = state(ctx)
    configured(st, name)

    def change(now: "Config") -> "Config":
        _, pc = configured(st, name, now)
        return updated(now, providers={**now.providers, name: updated(pc, enabled=enabled)})

    st.update(change)
    if st.out.json_mode:
        st.out.emit_json(changed({"name": name, "enabled": enabled}))
    else:
        st.out.info(f"{'enabled' if enabled else 'disabled'} {name}")


@app.command("enable")
def enable(ctx: typer.Context, name: Name) -> None:
    """Use this provider again."""
    _set_enabled(ctx, name, True)


@app.command("disable")
def disable(ctx: typer.Context, name: Name) -> None:
    """Keep the provider but skip it in verify, sync and fallbacks."""
    _set_enabled(ctx, name, False)


@app.command("set-key")
def set_key(
    ctx: typer.Context,
    name: Name,
    key_stdin: Annotated[
        bool, typer.Option("--key-stdin", help="Read the key from standard input.")
    ] = False,
) -> None:
    """Store a provider's key in the OS keychain (hidden prompt, or --key-stdin)."""
    from callm.secrets import backend_label, keychain_set, mask, read_key_stdin

    st = state(ctx)
    _cfg, pc = configured(st, name)
    key = read_key_stdin(sys.stdin) if key_stdin else prompt_key(name)
    keychain_set(name, key)
    if pc.key != "keychain" or pc.key_env:

        def change(now: "Config") -> "Config":
            _, cur = configured(st, name, now)
            from callm.config.schema import updated

            new = updated(cur, key="keychain", key_env=None)
            return updated(now, providers={**now.providers, name: new})

        st.update(change)
    if st.out.json_mode:
        st.out.emit_json(changed({"name": name, "key": mask(key), "stored_in": "keychain"}))
    else:
        st.out.info(f"stored key {mask(key)} for {name} in {backend_label()}")


@app.command("catalog")
def catalog_(ctx: typer.Context) -> None:
    """The built-in provider templates that `providers add NAME` knows."""
    from callm.catalog.providers import catalog

    st = state(ctx)
    rows = catalog()
    if st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(
            dump(
                "providers-catalog",
                [
                    {
                        "name": t.name,
                        "driver": t.driver,
                        "base_url": t.base_url,
                        "key_env": list(t.key_env),
                        "default_model": t.default_model,
                        "docs_url": t.docs_url,
                    }
                    for t in rows.values()
                ],
            )
        )
        return
    st.out.table(
        ["name", "driver", "base url", "key variable", "default model", "get a key"],
        [
            [
                t.name,
                t.driver,
                t.base_url
                or ("bedrock-runtime.REGION" if t.driver == "bedrock" else "(your resource URL)"),
                " / ".join(t.key_env) or "-",
                t.default_model or "-",
                t.docs_url,
            ]
            for t in rows.values()
        ],
    )


@app.command("verify")
def verify(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Providers to check (default: all enabled).")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per provider.")] = 10.0,
    probe: Annotated[
        str | None,
        typer.Option("--probe", metavar="MODEL", help="Also send a 1-token completion."),
    ] = None,
    models: Annotated[
        bool,
        typer.Option(
            "--models", help="Probe every model the config reaches (defaults, aliases...)."
        ),
    ] = False,
    models_file: Annotated[
        str | None,
        typer.Option("--models-file", metavar="FILE", help="Also probe these (one per line)."),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", metavar="USD", min=0.0, help="Refuse if probes cost more."),
    ] = None,
    junit: Annotated[
        str | None,
        typer.Option("--junit", metavar="FILE", help="Write the results as JUnit XML."),
    ] = None,
) -> None:
    """Check that providers work: key present, endpoint reachable, key accepted."""
    from callm.cli.context import number
    from callm.cli.verify_view import VerifyOptions, run_verify

    number(timeout, "--timeout", positive=True)
    number(max_cost, "--max-cost")
    opts = VerifyOptions(timeout, probe, models, models_file, max_cost, junit)
    raise typer.Exit(run_verify(state(ctx), names or [], opts=opts))


def _register_key_commands() -> None:
    from callm.cli import provider_keys

    app.command("import")(provider_keys.import_keys)
    app.command("key")(provider_keys.key)


_register_key_commands()

__all__ = ["ConfigError", "app"]
