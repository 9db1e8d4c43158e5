"""The built-in provider templates (data in providers.json). Stdlib only."""

from __future__ import annotations

import json
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
    raw = json.loads(_HERE.joinpath("providers.json").read_text("utf-8"))
    return {
        name: ProviderTemplate(
            name=name,
            driver=row["driver"],
            base_url=row.get("base_url"),
            key_env=tuple(row.get("key_env", ())),
            key=row.get("key", "keychain"),
            docs_url=row.get("docs_url", ""),
            default_model=row.get("default_model"),
            description=row.get("description", ""),
        )
        for name, row in raw.items()
    }


def template(name: str) -> ProviderTemplate | None:
    return catalog().get(name)
