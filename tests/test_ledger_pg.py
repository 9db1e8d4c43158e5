"""The shared ledger on PostgreSQL: a real private cluster (tests/pgcluster.py), real `callm`
processes. Config and URL checks, `ledger status|migrate|copy`, every store on PostgreSQL,
many processes at once, and the server going away mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callm.ledger.usage import UsageRow, record
from isolation import IsolatedEnv

CALLM = str(Path(sys.executable).with_name("callm"))


def pg_rows(url: str, sql: str = "SELECT provider, model, outcome FROM usage ORDER BY id") -> list:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def chat(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [CALLM, "chat", "-m", "sim", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        _, err = p.communicate(timeout=180)
        out.append((p.returncode, err.decode()))
    return out


# ---- configuration ------------------------------------------------------------------------


def test_a_password_in_the_url_is_refused(cli, isolated_env: IsolatedEnv, monkeypatch) -> None:
    isolated_env.config_path.parent.mkdir(parents=True, exist_ok=True)
    isolated_env.config_path.write_text('[ledger]\nurl = "postgresql://me:hunter2@db/callm"\n')
    r = cli("ledger", "status")
    assert r.code == 2
    assert "ledger.url" in r.stderr and "password" in r.stderr
    assert "hunter2" not in r.output and "Traceback" not in r.output
    isolated_env.config_path.write_text("")
    monkeypatch.setenv("CALLM_LEDGER_URL", "postgresql://me:hunter2@db/callm")
    r = cli("ledger", "status")
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "hunter2" not in r.output


def test_a_url_that_is_not_postgresql_is_refused(cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.config_path.parent.mkdir(parents=True, exist_ok=True)
    isolated_env.config_path.write_text('[ledger]\nurl = "mysql://db/callm"\n')
    r = cli("ledger", "status")
    assert r.code == 2 and "postgresql://" in r.stderr


def test_config_url_puts_every_call_on_postgresql(cli, isolated_env, pg_url) -> None:
    isolated_env.config_path.parent.mkdir(parents=True, exist_ok=True)
    isolated_env.config_path.write_text(f'[ledger]\nurl = "{pg_url}"\n')
    r = cli.sub("chat", "-m", "sim", "hello")
    assert r.code == 0, r.stderr
    assert pg_rows(pg_url) == [("sim", "sim-small", "ok")]
    assert not (isolated_env.data_dir / "callm.db").exists()  # nothing went to SQLite
    r = cli("ledger", "status", "--json")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["backend"] == "postgresql" and data["schema_version"] == data["latest_version"]
    assert data["rows"]["usage"] == 1 and data["rows"]["usage_day"] == 1
    assert data["spill_backlog"] == 0


# ---- every store --------------------------------------------------------------------------


def test_model_cache_state_and_cooldowns_on_postgresql(ledger_backend) -> None:
    from callm import cooldown, provider_state
    from callm.errors import ServerError
    from callm.ledger import models
    from callm.retry import RetryPolicy
    from callm.types import ModelInfo, Price

    infos = [
        ModelInfo(provider="p", id="b", price=Price(1.0, 2.0, None, 0.5, source="vendor")),
        ModelInfo(provider="p", id="a", context_window=8192, capabilities=("vision",)),
    ]
    assert models.store_sync("p", infos, when=100.0) == (["a", "b"], [])
    assert models.store_sync("p", infos[:1], when=200.0) == ([], ["a"])
    (b,) = models.cached("p")
    assert (b.id, b.price.input, b.price.cache_write) == ("b", 1.0, 0.5)
    assert models.sync_times() == {"p": (200.0, 1)}
    assert models.synced_price("p", "b").output == 2.0

    provider_state.record_verifies({"p": True, "q": False}, when=1000.0)
    states = provider_state.read_states()
    assert (states["p"].last_verify_ok, states["q"].last_verify_ok) == (True, False)

    policy = RetryPolicy(cooldown_after=2, cooldown_seconds=60.0)
    err = ServerError("boom", provider="p", model="b")
    cooldown.record_result("p", err, policy)
    assert cooldown.cooling_until(["p"]) == {}
    cooldown.record_result("p", err, policy)
    assert 50 < cooldown.cooling_until(["p", "q"])["p"] - time.time() <= 60
    cooldown.record_result("p", None, policy)
    assert cooldown.cooling_until(["p"]) == {}


# ---- copy ---------------------------------------------------------------------------------


def test_copy_moves_a_sqlite_ledger_once(cli, isolated_env, pg_url, monkeypatch) -> None:
    from callm import provider_state
    from callm.ledger import models
    from callm.ledger.db import connect
    from callm.types import ModelInfo

    base = time.time() - 3 * 86400
    conn = connect()  # the SQLite file; its triggers keep its rollups
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO usage (ts, provider, model, input_tokens, cost_usd, latency_ms, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                base + i * 60.123,
                f"p{i % 3}",
                f"m{i % 4}",
                i,
                None if i % 7 == 0 else 0.25,
                10 + i % 500,
                "error" if i % 11 == 0 else "ok",
            )
            for i in range(2500)  # more than a batch
        ],
    )
    conn.execute("COMMIT")
    conn.close()
    record(UsageRow(ts=time.time(), provider="sim", model="m", prompt="hi", reply="yo"))
    models.store_sync("p0", [ModelInfo(provider="p0", id="m0")])
    provider_state.record_verifies({"p0": True})
    assert cli("serve", "token", "create", "ci").code == 0  # a gateway token moves too
    before = {by: cli("usage", "report", "--json", "--by", by).stdout for by in ("day", "model")}

    r = cli("ledger", "copy", "--to", pg_url, "--json")
    assert r.code == 0, r.output
    assert json.loads(r.stdout)["added"] == {
        "usage": 2501,
        "models": 1,
        "model_sync": 1,
        "provider_state": 1,
        "gateway_tokens": 1,
    }
    r = cli("ledger", "copy", "--to", pg_url, "--json")  # again: nothing twice
    assert json.loads(r.stdout)["added"] == dict.fromkeys(
        ["usage", "models", "model_sync", "provider_state", "gateway_tokens"], 0
    )
    assert pg_rows(pg_url, "SELECT count(*) FROM usage") == [(2501,)]
    assert pg_rows(pg_url, "SELECT prompt, reply FROM usage WHERE model = 'm'") == [("hi", "yo")]

    monkeypatch.setenv("CALLM_LEDGER_URL", pg_url)
    after = {by: cli("usage", "report", "--json", "--by", by).stdout for by in ("day", "model")}
    assert after == before  # the same report from the shared ledger


def test_copy_without_a_sqlite_ledger_is_a_usage_error(cli, pg_url) -> None:
    r = cli("ledger", "copy", "--to", pg_url)
    assert r.code == 2 and "no SQLite ledger" in r.stderr


# ---- many processes -----------------------------------------------------------------------

MIGRATOR = """
import sys
from callm.ledger.db import connect
connect().close()
"""


def test_ten_processes_migrate_a_new_ledger_once(pg_url) -> None:
    env = {**os.environ, "CALLM_LEDGER_URL": pg_url}
    procs = [
        subprocess.Popen([sys.executable, "-c", MIGRATOR], env=env, stderr=subprocess.PIPE)
        for _ in range(10)
    ]
    errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, errs
    from callm.ledger.migrations import MIGRATIONS

    assert pg_rows(pg_url, "SELECT version FROM callm_schema") == [(len(MIGRATIONS),)]


# Fifty `callm chat` processes at once, every row landing once: with four `callm serve`
# processes writing at the same time, in tests/gateway/test_team_ledger.py.


# ---- the server goes away -----------------------------------------------------------------


def test_server_down_rows_spill_then_come_back(cli, pg_cluster, pg_url, isolated_env) -> None:
    env = {"CALLM_LEDGER_URL": pg_url}
    first = finish([chat("one", env=env)])
    assert first[0][0] == 0
    pg_cluster.stop()
    try:
        down = finish([chat(f"while down {i}", env=env) for i in range(5)])
        assert [code for code, _ in down] == [0] * 5  # calls still work
        assert all("row saved to" in err for _, err in down)
        r = cli.sub("ledger", "status", "--json", env=env)
        data = json.loads(r.stdout)
        assert r.code == 1 and not data["reachable"]
        assert data["spill_backlog"] == 5
    finally:
        pg_cluster.restart()
    after = finish([chat("back", env=env)])  # the next write brings the spilled rows in
    assert after[0][0] == 0 and "imported 5" in after[0][1]
    assert pg_rows(pg_url, "SELECT count(*) FROM usage") == [(7,)]
    r = cli.sub("ledger", "status", "--json", env=env)
    assert json.loads(r.stdout)["spill_backlog"] == 0


def test_a_process_outliving_a_restart_writes_on(pg_cluster, pg_url, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """A long-lived process (`callm serve`) keeps idle connections; after the server restarts,
    its next rows go straight in, not to the spill file through a dead connection."""
    from callm.ledger import pg

    monkeypatch.setenv("CALLM_LEDGER_URL", pg_url)
    held = [pg.connect(pg_url) for _ in range(3)]  # three threads' worth, now idle
    for conn in held:
        conn.close()
    record(UsageRow(ts=time.time(), provider="sim", model="before"))
    pg_cluster.stop()
    pg_cluster.restart()
    record(UsageRow(ts=time.time(), provider="sim", model="after"))
    record(UsageRow(ts=time.time(), provider="sim", model="after"))
    assert "row saved to" not in capsys.readouterr().err
    assert pg_rows(pg_url, "SELECT model FROM usage ORDER BY id") == [
        ("before",),
        ("after",),
        ("after",),
    ]


def test_ledger_migrate_writes_the_backlog_in(cli, pg_url, isolated_env, monkeypatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the ledger is unreachable
        s.bind(("127.0.0.1", 0))
        dead = f"postgresql://nobody@127.0.0.1:{s.getsockname()[1]}/none"
    monkeypatch.setenv("CALLM_LEDGER_URL", dead)
    record(UsageRow(ts=time.time(), provider="sim", model="m"))
    record(UsageRow(ts=time.time(), provider="sim", model="n"))
    monkeypatch.setenv("CALLM_LEDGER_URL", pg_url)
    r = cli("ledger", "migrate", "--json")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["imported"] == 2 and data["spill_backlog"] == 0 and data["rows"]["usage"] == 2


@pytest.mark.parametrize("n", [3])
def test_report_while_many_write(n, pg_url) -> None:
    """Rollups stay exact with writers racing on the same day row (row locks, no deadlock)."""
    code = (
        "import sys, time\n"
        "from callm.ledger.usage import UsageRow, record\n"
        "for i in range(40):\n"
        "    record(UsageRow(ts=time.time(), provider='p', model='m', latency_ms=5 + i,"
        " input_tokens=1))\n"
    )
    env = {**os.environ, "CALLM_LEDGER_URL": pg_url}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
        for _ in range(n)
    ]
    errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert errs == [""] * n
    assert pg_rows(pg_url, "SELECT sum(requests), sum(input_tokens) FROM usage_day") == [
        (n * 40, n * 40)
    ]
    assert pg_rows(pg_url, "SELECT sum(n) FROM usage_latency") == [(n * 40,)]


def test_every_migration_has_a_postgresql_entry() -> None:
    """A migration added for SQLite only would leave shared ledgers behind."""
    from callm.ledger.migrations import MIGRATIONS
    from callm.ledger.pg_migrations import PG_MIGRATIONS

    assert len(PG_MIGRATIONS) == len(MIGRATIONS)


def test_the_password_comes_from_the_keychain_or_pgpassword(cli, pg_cluster, monkeypatch) -> None:
    import psycopg

    from pgcluster import PASSWORD_USER

    secret = "test-pass-123"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{secret}'")
        conn.execute(f"CREATE DATABASE pwdb OWNER {PASSWORD_USER}")
    url = f"postgresql://{PASSWORD_USER}@127.0.0.1:{pg_cluster.port}/pwdb"
    monkeypatch.setenv("CALLM_LEDGER_URL", url)
    r = cli("ledger", "status", "--json")
    assert r.code == 1 and "password" in json.loads(r.stdout)["error"]
    r = cli("ledger", "login", stdin=secret + "\n")
    assert r.code == 0, r.output
    assert secret not in r.output
    r = cli("ledger", "status", "--json")
    assert r.code == 0, r.output
    assert json.loads(r.stdout)["schema_version"] == json.loads(r.stdout)["latest_version"]
    assert secret not in (cli.sub("ledger", "status").output)
    from callm.secrets import keychain_delete

    keychain_delete(f"ledger:{PASSWORD_USER}@127.0.0.1:{pg_cluster.port}/pwdb")
    r = cli.sub("ledger", "status", "--json", env={"PGPASSWORD": secret})
    assert r.code == 0, r.output


def test_ledger_json_outputs_match_their_schemas(cli, ledger_backend, pg_url) -> None:
    import jsonschema

    from callm.outputs import SCHEMAS

    record(UsageRow(ts=time.time(), provider="sim", model="m"))
    for args, name in (
        (("ledger", "status", "--json"), "ledger-status"),
        (("ledger", "migrate", "--json"), "ledger-status"),
    ):
        r = cli(*args)
        assert r.code == 0, r.output
        jsonschema.validate(json.loads(r.stdout), SCHEMAS[name].model_json_schema())
    if ledger_backend == "sqlite":
        r = cli("ledger", "copy", "--to", pg_url, "--json")
        assert r.code == 0, r.output
        jsonschema.validate(json.loads(r.stdout), SCHEMAS["ledger-copy"].model_json_schema())


# ---- budgets on the shared ledger ----------------------------------------------------------


def _budget_env(tmp_path: Path, url: str, ledger: str, budgets: str) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[providers.lab]\ndriver = "openai-compatible"\nbase_url = "{url}/v1"\n'
        'key_env = "CALLM_LAB_KEY"\n[retry]\nattempts = 1\n'
        '[pricing."lab/*"]\ninput = 0.0\noutput = 1000.0\n'  # 10 tokens: $0.01
        f"[budgets]\n{budgets}\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CALLM_") and not k.endswith("_API_KEY")
    }
    env.update(CALLM_CONFIG=str(cfg), CALLM_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path))
    env.update(CALLM_LAB_KEY="sk-test-FAKE-budget-0000", CALLM_LEDGER_URL=ledger)
    return env


def _chat_reply() -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "m1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15},
    }


def test_fifty_processes_share_a_budget_and_never_overspend(tmp_path: Path, pg_url) -> None:
    """Worst case $0.01 a call, daily budget $0.20 in PostgreSQL: exactly 20 of 50 run."""
    from loopback import Loopback, json_reply

    with Loopback() as s:
        s.route("/v1/chat/completions", json_reply(_chat_reply(), delay=0.5))
        env = _budget_env(tmp_path, s.url, pg_url, "daily = 0.2")
        cmd = [CALLM, "chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "10", "hi"]
        procs = [
            subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
            for _ in range(50)
        ]  # fmt: skip
        results = finish(procs)
        codes = sorted(code for code, _ in results)
        assert codes == [0] * 20 + [5] * 30, [e for _, e in results][:3]
        assert len([r for r in s.requests if r.path.endswith("/completions")]) == 20
    (total, n) = pg_rows(pg_url, "SELECT sum(cost_usd), count(*) FROM usage")[0]
    assert n == 20 and total == pytest.approx(0.2)
    assert pg_rows(pg_url, "SELECT count(*) FROM budget_reservation") == [(0,)]
    assert pg_rows(pg_url, "SELECT sum(cost_usd) FROM usage_spend")[0][0] == pytest.approx(0.2)


def test_an_unreachable_ledger_refuses_paid_calls_unless_fail_open(tmp_path: Path) -> None:
    import socket

    from loopback import Loopback, json_reply

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"postgresql://nobody@127.0.0.1:{sock.getsockname()[1]}/none"
    with Loopback() as s:
        s.route("/v1/chat/completions", json_reply(_chat_reply()))
        cmd = [CALLM, "chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "10", "hi"]
        env = _budget_env(tmp_path, s.url, dead, "daily = 1.0")
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 5, p.stderr
        assert "cannot check the budget" in p.stderr and "Traceback" not in p.stderr
        assert not s.requests  # refused before any call
        env = _budget_env(tmp_path, s.url, dead, "daily = 1.0\nfail_open = true")
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "budget not checked" in p.stderr and "row saved to" in p.stderr  # spilled
        # into the local data dir (made for it), not the temp dir
        assert f"row saved to {tmp_path / 'data' / 'usage-spill.jsonl'}" in p.stderr, p.stderr
        assert len(s.requests) == 1
