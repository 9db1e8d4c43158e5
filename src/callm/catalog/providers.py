"""The built-in provider templates (data in providers.json, validated by catalog/schema.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_HERE = Path(__file__).parent  # the JSON files ship beside this module


@dataclass(frozen=True)
class ProviderTemplate:
    name: str
    driver: str
    base_url: str | None
    key_env: tuple[str, ...]  # the vendor's conventional variables, in order
    key: str  # "keychain" or "none": how a fresh `providers add` stores the key
    docs_url: str
    default_model: str | None
    description: str


@lru_cache(maxsize=1)
def catalog() -> dict[str, ProviderTemplate]:
    from callm.catalog.schema import ProviderCatalog, load

    text = _HERE.joinpath("providers.json").read_text("utf-8")
    rows = load(ProviderCatalog.validate_json, text, "providers.json")
    return {
        name: ProviderTemplate(name=name, **{**dict(row), "key_env": tuple(row.key_env)})
        for name, row in rows.items()
    }


def template(name: str) -> ProviderTemplate | None:
    return catalog().get(name)
