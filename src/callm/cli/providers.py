"""`callm providers ...`: register, inspect and check vendors. Heavy imports stay inside."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from callm.cli.context import State, state
from callm.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from callm.config.schema import Config, ProviderConfig

app = typer.Typer(help="Register, inspect and verify providers.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(metavar="NAME", help="A configured provider.")]


def _stdin_isatty() -> bool:
    """False also when there is no standard input at all (closed, as under some CI runners)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _configured(
    st: State, name: str, cfg: "Config | None" = None
) -> "tuple[Config, ProviderConfig]":
    cfg = cfg or st.config()
    pc = cfg.providers.get(name)
    if pc is None:
        known = ", ".join(sorted(cfg.providers)) or "none configured"
        raise UsageError(
            f"unknown provider {name!r} (configured: {known})",
            hint=f"run `callm providers add {name}`",
        )
    return cfg, pc


def _vendor_vars(name: str) -> tuple[str, ...]:
    from callm.catalog.providers import template

    t = template(name)
    return t.key_env if t else ()


def _prompt_key(name: str) -> str:
    import getpass

    from callm.secrets import remember

    if not _stdin_isatty():
        raise UsageError(
            "no terminal to ask for the key on",
            hint=f"pipe it in: `... | callm providers set-key {name} --key-stdin`",
        )
    from callm.secrets import check_key

    try:
        key = getpass.getpass(f"API key for {name} (input hidden): ").strip()
    except EOFError:  # Ctrl-D
        key = ""
    if not key:
        raise UsageError("no key given")
    return remember(check_key(key))


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="A catalog name (see `providers catalog`) or a name of yours."
        ),
    ],
    driver: Annotated[
        str | None,
        typer.Option(metavar="DRIVER", help="Wire format (needed for non-catalog names)."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", metavar="URL", help="API base URL.")
    ] = None,
    key_env: Annotated[
        str | None,
        typer.Option("--key-env", metavar="VAR", help="Read the key from this variable."),
    ] = None,
    key_stdin: Annotated[
        bool, typer.Option("--key-stdin", help="Read the key from standard input.")
    ] = False,
    no_key: Annotated[bool, typer.Option("--no-key", help="The endpoint needs no key.")] = False,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", metavar="K=V", help="Extra HTTP header (repeatable)."),
    ] = None,
    default_model: Annotated[str | None, typer.Option("--default-model", metavar="M")] = None,
    api_version: Annotated[
        str | None,
        typer.Option("--api-version", metavar="VERSION", help="azure-openai api-version."),
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", metavar="REGION", help="bedrock: AWS region.")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", metavar="NAME", help="bedrock: AWS profile.")
    ] = None,
    key_header: Annotated[
        str | None,
        typer.Option(
            "--key-header", metavar="NAME", help="Send the key in this header (e.g. x-api-key)."
        ),
    ] = None,
    key_prefix: Annotated[
        str | None,
        typer.Option("--key-prefix", metavar="TEXT", help="Put TEXT before the key there."),
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Save without checking the endpoint.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing provider.")] = False,
) -> None:
    """Add a provider. Catalog names fill in the driver, base URL and key variable."""
    from callm.catalog.providers import template
    from callm.config.schema import ProviderConfig, SchemaError, check_provider_name, updated

    st = state(ctx)
    try:
        check_provider_name(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if sum([bool(key_env), key_stdin, no_key]) > 1:
        raise UsageError("use only one of --key-env, --key-stdin, --no-key")
    cfg = st.config(creating=True)
    _refuse_replacing(cfg, name, force)
    _refuse_clash(cfg, name)
    t = template(name)
    if t is None and not driver:
        raise UsageError(
            f"{name!r} is not in the catalog, so --driver is needed",
            hint="see `callm providers catalog`, or pass --driver openai-compatible --base-url URL",
        )
    drv = driver or t.driver  # type: ignore[union-attr]
    url = base_url or (t.base_url if t and t.driver == drv else None)
    if not url and drv not in ("sim", "bedrock"):  # bedrock: the region names the host
        raise UsageError(f"driver {drv} has no default base URL: pass --base-url")
    if url and drv != "sim":
        from callm.urls import check_base_url

        try:
            check_base_url(url)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if key_header and drv == "azure-openai":
        raise UsageError("azure-openai sends its key in the api-key header; drop --key-header")
    if url and "#" in url:  # never sent, and paths are joined after it: always a mistake
        raise UsageError(f"--base-url must not have a fragment (#...): {url.split('#')[0]}#...")
    keyless = drv == "sim" or (t is not None and t.key == "none")  # unless told otherwise
    key_mode = "none" if no_key or (keyless and not (key_stdin or key_env)) else "keychain"
    try:
        pc = ProviderConfig.make(
            driver=drv,
            base_url=url,
            key=key_mode,
            key_env=key_env,
            headers=_parse_headers(header or []),
            default_model=default_model or (t.default_model if t else None),
            api_version=api_version,
            region=region,
            profile=profile,
            key_header=key_header,
            key_prefix=key_prefix,
        )
    except SchemaError as exc:
        raise UsageError(exc.first) from None

    new_key: str | None = None
    if key_stdin:
        from callm.secrets import read_key_stdin

        new_key = read_key_stdin(sys.stdin)
    elif key_mode == "keychain" and not key_env and drv != "bedrock" and _stdin_isatty():
        new_key = _prompt_key(name)

    if not no_verify:
        _verify_new(st, name, pc, new_key)

    def change(now: "Config") -> "Config":
        _refuse_replacing(now, name, force)  # another callm may have added it meanwhile
        _refuse_clash(now, name)
        if new_key:
            from callm.secrets import keychain_set

            keychain_set(name, new_key)
        return updated(now, providers={**now.providers, name: pc})

    st.update(change)
    from callm.urls import safe_url

    out = st.out
    if out.json_mode:
        from callm.outputs import dump

        out.emit_json(
            dump(
                "providers-change",
                {
                    "added": name,
                    "driver": drv,
                    "base_url": safe_url(url),
                    "key_source": _source(name, pc),
                },
            )
        )
        return
    region_text = f"region {region or 'from the AWS config'}"
    where = safe_url(url) or (region_text if drv == "bedrock" else "local")
    out.info(f"added {name} ({drv}, {where}); key: {_source(name, pc)}")
    if drv == "bedrock" and not key_env and not new_key:
        out.info(
            "requests are signed with AWS credentials (environment, profile, SSO, roles) "
            f"unless a Bedrock API key is set: AWS_BEARER_TOKEN_BEDROCK or `callm providers "
            f"set-key {name}`"
        )
    elif key_mode == "keychain" and not key_env and not new_key:
        from callm.secrets import env_name

        vars_ = " or ".join(_vendor_vars(name)) or env_name(name)
        out.info(f"no key stored: callm will read {vars_}, or run `callm providers set-key {name}`")


def _refuse_replacing(cfg: "Config", name: str, force: bool) -> None:
    if force:
        return
    if name in cfg.providers:
        raise UsageError(f"provider {name!r} already exists", hint="add --force to replace it")
    if name == "sim":
        raise UsageError(
            "'sim' is the built-in simulator", hint="add --force to replace it with your own"
        )


def _refuse_clash(cfg: "Config", name: str) -> None:
    """`a-b`, `a.b` and `a_b` would all read CALLM_A_B_API_KEY: one provider's key would be
    sent to the other's host."""
    from callm.secrets import env_name, key_variable_clash

    clash = key_variable_clash([*(n for n in cfg.providers if n != name), name])
    if clash:
        raise UsageError(
            f"providers {clash[0]!r} and {clash[1]!r} would both read {env_name(name)}",
            hint="choose another name",
        )


def _verify_new(st: State, name: str, pc: "ProviderConfig", key: str | None) -> None:
    """Check the endpoint before saving, so a typo in a URL or key is caught now."""
    from callm.verify import verify_one

    result = verify_one(name, pc, key_override=key, timeout=10.0)
    if result.ok:
        st.out.info(f"verified {name}: {result.models} models, {result.latency_ms} ms")
        return
    from callm.errors import CallmError

    raise CallmError(
        f"verification of {name} failed at {result.stage}: {result.error}",
        hint="fix it, or add --no-verify to save anyway",
    )


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 5.1)


