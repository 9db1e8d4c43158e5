"""[budgets] against a loopback OpenAI-compatible server and the real ledger: refusals
(exit 5) that name the budget and what is left, the alert, unpriced and free models, a cheaper
fallback, per-provider limits, `usage budget`, reservations that settle and expire, and 20
concurrent processes that cannot overspend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from loopback import Loopback, json_reply

FAKE_KEY = "sk-test-FAKE-budget-0000"
OUT_PRICE = 1000.0  # USD per million output tokens: 100 tokens = $0.10


def chat_reply(model: str, completion_tokens: int) -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": completion_tokens,
            "total_tokens": 5 + completion_tokens,
        },
    }


@pytest.fixture
def srv() -> Iterator[Loopback]:
    with Loopback() as s:
        s.route("/v1/chat/completions", json_reply(chat_reply("m1", 100)))
        yield s


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_LAB_KEY", FAKE_KEY)


def config(url: str, budgets: str, pricing: str | None = None) -> str:
    prices = (
        pricing
        if pricing is not None
        else f'[pricing."lab/*"]\ninput = 0.0\noutput = {OUT_PRICE}\n'
        '[pricing."lab/cheap"]\ninput = 0.0\noutput = 10.0\n'
    )
    return (
        f'[providers.lab]\ndriver = "openai-compatible"\nbase_url = "{url}/v1"\n'
        'key_env = "CALLM_LAB_KEY"\n'
        "[retry]\nattempts = 1\n"
        f"{prices}[budgets]\n{budgets}\n"
    )


def spend(usd: float, provider: str = "lab", ts: float | None = None) -> None:
    from callm.ledger.usage import UsageRow, record

    record(UsageRow(ts=ts or time.time(), provider=provider, model="m1", cost_usd=usd))


def chats(srv: Loopback) -> list[str]:
    return [json.loads(r.body)["model"] for r in srv.requests if r.path.endswith("/completions")]


@pytest.mark.usefixtures("ledger_backend")  # the SQLite file and PostgreSQL
def test_a_call_that_would_exceed_the_daily_budget_is_refused(cli, isolated_env, srv) -> None:
    isolated_env.write_config(config(srv.url, "daily = 1.0"))
    ok = cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi")
    assert ok.code == 0, ok.stderr
    spend(0.85)  # $0.95 spent today: $0.05 left, the worst case is $0.10
    res = cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi")
    assert res.code == 5, res.output
    assert "refused by budget" in res.stderr and "daily budget of $1.00" in res.stderr
    assert "$0.05 left" in res.stderr and "up to $0.10" in res.stderr
    assert "Traceback" not in res.output
    assert chats(srv) == ["m1"]  # the refused call never reached the server
    res = cli("--json", "chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi")
    obj = json.loads(res.stdout)
    assert res.code == 5 and obj["error"]["kind"] == "budget"
    assert (obj["provider"], obj["model"]) == ("lab", "m1")
    # a smaller worst case still fits
    assert cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "40", "hi").code == 0


@pytest.mark.usefixtures("ledger_backend")  # the SQLite file and PostgreSQL
def test_spend_of_yesterday_does_not_count_and_alert_warns(cli, isolated_env, srv) -> None:
    isolated_env.write_config(config(srv.url, 'daily = 1.0\nalert_at = 0.5\ntimezone = "UTC"'))
    spend(5.0, ts=time.time() - 3 * 86400)
    res = cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi")
    assert res.code == 0 and "warning" not in res.stderr, res.stderr
    spend(0.5)
    res = cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi")
    assert res.code == 0, res.stderr
    assert "warning: 60% of the daily budget used" in res.stderr


@pytest.mark.usefixtures("ledger_backend")  # the SQLite file and PostgreSQL
def test_unpriced_models_are_refused_unless_allowed_and_free_ones_never(
    cli, isolated_env, srv
) -> None:
    isolated_env.write_config(config(srv.url, "daily = 1.0", pricing=""))
    res = cli("chat", "-m", "lab/unknown-model", "--no-stream", "--max-tokens", "5", "hi")
    assert res.code == 5 and "price is unknown" in res.stderr, res.output
    assert "allow_unpriced" in res.stderr and chats(srv) == []
    isolated_env.write_config(config(srv.url, "daily = 1.0\nallow_unpriced = true", pricing=""))
    res = cli("chat", "-m", "lab/unknown-model", "--no-stream", "--max-tokens", "5", "hi")
    assert res.code == 0, res.output
    # over budget, the simulator (priced at zero) still answers
    isolated_env.write_config(config(srv.url, "daily = 1.0"))
    spend(3.0)
    assert cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "1", "hi").code == 5
    res = cli("chat", "-m", "sim", "hi")
    assert res.code == 0, res.output


@pytest.mark.usefixtures("ledger_backend")  # the SQLite file and PostgreSQL
def test_a_cheaper_fallback_is_tried_before_refusing(cli, isolated_env, srv) -> None:
    srv.route("/v1/chat/completions", json_reply(chat_reply("cheap", 100)))
    srv.routes.reverse()
    isolated_env.write_config(config(srv.url, "daily = 0.05"))
    args = ["chat", "-m", "lab/m1", "--fallback", "lab/cheap", "--no-stream", "--max-tokens"]
    res = cli("--json", *args, "100", "hi")
    assert res.code == 0, res.output
    assert chats(srv) == ["cheap"]
    assert "lab/m1 would break a budget" in res.stderr
    assert json.loads(res.stdout)["model"] == "cheap"
    # neither fits: the first model's refusal
    res = cli(*args, "100000", "hi")
    assert res.code == 5 and "(lab/m1)" in res.stderr, res.output


@pytest.mark.usefixtures("ledger_backend")  # the SQLite file and PostgreSQL
def test_provider_budgets_apply_to_their_provider_only(cli, isolated_env, srv) -> None:
    isolated_env.write_config(
        config(srv.url, "monthly = 100\n[budgets.providers.lab]\ndaily = 0.2")
    )
    spend(0.17)
    spend(50.0, provider="other")
    res = cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi")
    assert res.code == 5 and "lab daily budget" in res.stderr, res.output
    assert "budgets.providers.lab.daily" in res.stderr
    rows = json.loads(cli("usage", "budget", "--json").stdout)
    by = {r["budget"]: r for r in rows}
    assert set(by) == {"monthly", "lab daily"}
    assert by["lab daily"]["spent_usd"] == pytest.approx(0.17)
    assert by["lab daily"]["left_usd"] == pytest.approx(0.03)
    assert by["monthly"]["spent_usd"] == pytest.approx(50.17)
    assert by["lab daily"]["alert"] is True and by["monthly"]["alert"] is False
    assert by["monthly"]["period_end"][8:10] == "01"  # the first of next month
    plain = cli("usage", "budget")
    assert plain.code == 0 and plain.stdout.startswith("budget\tspent\theld\tlimit\tleft")
    assert "lab daily\t$0.17\t$0.00\t$0.20\t$0.03\t85% !" in plain.stdout


def test_usage_budget_without_budgets_and_a_bad_timezone(cli, isolated_env, srv) -> None:
    isolated_env.write_config(config(srv.url, ""))
    res = cli("usage", "budget")
    assert res.code == 0 and "no budgets configured" in res.stderr
    isolated_env.write_config(config(srv.url, "[budgets.providers.opnai]\ndaily = 1"))
    res = cli("usage", "budget", "--json")
    assert res.code == 0 and json.loads(res.stdout)[0]["budget"] == "opnai daily"
    assert "budgets.providers.opnai: no provider 'opnai' is configured" in res.stderr
    isolated_env.write_config(config(srv.url, 'daily = 1\ntimezone = "Mars/Olympus"'))
    res = cli("usage", "budget")
    assert res.code == 2 and "budgets.timezone" in res.stderr and "Mars/Olympus" in res.stderr


def test_reservations_settle_with_the_row_and_dead_holders_expire(cli, isolated_env, srv) -> None:
    from callm.ledger.db import connect
    from callm.ledger.reservations import Scope, reserve, tallies

    isolated_env.write_config(config(srv.url, "daily = 1.0"))
    assert cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi").code == 0
    conn = connect()
    assert conn.execute("SELECT count(*) FROM budget_reservation").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM usage").fetchone()[0] == 1
    # a reservation held by a process that has exited is not counted against the budget
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    now = time.time()
    day = Scope(None, now - 3600, now + 3600)
    rid = reserve("lab", "m1", 0.9, [day], lambda t: None)
    conn.execute("UPDATE budget_reservation SET pid = ? WHERE id = ?", (int(dead), rid))
    assert tallies([day])[0].reserved == 0
    # one held by a live process is, until it expires
    rid = reserve("lab", "m1", 0.9, [day], lambda t: None)
    assert tallies([day])[0].reserved == pytest.approx(0.9)
    res = cli("chat", "-m", "lab/m1", "--no-stream", "--max-tokens", "100", "hi")
    assert res.code == 5 and "held by calls in flight" in res.stderr, res.output
    conn.execute("UPDATE budget_reservation SET expires = ? WHERE id = ?", (now - 1, rid))
    assert tallies([day])[0].reserved == 0
    conn.close()


def test_period_bounds_follow_the_configured_zone() -> None:
    from zoneinfo import ZoneInfo

    from callm.budgets import period_bounds

    tz = ZoneInfo("Pacific/Auckland")
    # 2026-03-31 20:00 UTC is already April 1st in Auckland (UTC+13)
    now = 1774987200.0
    start, end = period_bounds("monthly", tz, now)
    assert (start.year, start.month, start.day, start.hour) == (2026, 4, 1, 0)
    assert (end.month, end.day) == (5, 1)
    start, end = period_bounds("daily", tz, now)
    assert start.day == 1 and end.day == 2
    # the daylight-saving change (April 5th, 03:00 -> 02:00): a 25-hour day
    s, e = period_bounds("daily", tz, 1775300400.0)  # 2026-04-04 11:00 UTC, April 5th there
    assert e.timestamp() - s.timestamp() == 25 * 3600


def test_twenty_concurrent_processes_cannot_overspend(tmp_path: Path) -> None:
    """Worst case $0.01 each (10 output tokens at $1000/M, the server reports all 10), daily
    budget $0.10: exactly 10 calls run, the other 10 exit 5, whatever the interleaving."""
    with Loopback() as s:
        s.route("/v1/chat/completions", json_reply(chat_reply("m1", 10), delay=1.0))
        cfg = tmp_path / "config.toml"
        cfg.write_text(config(s.url, "daily = 0.1"))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CALLM_") and not k.endswith("_API_KEY")
        }
        env.update(CALLM_CONFIG=str(cfg), CALLM_DATA_DIR=str(tmp_path / "data"))
        env.update(CALLM_LAB_KEY=FAKE_KEY, HOME=str(tmp_path))
        cmd = [sys.executable, "-m", "callm", "chat", "-m", "lab/m1", "--no-stream"]
        cmd += ["--max-tokens", "10", "hi"]

        def one(_: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

        with ThreadPoolExecutor(20) as pool:
            done = list(pool.map(one, range(20)))
        codes = sorted(p.returncode for p in done)
        assert codes == [0] * 10 + [5] * 10, [p.stderr for p in done]
        assert len(chats(s)) == 10
    from callm.ledger.db import connect

    conn = connect(tmp_path / "data" / "callm.db")
    total, rows = conn.execute("SELECT total(cost_usd), count(*) FROM usage").fetchone()
    assert rows == 10 and total == pytest.approx(0.1)
    assert conn.execute("SELECT count(*) FROM budget_reservation").fetchone()[0] == 0


def test_usage_budget_draws_bars_on_a_terminal(isolated_env, srv) -> None:
    import io

    from callm.budgets import status
    from callm.cli.context import State
    from callm.cli.usage import _budget_table
    from callm.render.output import Output

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    isolated_env.write_config(config(srv.url, "daily = 1.0\nmonthly = 10"))
    spend(1.2)
    out = Tty()
    st = State(out=Output(stdout=out, stderr=Tty(), no_color=True))
    _budget_table(st.out, status(st.config()))
    text = out.getvalue()
    assert "██████████ 120%" in text  # over: a full bar
    assert "█░░░░░░░░░ 12%" in text
    assert "$0.00" in text and "period ends" in text


def test_failed_calls_and_fallbacks_after_a_failure_settle_their_reservation(
    cli, isolated_env, srv
) -> None:
    from callm.ledger.db import connect
    from loopback import Reply

    srv.route("/v2/chat/completions", Reply(500, {"error": {"message": "down"}}))
    second = (
        f'[providers.lab2]\ndriver = "openai-compatible"\nbase_url = "{srv.url}/v2"\n'
        'key_env = "CALLM_LAB_KEY"\n[pricing."lab2/*"]\ninput = 0.0\noutput = 100.0\n'
    )
    isolated_env.write_config(config(srv.url, "daily = 1.0") + second)
    res = cli("chat", "-m", "lab2/x", "--no-stream", "--max-tokens", "100", "hi")
    assert res.code == 1, res.output
    conn = connect()
    assert conn.execute("SELECT count(*) FROM budget_reservation").fetchone()[0] == 0
    # lab2 fails, the fallback lab/m1 fits and answers: one row, nothing held
    args = ["chat", "-m", "lab2/x", "--fallback", "lab/m1", "--no-stream", "--max-tokens"]
    res = cli("--json", *args, "100", "hi")
    assert res.code == 0, res.output
    assert json.loads(res.stdout)["model"] == "m1"
    assert conn.execute("SELECT count(*) FROM usage").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM budget_reservation").fetchone()[0] == 0
    # lab2 fails and the fallback would not fit what is left: refused (exit 5)
    spend(0.85)
    res = cli(*args, "100", "hi")
    assert res.code == 5 and "refused by budget (lab/m1)" in res.stderr, res.output
    assert "lab2/x failed (server); falling back to lab/m1" in res.stderr
    assert chats(srv) == ["x", "x", "m1", "x"]  # m1 only by the call that fitted
    assert conn.execute("SELECT count(*) FROM budget_reservation").fetchone()[0] == 0
    conn.close()


@pytest.mark.parametrize(
    ("budgets", "problem"),
    [
        ("daily = -1", "budgets.daily: must be at least 0, not -1"),
        ("alert_at = 1.5", "budgets.alert_at: must be at most 1, not 1.5"),
        ('daily = "5"', "budgets.daily: must be a number"),
        ("weekly = 5", "unknown key 'budgets.weekly'"),
        ("[budgets.providers.lab]\nyearly = 3", "unknown key 'budgets.providers.lab.yearly'"),
    ],
)
def test_bad_budgets_are_named_by_path(cli, isolated_env, srv, budgets, problem) -> None:
    isolated_env.write_config(config(srv.url, budgets))
    res = cli("usage", "budget")
    assert res.code == 2 and problem in res.stderr, res.stderr


def test_a_config_save_keeps_the_budgets(cli, isolated_env, srv) -> None:
    isolated_env.write_config(
        config(srv.url, 'daily = 2.5\ntimezone = "UTC"\n[budgets.providers.lab]\nmonthly = 9')
    )
    assert cli("providers", "disable", "lab").code == 0
    text = isolated_env.config_path.read_text()
    assert "daily = 2.5" in text and 'timezone = "UTC"' in text and "monthly = 9" in text
    rows = json.loads(cli("usage", "budget", "--json").stdout)
    assert [r["budget"] for r in rows] == ["daily", "lab monthly"]


def test_spend_rollup_is_filled_by_the_migration_and_kept_by_triggers(tmp_path: Path) -> None:
    import sqlite3

    from callm.ledger import db, migrations

    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    for script in migrations.MIGRATIONS[:6]:  # a ledger written before budgets existed
        for stmt in db._statements(script):
            old.execute(stmt)
    old.execute("PRAGMA user_version = 6")
    rows = [
        (1_000_000.0 + i * 400, "lab" if i % 2 else "b", 0.25 if i % 3 else None) for i in range(12)
    ]
    old.executemany(
        "INSERT INTO usage (ts, provider, model, outcome, cost_usd) VALUES (?, ?, 'm', 'ok', ?)",
        rows,
    )
    old.close()
    conn = db.connect(path)  # migrates
    spend_sql = "SELECT provider, round(total(cost_usd), 9) FROM {} GROUP BY 1 ORDER BY 1"
    assert (
        conn.execute(spend_sql.format("usage_spend")).fetchall()
        == conn.execute(spend_sql.format("usage")).fetchall()
        == [("b", 1.0), ("lab", 1.0)]
    )
    conn.execute("DELETE FROM usage WHERE provider = 'lab' AND ts < 1001000")
    conn.execute(
        "INSERT INTO usage (ts, provider, model, outcome, cost_usd)"
        " VALUES (5e6, 'lab', 'm', 'ok', 2)"
    )
    assert (
        conn.execute(spend_sql.format("usage_spend")).fetchall()
        == conn.execute(spend_sql.format("usage")).fetchall()
    )
    conn.close()
