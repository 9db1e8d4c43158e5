"""The catalog data files are validated by pydantic models: the shipped files fit, and a
broken row is refused in one line naming the file and the row."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import callm.catalog
from callm.catalog.schema import ModelCatalog, ProviderCatalog, load
from callm.errors import CallmError

HERE = Path(callm.catalog.__file__).parent
MODELS = json.loads((HERE / "models.json").read_text("utf-8"))
PROVIDERS = json.loads((HERE / "providers.json").read_text("utf-8"))


def test_the_shipped_files_fit_their_schema() -> None:
    cat = load(ModelCatalog.model_validate_json, json.dumps(MODELS), "models.json")
    assert len(cat.models) == len(MODELS["models"]) > 10
    rows = load(ProviderCatalog.validate_json, json.dumps(PROVIDERS), "providers.json")
    assert set(rows) == set(PROVIDERS)


def _models_with(change: Any) -> str:
    data = copy.deepcopy(MODELS)
    change(data["models"])
    return json.dumps(data, allow_nan=True)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda m: m[2]["price"].update(input=-1), "models.2.price.input: must be at least 0"),
        (lambda m: m[0]["price"].update(output=float("inf")), "models.0.price.output: must be a"),
        (lambda m: m[1].update(capabilities=["telepathy"]), "models.1.capabilities.0: must be one"),
        (lambda m: m[3].update(contxt_window=5), "models.3.contxt_window: unknown key"),
        (lambda m: m[4].pop("id"), "models.4.id: missing"),
        (lambda m: m[0].update(context_window="big"), "models.0.context_window: must be a whole"),
        (lambda m: m[0].update(source="http://example.test"), "models.0.source:"),
        (lambda m: m[0].update(price_checked="yesterday"), "models.0.price_checked:"),
        (lambda m: m.append(copy.deepcopy(m[0])), "is named by two rows"),
    ],
    ids=["negative", "inf", "capability", "unknown-key", "missing", "type", "http", "day", "dup"],
)
def test_a_broken_model_row_is_refused_by_path(change: Any, said: str) -> None:
    with pytest.raises(CallmError) as info:
        load(ModelCatalog.model_validate_json, _models_with(change), "models.json")
    assert info.value.message.startswith("built-in catalog models.json is broken: ")
    assert said in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ({"driver": "opneai"}, "providers.json is broken: x.driver: unknown driver 'opneai'"),
        ({"driver": "openai", "key": "file"}, "x.key: must be one of"),
        ({"driver": "openai", "key_env": "OPENAI_API_KEY"}, "x.key_env: must be a list"),
        ({"driver": "openai", "url": "https://x"}, "x.url: unknown key"),
    ],
)
def test_a_broken_provider_row_is_refused_by_path(row: dict[str, Any], said: str) -> None:
    text = json.dumps({**PROVIDERS, "x": row})
    with pytest.raises(CallmError, match="broken") as info:
        load(ProviderCatalog.validate_json, text, "providers.json")
    assert said in info.value.message
