"""The config file's shape (SPEC: Config), as pydantic models. Unknown keys are errors, so
typos are caught; every number must be finite (TOML reads `inf`, `nan` and `1e309`).

pydantic's errors are turned into `SchemaError`, which names each problem by its dotted
path in the file (`providers.lab.timeout: must be greater than 0, not -1`). Models are
frozen: change one with `updated(model, field=value)`, which validates the new values
(pydantic's `model_copy(update=...)` does not)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from callm.drivers import DRIVER_NAMES

# A provider name is the first half of `provider/model` and part of CALLM_<NAME>_API_KEY.
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Loc = tuple[str, ...]
UNKNOWN_KEY = "unknown key"
MISSING = "missing (required)"
_M = TypeVar("_M", bound="_Section")


class SchemaError(ValueError):
    """What is wrong with the config, by dotted path. `problems` holds every (loc, message)
    found, the first one first."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__(self.first)

    @property
    def first(self) -> str:
        loc, msg = self.problems[0]
        return f"{'.'.join(loc)}: {msg}" if loc else msg


def check_provider_name(name: str) -> str:
    if not _PROVIDER_NAME.fullmatch(name):
        raise ValueError(
            f"bad provider name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return name


def check_template_name(name: str) -> str:
    if not _PROVIDER_NAME.fullmatch(name):
        raise ValueError(
            f"bad template name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return name


# ---- pydantic's errors in the file's words --------------------------------------------------

_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return "a table" if isinstance(value, dict) else "a list"
    kind = {bool: "a boolean", str: "a string", int: "an integer", float: "a number"}
    return f"{kind.get(type(value), type(value).__name__)} ({value!r})"


def _message(err: Any) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        return UNKNOWN_KEY
    if kind == "missing":
        return MISSING
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    if kind == "finite_number":
        return f"must be a finite number, not {value!r}"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']:g}, not {value!r}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']:g}, not {value!r}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']:g}, not {value!r}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected'].replace(' or ', ', ')}, not {value!r}"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, not {_shown(value)}"
    return str(err["msg"]).lower()


def problems_of(exc: ValidationError, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """(dotted path, message) per error. Unknown and missing keys come alone when there are
    any: a misspelt key usually explains the rest."""
    found: list[tuple[Loc, str]] = []
    for err in exc.errors(include_url=False):
        where = (*loc, *(str(part) for part in err["loc"] if part != "[key]"))
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, SchemaError):  # a nested section's __init__ (below) raised it
            found += [((*where, *at), msg) for at, msg in inner.problems]
        else:
            found.append((where, _message(err)))
    structural = [p for p in found if p[1] in (UNKNOWN_KEY, MISSING)]
    return structural or found


# ---- field types ----------------------------------------------------------------------------


def _whole(ge: int, le: int | None = None) -> Any:
    """A whole number in range, told as "between 1 and 20" (pydantic names one bound)."""

    def check(value: int) -> int:
        if value < ge or (le is not None and value > le):
            bounds = f"between {ge} and {le}" if le is not None else f"at least {ge}"
            raise ValueError(f"must be {bounds}, not {value}")
        return value

    limits = {"minimum": ge} | ({"maximum": le} if le is not None else {})
    return Annotated[int, AfterValidator(check), Field(json_schema_extra=limits)]


def _driver(value: str) -> str:
    if value not in DRIVER_NAMES:
        raise ValueError(f"unknown driver {value!r} (one of: {', '.join(DRIVER_NAMES)})")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 5.1)


def _header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} is not an HTTP header name")
    return value


def _url(value: str) -> str:
    if "://" not in value:
        raise ValueError(f"base_url must be a URL like https://host/v1, got {value!r}")
    return value


def _ledger_url(value: str) -> str:
    from callm.errors import ConfigError
    from callm.ledger.backend import check_url

    try:
        return check_url(value)
    except ConfigError as exc:
        raise ValueError(exc.message.removeprefix("ledger url ")) from None