def _credential_like(name: str) -> bool:
    low = name.lower()
    return low in ("authorization", "proxy-authorization", "cookie") or any(
        w in low for w in ("key", "token", "secret", "auth", "password")
    )


def _parse_headers(items: list[str]) -> dict[str, str]:
    """--header K=V, checked now: a bad name or value would otherwise fail every call."""
    headers: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        k, v = k.strip(), v.strip()
        if not sep or not k:
            raise UsageError(f"--header wants K=V, got {item!r}")
        if not _TOKEN.fullmatch(k):
            raise UsageError(f"--header: {k!r} is not a valid HTTP header name")
        if _credential_like(k):  # it would be written into config.toml in clear
            raise UsageError(
                f"--header {k}: credentials do not go into the config",
                hint=f"use --key-header {k} (and --key-prefix if needed); the key goes "
                "to the keychain",
            )
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in v) or not v.isascii():
            raise UsageError(
                f"--header {k}: the value must be printable ASCII (no line breaks or NUL)"
            )
        headers[k] = v
    return headers


def _source(name: str, pc: "ProviderConfig") -> str:
    """Where the key comes from, per config and environment only (no keychain read)."""
    import os

    from callm.secrets import env_name

    if pc.key == "none":
        return "none"
    if pc.key_env:
        return f"env {pc.key_env}" if os.environ.get(pc.key_env) else f"missing (env {pc.key_env})"
    if os.environ.get(env_name(name)):
        return f"env {env_name(name)}"
    if pc.key == "none":
        return "none"
    return "keychain, else AWS credentials" if pc.driver == "bedrock" else "keychain"


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
                "key_source": _source(name, pc),
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
    _, pc = _configured(st, name)
    info = {"name": name, **pc.to_dict(), "key_source": _source(name, pc)}
    info["base_url"] = safe_url(info.get("base_url"))  # an old config may hold user:pw@
    if isinstance(info.get("headers"), dict):
        info["headers"] = {
            k: mask(v) if _credential_like(k) else v for k, v in info["headers"].items()
        }
    try:
        key = resolve_key(name, key_mode=pc.key, key_env=pc.key_env, vendor_vars=_vendor_vars(name))
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
    _cfg, pc = _configured(st, name)
    if not yes:
        if not _stdin_isatty():
            raise UsageError(f"refusing to remove {name} without confirmation", hint="add --yes")
        if not typer.confirm(f"Remove provider {name} and its stored key?", default=False):
            raise typer.Exit(1)
    st.update(
        lambda now: updated(now, providers={k: v for k, v in now.providers.items() if k != name})
    )
    deleted = _delete_key(st, name) if pc.key == "keychain" else False
    if st.out.json_mode:
        st.out.emit_json(_changed({"removed": name, "key_deleted": deleted}))
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
    _configured(st, name)

    def change(now: "Config") -> "Config":
        _, pc = _configured(st, name, now)
        return updated(now, providers={**now.providers, name: updated(pc, enabled=enabled)})

    st.update(change)
    if st.out.json_mode:
        st.out.emit_json(_changed({"name": name, "enabled": enabled}))
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
    _cfg, pc = _configured(st, name)
    key = read_key_stdin(sys.stdin) if key_stdin else _prompt_key(name)
    keychain_set(name, key)
    if pc.key != "keychain" or pc.key_env:

        def change(now: "Config") -> "Config":
            _, cur = _configured(st, name, now)
            from callm.config.schema import updated

            new = updated(cur, key="keychain", key_env=None)
            return updated(now, providers={**now.providers, name: new})

        st.update(change)
    if st.out.json_mode:
        st.out.emit_json(_changed({"name": name, "key": mask(key), "stored_in": "keychain"}))
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


def _changed(data: dict[str, object]) -> object:
    """A small change's --json output, checked against its published model."""
    from callm.outputs import dump

    return dump("providers-change", data)
