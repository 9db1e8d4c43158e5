"""The built-in provider templates (data in providers.json, validated by catalog/schema.py
through catalog/data.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


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
    from callm.catalog.data import validated

    return {
        name: ProviderTemplate(name=name, **{**row, "key_env": tuple(row["key_env"])})
        for name, row in validated("providers.json").items()
    }


def template(name: str) -> ProviderTemplate | None:
    return catalog().get(name)
