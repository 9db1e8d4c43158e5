"""The shape of every `--json` output, as pydantic models: each command's JSON is validated
and dumped through one of these, and `callm schema NAME` prints its JSON Schema (copies in
docs/schemas/, kept current by tests/test_schemas.py), so scripts can check what they parse.

Fields a command leaves out (chat's `reasoning` when there is none, verify's `probe` without
--probe) are left out of the JSON too. A cost that is not a finite number is written as null
(unknown): JSON has no Infinity."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, RootModel

from callm.config.schema import Config, ProviderConfig, field_types


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


Usd = Annotated[float | None, BeforeValidator(_finite_or_none)]


class _Out(BaseModel):
    # built on first use, so a command pays only for the models it emits
    model_config = ConfigDict(extra="forbid", defer_build=True)


# ---- chat -----------------------------------------------------------------------------------


class ErrorInfo(_Out):
    kind: str  # usage | auth | rate_limit | budget | timeout | interrupted | ...
    message: str  # one line, keys scrubbed


class ErrorOutput(_Out):
    """What a command prints on stdout in --json mode when it fails (and chat on Ctrl-C)."""

    error: ErrorInfo


class ChatUsage(_Out):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    source: Literal["reported", "estimated"]


class ChatAttempt(_Out):
    model: str  # provider/model
    outcome: Literal["ok", "error", "skipped"]
    error_kind: str | None
    latency_ms: int | None
    tries: int


class ToolCall(_Out):
    id: str | None
    name: str | None
    arguments: str


class ChatOutput(_Out):
    """`callm chat --json`: one object after the reply (also when it failed mid-way)."""

    model: str | None
    provider: str | None
    text: str
    finish_reason: str | None
    usage: ChatUsage
    cost_usd: Usd
    price_source: str | None
    latency_ms: int | None
    ttft_ms: int | None
    attempts: list[ChatAttempt]
    parsed: Any = None  # with --schema: the reply, parsed and validated
    reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    error: ErrorInfo | None = None
    conversation: str | None = None  # the conversation this call belongs to (`chat -c`)


class ChatEstimate(_Out):
    """`callm chat --estimate --json`: the offline estimate, no call made."""

    model: str
    provider: str
    input_tokens: int
    max_output_tokens: int | None
    min_cost_usd: Usd
    max_cost_usd: Usd
    method: str
    price_source: str | None


# ---- providers ------------------------------------------------------------------------------


class ProviderListRow(_Out):
    name: str
    driver: str
    base_url: str | None
    key_source: str  # keychain | none | env VAR | missing (env VAR)
    enabled: bool
    default_model: str | None
    last_verified: str | None
    last_verify_ok: bool | None
    cooldown_until: str | None


class ProvidersList(RootModel[list[ProviderListRow]]):
    """`callm providers list --json`."""


def _provider_show() -> type[BaseModel]:
    """`callm providers show NAME --json`: the name, the config's fields (unset ones left out),
    where the key comes from and the key itself, masked ("(none needed)", "(missing: ...)")."""
    from dataclasses import MISSING, fields

    from pydantic import Field, create_model

    types = field_types(ProviderConfig)
    config: dict[str, Any] = {}
    for f in fields(ProviderConfig):  # type: ignore[arg-type]
        if f.default_factory is not MISSING:
            config[f.name] = (types[f.name], Field(default_factory=f.default_factory))
        else:
            config[f.name] = (types[f.name], ... if f.default is MISSING else f.default)
    config["key"] = (str, ...)
    return create_model(  # type: ignore[call-overload,no-any-return]
        "ProviderShow",
        __config__=ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True),
        __doc__=_provider_show.__doc__,
        name=(str, ...),
        **config,
        key_source=(str, ...),
    )


ProviderShow = _provider_show()


class ProbeRow(_Out):
    model: str
    ok: bool
    estimated_cost_usd: Usd
    cost_usd: Usd
    price_source: str | None
    latency_ms: int | None
    input_tokens: int | None
    output_tokens: int | None
    error: str | None


class VerifyRow(_Out):
    name: str
    ok: bool
    stage: str | None  # the stage that failed
    error: str | None
    latency_ms: int | None
    models: int | None  # how many models the provider lists
    probe: ProbeRow | None = None  # with --probe only


class ProvidersVerify(RootModel[list[VerifyRow]]):
    """`callm providers verify --json`."""


# ---- models ---------------------------------------------------------------------------------


class ModelPrice(_Out):
    """USD per million tokens; null = unknown."""

    input: Usd
    output: Usd
    cached_input: Usd
    cache_write: Usd
    source: str


class ModelRow(_Out):
    """`callm models show MODEL --json`, and each row of `models list --json`."""

    provider: str
    id: str
    name: str  # provider/id
    display_name: str | None
    context_window: int | None
    max_output: int | None
    price: ModelPrice | None
    capabilities: list[str]
    source: str  # "sync <when>" | "catalog" | "sim"
    configured: bool
    extra: dict[str, Any]


class ModelsList(RootModel[list[ModelRow]]):
    """`callm models list --json`."""


class SyncRow(_Out):
    provider: str
    ok: bool
    models: int | None
    added: list[str]
    removed: list[str]
    first_sync: bool
    synced_at: str | None
    stage: str | None
    error: str | None


class ModelsSync(RootModel[list[SyncRow]]):
    """`callm models sync --json`."""


# ---- usage ----------------------------------------------------------------------------------


class UsageTotals(_Out):
    requests: int
    failures: int
    input_tokens: int
    output_tokens: int
    cost_usd: Usd  # over priced requests; null when every request had an unknown price
    unpriced_requests: int
    p50_latency_ms: int | None
    p95_latency_ms: int | None


class _Keyed(_Out):
    key: str | None  # the provider, provider/model, day or token


class UsageGroup(UsageTotals, _Keyed):  # bases in this order: `key` comes first
    pass


class UsageReport(_Out):
    """`callm usage --json`."""

    groups: list[UsageGroup]
    totals: UsageTotals


class LedgerStatus(_Out):
    """`callm ledger status --json` (and `ledger migrate --json`, which adds `imported`)."""

    backend: Literal["sqlite", "postgresql"]
    location: str  # the file, or the URL (never a password)
    schema_version: int | None  # None: the ledger could not be reached
    latest_version: int
    reachable: bool
    error: str | None
    rows: dict[str, int]  # table -> rows
    spill_backlog: int  # usage rows waiting in spill files to go in
    imported: int | None = None  # migrate: spilled rows written in now


class LedgerCopy(_Out):
    """`callm ledger copy --json`: rows added per table (0 everywhere on a second run)."""

    added: dict[str, int]


# ---- routes and `callm serve` tokens ----------------------------------------------------------


class RouteRow(_Out):
    models: list[str]
    strategy: Literal["priority", "cheapest", "fastest", "round_robin", "weighted"]
    weights: list[float] | None = None  # only with strategy = "weighted"


class RoutesList(RootModel[dict[str, RouteRow]]):
    """`callm routes list --json`: each route's name -> its models and strategy."""