def _aws_region(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
        raise ValueError(f"region must be an AWS region like us-east-1, got {value!r}")
    return value


def _endpoint_url(value: str) -> str:
    if "://" not in value:
        raise ValueError(f"endpoint_url must be a URL like https://host, got {value!r}")
    return value


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ProviderName = Annotated[str, AfterValidator(check_provider_name)]
Attempts = _whole(1, 20)
AtLeastOne = _whole(1)


# ---- the sections ---------------------------------------------------------------------------


class _Section(BaseModel):
    """Strict (TOML has types: `attempts = "3"` is an error, not 3), frozen, no unknown keys.
    Constructing one raises SchemaError, never pydantic's ValidationError. pydantic calls
    this __init__ for nested sections too, so their errors arrive as SchemaError inside a
    ValidationError; `problems_of` unpacks them."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SchemaError(problems_of(exc)) from None

    @classmethod
    def from_dict(cls: type[_M], raw: Any, loc: Loc = ()) -> _M:
        """`raw` is the table found at `loc` in the file; errors name their full path."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise SchemaError(problems_of(exc, loc)) from None

    def to_dict(self, *, skip_defaults: bool = False) -> dict[str, Any]:
        """Fields without None values; with `skip_defaults`, only what differs from the
        default (what the config file needs to say)."""
        return self.model_dump(exclude_none=True, exclude_defaults=skip_defaults, by_alias=True)


def updated(section: _M, /, **changes: Any) -> _M:
    """`section` with `changes`, validated like a new one (SchemaError when a value is bad).
    Positional-only, so a section may have a field named `model` (templates do)."""
    return type(section)(**{**dict(section), **changes})


class ProviderConfig(_Section):
    driver: Annotated[str, AfterValidator(_driver)]
    base_url: Annotated[str, AfterValidator(_url)] | None = None
    key: Literal["keychain", "none"] = "keychain"
    key_env: str | None = None
    enabled: bool = True
    default_model: str | None = None
    timeout: Seconds = 60.0  # read timeout
    connect_timeout: Seconds = 10.0
    headers: dict[str, str] = Field(default_factory=dict)
    # The header that carries the key (`x-api-key`), when not the driver's own; the key itself
    # stays in the keychain or a variable, never in this file.
    key_header: Annotated[str, AfterValidator(_header_name)] | None = None
    key_prefix: str | None = None  # put before the key in key_header ("Bearer ")
    models: list[str] | None = None
    api_version: str | None = None  # azure-openai
    deadline: Seconds | None = None  # the most one request may take, however slow the reply
    ca_bundle: str | None = None  # TLS for a corporate gateway: PEM CA file or directory,
    client_cert: str | None = None  # and a client certificate (PEM)
    client_key: str | None = None  # with its key, when not in client_cert
    # bedrock: AWS region, profile (credential chain), and an endpoint other than AWS's own
    region: Annotated[str, AfterValidator(_aws_region)] | None = None
    profile: str | None = None
    endpoint_url: Annotated[str, AfterValidator(_endpoint_url)] | None = None


class RetryConfig(_Section):
    attempts: Attempts = 3
    base_delay: NonNegative = 0.5
    max_delay: NonNegative = 30.0  # the cap on any single wait
    # failures in a row before a provider is skipped, and for how long at first (it doubles)
    cooldown_after: AtLeastOne = 3
    cooldown_seconds: NonNegative = 60.0


class PriceOverride(_Section):
    """USD per million tokens."""

    input: NonNegative | None = None
    output: NonNegative | None = None
    cached_input: NonNegative | None = None
    cache_write: NonNegative | None = None


class LedgerConfig(_Section):
    """Where the data DB lives: None = the SQLite file in the data dir; a postgresql:// URL
    (no password in it) = a ledger shared by a team."""

    url: Annotated[str, AfterValidator(_ledger_url)] | None = None


STRATEGIES = ("priority", "cheapest", "fastest", "round_robin", "weighted")


class RouteConfig(_Section):
    """[routes.NAME]: candidate models and how to pick one (see callm.routing)."""

    models: list[str]
    strategy: Literal["priority", "cheapest", "fastest", "round_robin", "weighted"] = "priority"
    weights: list[NonNegative] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RouteConfig:
        if not self.models:
            raise SchemaError([(("models",), "must list at least one model")])
        if self.strategy == "weighted" and (
            self.weights is None or len(self.weights) != len(self.models) or not sum(self.weights)
        ):
            raise SchemaError([(("weights",), "weighted wants one weight per model, not all 0")])
        return self


TemplateName = Annotated[str, AfterValidator(check_template_name)]


class TemplateConfig(_Section):
    """[templates.NAME]: a saved prompt with its model, system prompt and options."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)
    model: str | None = None
    system: str | None = None
    prompt: str | None = None  # `$input` is what `callm chat -t NAME` is given
    options: dict[str, Any] = Field(default_factory=dict)  # driver options, as -o gives them
    # JSON schema for the reply; `schema` in the file (the name is taken on BaseModel)
    schema_: str | None = Field(default=None, alias="schema")


def _timezone(value: str) -> str:
    """An IANA zone name ("Europe/Berlin"); zoneinfo is imported only when one is given."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, OSError, LookupError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name like Europe/Berlin)") from None
    return value


class BudgetLimits(_Section):
    """USD per calendar day / month; None = no limit for that period."""

    daily: NonNegative | None = None
    monthly: NonNegative | None = None


class BudgetsConfig(_Section):
    """`[budgets]`: overall limits, and per provider under `[budgets.providers.NAME]`."""

    daily: NonNegative | None = None
    monthly: NonNegative | None = None
    alert_at: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8  # share of a limit
    timezone: Annotated[str, AfterValidator(_timezone)] | None = None  # default: local time
    allow_unpriced: bool = False
    # a budget that cannot be checked (the ledger is unreachable) lets paid calls through
    fail_open: bool = False
    providers: dict[ProviderName, BudgetLimits] = Field(default_factory=dict)


class Config(_Section):
    default_model: str | None = None
    log_prompts: bool = True  # the call log (callm logs); `callm logs off` sets it false
    providers: dict[ProviderName, ProviderConfig] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    pricing: dict[str, PriceOverride] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    templates: dict[TemplateName, TemplateConfig] = Field(default_factory=dict)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)

    def to_toml_dict(self) -> dict[str, Any]:
        """What gets written: defaults left out so the file stays short and readable."""
        return self.to_dict(skip_defaults=True)
