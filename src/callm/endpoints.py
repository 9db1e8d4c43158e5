"""From config to something callable: which provider and model a name means, and the
Endpoint (URL, headers, key) to reach it. Keys are read here, at call time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from callm.errors import UsageError
from callm.types import Endpoint, Tls

if TYPE_CHECKING:
    from callm.config.schema import Config, ProviderConfig

SIM = "sim"


@dataclass(frozen=True)
class Target:
    provider: str
    model: str
    config: ProviderConfig

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"


def provider_config(cfg: Config, name: str) -> ProviderConfig:
    """A configured provider; `sim` exists even when not configured."""
    pc = cfg.providers.get(name)
    if pc is not None:
        return pc
    if name == SIM:
        from callm.config.schema import ProviderConfig

        return ProviderConfig(
            driver="sim", base_url="sim://local", key="none", default_model="sim-small"
        )
    known = ", ".join(sorted([*cfg.providers, SIM]))
    raise UsageError(
        f"unknown provider {name!r} (known: {known})",
        hint=f"run `callm providers add {name}`" if name else None,
    )


def resolve_target(cfg: Config, spec: str | None) -> Target:
    """MODEL is provider/model, an alias, or a bare provider name; default: config default."""
    spec = spec or cfg.default_model
    if not spec:
        raise UsageError(
            "no model given and no default_model in the config",
            hint="pass -m PROVIDER/MODEL (try -m sim), or run `callm models default MODEL`",
        )
    seen: set[str] = set()
    while spec in cfg.aliases:  # aliases may point at aliases; stop on a loop
        if spec in seen:
            raise UsageError(f"alias loop at {spec!r}")
        seen.add(spec)
        spec = cfg.aliases[spec]
    provider, sep, model = spec.partition("/")
    if not sep:
        pc = provider_config(cfg, provider)
        if not pc.default_model:
            raise UsageError(
                f"provider {provider!r} has no default model",
                hint=f"use -m {provider}/MODEL or set default_model for it",
            )
        return Target(provider, pc.default_model, pc)
    if not model:
        raise UsageError(f"model name missing in {spec!r}", hint="use PROVIDER/MODEL")
    pc = provider_config(cfg, provider)
    if pc.models is not None and model not in pc.models:
        raise UsageError(
            f"model {model!r} is not in {provider}'s models allowlist",
            hint=f"allowed: {', '.join(pc.models)}",
        )
    return Target(provider, model, pc)


def endpoint(name: str, pc: ProviderConfig, key_override: str | None = None) -> Endpoint:
    """Resolve the key (SPEC order) and build the Endpoint. Raises MissingKeyError."""
    from callm.catalog.providers import template

    if key_override is not None:
        from callm.secrets import remember

        key: str | None = remember(key_override)
    elif pc.driver == "sim":
        key = None
    else:
        from callm.secrets import resolve_key

        t = template(name)
        key = resolve_key(
            name, key_mode=pc.key, key_env=pc.key_env, vendor_vars=t.key_env if t else ()
        )
    base = pc.base_url or (template(name).base_url if template(name) else None) or ""
    return Endpoint(
        name=name,
        driver=pc.driver,
        base_url=base,
        key=key,
        headers=dict(pc.headers),
        timeout=pc.timeout,
        api_version=pc.api_version,
        deadline=pc.deadline,
        tls=Tls(pc.ca_bundle, pc.client_cert, pc.client_key)
        if pc.ca_bundle or pc.client_cert or pc.client_key
        else None,
    )
