"""`callm providers add`: register a provider, check it, then save it with its key.
Registered on the `providers` group by cli/providers.py; heavy imports stay inside."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from callm.cli.context import State, state
from callm.cli.provider_common import (
    credential_like,
    key_source,
    prompt_key,
    stdin_isatty,
    vendor_vars,
)
from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.config.schema import Config, ProviderConfig


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
    elif key_mode == "keychain" and not key_env and drv != "bedrock" and stdin_isatty():
        new_key = prompt_key(name)

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
                    "key_source": key_source(name, pc),
                },
            )
        )
        return
    region_text = f"region {region or 'from the AWS config'}"
    where = safe_url(url) or (region_text if drv == "bedrock" else "local")
    out.info(f"added {name} ({drv}, {where}); key: {key_source(name, pc)}")
    if drv == "bedrock" and not key_env and not new_key:
        out.info(
            "requests are signed with AWS credentials (environment, profile, SSO, roles) "
            f"unless a Bedrock API key is set: AWS_BEARER_TOKEN_BEDROCK or `callm providers "
            f"set-key {name}`"
        )
    elif key_mode == "keychain" and not key_env and not new_key:
        from callm.secrets import env_name

        vars_ = " or ".join(vendor_vars(name)) or env_name(name)
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
        if credential_like(k):  # it would be written into config.toml in clear
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
