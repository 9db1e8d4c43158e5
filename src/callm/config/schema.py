"""The config file's shape (SPEC: Config). Unknown keys are errors, so typos are caught."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callm.drivers import DRIVER_NAMES

# A provider name is the first half of `provider/model` and part of CALLM_<NAME>_API_KEY.
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_provider_name(name: str) -> str:
    if not _PROVIDER_NAME.fullmatch(name):
        raise ValueError(
            f"bad provider name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProviderConfig(_Strict):
    driver: str
    base_url: str | None = None
    key: Literal["keychain", "none"] = "keychain"
    key_env: str | None = None
    enabled: bool = True
    default_model: str | None = None
    timeout: float = Field(default=60.0, gt=0, description="read timeout, seconds")
    connect_timeout: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[str] | None = None
    api_version: str | None = None  # azure-openai

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if v not in DRIVER_NAMES:
            raise ValueError(f"unknown driver {v!r} (one of: {', '.join(DRIVER_NAMES)})")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"base_url must be a URL like https://host/v1, got {v!r}")
        return v


class RetryConfig(_Strict):
    attempts: int = Field(default=3, ge=1, le=20)
    base_delay: float = Field(default=0.5, ge=0)
    max_delay: float = Field(default=30.0, ge=0, description="cap on any single wait")
    cooldown_after: int = Field(default=3, ge=1, description="failures in a row before skipping")
    cooldown_seconds: float = Field(default=60.0, ge=0, description="first cooldown; doubles")


class PriceOverride(_Strict):
    input: float | None = Field(default=None, ge=0)
    output: float | None = Field(default=None, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class Config(_Strict):
    default_model: str | None = None
    log_prompts: bool = False
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    pricing: dict[str, PriceOverride] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, v: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in v:
            check_provider_name(name)
        return v

    def to_toml_dict(self) -> dict:
        """What gets written: defaults left out so the file stays short and readable."""
        return self.model_dump(exclude_defaults=True, exclude_none=True)
