"""Routes: strategies, the rules that filter candidates, `callm routes explain`, and
`callm chat -m ROUTE` (sim providers: offline, with catalog-known context windows)."""

from __future__ import annotations

import json
import time

import pytest

from callm.config.schema import Config
from callm.config.store import load
from callm.errors import ConfigError
from callm.ledger.usage import UsageRow, record
from callm.routing import Needs, choose
from isolation import Cli, IsolatedEnv

PROVIDERS = """
[providers.a]
driver = "sim"
[providers.b]
driver = "sim"
[pricing."a/*"]
input = 5.0
output = 10.0
[pricing."b/*"]
input = 1.0
output = 2.0
"""


def _cfg(env: IsolatedEnv, routes: str) -> Config:
    return load(env.write_config(PROVIDERS + routes))


def test_priority_keeps_the_order_and_the_rest_are_fallbacks(isolated_env: IsolatedEnv) -> None:
    cfg = _cfg(isolated_env, '[routes.r]\nmodels = ["a/sim-small", "b/sim-large"]\n')
    c = choose(cfg, "r", Needs(prompt_tokens=10))
    assert [t.label for t in c.targets] == ["a/sim-small", "b/sim-large"]
    assert "priority" in c.why[-1]


def test_cheapest_uses_override_prices_for_the_estimated_size(isolated_env: IsolatedEnv) -> None:
    cfg = _cfg(
        isolated_env,
        '[routes.r]\nmodels = ["a/sim-small", "b/sim-small"]\nstrategy = "cheapest"\n',
    )
    c = choose(cfg, "r", Needs(prompt_tokens=1000, output_tokens=500))
    assert [t.label for t in c.targets] == ["b/sim-small", "a/sim-small"]
    assert "$0.002000" in c.why[-1]  # 1000 * 1/M + 500 * 2/M


def test_context_window_rule_skips_models_too_small(isolated_env: IsolatedEnv) -> None:
    cfg = _cfg(isolated_env, '[routes.r]\nmodels = ["b/sim-small", "a/sim-large"]\n')
    c = choose(cfg, "r", Needs(prompt_tokens=9000))
    assert [t.label for t in c.targets] == ["a/sim-large"]
    assert any("b/sim-small: skipped" in w and "8192" in w for w in c.why)


def test_vision_rule_and_no_model_left(isolated_env: IsolatedEnv, cli: Cli) -> None:
    isolated_env.write_config(PROVIDERS + '[routes.r]\nmodels = ["a/sim-small"]\n')
    r = cli("routes", "explain", "r", "look at this", "--image")
    assert r.code == 2
    assert "no model of route 'r' can serve this request" in r.stderr
    assert "no vision" in r.stderr and "Traceback" not in r.stderr


def test_fastest_reads_p50_latency_from_the_ledger(
    isolated_env: IsolatedEnv, ledger_backend: str
) -> None:
    cfg = _cfg(
        isolated_env,
        '[routes.r]\nmodels = ["a/sim-small", "b/sim-small"]\nstrategy = "fastest"\n',
    )
    now = time.time()
    for ms in (900, 1000, 1100):
        record(UsageRow(ts=now, provider="a", model="sim-small", latency_ms=ms))
    for ms in (200, 250, 5000):
        record(UsageRow(ts=now, provider="b", model="sim-small", latency_ms=ms))
    record(UsageRow(ts=now - 2 * 86400, provider="a", model="sim-small", latency_ms=1))  # too old
    c = choose(cfg, "r", Needs())
    assert [t.label for t in c.targets] == ["b/sim-small", "a/sim-small"]
    assert "b/sim-small 250 ms" in c.why[-1] and "a/sim-small 1000 ms" in c.why[-1]


def test_round_robin_and_weighted(isolated_env: IsolatedEnv) -> None:
    cfg = _cfg(
        isolated_env,
        '[routes.rr]\nmodels = ["a/sim-small", "b/sim-small"]\nstrategy = "round_robin"\n'
        '[routes.w]\nmodels = ["a/sim-small", "b/sim-small"]\nstrategy = "weighted"\n'
        "weights = [0, 1]\n",
    )
    firsts = {choose(cfg, "rr", Needs()).targets[0].label for _ in range(2)}
    assert firsts == {"a/sim-small", "b/sim-small"}
    assert {choose(cfg, "w", Needs()).targets[0].label for _ in range(10)} == {"b/sim-small"}


def test_weighted_wants_one_weight_per_model(isolated_env: IsolatedEnv) -> None:
    with pytest.raises(
        ConfigError, match=r"routes\.w\.weights: weighted wants one weight per model"
    ):
        _cfg(
            isolated_env,
            '[routes.w]\nmodels = ["a/sim-small", "b/sim-small"]\nstrategy = "weighted"\n'
            "weights = [1]\n",
        )


def test_explain_prints_the_choice_and_why(isolated_env: IsolatedEnv, cli: Cli) -> None:
    isolated_env.write_config(
        PROVIDERS + '[routes.r]\nmodels = ["a/sim-small", "b/sim-small"]\nstrategy = "cheapest"\n'
    )
    r = cli("routes", "explain", "r", "hello there")
    assert r.code == 0, r.stderr
    assert r.stdout.strip() == "b/sim-small"
    assert "cheapest" in r.stderr and "fallbacks: a/sim-small" in r.stderr
    j = cli("--json", "routes", "explain", "r", "hi")
    assert json.loads(j.stdout)["order"] == ["b/sim-small", "a/sim-small"]
    listed = cli("routes", "list")
    assert "cheapest" in listed.stdout


def test_chat_uses_the_route(isolated_env: IsolatedEnv, cli: Cli) -> None:
    isolated_env.write_config(
        PROVIDERS + '[routes.r]\nmodels = ["a/sim-small", "b/sim-small"]\nstrategy = "cheapest"\n'
    )
    r = cli("--json", "chat", "-m", "r", "hello")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["provider"] == "b"
