"""The config file's shape (SPEC: Config). Unknown keys are errors, so typos are caught; every
number must be finite (TOML reads `inf`, `nan` and `1e309`).

The sections are frozen dataclasses that pydantic validates (a TypeAdapter per section, built
on first use) with the field types of callm.config.fields, named here in string annotations.
A config validated before is rebuilt from callm.config.cache without pydantic: importing and
building pydantic's validators was most of a command's start-up.

pydantic's errors are turned into `SchemaError`, which names each problem by its dotted
path in the file (`providers.lab.timeout: must be greater than 0, not -1`). `Section.make(...)`
builds a section and `updated(section, field=value)` changes one, both validating the values;
the plain constructor does not validate (it is what the cache uses)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

    from callm.config.fields import (
        AtLeastOne,
        Attempts,
        AwsRegion,
        Bool,
        Driver,
        EndpointUrl,
        HeaderName,
        LedgerUrl,
        NonNegative,
        ProviderName,
        SchemaAlias,
        Seconds,
        Share,
        TemplateName,
        TimeZone,
        Url,
    )

# A provider name is the first half of `provider/model` and part of CALLM_<NAME>_API_KEY.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Loc = tuple[str, ...]
UNKNOWN_KEY = "unknown key"
MISSING = "missing (required)"
_S = TypeVar("_S", bound="_Section")


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


def check_name(name: str, kind: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"bad {kind} name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return name


def check_provider_name(name: str) -> str:
    return check_name(name, "provider")


def check_template_name(name: str) -> str:
    return check_name(name, "template")


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
    "dataclass_type": "a table",
}


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return "a table" if isinstance(value, dict) else "a list"
    kind = {bool: "a boolean", str: "a string", int: "an integer", float: "a number"}
    return f"{kind.get(type(value), type(value).__name__)} ({value!r})"


def _message(err: Any) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return UNKNOWN_KEY
    if kind in ("missing", "missing_keyword_argument", "missing_argument"):
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
        if isinstance(inner, SchemaError):  # a nested section's __post_init__ raised it
            found += [((*where, *at), msg) for at, msg in inner.problems]
        else:
            found.append((where, _message(err)))
    structural = [p for p in found if p[1] in (UNKNOWN_KEY, MISSING)]
    return structural or found


# ---- the sections ---------------------------------------------------------------------------


@cache
def _adapter(cls: type[_S]) -> TypeAdapter[_S]:
    """pydantic's validator for section `cls`. The field types the annotations name join this
    module's namespace here, where pydantic resolves them, so that importing the schema (and
    reading a cached config) does not import pydantic."""
    from pydantic import TypeAdapter

    from callm.config.fields import TYPES

    globals().update(TYPES)
    return TypeAdapter(cls)


def field_types(cls: type[_Section]) -> dict[str, Any]:
    """The section's fields and their pydantic types (for models built on it: callm.outputs)."""
    import typing

    _adapter(cls)  # puts the field types in this module's namespace
    return typing.get_type_hints(cls, include_extras=True)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (what it accepts)."""
    return _adapter(Config).json_schema(mode="validation")


class _Section:
    """A config table: no unknown keys; validated by `from_dict`, `make` and `updated`."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}
    # Fields holding sections, for `rebuilt`: name -> (section class, a table of them by name)
    _SECTIONS: ClassVar[dict[str, tuple[type[_Section], bool]]] = {}

    @classmethod
    def from_dict(cls: type[_S], raw: Any, loc: Loc = ()) -> _S:
        """`raw` is the table found at `loc` in the file; errors name their full path."""
        adapter = _adapter(cls)
        from pydantic import ValidationError

        try:
            return adapter.validate_python(raw)
        except ValidationError as exc:
            raise SchemaError(problems_of(exc, loc)) from None

    @classmethod
    def make(cls: type[_S], **values: Any) -> _S:
        """A section with these values (by field name), validated: SchemaError when bad."""
        return cls.from_dict(values)

    @classmethod
    def rebuilt(cls: type[_S], plain: dict[str, Any]) -> _S:
        """The section `plain()` gave, without validating it again (callm.config.cache)."""
        values = dict(plain)
        for name, (section, table) in cls._SECTIONS.items():
            if name in values:
                got = values[name]
                values[name] = (
                    {k: section.rebuilt(v) for k, v in got.items()}
                    if table
                    else section.rebuilt(got)
                )
        return cls(**values)

    def plain(self) -> dict[str, Any]:
        """Every field by its own name, sections as dicts: what `rebuilt` takes."""
        return _adapter(type(self)).dump_python(self)  # type: ignore[no-any-return]

    def to_dict(self, *, skip_defaults: bool = False) -> dict[str, Any]:
        """Fields without None values, by the file's names; with `skip_defaults`, only what
        differs from the default (what the config file needs to say)."""
        return _adapter(type(self)).dump_python(  # type: ignore[no-any-return]
            self, exclude_none=True, exclude_defaults=skip_defaults, by_alias=True
        )


