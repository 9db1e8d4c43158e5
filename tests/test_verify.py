"""`providers verify` against loopback servers: good, rejected, unreachable, slow and keyless
providers checked at once; JSON, exit codes, a bounded total time, probes, recorded state."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from isolation import CALLM
from loopback import Loopback, Reply, closed_port, json_reply

FAKE_KEY = "sk-test-FAKE0000000000000000"
MODELS = {"object": "list", "data": [{"id": "gpt-6-luna", "object": "model"}, {"id": "m2"}]}
CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-6-luna",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "length"}
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
}


@pytest.fixture
def srv() -> Iterator[Loopback]:
    with Loopback() as s:
        yield s


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_TEST_KEY", FAKE_KEY)


def provider(name: str, base_url: str, driver: str = "openai-compatible", **kw: str) -> str:
    lines = [f"[providers.{name}]", f'driver = "{driver}"', f'base_url = "{base_url}"']
    lines.append(f'key_env = "{kw.get("key_env", "CALLM_TEST_KEY")}"')
    if "enabled" in kw:
        lines.append(f"enabled = {kw['enabled']}")
    return "\n".join(lines) + "\n"


def mixed_config(srv: Loopback) -> str:
    srv.route("/good/models", json_reply(MODELS))
    srv.route("/bad/models", json_reply({"error": {"message": f"bad key {FAKE_KEY}"}}, 401))
    srv.route("/slow/models", json_reply(MODELS, delay=4.0))
    srv.route("/html/models", Reply(200, "<html><title>Sign in</title></html>"))
    return "".join(
        [
            provider("good", srv.url + "/good"),
            provider("rejected", srv.url + "/bad"),
            provider("unreachable", f"http://127.0.0.1:{closed_port()}/v1"),
            provider("slow", srv.url + "/slow"),
            provider("nokey", srv.url + "/good", key_env="CALLM_UNSET_KEY"),
            provider("html", srv.url + "/html"),
            provider("off", srv.url + "/good", enabled="false"),
        ]
    )


def test_mixed_providers_json_exit_code_and_bounded_time(cli, isolated_env, srv) -> None:
    isolated_env.write_config(mixed_config(srv))
    start = time.monotonic()
    res = cli("--json", "providers", "verify", "--timeout", "1")
    elapsed = time.monotonic() - start
    assert res.code == 1, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"good", "rejected", "unreachable", "slow", "nokey", "html"}  # not "off"
    for r in rows.values():
        assert set(r) == {"name", "ok", "stage", "error", "latency_ms", "models"}
    assert rows["good"]["ok"] is True and rows["good"]["models"] == 2
    assert rows["good"]["stage"] is None and rows["good"]["error"] is None
    assert isinstance(rows["good"]["latency_ms"], int)
    expected = {
        "rejected": "auth",
        "unreachable": "connect",
        "slow": "timeout",
        "nokey": "key",
        "html": "response",
    }
    for name, stage in expected.items():
        assert rows[name]["ok"] is False and rows[name]["stage"] == stage, rows[name]
    assert "callm providers set-key rejected" in rows["rejected"]["error"]
    assert "cannot reach" in rows["unreachable"]["error"]
    assert "CALLM_UNSET_KEY" in rows["nokey"]["error"]
    assert FAKE_KEY not in res.stdout + res.stderr  # the 401 body echoed the key
    # the slow one sleeps 4 s; its 1 s timeout must bound the whole run (generous margin)
    assert elapsed < 3.5


def test_all_good_exits_zero_and_records_state(cli, isolated_env, srv) -> None:
    from callm.provider_state import read_states

    srv.route("/a/models", json_reply(MODELS))
    srv.route("/b/models", json_reply({"data": []}))
    isolated_env.write_config(provider("a", srv.url + "/a") + provider("b", srv.url + "/b"))
    assert read_states() == {}
    assert not (isolated_env.data_dir / "callm.db").exists()  # reading created nothing
    res = cli("--json", "providers", "verify")
    assert res.code == 0, res.stderr
    assert [r["name"] for r in json.loads(res.stdout)] == ["a", "b"]
    states = read_states()
    assert states["a"].last_verify_ok is True and states["a"].last_verified
    listed = json.loads(cli("--json", "providers", "list").stdout)
    assert {r["name"]: r["last_verify_ok"] for r in listed} == {"a": True, "b": True}
    # a later failure is recorded over the success
    srv.route("/a/models", json_reply({"error": {"message": "no"}}, 401))
    srv.routes.reverse()  # the 401 route is now found first
    assert cli("--json", "providers", "verify", "a").code == 1
    assert read_states()["a"].last_verify_ok is False


def test_named_subset_and_unknown_name(cli, isolated_env, srv) -> None:
    srv.route("/a/models", json_reply(MODELS))
    isolated_env.write_config(provider("a", srv.url + "/a") + provider("b", srv.url + "/none"))
    res = cli("--json", "providers", "verify", "a")
    assert res.code == 0 and [r["name"] for r in json.loads(res.stdout)] == ["a"]
    res = cli("--json", "providers", "verify", "a", "nope")
    assert res.code == 2
    assert "nope" in res.stderr


def test_sim_is_instant_and_no_providers_is_empty(cli, isolated_env) -> None:
    res = cli("--json", "providers", "verify")
    assert res.code == 0 and json.loads(res.stdout) == []
    res = cli("--json", "providers", "verify", "sim")
    row = json.loads(res.stdout)[0]
    assert res.code == 0 and row["ok"] and row["models"] >= 1


def test_ten_slow_providers_run_concurrently(cli, isolated_env, srv) -> None:
    srv.route("/models", json_reply(MODELS, delay=0.5))
    isolated_env.write_config("".join(provider(f"p{i}", srv.url) for i in range(10)))
    start = time.monotonic()
    res = cli("--json", "providers", "verify")
    elapsed = time.monotonic() - start
    assert res.code == 0, res.stdout
    assert len(json.loads(res.stdout)) == 10
    assert elapsed < 3.0  # sequential would take 5 s


def test_probe_shows_estimate_then_checks_a_completion(cli, isolated_env, srv) -> None:
    srv.route("/v1/models", json_reply(MODELS))
    srv.route("/v1/chat/completions", json_reply(CHAT))
    isolated_env.write_config(provider("openai", srv.url + "/v1", driver="openai"))
    res = cli("--json", "providers", "verify", "--probe", "openai/gpt-6-luna")
    assert res.code == 0, res.stdout + res.stderr
    row = json.loads(res.stdout)[0]
    probe = row["probe"]
    assert probe["ok"] is True and probe["model"] == "gpt-6-luna"
    assert probe["estimated_cost_usd"] is not None and probe["estimated_cost_usd"] > 0
    assert probe["input_tokens"] == 11 and probe["output_tokens"] == 1
    assert "estimated cost $" in res.stderr
    sent = json.loads(srv.requests[-1].body)
    assert sent["model"] == "gpt-6-luna" and sent.get("stream") in (None, False)
    assert 1 in (sent.get("max_tokens"), sent.get("max_completion_tokens"))


def test_probe_failure_is_stage_probe(cli, isolated_env, srv) -> None:
    srv.route("/v1/models", json_reply(MODELS))
    srv.route("/v1/chat/completions", json_reply({"error": {"message": "no such model"}}, 404))
    isolated_env.write_config(provider("lab", srv.url + "/v1"))
    res = cli("--json", "providers", "verify", "--probe", "lab/unknown-model")
    assert res.code == 1
    row = json.loads(res.stdout)[0]
    assert row["stage"] == "probe" and row["probe"]["ok"] is False
    assert "unknown" in res.stderr  # an unpriced model's estimate says so, never $0
    res = cli("--json", "providers", "verify", "lab", "--probe", "other/x")
    assert res.code == 2  # issue 12: "other" is no provider; lab/other/x probes that model id
    assert res.stderr.startswith("error: --probe other/x: no provider 'other' is configured")


def test_probe_for_a_provider_not_checked_is_a_usage_error(cli, isolated_env, srv) -> None:
    isolated_env.write_config(provider("a", srv.url) + provider("b", srv.url))
    res = cli("--json", "providers", "verify", "a", "--probe", "b/m")
    assert res.code == 2


def test_probe_on_sim_needs_no_config(cli) -> None:
    res = cli("--json", "providers", "verify", "--probe", "sim/sim-small")
    assert res.code == 0, res.stderr
    [row] = json.loads(res.stdout)
    assert row["name"] == "sim" and row["probe"]["ok"] is True
    assert row["probe"]["estimated_cost_usd"] == 0.0  # the simulator is free, and says so


def test_terminal_table(isolated_env, srv) -> None:
    from callm.cli.context import State
    from callm.cli.verify_view import run_verify
    from callm.render.output import Output

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    srv.route("/a/models", json_reply(MODELS))
    isolated_env.write_config(provider("a", srv.url + "/a") + provider("b", srv.url + "/b"))
    out, err = Tty(), Tty()
    st = State(out=Output(stdout=out, stderr=err, no_color=True))
    code = run_verify(st, [], 5.0, None)
    assert code == 1
    text = out.getvalue()
    assert "latency" in text and "models" in text and "response" in text
    assert "1 of 2 providers passed" in err.getvalue()


def test_subprocess_json_and_exit_code(isolated_env, srv) -> None:
    srv.route("/a/models", json_reply(MODELS))
    isolated_env.write_config(
        provider("a", srv.url + "/a") + provider("dead", f"http://127.0.0.1:{closed_port()}")
    )
    proc = subprocess.run(
        [CALLM, "providers", "verify", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert proc.returncode == 1, proc.stderr
    rows = json.loads(proc.stdout)  # piped stdout: JSON without --json
    assert [(r["name"], r["ok"]) for r in rows] == [("a", True), ("dead", False)]
    assert "\x1b[" not in proc.stdout


def test_read_states_imports_no_sqlite_without_a_db(isolated_env) -> None:
    code = (
        "import sys\nfrom callm.provider_state import read_states\n"
        "assert read_states() == {}\nassert 'sqlite3' not in sys.modules, 'sqlite3 imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (isolated_env.data_dir / "callm.db").exists()


def test_verify_one_used_by_add(srv) -> None:
    from callm.config.schema import ProviderConfig
    from callm.verify import verify_one

    srv.route("/v1/models", json_reply(MODELS))
    pc = ProviderConfig(driver="openai-compatible", base_url=srv.url + "/v1")
    r = verify_one("lab", pc, key_override="sk-test-FAKE1111111111111111", timeout=5)
    assert r.ok and r.models == 2 and r.latency_ms is not None
    assert srv.requests[-1].header("authorization") == "Bearer sk-test-FAKE1111111111111111"
