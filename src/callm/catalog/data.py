"""The catalog's data files (they ship beside this module), as their pydantic models in
callm.catalog.schema validate them: from callm.validated_cache when the file is unchanged
since it was last validated, so that a call's price lookup does not import pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


def validated(file: str) -> Any:
    """Plain values of `file` (models.json, providers.json), every field present."""
    from callm import validated_cache as cache

    text = _HERE.joinpath(file).read_text("utf-8")
    name = f"catalog-{file.removesuffix('.json')}"
    plain = cache.lookup(name, text)
    if plain is None:
        from callm.catalog.schema import plain_of

        plain = plain_of(file, text)
        cache.remember(name, text, plain)
    return plain
