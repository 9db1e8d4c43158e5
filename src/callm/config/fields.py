"""The config's field types as pydantic sees them: `Annotated` types with their constraints
and checks. callm.config.schema names them in string annotations, which pydantic resolves
only when it first validates a config; reading a config validated before (callm.config.cache)
never imports this module, nor pydantic."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, Strict

from callm.drivers import DRIVER_NAMES

# TOML has types: `attempts = "3"` or `enabled = 1` is an error, not a conversion.
Bool = Annotated[bool, Strict()]


def _whole(ge: int, le: int | None = None) -> Any:
    """A whole number in range, told as "between 1 and 20" (pydantic names one bound)."""

    def check(value: int) -> int:
        if value < ge or (le is not None and value > le):
            bounds = f"between {ge} and {le}" if le is not None else f"at least {ge}"
            raise ValueError(f"must be {bounds}, not {value}")
        return value

    limits = {"minimum": ge} | ({"maximum": le} if le is not None else {})
    return Annotated[int, Strict(), AfterValidator(check), Field(json_schema_extra=limits)]


def _driver(value: str) -> str:
    if value not in DRIVER_NAMES:
        raise ValueError(f"unknown driver {value!r} (one of: {', '.join(DRIVER_NAMES)})")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 5.1)


def _header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} is not an HTTP header name")
    return value


def _url(field: str, example: str) -> Any:
    def check(value: str) -> str:
        if "://" not in value:
            raise ValueError(f"{field} must be a URL like {example}, got {value!r}")
        return value

    return check


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


def _timezone(value: str) -> str:
    """An IANA zone name ("Europe/Berlin"); zoneinfo is imported only when one is given."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, OSError, LookupError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name like Europe/Berlin)") from None
    return value


def _checked(check: Any) -> Any:
    """A string `check` accepts (it raises ValueError with the message the user sees)."""
    return Annotated[str, AfterValidator(check)]


def _names(kind: str) -> Any:
    def check(name: str) -> str:
        from callm.config.schema import check_name

        return check_name(name, kind)

    return _checked(check)


# Every name callm.config.schema's annotations use, by that name.
TYPES: dict[str, Any] = {
    "Bool": Bool,
    "Seconds": Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)],
    "NonNegative": Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)],
    "Share": Annotated[float, Strict(), Field(gt=0, le=1, allow_inf_nan=False)],
    "Attempts": _whole(1, 20),
    "AtLeastOne": _whole(1),
    "ProviderName": _names("provider"),
    "TemplateName": _names("template"),
    "Driver": _checked(_driver),
    "Url": _checked(_url("base_url", "https://host/v1")),
    "HeaderName": _checked(_header_name),
    "LedgerUrl": _checked(_ledger_url),
    "AwsRegion": _checked(_aws_region),
    "EndpointUrl": _checked(_url("endpoint_url", "https://host")),
    "TimeZone": _checked(_timezone),
    "SchemaAlias": Annotated[str | None, Field(alias="schema")],
}
