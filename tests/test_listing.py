"""listing.list_models over a real loopback server: the recorded vendor listings, pagination
(Anthropic has_more/after_id, Gemini nextPageToken), the page cap, and failures."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from callm import listing
from callm.config.schema import ProviderConfig
from callm.errors import (
    AuthError,
    BadResponseError,
    CallTimeoutError,
    MissingKeyError,
    NetworkError,
    ServerError,
)
from conformance_data import Interaction, interactions
from loopback import Loopback, Reply, closed_port, json_reply

FAKE_KEY = "sk-test-FAKE0000000000000000"

# recorded folder -> (driver, path prefix of the base URL, listing path the driver asks for)
_WIRES = {
    "openai": ("openai", "/v1", "/v1/models"),
    "openrouter": ("openai-compatible", "/api/v1", "/api/v1/models"),
    "cerebras": ("openai-compatible", "/v1", "/v1/models"),
    "anthropic": ("anthropic", "/v1", "/v1/models"),
    "gemini": ("gemini", "/v1beta", "/v1beta/models"),
    "ollama": ("ollama", "", "/api/tags"),
}


@pytest.fixture
def srv() -> Iterator[Loopback]:
    with Loopback() as s:
        yield s


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_TEST_KEY", FAKE_KEY)


def _pc(driver: str, base_url: str, **kw: object) -> ProviderConfig:
    key = {"key": "none"} if driver == "ollama" else {"key_env": "CALLM_TEST_KEY"}
    return ProviderConfig(driver=driver, base_url=base_url, **{**key, **kw})  # type: ignore[arg-type]


def _listing_cases() -> list[Interaction]:
    cases = list(interactions("models")) + list(interactions("ollama-tags"))
    return [c for c in cases if c.provider in _WIRES]


@pytest.mark.parametrize("it", _listing_cases(), ids=lambda it: it.id)
def test_recorded_listing(srv: Loopback, it: Interaction) -> None:
    driver, prefix, path = _WIRES[it.provider]
    headers = {k: v for k, v in it.response["headers"].items() if k.lower() == "content-type"}
    srv.route(path, Reply(it.response["status"], it.body_bytes, headers))
    token = json.loads(it.body_bytes).get("nextPageToken") if driver == "gemini" else None
    if token:  # the recording has only the first page: end the walk with one more model
        srv.route(
            path, json_reply({"models": [{"name": "models/zz-last"}]}), query={"pageToken": token}
        )
    models = listing.list_models(it.provider, _pc(driver, srv.url + prefix), timeout=10)
    ids = [m.id for m in models]
    expected_first = it.expect["first"].removeprefix("models/")
    assert ids[0] == expected_first
    assert len(ids) == it.expect["models"] + (1 if token else 0)
    if token:
        assert srv.requests[1].query["pageToken"] == token
        assert ids[-1] == "zz-last"
    assert all(m.provider == it.provider for m in models)
    first = srv.requests[0]
    assert first.method == "GET"
    if driver == "anthropic":
        assert first.header("x-api-key") == FAKE_KEY
    elif driver == "gemini":
        assert first.header("x-goog-api-key") == FAKE_KEY
    elif driver != "ollama":
        assert first.header("authorization") == f"Bearer {FAKE_KEY}"


def _anthropic_page(ids: list[str], more: bool) -> Reply:
    return json_reply(
        {
            "data": [{"type": "model", "id": i, "display_name": i.upper()} for i in ids],
            "has_more": more,
            "first_id": ids[0],
            "last_id": ids[-1],
        }
    )


def test_anthropic_pages_follow_after_id(srv: Loopback) -> None:
    srv.route("/v1/models", _anthropic_page(["a1", "a2"], True))
    srv.route("/v1/models", _anthropic_page(["a3", "a4"], True), query={"after_id": "a2"})
    srv.route("/v1/models", _anthropic_page(["a5"], False), query={"after_id": "a4"})
    models = listing.list_models("anthropic", _pc("anthropic", srv.url + "/v1"))
    assert [m.id for m in models] == ["a1", "a2", "a3", "a4", "a5"]
    assert [r.query.get("after_id") for r in srv.requests] == [None, "a2", "a4"]
    assert models[0].display_name == "A1"


def _gemini_page(names: list[str], token: str | None) -> Reply:
    body: dict[str, object] = {
        "models": [
            {"name": f"models/{n}", "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536}
            for n in names
        ]
    }
    if token:
        body["nextPageToken"] = token
    return json_reply(body)


def test_gemini_pages_follow_next_page_token(srv: Loopback) -> None:
    srv.route("/v1beta/models", _gemini_page(["g1", "g2"], "t1"))
    srv.route("/v1beta/models", _gemini_page(["g3"], "t2"), query={"pageToken": "t1"})
    srv.route("/v1beta/models", _gemini_page(["g4"], None), query={"pageToken": "t2"})
    models = listing.list_models("gemini", _pc("gemini", srv.url + "/v1beta"))
    assert [m.id for m in models] == ["g1", "g2", "g3", "g4"]
    assert models[0].context_window == 1_048_576 and models[0].max_output == 65_536
    assert [r.query.get("pageToken") for r in srv.requests] == [None, "t1", "t2"]


def test_page_cap_stops_an_endless_listing(srv: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "MAX_PAGES", 4)
    for i in range(10):
        query = {"pageToken": f"t{i}"} if i else None
        srv.route("/v1beta/models", _gemini_page([f"g{i}"], f"t{i + 1}"), query=query)
    models = listing.list_models("gemini", _pc("gemini", srv.url + "/v1beta"))
    assert len(srv.requests) == 4
    assert [m.id for m in models] == ["g0", "g1", "g2", "g3"]


def test_repeated_token_ends_the_walk(srv: Loopback) -> None:
    srv.route("/v1beta/models", _gemini_page(["g1"], "same"))
    models = listing.list_models("gemini", _pc("gemini", srv.url + "/v1beta"))
    assert [m.id for m in models] == ["g1"]  # the repeated page is deduplicated
    assert len(srv.requests) == 2


def test_rejected_key_is_auth_error(srv: Loopback) -> None:
    body = {"error": {"type": "invalid_request_error", "message": f"Incorrect API key {FAKE_KEY}"}}
    srv.route("/v1/models", json_reply(body, status=401))
    with pytest.raises(AuthError) as info:
        listing.list_models("lab", _pc("openai", srv.url + "/v1"))
    assert info.value.provider == "lab"


def test_server_error_and_unreadable_body(srv: Loopback) -> None:
    srv.route("/v1/models", json_reply({"error": {"message": "boom"}}, status=500))
    with pytest.raises(ServerError):
        listing.list_models("lab", _pc("openai", srv.url + "/v1"))
    srv.route(
        "/v2/models", Reply(200, "<html><title>Login</title></html>", {"content-type": "text/html"})
    )
    with pytest.raises(BadResponseError):
        listing.list_models("lab", _pc("openai", srv.url + "/v2"))


def test_unreachable_and_slow(srv: Loopback) -> None:
    with pytest.raises(NetworkError) as info:
        listing.list_models("gone", _pc("openai", f"http://127.0.0.1:{closed_port()}/v1"))
    assert "cannot reach" in info.value.message
    srv.route("/v1/models", json_reply({"data": []}, delay=2.0))
    with pytest.raises(CallTimeoutError):
        listing.list_models("slow", _pc("openai", srv.url + "/v1"), timeout=0.3)


def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLM_TEST_KEY")
    with pytest.raises(MissingKeyError) as info:
        listing.list_models("lab", _pc("openai", "http://127.0.0.1:9/v1"))
    assert "CALLM_TEST_KEY" in info.value.message


def test_sim_lists_without_network() -> None:
    models = listing.list_models("sim", ProviderConfig(driver="sim", key="none"))
    assert {m.id for m in models} >= {"sim-small"}
