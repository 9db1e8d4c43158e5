"""What the `providers` commands share: finding a configured provider, asking for a key,
where a key comes from, and the checked --json output of a small change."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import sys
from typing import TYPE_CHECKING

from callm.cli.context import State
from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.config.schema import Config, ProviderConfig


def stdin_isatty() -> bool:
    """False also when there is no standard input at all (closed, as under some CI runners)."""
    return sys.stdin is not None and sys.stdin.isatty()


def configured(
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


def vendor_vars(name: str) -> tuple[str, ...]:
    from callm.catalog.providers import template

    t = template(name)
    return t.key_env if t else ()


def prompt_key(name: str) -> str:
    import getpass

    from callm.secrets import remember

    if not stdin_isatty():
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


def credential_like(name: str) -> bool:
    low = name.lower()
    return low in ("authorization", "proxy-authorization", "cookie") or any(
        w in low for w in ("key", "token", "secret", "auth", "password")
    )


def key_source(name: str, pc: "ProviderConfig") -> str:
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


def changed(data: dict[str, object]) -> object:
    """A small change's --json output, checked against its published model."""
    from callm.outputs import dump

    return dump("providers-change", data)
