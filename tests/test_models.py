"""The built-in model catalog, `models sync` over loopback servers (one failing), and the
offline commands: `models list/show/default`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conformance_data import interactions
from isolation import CALLM
from loopback import Loopback, Reply, closed_port, json_reply

FAKE_KEY = "sk-test-FAKE0000000000000000"


@pytest.fixture
def srv() -> Iterator[Loopback]:
    with Loopback() as s:
        yield s


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_TEST_KEY", FAKE_KEY)


def provider(name: str, base_url: str, driver: str = "openai-compatible") -> str:
    return (
        f'[providers.{name}]\ndriver = "{driver}"\nbase_url = "{base_url}"\n'
        'key_env = "CALLM_TEST_KEY"\n'
    )


def openrouter_body() -> bytes:
    it = next(i for i in interactions("models") if i.provider == "openrouter")
    return it.body_bytes


def anthropic_models(*ids: str) -> Reply:
    return json_reply(
        {
            "data": [{"type": "model", "id": i, "display_name": i} for i in ids],
            "has_more": False,
            "first_id": ids[0],
            "last_id": ids[-1],
        }
    )


# ---- catalog ------------------------------------------------------------------------------


def test_catalog_rows_are_complete_and_dated() -> None:
    from callm.catalog.models import CAPABILITIES, builtin_models

    rows = builtin_models()
    vendors = {p for p, _ in rows}
    assert vendors >= {"openai", "anthropic", "gemini", "mistral", "deepseek", "groq", "xai"}
    assert vendors >= {"bedrock", "perplexity"}
    for (provider, mid), m in rows.items():
        assert m.provider == provider and m.id == mid
        assert m.extra["source"].startswith("https://"), mid
        # rows are dated by the day their source was read (2026-11-23, later vendors after)
        assert re.fullmatch(r"2026-11-(2[3-9]|30)", m.extra["price_checked"]), mid
        assert m.price is not None and m.price.source == f"catalog {m.extra['price_checked']}"
        for v in (m.price.input, m.price.output, m.price.cached_input, m.price.cache_write):
            assert v is None or v >= 0
        assert m.price.input is not None and m.price.output is not None
        assert set(m.capabilities) <= set(CAPABILITIES)
        assert m.context_window and m.context_window > 0


def test_lookup_tolerates_dated_ids_aliases_and_prefixes() -> None:
    from callm.catalog.models import catalog_price, lookup

    assert lookup("openai", "gpt-6.2-sol-2026-11-17").id == "gpt-6.2-sol"
    assert lookup("anthropic", "claude-haiku-5-5-20261007").id == "claude-haiku-5-5"
    assert lookup("gemini", "models/gemini-3.8-flash").id == "gemini-3.8-flash"
    assert lookup("mistral", "mistral-medium-2604").id == "mistral-medium-latest"
    assert lookup("deepseek", "deepseek-v4-flash").id == "deepseek-flash"
    assert lookup("openrouter", "anthropic/claude-opus-5-5").id == "claude-opus-5-5"
    # a configured name that is no vendor finds its vendor by base URL or driver
    assert lookup("work", "gpt-6-luna", base_url="https://api.openai.com/v1").id == "gpt-6-luna"
    assert lookup("work", "gpt-6-luna", driver="openai").id == "gpt-6-luna"
    assert lookup("lab", "gpt-6-luna", driver="openai", base_url="http://127.0.0.1:8000") is None
    # no prefix matching: a different model is not priced as its namesake
    assert lookup("openai", "gpt-6-luna-search-preview") is None
    assert lookup("nobody", "x") is None
    # Bedrock: a geographic profile is priced as its model; global profiles have their own row
    sonnet = "anthropic.claude-sonnet-4-6"
    assert lookup("bedrock", f"us.{sonnet}").id == sonnet
    assert lookup("aws", f"eu.{sonnet}", driver="bedrock").id == sonnet
    assert lookup("bedrock", f"global.{sonnet}").id == f"global.{sonnet}"
    assert lookup("bedrock", f"global.{sonnet}").price.input < lookup("bedrock", sonnet).price.input
    price = catalog_price("openai", "gpt-6-luna")
    assert price is not None and price.source.startswith("catalog ")
    assert catalog_price("openai", "no-such-model") is None


# ---- sync ---------------------------------------------------------------------------------


def sync_config(srv: Loopback) -> str:
    srv.route("/or/models", Reply(200, openrouter_body(), {"content-type": "application/json"}))
    srv.route("/ant/v1/models", anthropic_models("claude-sonnet-5-5", "claude-new-model"))
    srv.route("/bad/models", json_reply({"error": {"message": "invalid key"}}, status=401))
    return (
        provider("openrouter", srv.url + "/or")
        + provider("anthropic", srv.url + "/ant/v1", driver="anthropic")
        + provider("broken", srv.url + "/bad")
        + provider("gone", f"http://127.0.0.1:{closed_port()}/v1")
    )


def test_sync_survives_failures_and_merges_with_catalog(cli, isolated_env, srv) -> None:
    from callm.ledger.models import cached, get, sync_times, synced_price

    isolated_env.write_config(sync_config(srv))
    res = cli("--json", "models", "sync", "--timeout", "5")
    assert res.code == 1, res.stderr  # two providers failed
    rows = {r["provider"]: r for r in json.loads(res.stdout)}
    assert rows["broken"]["ok"] is False and rows["broken"]["stage"] == "auth"
    assert rows["gone"]["ok"] is False and rows["gone"]["stage"] == "connect"
    assert rows["openrouter"]["ok"] and rows["openrouter"]["models"] == 4
    assert rows["anthropic"]["ok"] and rows["anthropic"]["first_sync"] is True
    assert sorted(rows["anthropic"]["added"]) == ["claude-new-model", "claude-sonnet-5-5"]
    assert set(sync_times()) == {"openrouter", "anthropic"}

    # OpenRouter reports its own prices: they win, marked as a vendor sync
    first = get("openrouter", "anthropic/claude-sonnet-4")
    assert first is not None and first.price is not None
    assert first.price.input == pytest.approx(3.0) and first.price.output == pytest.approx(15.0)
    assert first.price.source.startswith("vendor sync 20")
    assert first.context_window == 1_000_000 and first.max_output == 64_000
    assert synced_price("openrouter", "anthropic/claude-sonnet-4") == first.price

    # Anthropic lists no prices: the catalog fills them in (and is not a "synced" price)
    sonnet = get("anthropic", "claude-sonnet-5-5")
    assert sonnet.price.input == 2.0 and sonnet.price.source.startswith("catalog")
    assert sonnet.context_window == 1_000_000 and "vision" in sonnet.capabilities
    assert synced_price("anthropic", "claude-sonnet-5-5") is None
    unknown = get("anthropic", "claude-new-model")
    assert unknown.price is None  # unknown, never 0
    assert len(cached("anthropic")) == 2


def test_second_sync_reports_added_and_removed(cli, isolated_env, srv) -> None:
    srv.route("/ant/v1/models", anthropic_models("a-1", "a-2"), anthropic_models("a-2", "a-3"))
    isolated_env.write_config(provider("anthropic", srv.url + "/ant/v1", driver="anthropic"))
    assert cli("--json", "models", "sync").code == 0
    res = cli("models", "sync", "anthropic")
    assert res.code == 0, res.stderr
    assert "anthropic: 2 models, 1 added, 1 removed" in res.stdout
    assert "  + a-3" in res.stdout and "  - a-1" in res.stdout


def test_syncs_run_concurrently(cli, isolated_env, srv) -> None:
    srv.route("/models", json_reply({"data": [{"id": "m"}]}, delay=0.5))
    isolated_env.write_config("".join(provider(f"p{i}", srv.url) for i in range(6)))
    start = time.monotonic()
    res = cli("--json", "models", "sync")
    assert res.code == 0, res.stderr
    assert time.monotonic() - start < 2.5  # sequential would take 3 s


# ---- list / show / default, offline ---------------------------------------------------------


def test_list_works_offline_after_sync(cli, isolated_env, srv) -> None:
    isolated_env.write_config(sync_config(srv))
    cli("--json", "models", "sync")
    srv.stop()  # no network from here on
    res = cli("--json", "models", "list", "--provider", "openrouter")
    assert res.code == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == 4 and all(r["source"].startswith("sync ") for r in rows)

    res = cli("--json", "models", "list", "--provider", "anthropic", "--sort", "price")
    rows = json.loads(res.stdout)
    assert [r["id"] for r in rows] == ["claude-sonnet-5-5", "claude-new-model"]  # unknown last
    assert rows[1]["price"] is None

    # a provider never synced shows its catalog rows
    res = cli("--json", "models", "list", "--provider", "gemini", "--capability", "vision")
    rows = json.loads(res.stdout)
    assert rows and all(r["source"] == "catalog" and "vision" in r["capabilities"] for r in rows)

    everything = json.loads(cli("--json", "models", "list", "--sort", "context").stdout)
    windows = [r["context_window"] for r in everything if r["context_window"] is not None]
    assert windows == sorted(windows, reverse=True)
    assert {"openrouter", "anthropic", "openai", "sim"} <= {r["provider"] for r in everything}

    plain = cli("models", "list", "--provider", "anthropic")
    assert plain.code == 0 and "unknown" in plain.stdout and "\x1b[" not in plain.stdout
    assert cli("models", "list", "--capability", "telepathy").code == 2
    assert cli("models", "list", "--provider", "nobody").code == 2
    assert cli("models", "list", "--sort", "vibes").code == 2


def test_list_on_a_fresh_machine_creates_no_db(cli, isolated_env) -> None:
    res = cli("--json", "models", "list")
    assert res.code == 0
    assert json.loads(res.stdout)
    assert not (isolated_env.data_dir / "callm.db").exists()


def test_show(cli, isolated_env, srv) -> None:
    srv.route("/ant/v1/models", anthropic_models("claude-sonnet-5-5"))
    isolated_env.write_config(provider("anthropic", srv.url + "/ant/v1", driver="anthropic"))
    cli("models", "sync")
    res = cli("--json", "models", "show", "anthropic/claude-sonnet-5-5")
    d = json.loads(res.stdout)
    assert res.code == 0 and d["source"].startswith("sync ") and d["price"]["input"] == 2.0
    res = cli("--json", "models", "show", "openai/gpt-6.2-sol-2026-11-17")
    d = json.loads(res.stdout)
    assert d["id"] == "gpt-6.2-sol" and d["source"] == "catalog"
    text = cli("models", "show", "openai/gpt-6-luna").stdout
    assert "price source" in text and "developers.openai.com" in text and "notes" in text
    assert cli("models", "show", "sim/sim-small").code == 0
    assert cli("models", "show", "anthropic/nope").code == 2
    assert cli("models", "show", "nobody/x").code == 2
    assert cli("models", "show", "no-slash").code == 2


def test_default_get_set_and_validation(cli, isolated_env, srv) -> None:
    isolated_env.write_config(provider("lab", srv.url))
    assert json.loads(cli("--json", "models", "default").stdout) == {"default_model": None}
    res = cli("models", "default", "lab/some-model")
    assert res.code == 0, res.stderr
    assert "not in the model cache or catalog" in res.stderr  # a warning, not an error
    assert 'default_model = "lab/some-model"' in isolated_env.config_path.read_text()
    assert cli("models", "default").stdout.strip() == "lab/some-model"
    assert cli("models", "default", "sim/sim-small").code == 0
    res = cli("models", "default", "nope/model")
    assert res.code == 2 and "nope" in res.stderr
    assert 'default_model = "sim/sim-small"' in isolated_env.config_path.read_text()


def test_ledger_functions_without_a_db(isolated_env) -> None:
    from callm.ledger.models import cached, get, sync_times, synced_price

    assert cached() == [] and get("a", "b") is None and sync_times() == {}
    assert synced_price("a", "b") is None
    assert not (isolated_env.data_dir / "callm.db").exists()


def test_subprocess_sync_and_list(isolated_env, srv) -> None:
    srv.route("/or/models", Reply(200, openrouter_body(), {"content-type": "application/json"}))
    isolated_env.write_config(provider("openrouter", srv.url + "/or"))
    env = dict(os.environ)
    proc = subprocess.run(
        [CALLM, "models", "sync"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "openrouter: 4 models (first sync)" in proc.stdout
    proc = subprocess.run(
        [CALLM, "--json", "models", "list", "-p", "openrouter", "--sort", "price"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    rows = json.loads(proc.stdout)
    prices = [r["price"]["input"] for r in rows]
    assert prices == sorted(prices)