def updated(section: _S, /, **changes: Any) -> _S:
    """`section` with `changes`, validated like a new one (SchemaError when a value is bad).
    Positional-only, so a section may have a field named `model` (templates do)."""
    values = {f.name: getattr(section, f.name) for f in fields(section)}  # type: ignore[arg-type]
    return type(section).from_dict({**values, **changes})


_section = dataclass(frozen=True, kw_only=True)


@_section
class ProviderConfig(_Section):
    driver: Driver
    base_url: Url | None = None
    key: Literal["keychain", "none"] = "keychain"
    key_env: str | None = None
    enabled: Bool = True
    default_model: str | None = None
    timeout: Seconds = 60.0  # read timeout
    connect_timeout: Seconds = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    # The header that carries the key (`x-api-key`), when not the driver's own; the key itself
    # stays in the keychain or a variable, never in this file.
    key_header: HeaderName | None = None
    key_prefix: str | None = None  # put before the key in key_header ("Bearer ")
    models: list[str] | None = None
    api_version: str | None = None  # azure-openai
    deadline: Seconds | None = None  # the most one request may take, however slow the reply
    ca_bundle: str | None = None  # TLS for a corporate gateway: PEM CA file or directory,
    client_cert: str | None = None  # and a client certificate (PEM)
    client_key: str | None = None  # with its key, when not in client_cert
    # bedrock: AWS region, profile (credential chain), and an endpoint other than AWS's own
    region: AwsRegion | None = None
    profile: str | None = None
    endpoint_url: EndpointUrl | None = None


@_section
class RetryConfig(_Section):
    attempts: Attempts = 3
    base_delay: NonNegative = 0.5
    max_delay: NonNegative = 30.0  # the cap on any single wait
    # failures in a row before a provider is skipped, and for how long at first (it doubles)
    cooldown_after: AtLeastOne = 3
    cooldown_seconds: NonNegative = 60.0


@_section
class PriceOverride(_Section):
    """USD per million tokens."""

    input: NonNegative | None = None
    output: NonNegative | None = None
    cached_input: NonNegative | None = None
    cache_write: NonNegative | None = None


@_section
class LedgerConfig(_Section):
    """Where the data DB lives: None = the SQLite file in the data dir; a postgresql:// URL
    (no password in it) = a ledger shared by a team."""

    url: LedgerUrl | None = None


STRATEGIES = ("priority", "cheapest", "fastest", "round_robin", "weighted")


@_section
class RouteConfig(_Section):
    """[routes.NAME]: candidate models and how to pick one (see callm.routing)."""

    models: list[str]
    strategy: Literal["priority", "cheapest", "fastest", "round_robin", "weighted"] = "priority"
    weights: list[NonNegative] | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise SchemaError([(("models",), "must list at least one model")])
        if self.strategy == "weighted" and (
            self.weights is None or len(self.weights) != len(self.models) or not sum(self.weights)
        ):
            raise SchemaError([(("weights",), "weighted wants one weight per model, not all 0")])


@_section
class TemplateConfig(_Section):
    """[templates.NAME]: a saved prompt with its model, system prompt and options."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid", "populate_by_name": True}
    model: str | None = None
    system: str | None = None
    prompt: str | None = None  # `$input` is what `callm chat -t NAME` is given
    options: dict[str, Any] = field(default_factory=dict)  # driver options, as -o gives them
    # JSON schema for the reply; `schema` in the file
    schema_: SchemaAlias = None


@_section
class BudgetLimits(_Section):
    """USD per calendar day / month; None = no limit for that period."""

    daily: NonNegative | None = None
    monthly: NonNegative | None = None


@_section
class BudgetsConfig(_Section):
    """`[budgets]`: overall limits, and per provider under `[budgets.providers.NAME]`."""

    daily: NonNegative | None = None
    monthly: NonNegative | None = None
    alert_at: Share = 0.8  # share of a limit
    timezone: TimeZone | None = None  # default: local time
    allow_unpriced: Bool = False
    # a budget that cannot be checked (the ledger is unreachable) lets paid calls through
    fail_open: Bool = False
    providers: dict[ProviderName, BudgetLimits] = field(default_factory=dict)


@_section
class Config(_Section):
    default_model: str | None = None
    log_prompts: Bool = True  # the call log (callm logs); `callm logs off` sets it false
    providers: dict[ProviderName, ProviderConfig] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    retry: RetryConfig = field(default_factory=RetryConfig)
    pricing: dict[str, PriceOverride] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    templates: dict[TemplateName, TemplateConfig] = field(default_factory=dict)
    budgets: BudgetsConfig = field(default_factory=BudgetsConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)

    def to_toml_dict(self) -> dict[str, Any]:
        """What gets written: defaults left out so the file stays short and readable."""
        return self.to_dict(skip_defaults=True)


BudgetsConfig._SECTIONS = {"providers": (BudgetLimits, True)}
Config._SECTIONS = {
    "providers": (ProviderConfig, True),
    "retry": (RetryConfig, False),
    "pricing": (PriceOverride, True),
    "routes": (RouteConfig, True),
    "templates": (TemplateConfig, True),
    "budgets": (BudgetsConfig, False),
    "ledger": (LedgerConfig, False),
}
