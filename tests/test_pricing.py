"""Prices (overrides > synced > catalog > unknown), cost arithmetic, estimates and --max-cost."""

from __future__ import annotations

import sys

import pytest

from callm import pricing
from callm.config.schema import Config
from callm.errors import EXIT_BUDGET, BudgetError
from callm.pricing import (
    Estimate,
    check_budget,
    cost,
    estimate,
    estimate_prompt_tokens,
    estimate_text_tokens,
    format_usd,
    price_for,
)
from callm.types import ModelInfo, Price, Usage

CATALOG = {
    ("openai", "gpt-4o"): Price(2.5, 10.0, 1.25, None, "catalog 2026-11-01"),
    ("anthropic", "claude"): Price(3.0, 15.0, 0.3, 3.75, "catalog 2026-11-01"),
    ("lab", "qwen"): Price(1.0, 2.0, 0.5, None, "catalog 2026-11-01"),
}
SYNCED = {("openrouter", "x/y"): Price(0.5, 1.5, None, None, "vendor sync 2026-11-20")}
MAX_OUT = {("openai", "gpt-4o"): 16384}


@pytest.fixture(autouse=True)
def sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Known catalog and sync prices, whatever the real catalog holds today."""
    import callm.catalog.models as cat
    import callm.ledger.models as synced

    monkeypatch.setattr(cat, "catalog_price", lambda p, m, **kw: CATALOG.get((p, m)))

    def lookup(p: str, m: str, **kw: object) -> ModelInfo | None:
        return ModelInfo(p, m, max_output=MAX_OUT[(p, m)]) if (p, m) in MAX_OUT else None

    monkeypatch.setattr(cat, "lookup", lookup)
    monkeypatch.setattr(synced, "synced_price", lambda p, m: SYNCED.get((p, m)))


def cfg(pricing_table: dict) -> Config:
    return Config.from_dict({"pricing": pricing_table})


# ---- cost -----------------------------------------------------------------------------------


def test_cost_with_cached_tokens_by_hand() -> None:
    # 1,000 prompt tokens of which 200 read from cache and 100 written to it; 500 out.
    u = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200, cache_write_tokens=100)
    p = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    # 700 x 3 + 200 x 0.3 + 100 x 3.75 + 500 x 15 = 2100 + 60 + 375 + 7500 = 10035 per million
    assert cost(u, p) == pytest.approx(0.010035)


def test_cached_rates_fall_back_to_the_input_rate() -> None:
    u = Usage(input_tokens=1000, output_tokens=0, cache_read_tokens=400, cache_write_tokens=100)
    assert cost(u, Price(input=2.0, output=8.0)) == pytest.approx(1000 * 2.0 / 1e6)


def test_plain_cost() -> None:
    assert cost(Usage(1_000_000, 1_000_000), Price(0.15, 0.6)) == pytest.approx(0.75)
    assert cost(Usage(0, 0), Price(0.15, 0.6)) == 0.0


def test_a_cost_too_large_for_a_float_is_unknown_never_inf() -> None:
    huge = Price(input=1e308, output=1e308)
    assert cost(Usage(input_tokens=1000, output_tokens=10), huge) is None
    est = estimate(cfg({"lab": {"input": 1e308, "output": 1e308}}), "lab", "m", "hi", 10)
    assert est.min_cost is None and est.max_cost is None
    with pytest.raises(BudgetError):
        check_budget(est, 100.0)


def test_unknown_price_is_none_never_zero() -> None:
    assert cost(Usage(10, 10), Price()) is None
    assert cost(Usage(0, 0), Price()) is None  # nothing known at all: unknown, even for 0 tokens
    assert cost(Usage(10, 10), Price(input=1.0)) is None  # output rate needed, unknown
    assert cost(Usage(10, 0), Price(input=1.0)) == pytest.approx(10 / 1e6)  # not needed
    assert cost(Usage(10, 10), Price(output=1.0)) is None


def test_free_is_zero() -> None:
    assert cost(Usage(500, 500, cache_read_tokens=100), Price(0.0, 0.0)) == 0.0


# ---- which price ----------------------------------------------------------------------------


def test_unknown_model_has_an_unknown_price() -> None:
    p = price_for(Config(), "nowhere", "nothing")
    assert p == Price() and p.source == "unknown"


def test_catalog_then_synced() -> None:
    assert price_for(Config(), "openai", "gpt-4o").source == "catalog 2026-11-01"
    p = price_for(None, "openrouter", "x/y")
    assert (p.input, p.output, p.source) == (0.5, 1.5, "vendor sync 2026-11-20")


def test_synced_beats_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SYNCED, ("openai", "gpt-4o"), Price(2.0, 9.0, 1.0, None, "vendor sync X"))
    p = price_for(Config(), "openai", "gpt-4o")
    assert (p.input, p.output, p.cached_input, p.source) == (2.0, 9.0, 1.0, "vendor sync X")


def test_wildcard_overrides_most_specific_wins() -> None:
    c = cfg(
        {
            "*": {"input": 9.0, "output": 9.0},
            "lab/*": {"input": 0.0, "output": 0.0},
            "openai/gpt-4o*": {"input": 2.0, "output": 8.0},
            "*/gpt-4o": {"input": 7.0, "output": 7.0},
            "openai/gpt-4o-mini": {"input": 0.1, "output": 0.4},
        }
    )
    lab = price_for(c, "lab", "qwen")
    assert (lab.input, lab.output, lab.source) == (0.0, 0.0, "override lab/*")
    assert price_for(c, "openai", "gpt-4o-mini").source == "override openai/gpt-4o-mini"
    assert price_for(c, "openai", "gpt-4o-2024-08-06").source == "override openai/gpt-4o*"
    # "openai/gpt-4o*" (13 literal characters) beats "*/gpt-4o" (7) for openai/gpt-4o
    assert price_for(c, "openai", "gpt-4o").source == "override openai/gpt-4o*"
    assert price_for(c, "groq", "gpt-4o").source == "override */gpt-4o"
    assert price_for(c, "mistral", "large").source == "override *"
    assert cost(Usage(1000, 1000), lab) == 0.0


def test_bare_override_key_matches_provider_or_model() -> None:
    c = cfg({"lab": {"input": 0.0, "output": 0.0}, "gpt-4o": {"input": 4.0, "output": 4.0}})
    assert price_for(c, "lab", "anything").source == "override lab"
    assert price_for(c, "azure", "gpt-4o").source == "override gpt-4o"


def test_partial_override_fills_in_from_lower_layers() -> None:
    c = cfg({"anthropic/*": {"output": 12.0}})
    p = price_for(c, "anthropic", "claude")
    assert (p.input, p.output, p.cached_input, p.cache_write) == (3.0, 12.0, 0.3, 3.75)
    assert p.source == "override anthropic/* + catalog 2026-11-01"
    # hand-computed with the mixed price: 700 x 3 + 200 x 0.3 + 100 x 3.75 + 500 x 12
    u = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200, cache_write_tokens=100)
    assert cost(u, p) == pytest.approx((2100 + 60 + 375 + 6000) / 1e6)


def test_overrides_layer_by_specificity() -> None:
    c = cfg({"lab/*": {"input": 0.5, "output": 0.5}, "lab/big": {"output": 4.0}})
    p = price_for(c, "lab", "big")
    assert (p.input, p.output) == (0.5, 4.0)
    assert p.source == "override lab/big + override lab/*"


def test_an_override_input_price_is_not_mixed_with_catalog_cached_rates() -> None:
    # lab/qwen: catalog says cached_input 0.5; the override makes the model free.
    p = price_for(cfg({"lab/*": {"input": 0.0, "output": 0.0}}), "lab", "qwen")
    assert p.cached_input is None and p.source == "override lab/*"
    assert cost(Usage(1000, 10, cache_read_tokens=900), p) == 0.0


def test_missing_price_sources_mean_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "callm.catalog.models", None)  # import fails
    monkeypatch.setitem(sys.modules, "callm.ledger.models", None)
    assert price_for(Config(), "openai", "gpt-4o") == Price()
    est = estimate(Config(), "openai", "gpt-4o", "hello", None)
    assert est.max_output_tokens is None and est.max_cost is None


def test_a_failing_price_source_counts_as_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    import callm.ledger.models as synced

    def broken(p: str, m: str) -> Price:
        raise OSError("disk on fire")

    monkeypatch.setattr(synced, "synced_price", broken)
    assert price_for(Config(), "openai", "gpt-4o").source == "catalog 2026-11-01"


# ---- estimates and budgets ------------------------------------------------------------------


def test_prompt_token_estimate_is_character_based() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abcd" * 10) == 10
    assert estimate_text_tokens("abcde") == 2  # ceil(5 / 4)
    assert estimate_text_tokens("日本語") == 3  # one per non-ASCII character: errs high
    assert estimate_prompt_tokens("abcd" * 10) == 10 + pricing.TOKENS_PER_MESSAGE
    assert estimate_prompt_tokens("abcd", messages=3) == 1 + 3 * pricing.TOKENS_PER_MESSAGE
    assert "chars" in pricing.ESTIMATE_METHOD and "offline" in pricing.ESTIMATE_METHOD


def test_estimate_with_max_tokens() -> None:
    prompt = "x" * 396  # 99 tokens + 4 overhead = 103
    est = estimate(Config(), "openai", "gpt-4o", prompt, 1000)
    assert est.input_tokens == 103 and est.max_output_tokens == 1000
    assert est.min_cost == pytest.approx(103 * 2.5 / 1e6)
    assert est.max_cost == pytest.approx((103 * 2.5 + 1000 * 10.0) / 1e6)
    assert est.price.source == "catalog 2026-11-01" and est.method == pricing.ESTIMATE_METHOD


def test_estimate_uses_the_catalog_max_output() -> None:
    est = estimate(Config(), "openai", "gpt-4o", "hi", None)
    assert est.max_output_tokens == 16384
    assert est.max_cost == pytest.approx((est.input_tokens * 2.5 + 16384 * 10.0) / 1e6)


def test_estimate_unknown_max_output_or_price() -> None:
    est = estimate(Config(), "anthropic", "claude", "hi", None)  # no max_output known
    assert est.max_output_tokens is None and est.max_cost is None and est.min_cost is not None
    est = estimate(Config(), "nowhere", "x", "hi", 100)
    assert est.min_cost is None and est.max_cost is None


def test_free_output_bounds_the_worst_case_without_max_tokens() -> None:
    est = estimate(cfg({"lab/*": {"input": 0.0, "output": 0.0}}), "lab", "qwen", "hi", None)
    assert est.max_output_tokens is None and est.max_cost == 0.0


def test_budget_refuses_when_the_worst_case_is_over() -> None:
    est = estimate(Config(), "openai", "gpt-4o", "x" * 400, 1000)  # worst ~ $0.01026
    check_budget(est, 0.05)
    with pytest.raises(BudgetError) as e:
        check_budget(est, 0.01)
    err = e.value
    assert err.exit_code == EXIT_BUDGET == 5
    line = err.one_line()
    assert "refused by --max-cost (openai/gpt-4o)" in line
    assert "$0.01026" in line and "$0.01" in line and "catalog 2026-11-01" in line


def test_budget_refuses_an_unknown_worst_case() -> None:
    with pytest.raises(BudgetError, match="price of this model is unknown"):
        check_budget(estimate(Config(), "nowhere", "x", "hi", 10), 100.0)
    with pytest.raises(BudgetError, match="max output is unknown") as e:
        check_budget(estimate(Config(), "anthropic", "claude", "hi", None), 100.0)
    assert "--max-tokens" in (e.value.hint or "")


def test_budget_of_a_free_model() -> None:
    est = Estimate(10, None, 0.0, 0.0, "m", Price(0.0, 0.0, source="override lab/*"))
    check_budget(est, 0.0)  # 0 <= 0: allowed


def test_format_usd() -> None:
    assert format_usd(None) == "unknown"
    assert format_usd(0) == "$0"
    assert format_usd(0.0123) == "$0.0123"
    assert format_usd(12.5) == "$12.50"
    assert format_usd(1e-9) == "<$0.000001"
