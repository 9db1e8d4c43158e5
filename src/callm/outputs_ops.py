"""The `--json` models of the smaller commands (verify --models, usage budget, templates,
providers import/add/remove/...): registered in callm.outputs.SCHEMAS beside the others."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel

from callm.outputs import Usd, VerifyRow, _Out


class ModelProbe(_Out):
    model: str  # provider/model
    provider: str | None  # None when the reference names no configured provider
    ok: bool
    used_by: list[str]  # where the config reaches it (default_model, fallbacks.X, ...)
    error: str | None
    latency_ms: int | None
    estimated_cost_usd: Usd
    cost_usd: Usd


class FallbackChain(_Out):
    fallback: str
    members: list[str]
    status: Literal["usable", "degraded", "unusable", "unknown"]


class ProvidersVerifyModels(_Out):
    """`callm providers verify --models --json` (or --models-file)."""

    providers: list[VerifyRow]
    models: list[ModelProbe]
    fallbacks: list[FallbackChain]


class BudgetRow(_Out):
    budget: str
    provider: str | None
    period: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float  # held by calls in flight
    left_usd: float
    used: float  # (spent + reserved) / limit
    alert: bool
    period_start: str
    period_end: str


class UsageBudget(RootModel[list[BudgetRow]]):
    """`callm usage budget --json`."""


class TemplateShow(_Out):
    """`callm templates show NAME --json` (fields left unset are left out)."""

    model_config = ConfigDict(extra="forbid", defer_build=True, populate_by_name=True)
    name: str | None = None
    model: str | None = None
    system: str | None = None
    prompt: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    schema_: str | None = Field(default=None, alias="schema")


class TemplatesList(RootModel[dict[str, TemplateShow]]):
    """`callm templates list --json`: name -> template."""


class ImportStep(_Out):
    provider: str | None  # None when the reference names no configured provider
    action: str  # import | skip | ...
    key: str  # masked
    source: str
    reason: str | None


class ProvidersImport(_Out):
    """`callm providers import --json`: what was imported; with --dry-run (or nothing to do)
    the plan too."""

    imported: list[ImportStep]
    plan: list[ImportStep] | None = None


class ProviderChange(_Out):
    """`callm providers add/remove/enable/disable/set-key --json`: the fields the command
    changed."""

    added: str | None = None
    driver: str | None = None
    base_url: str | None = None
    key_source: str | None = None
    removed: str | None = None
    key_deleted: bool | None = None
    name: str | None = None
    enabled: bool | None = None
    key: str | None = None  # masked
    stored_in: str | None = None


class CatalogRow(_Out):
    name: str
    driver: str
    base_url: str | None
    key_env: list[str]
    default_model: str | None
    docs_url: str | None


class ProvidersCatalog(RootModel[list[CatalogRow]]):
    """`callm providers catalog --json`."""
