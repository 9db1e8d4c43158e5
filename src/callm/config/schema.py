"""The config file's shape (SPEC: Config). Unknown keys are errors, so typos are caught.

Plain frozen dataclasses, checked field by field on construction. Every command that reads
the config pays for this module, and pydantic's import plus model building cost ~80-100 ms
of CPU per run (bench/RESULTS.md), more than the rest of a `providers list`; the schema is
small enough that its checks fit on one screen. Change a config with `dataclasses.replace`,
which runs the checks again."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from callm.drivers import DRIVER_NAMES

# A provider name is the first half of `provider/model` and part of CALLM_<NAME>_API_KEY.
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Loc = tuple[str, ...]
UNKNOWN_KEY = "unknown key"
Check = Callable[[Any, Loc], Any]  # returns the value, normalised; raises SchemaError
_T = TypeVar("_T", bound="_Section")


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


# ---- field checks: each takes (value, where) and returns the value it keeps ----------------


def _fail(loc: Loc, msg: str) -> SchemaError:
    return SchemaError([(loc, msg)])


def _shown(value: Any) -> str:
    kind = {bool: "a boolean", str: "a string", int: "an integer", float: "a number"}
    what = kind.get(type(value), "a table" if isinstance(value, dict) else "a list")
    return f"{what} ({value!r})" if not isinstance(value, (dict, list)) else what


def _str(value: Any, loc: Loc) -> str:
    if not isinstance(value, str):
        raise _fail(loc, f"must be a string, not {_shown(value)}")
    return value


def _bool(value: Any, loc: Loc) -> bool:
    if not isinstance(value, bool):
        raise _fail(loc, f"must be true or false, not {_shown(value)}")
    return value


def _optional(check: Check) -> Check:
    return lambda value, loc: None if value is None else check(value, loc)


def _number(*, gt: float | None = None, ge: float | None = None) -> Check:
    def check(value: Any, loc: Loc) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(loc, f"must be a number, not {_shown(value)}")
        if math.isnan(value):
            raise _fail(loc, "must be a number, not nan")
        if gt is not None and not value > gt:
            raise _fail(loc, f"must be greater than {gt:g}, not {value!r}")
        if ge is not None and not value >= ge:
            raise _fail(loc, f"must be at least {ge:g}, not {value!r}")
        return float(value)

    return check


def _integer(*, ge: int, le: int | None = None) -> Check:
    def check(value: Any, loc: Loc) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(loc, f"must be a whole number, not {_shown(value)}")
        if value < ge or (le is not None and value > le):
            bounds = f"between {ge} and {le}" if le is not None else f"at least {ge}"
            raise _fail(loc, f"must be {bounds}, not {value}")
        return value

    return check


def _choice(*choices: str) -> Check:
    def check(value: Any, loc: Loc) -> str:
        if value not in choices:
            raise _fail(loc, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value

    return check


def _list_of(item: Check) -> Check:
    def check(value: Any, loc: Loc) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise _fail(loc, f"must be a list, not {_shown(value)}")
        return [item(v, (*loc, str(i))) for i, v in enumerate(value)]

    return check


def _table_of(item: Check, key: Callable[[str], str] | None = None) -> Check:
    """A table with free keys (provider names, header names, aliases)."""

    def check(value: Any, loc: Loc) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _fail(loc, f"must be a table, not {_shown(value)}")
        out: dict[str, Any] = {}
        for k, v in value.items():
            if key is not None:
                try:
                    key(k)
                except ValueError as exc:
                    raise _fail(loc, str(exc)) from None
            out[k] = item(v, (*loc, k))
        return out

    return check


def _section(cls: type[_T]) -> Check:
    """A nested table with fixed keys, made into `cls` (or an instance of it, kept)."""

    def check(value: Any, loc: Loc) -> _T:
        return value if isinstance(value, cls) else cls.from_dict(value, loc)

    return check


def _driver(value: Any, loc: Loc) -> str:
    if _str(value, loc) not in DRIVER_NAMES:
        raise _fail(loc, f"unknown driver {value!r} (one of: {', '.join(DRIVER_NAMES)})")
    return value


def _url(value: Any, loc: Loc) -> str:
    if "://" not in _str(value, loc):
        raise _fail(loc, f"base_url must be a URL like https://host/v1, got {value!r}")
    return value


def _checks(check: Check) -> dict[str, Check]:
    """Field metadata: the value must pass `check` on construction."""
    return {"check": check}


# ---- the sections ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Section:
    """Checks every field on construction (and so on `dataclasses.replace`); reads a TOML
    table with `from_dict`, which names unknown keys; writes one back with `to_dict`."""

    def __post_init__(self) -> None:
        problems: list[tuple[Loc, str]] = []
        for f in dataclasses.fields(self):
            try:
                value = f.metadata["check"](getattr(self, f.name), (f.name,))
            except SchemaError as exc:
                problems.extend(exc.problems)
                continue
            object.__setattr__(self, f.name, value)  # normalised (int -> float, tuple -> list)
        if problems:
            raise SchemaError(problems)

    @classmethod
    def from_dict(cls: type[_T], raw: Any, loc: Loc = ()) -> _T:
        """`raw` is the table found at `loc` in the file; errors name their full path."""
        if not isinstance(raw, Mapping):
            raise _fail(loc, f"must be a table, not {_shown(raw)}")
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        problems = [((*loc, k), UNKNOWN_KEY) for k in raw if k not in names]
        problems += [
            ((*loc, f.name), "missing (required)")
            for f in fields
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in raw
        ]
        if problems:
            raise SchemaError(problems)
        try:
            return cls(**raw)
        except SchemaError as exc:
            raise SchemaError([((*loc, *where), msg) for where, msg in exc.problems]) from None

    def to_dict(self, *, skip_defaults: bool = False) -> dict[str, Any]:
        """Fields without None values; with `skip_defaults`, only what differs from the
        default (what the config file needs to say)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or (skip_defaults and value == _default(f)):
                continue
            out[f.name] = _plain(value, skip_defaults)
        return out


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _plain(value: Any, skip_defaults: bool) -> Any:
    if isinstance(value, _Section):
        return value.to_dict(skip_defaults=skip_defaults)
    if isinstance(value, dict):
        return {k: _plain(v, skip_defaults) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, skip_defaults) for v in value]
    return value