class RouteExplain(_Out):
    """`callm routes explain NAME PROMPT --json`."""

    route: str
    chosen: str  # provider/model
    order: list[str]  # the chosen model, then its fallbacks
    why: list[str]  # one line per candidate, then the strategy


class TokenCreated(_Out):
    """`callm serve token create NAME --json`: the token is shown only this once."""

    name: str
    token: str


class TokenRow(_Out):
    name: str
    created: float  # unix time
    budget_usd_day: Usd  # null: no budget of its own
    models: list[str] | None  # allowed models/routes; null: any


class TokenList(RootModel[list[TokenRow]]):
    """`callm serve token list --json` (never the tokens themselves)."""


from callm.ledger.log_schema import LogList  # noqa: E402  (pure pydantic, no I/O)
from callm.outputs_ops import (  # noqa: E402  (the smaller commands' models)
    ProviderChange,
    ProvidersCatalog,
    ProvidersImport,
    ProvidersVerifyModels,
    TemplateShow,
    TemplatesList,
    UsageBudget,
)

CONFIG = "config"
SCHEMAS: dict[str, Any] = {
    "chat": ChatOutput,
    "chat-estimate": ChatEstimate,
    "error": ErrorOutput,
    "providers-list": ProvidersList,
    "providers-show": ProviderShow,
    "providers-verify": ProvidersVerify,
    "providers-verify-models": ProvidersVerifyModels,  # with --models / --models-file
    "providers-change": ProviderChange,  # add, remove, enable, disable, set-key
    "providers-import": ProvidersImport,
    "providers-catalog": ProvidersCatalog,
    "models-list": ModelsList,
    "models-show": ModelRow,
    "models-sync": ModelsSync,
    "usage-report": UsageReport,
    "usage-budget": UsageBudget,
    "templates-list": TemplatesList,
    "templates-show": TemplateShow,
    "logs": LogList,  # `logs list --json` and `logs show --json`
    "ledger-status": LedgerStatus,
    "ledger-copy": LedgerCopy,
    "routes-list": RoutesList,
    "routes-explain": RouteExplain,
    "serve-token-create": TokenCreated,
    "serve-token-list": TokenList,
    # the config file (what it accepts); its sections are dataclasses, see schema() below
    CONFIG: Config,
}


def dump(name: str, data: Any) -> Any:
    """`data` checked against output NAME, as plain JSON values (fields it left out stay
    out)."""
    return (
        SCHEMAS[name]
        .model_validate(data)
        .model_dump(mode="json", exclude_unset=True, by_alias=True)
    )


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of output NAME (KeyError when there is none)."""
    if name == CONFIG:
        from callm.config.schema import json_schema

        body = json_schema()
    else:
        body = SCHEMAS[name].model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"callm:{name}",
        **body,
    }


def schema_text(name: str) -> str:
    return json.dumps(schema(name), indent=2, ensure_ascii=False) + "\n"
