"""The shape of the catalog data files (models.json, providers.json), as pydantic models.

The files ship inside the package; a row that does not fit is a bug in callm, caught by the
tests (tests/test_catalog_schema.py) and, should one ship, reported in one line naming the
file and the row instead of failing somewhere later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from callm.config.schema import check_provider_name, problems_of
from callm.drivers import DRIVER_NAMES
from callm.errors import CallmError

Capability = Literal["vision", "tools", "reasoning", "json", "streaming"]
UsdPerMillion = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Tokens = Annotated[int, Field(gt=0)]
Day = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
Https = Annotated[str, Field(pattern=r"^https://")]
_T = TypeVar("_T")


def _driver(value: str) -> str:
    if value not in DRIVER_NAMES:
        raise ValueError(f"unknown driver {value!r}")
    return value


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CatalogPrice(_Row):
    """USD per million tokens; null = unknown, never 0."""

    input: UsdPerMillion | None = None
    output: UsdPerMillion | None = None
    cached_input: UsdPerMillion | None = None
    cache_write: UsdPerMillion | None = None


class CatalogModel(_Row):
    provider: str
    id: str
    display_name: str | None = None
    context_window: Tokens | None = None
    max_output: Tokens | None = None
    price: CatalogPrice | None = None
    capabilities: list[Capability] = Field(default_factory=list)
    price_checked: Day | None = None  # the day `source` was read
    source: Https | None = None
    aliases: list[str] = Field(default_factory=list)
    notes: str | None = None


class ModelCatalog(_Row):
    about: str = Field(alias="_about")
    models: list[CatalogModel]

    @model_validator(mode="after")
    def _one_row_per_name(self) -> ModelCatalog:
        seen: set[tuple[str, str]] = set()
        for row in self.models:
            for name in (row.id, *row.aliases):
                if (row.provider, name) in seen:
                    raise ValueError(f"{row.provider}/{name} is named by two rows")
                seen.add((row.provider, name))
        return self


class ProviderRow(_Row):
    """One built-in provider template (its name is the key in providers.json)."""

    driver: Annotated[str, AfterValidator(_driver)]
    base_url: str | None = None
    key_env: list[str] = Field(default_factory=list)  # the vendor's variables, in order
    key: Literal["keychain", "none"] = "keychain"  # how a fresh `providers add` stores it
    docs_url: str = ""
    default_model: str | None = None
    description: str = ""


ProviderName = Annotated[str, AfterValidator(check_provider_name)]
ProviderCatalog = TypeAdapter(dict[ProviderName, ProviderRow])


def plain_of(file: str, text: str) -> Any:
    """The catalog file `file` (models.json or providers.json) validated, as plain values
    (every field, defaults filled in): what callm.catalog.data keeps a copy of."""
    if file == "models.json":
        return load(ModelCatalog.model_validate_json, text, file).model_dump()
    return ProviderCatalog.dump_python(load(ProviderCatalog.validate_json, text, file))


def load(validate: Callable[[str], _T], text: str, file: str) -> _T:
    """`validate(text)` (a model's `model_validate_json`, an adapter's `validate_json`), with
    a broken file told in one line."""
    try:
        return validate(text)
    except ValidationError as exc:
        problems = problems_of(exc)
        loc, msg = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CallmError(
            f"built-in catalog {file} is broken: {'.'.join(loc) or '(top level)'}: {msg}{more}",
            hint="reinstall callm, or report it",
        ) from None