@dataclass(frozen=True)
class ProviderConfig(_Section):
    driver: str = field(metadata=_checks(_driver))
    base_url: str | None = field(default=None, metadata=_checks(_optional(_url)))
    key: Literal["keychain", "none"] = field(
        default="keychain", metadata=_checks(_choice("keychain", "none"))
    )
    key_env: str | None = field(default=None, metadata=_checks(_optional(_str)))
    enabled: bool = field(default=True, metadata=_checks(_bool))
    default_model: str | None = field(default=None, metadata=_checks(_optional(_str)))
    timeout: float = field(default=60.0, metadata=_checks(_number(gt=0)))  # read timeout, s
    connect_timeout: float = field(default=10.0, metadata=_checks(_number(gt=0)))
    headers: dict[str, str] = field(default_factory=dict, metadata=_checks(_table_of(_str)))
    models: list[str] | None = field(default=None, metadata=_checks(_optional(_list_of(_str))))
    api_version: str | None = field(default=None, metadata=_checks(_optional(_str)))  # azure-openai


@dataclass(frozen=True)
class RetryConfig(_Section):
    attempts: int = field(default=3, metadata=_checks(_integer(ge=1, le=20)))
    base_delay: float = field(default=0.5, metadata=_checks(_number(ge=0)))
    # the cap on any single wait
    max_delay: float = field(default=30.0, metadata=_checks(_number(ge=0)))
    # failures in a row before a provider is skipped, and for how long at first (it doubles)
    cooldown_after: int = field(default=3, metadata=_checks(_integer(ge=1)))
    cooldown_seconds: float = field(default=60.0, metadata=_checks(_number(ge=0)))


@dataclass(frozen=True)
class PriceOverride(_Section):
    input: float | None = field(default=None, metadata=_checks(_optional(_number(ge=0))))
    output: float | None = field(default=None, metadata=_checks(_optional(_number(ge=0))))
    cached_input: float | None = field(default=None, metadata=_checks(_optional(_number(ge=0))))
    cache_write: float | None = field(default=None, metadata=_checks(_optional(_number(ge=0))))


STRATEGIES = ("priority", "cheapest", "fastest", "round_robin", "weighted")


@dataclass(frozen=True)
class RouteConfig(_Section):
    """[routes.NAME]: candidate models and how to pick one (see callm.routing)."""

    models: list[str] = field(metadata=_checks(_list_of(_str)))
    strategy: str = field(default="priority", metadata=_checks(_choice(*STRATEGIES)))
    weights: list[float] | None = field(
        default=None, metadata=_checks(_optional(_list_of(_number(ge=0))))
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.models:
            raise SchemaError([(("models",), "must list at least one model")])
        if self.strategy == "weighted" and (
            self.weights is None or len(self.weights) != len(self.models) or not sum(self.weights)
        ):
            raise SchemaError([(("weights",), "weighted wants one weight per model, not all 0")])


def _provider_table(value: Any, loc: Loc) -> dict[str, ProviderConfig]:
    return _table_of(_section(ProviderConfig), key=check_provider_name)(value, loc)


@dataclass(frozen=True)
class Config(_Section):
    default_model: str | None = field(default=None, metadata=_checks(_optional(_str)))
    log_prompts: bool = field(default=False, metadata=_checks(_bool))
    providers: dict[str, ProviderConfig] = field(
        default_factory=dict, metadata=_checks(_provider_table)
    )
    aliases: dict[str, str] = field(default_factory=dict, metadata=_checks(_table_of(_str)))
    fallbacks: dict[str, list[str]] = field(
        default_factory=dict, metadata=_checks(_table_of(_list_of(_str)))
    )
    retry: RetryConfig = field(default_factory=RetryConfig, metadata=_checks(_section(RetryConfig)))
    pricing: dict[str, PriceOverride] = field(
        default_factory=dict, metadata=_checks(_table_of(_section(PriceOverride)))
    )
    routes: dict[str, RouteConfig] = field(
        default_factory=dict, metadata=_checks(_table_of(_section(RouteConfig)))
    )

    def to_toml_dict(self) -> dict[str, Any]:
        """What gets written: defaults left out so the file stays short and readable."""
        return self.to_dict(skip_defaults=True)
