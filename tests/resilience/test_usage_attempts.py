"""`usage report` counts attempts per provider from each call's attempts, failed ones
included: a provider whose failure a fallback answered shows with 0 requests but its attempt,
in --by provider and under --provider. On SQLite and PostgreSQL alike, from the rollup
(usage_attempt_day, migration 10) for whole days and from the rows for partial ones."""

from __future__ import annotations

import json
import random
import time
from datetime import date
from typing import Any

import pytest
from faults import openai_error
from harness import callm

from replay_server import ReplayServer

pytestmark = pytest.mark.usefixtures("ledger_backend")

ZERO = {"requests": 0, "failures": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
ZERO |= {"unpriced_requests": 0, "p50_latency_ms": None, "p95_latency_ms": None}


def report(*args: str) -> dict[str, Any]:
    r = callm("usage", "report", "--json", *args)
    assert r.code == 0, r.stderr
    r.assert_clean()
    return r.json


def by_key(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["key"]: g for g in data["groups"]}


def test_a_provider_a_fallback_answered_for_shows_its_failed_attempt(
    server: ReplayServer, configure
) -> None:
    server.default = openai_error(503, "upstream unavailable")
    configure({"lab": ("openai", server.url)}, attempts=1)
    r = callm("chat", "-m", "lab/gpt-test", "--fallback", "sim/sim-small", "--json", "hi")
    assert r.code == 0, r.stderr
    assert (r.json["provider"], len(server.seen)) == ("sim", 1)

    groups = by_key(report("--by", "provider"))
    assert groups["lab"] == {"key": "lab", **ZERO, "attempts": 1, "failed_attempts": 1}
    sim = groups["sim"]
    assert (sim["requests"], sim["failures"], sim["attempts"], sim["failed_attempts"]) == (
        1,
        0,
        1,
        0,
    )
    assert [g["key"] for g in report("--by", "provider")["groups"]] == ["sim", "lab"]

    # --provider lab: not "no usage" but the model that failed, under any grouping
    for args, key in ((), "lab/gpt-test"), (("--by", "provider"), "lab"):
        data = report("--provider", "lab", *args)
        assert data["groups"] == [{"key": key, **ZERO, "attempts": 1, "failed_attempts": 1}]
        assert data["totals"] == {**ZERO, "attempts": 1, "failed_attempts": 1}
    r = callm("usage", "report", "--provider", "lab")
    assert r.code == 0 and "no calls recorded" not in r.stderr
    header, row, total = (ln.split("\t") for ln in r.stdout.splitlines())
    assert header[-2:] == ["attempts", "failed attempts"]
    assert row[0] == "lab/gpt-test" and row[1:3] == ["0", "0"] and row[-2:] == ["1", "1"]
    assert total[0] == "total" and total[-2:] == ["1", "1"]
    r = callm("usage", "report", "--provider", "lab", "--csv")
    assert r.stdout.splitlines()[1].endswith(",1,1")

    # --since finer than a day reads the rows, a whole day the rollup: the same answer
    whole = report("--by", "provider", "--since", "today")
    assert report("--by", "provider", "--since", "1h") == whole == report("--by", "provider")
    assert by_key(report("--by", "token"))["-"]["attempts"] == 2
    (day,) = report("--by", "day")["groups"]
    assert (day["requests"], day["attempts"], day["failed_attempts"]) == (1, 2, 1)
    assert report("--provider", "lab", "--until", "1h")["groups"] == []

    # the provider answering itself: a second attempt, not a failed one
    assert callm("chat", "-m", "sim/sim-small", "hi").code == 0
    sim = by_key(report("--by", "provider", "--since", "1h"))["sim"]
    assert (sim["requests"], sim["attempts"], sim["failed_attempts"]) == (2, 2, 0)


def test_attempts_are_columns_of_the_table_once_one_failed(configure) -> None:
    configure({})
    assert callm("chat", "-m", "sim/sim-small", "hi").code == 0
    sim = by_key(report("--by", "provider"))["sim"]
    assert (sim["requests"], sim["attempts"], sim["failed_attempts"]) == (1, 1, 0)
    r = callm("usage", "report", "--by", "provider")
    assert r.code == 0 and r.stdout.splitlines()[0].split("\t")[-1] == "p95"  # nothing to add
    assert r.stdout.splitlines()[1].split("\t")[:2] == ["sim", "1"]
    assert callm("chat", "-m", "sim/sim-small", "-o", "fail=auth", "hi").code == 3
    r = callm("usage", "report", "--by", "provider")
    header, row, _ = (ln.split("\t") for ln in r.stdout.splitlines())
    assert header[-3:] == ["p95", "attempts", "failed attempts"]
    assert row[0] == "sim" and row[1:3] == ["2", "1"] and row[-2:] == ["2", "1"]


# ---- the rollup and the raw rows agree with a plain computation -----------------------------


def tried(row: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """What ledger/attempts.py says a row's attempts are, in Python."""
    try:
        entries = json.loads(row["attempts_json"]) if row["attempts_json"] else None
    except ValueError:
        entries = None
    out = []
    for e in entries if isinstance(entries, list) else []:
        model = e.get("model") if isinstance(e, dict) else None
        if isinstance(model, str) and model.find("/") > 0 and e.get("outcome") != "skipped":
            provider, name = model.split("/", 1)
            out.append((provider, name, e.get("outcome") != "ok"))
    return out or [(row["provider"], row["model"], row["outcome"] not in ("ok", "fallback"))]


def expected(rows: list[dict], lo: float | None, hi: float | None, by: str, only: str | None):
    out: dict[str, list[int]] = {}
    for r in rows:
        if (lo is not None and r["ts"] < lo) or (hi is not None and r["ts"] >= hi):
            continue
        for provider, model, failed in tried(r):
            if only is not None and provider != only:
                continue
            key = {
                "provider": provider,
                "model": f"{provider}/{model}",
                "day": date.fromtimestamp(r["ts"]).isoformat(),
                "token": r["token"] or "-",
            }[by]
            acc = out.setdefault(key, [0, 0])
            acc[0] += 1
            acc[1] += failed
    return {k: tuple(v) for k, v in out.items()}


def _attempts_json(rnd: random.Random, provider: str, model: str) -> str | None:
    def entry(p: str, m: str, outcome: str) -> dict[str, Any]:
        return {"model": f"{p}/{m}", "outcome": outcome, "error_kind": None, "tries": 1}

    shape = rnd.randrange(8)
    if shape == 0:
        return None  # a row from before attempts were kept
    if shape == 1:
        return rnd.choice(["[]", "not json", '{"model": "x/y"}', "[1, null]", '[{"model": 7}]'])
    if shape == 2:  # a cooling-down model is skipped: not an attempt
        return json.dumps([entry("anthropic", "c", "skipped"), entry(provider, model, "ok")])
    if shape == 3:  # a model name with slashes of its own
        return json.dumps([entry("openai", "meta/llama-3", "error"), entry(provider, model, "ok")])
    chain = [entry(rnd.choice(["openai", "anthropic", "lab"]), "a", "error") for _ in range(2)]
    return "\n " + json.dumps([*chain, entry(provider, model, rnd.choice(["ok", "error"]))])


def test_report_attempts_match_a_plain_computation(monkeypatch) -> None:
    from callm.ledger.report import report as build
    from callm.ledger.usage import UsageRow, record

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        rnd = random.Random(11)
        start = time.mktime((2026, 10, 28, 0, 0, 0, 0, 0, -1))
        rows = []
        for _ in range(150):
            provider, model = rnd.choice(["openai", "anthropic", "lab"]), rnd.choice("ab")
            row = {
                "ts": start + rnd.uniform(0, 6 * 86400),
                "provider": provider,
                "model": model,
                "outcome": rnd.choice(["ok", "fallback", "error", "interrupted"]),
                "attempts_json": _attempts_json(rnd, provider, model),
                "token": rnd.choice([None, None, "ci", "bot"]),  # the gateway's, or none
            }
            record(UsageRow(**row))
            rows.append(row)
        cases: list[tuple[float | None, float | None]] = [(None, None)]
        for _ in range(6):
            a, b = sorted(start + rnd.uniform(-86400, 7 * 86400) for _ in range(2))
            cases += [(a, b), (a, None), (None, b)]
        cases.append((start + 86400, start + 3 * 86400))  # whole days only
        for lo, hi in cases:
            for by in ("provider", "model", "day", "token"):
                for only in (None, "openai"):
                    got = build(since=lo, until=hi, by=by, provider=only)
                    have = {g["key"]: (g["attempts"], g["failed_attempts"]) for g in got["groups"]}
                    want = expected(rows, lo, hi, by, only)
                    assert have == want, (lo, hi, by, only)
                    t = got["totals"]
                    total = (sum(v[0] for v in want.values()), sum(v[1] for v in want.values()))
                    assert (t["attempts"], t["failed_attempts"]) == total
    finally:
        monkeypatch.undo()
        time.tzset()


def test_deleted_rows_leave_the_attempts_rollup() -> None:
    from callm.ledger.db import connect
    from callm.ledger.report import rebuild_rollups
    from callm.ledger.usage import UsageRow, record

    rnd = random.Random(3)
    now = time.time()
    for i in range(40):
        provider, model = rnd.choice(["openai", "lab"]), "m"
        js = _attempts_json(rnd, provider, model)
        token = rnd.choice([None, "ci"])
        record(
            UsageRow(
                ts=now - i * 7000, provider=provider, model=model, attempts_json=js, token=token
            )
        )
    conn = connect()
    try:
        table = "SELECT * FROM usage_attempt_day ORDER BY provider, model, day, token"
        conn.execute("DELETE FROM usage WHERE id % 3 = 0")
        after_delete = conn.execute(table).fetchall()
        conn.execute("BEGIN")
        rebuild_rollups(conn)  # from the rows left: what the triggers should have kept
        conn.execute("COMMIT")
        assert after_delete == conn.execute(table).fetchall() and after_delete
        conn.execute("DELETE FROM usage")
        assert conn.execute("SELECT count(*) FROM usage_attempt_day").fetchone() == (0,)
    finally:
        conn.close()


# ---- a ledger from before migration 10 ------------------------------------------------------


def _old_ledger(isolated_env: Any) -> Any:
    """The configured ledger at schema 9 (the migrations before this one, as they ran then):
    a connection to it and its dialect."""
    import os
    import sqlite3

    from callm.ledger.db import _statements
    from callm.ledger.migrations import MIGRATIONS
    from callm.ledger.pg_migrations import PG_MIGRATIONS

    url = os.environ.get("CALLM_LEDGER_URL")
    if url:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        for sql in PG_MIGRATIONS[:9]:
            if sql.strip():
                conn.execute(sql)
        conn.execute("CREATE TABLE callm_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO callm_schema VALUES (9)")
        return conn, "%s"
    isolated_env.data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(isolated_env.data_dir / "callm.db", isolation_level=None)
    for script in MIGRATIONS[:9]:
        for stmt in _statements(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 9")
    return conn, "?"


def test_the_migration_counts_the_attempts_of_rows_already_there(isolated_env) -> None:
    conn, mark = _old_ledger(isolated_env)
    fallback = [
        {"model": "lab/gpt-test", "outcome": "error", "error_kind": "server", "tries": 3},
        {"model": "sim/sim-small", "outcome": "ok", "error_kind": None, "tries": 1},
    ]
    now = time.time()
    rows = [
        (now - 60, "sim", "sim-small", "fallback", json.dumps(fallback)),
        (now - 50, "lab", "gpt-test", "error", None),  # from before attempts were kept
        (now - 40, "sim", "sim-small", "ok", None),
    ]
    insert = "INSERT INTO usage (ts, provider, model, outcome, attempts_json) VALUES ({})"
    for row in rows:
        conn.execute(insert.format(", ".join([mark] * 5)), row)
    conn.close()

    status = callm("ledger", "status", "--json").json  # connecting migrates
    assert status["schema_version"] == status["latest_version"] == 10
    assert status["rows"]["usage_attempt_day"] >= 2  # lab/gpt-test, sim/sim-small (per day)
    groups = by_key(report("--by", "provider"))
    lab, sim = groups["lab"], groups["sim"]
    assert (lab["requests"], lab["failures"], lab["attempts"], lab["failed_attempts"]) == (
        1,
        1,
        2,
        2,
    )
    assert (sim["requests"], sim["attempts"], sim["failed_attempts"]) == (2, 2, 0)
    assert report("--by", "provider", "--since", "1h") == report("--by", "provider")
