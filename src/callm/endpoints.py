"""From config to something callable: which provider and model a name means, and the
Endpoint (URL, headers, key) to reach it. Keys are read here, at call time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from callm.errors import ConfigError, MissingKeyError, UsageError
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
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in spec) or spec != spec.strip():
        raise UsageError(f"model name {spec!r} has a line break, control character or blank")
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
        vendor_vars = t.key_env if t else ()
        if pc.driver == "bedrock":
            vendor_vars = ("AWS_BEARER_TOKEN_BEDROCK",)
        try:
            key = resolve_key(name, key_mode=pc.key, key_env=pc.key_env, vendor_vars=vendor_vars)
        except MissingKeyError:
            if pc.driver != "bedrock" or pc.key_env:
                raise
            key = None  # no Bedrock API key: requests are signed with AWS credentials
    if pc.key == "none":  # never a key, from any source (even CALLM_<NAME>_API_KEY)
        key = None
    headers = dict(pc.headers)
    if pc.key_header and key:
        headers[pc.key_header] = (pc.key_prefix or "") + key
        key = None
    base = pc.base_url or (template(name).base_url if template(name) else None) or ""
    region = profile = None
    if pc.driver == "bedrock":
        base, region, profile = _bedrock_place(name, pc)
    if base and pc.driver != "sim":
        from callm.errors import ConfigError
        from callm.urls import check_host

        try:
            check_host(base)
        except ValueError as exc:
            raise ConfigError(
                f"provider {name}: {exc}", hint="fix base_url in the config"
            ) from None
    return Endpoint(
        name=name,
        driver=pc.driver,
        base_url=base,
        key=key,
        headers=headers,
        key_in_headers=bool(pc.key_header),
        timeout=pc.timeout,
        api_version=pc.api_version,
        region=region,
        profile=profile,
        deadline=pc.deadline,
        tls=Tls(pc.ca_bundle, pc.client_cert, pc.client_key)
        if pc.ca_bundle or pc.client_cert or pc.client_key
        else None,
    )


def _bedrock_place(name: str, pc: ProviderConfig) -> tuple[str, str, str | None]:
    """(runtime URL, region, profile): endpoint_url (or base_url) wins over the region's
    bedrock-runtime host; the region comes from the config, the environment or the profile."""
    import os
    import re

    from callm import aws_auth

    profile = pc.profile or os.environ.get("AWS_PROFILE") or None
    region = pc.region or aws_auth.region(profile)
    if region and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", region):
        raise ConfigError(f"provider {name!r}: bad AWS region {region!r}", hint="e.g. us-east-1")
    if not region:
        raise ConfigError(
            f"provider {name!r} has no AWS region",
            hint=f'set region = "us-east-1" under [providers.{name}], or export AWS_REGION',
        )
    base = pc.endpoint_url or pc.base_url or f"https://bedrock-runtime.{region}.amazonaws.com"
    return base, region, profile
