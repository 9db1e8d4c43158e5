"""The usage ledger: one row per call whatever happened, busy retries, spill and recovery,
50 writers at once. Real SQLite files in temp dirs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from callm.errors import CallmError
from callm.ledger import usage
from callm.ledger.usage import OUTCOMES, UsageRow, record, spill_paths


@pytest.fixture
def data_dir(isolated_env, tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return isolated_env.data_dir


def rows(db: Path, where: str = "") -> list[dict]:
    url = os.environ.get("CALLM_LEDGER_URL")
    if url:  # the ledger_backend fixture's PostgreSQL run
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(url, row_factory=dict_row) as pg:
            return list(pg.execute(f"SELECT * FROM usage {where} ORDER BY id"))
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM usage {where} ORDER BY id")]
    finally:
        conn.close()


def row(**kw) -> UsageRow:
    base = {"ts": time.time(), "provider": "sim", "model": "sim-1", "driver": "sim"}
    return UsageRow(**{**base, **kw})


def test_a_row_for_every_outcome(data_dir: Path, ledger_backend) -> None:
    attempts = [
        {"provider": "openai", "model": "gpt-x", "outcome": "error", "error_kind": "rate_limit"},
        {"provider": "sim", "model": "sim-1", "outcome": "ok", "latency_ms": 12},
    ]
    for i, outcome in enumerate(OUTCOMES):
        record(
            row(
                outcome=outcome,
                error_kind=None if outcome == "ok" else "mid_stream",
                input_tokens=100 + i,
                output_tokens=10 * i,
                cache_read_tokens=5,
                cache_write_tokens=2,
                usage_source="estimated" if outcome == "interrupted" else "reported",
                cost_usd=None if outcome == "error" else 0.001 * i,
                price_source="catalog 2026-11-01",
                latency_ms=50 + i,
                ttft_ms=7,
                attempts=2 if outcome == "fallback" else 1,
                attempts_json=attempts if outcome == "fallback" else None,
            )
        )
    got = rows(data_dir / "callm.db")
    assert [r["outcome"] for r in got] == list(OUTCOMES)
    fb = got[OUTCOMES.index("fallback")]
    assert json.loads(fb["attempts_json"]) == attempts and fb["attempts"] == 2
    err = got[OUTCOMES.index("error")]
    assert err["cost_usd"] is None and err["error_kind"] == "mid_stream"
    first = got[0]
    assert (first["input_tokens"], first["cache_read_tokens"], first["cache_write_tokens"]) == (
        100,
        5,
        2,
    )
    assert first["ttft_ms"] == 7 and first["price_source"] == "catalog 2026-11-01"
    assert got[OUTCOMES.index("interrupted")]["usage_source"] == "estimated"
    assert all(r["prompt"] is None and r["reply"] is None for r in got)
    assert not any(p.exists() for p in spill_paths(data_dir / "callm.db"))


def test_prompt_and_reply_are_stored_only_when_given_and_scrubbed(
    data_dir: Path, ledger_backend
) -> None:
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8J9k0"
    record(row(prompt=f"my key is {key}", reply="hello"))
    record(row())
    got = rows(data_dir / "callm.db")
    assert key not in got[0]["prompt"] and got[0]["prompt"].startswith("my key is sk-...")
    assert got[0]["reply"] == "hello"
    assert got[1]["prompt"] is None and got[1]["reply"] is None


def test_explicit_path(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "ledger.db"
    record(row(model="m1"), db)
    assert [r["model"] for r in rows(db)] == ["m1"]


def test_spill_when_the_db_is_broken_then_recover(data_dir: Path, capsys) -> None:
    db = data_dir / "callm.db"
    data_dir.mkdir(parents=True)
    db.write_bytes(b"this is not a database" * 100)
    record(row(model="a"))
    record(row(model="b"))
    err = capsys.readouterr().err
    spill = data_dir / usage.SPILL_NAME
    assert spill.exists() and len(spill.read_text().splitlines()) == 2
    lines = [ln for ln in err.splitlines() if ln]
    assert len(lines) == 2 and all("row saved to" in ln and str(spill) in ln for ln in lines)
    db.unlink()  # the user fixes it
    record(row(model="c"))
    assert [r["model"] for r in rows(db)] == ["a", "b", "c"]
    assert not spill.exists()
    assert "imported 2 usage row(s)" in capsys.readouterr().err
    record(row(model="d"))  # nothing is imported twice
    assert [r["model"] for r in rows(db)] == ["a", "b", "c", "d"]


def test_spill_to_the_temp_dir_when_the_data_dir_is_unwritable(
    isolated_env, tmp_path, monkeypatch, capsys
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    monkeypatch.setenv("CALLM_DATA_DIR", str(blocker / "callm"))  # mkdir fails, even as root
    db = blocker / "callm" / "callm.db"
    record(row(model="a", cost_usd=0.5))
    near, far = spill_paths(db)
    assert not near.exists() and far.exists() and far.parent == tmp
    assert os.stat(far).st_mode & 0o077 == 0  # may hold prompts: private
    assert f"row saved to {far}" in capsys.readouterr().err
    blocker.unlink()  # the data dir becomes usable
    record(row(model="b"))
    got = rows(db)
    assert [r["model"] for r in got] == ["a", "b"] and got[0]["cost_usd"] == 0.5
    assert not far.exists()


def test_nowhere_to_spill_prints_the_row(isolated_env, tmp_path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    monkeypatch.setenv("CALLM_DATA_DIR", str(blocker / "callm"))
    record(row(model="lost-nowhere"))
    err = capsys.readouterr().err
    assert "lost-nowhere" in err and len(err.strip().splitlines()) == 1


def test_torn_spill_lines_are_skipped_not_fatal(data_dir: Path, capsys) -> None:
    data_dir.mkdir(parents=True)
    spill = data_dir / usage.SPILL_NAME
    good = {"ts": 1.0, "provider": "sim", "model": "ok-row", "outcome": "ok"}
    spill.write_text(json.dumps(good) + "\n" + '{"ts": 2.0, "provi')
    record(row(model="new"))
    assert [r["model"] for r in rows(data_dir / "callm.db")] == ["ok-row", "new"]
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    assert not spill.exists()


def test_a_spilled_row_the_table_refuses_does_not_block_the_rest(data_dir: Path, capsys) -> None:
    data_dir.mkdir(parents=True)
    spill = data_dir / usage.SPILL_NAME
    lines = [
        {"ts": 1.0, "provider": "sim", "model": "refused", "attempts": {"not": "an int"}},
        {"ts": 2.0, "provider": "sim", "model": "kept", "outcome": None},  # NOT NULL: default
    ]
    spill.write_text("".join(json.dumps(x) + "\n" for x in lines))
    record(row(model="new"))
    got = rows(data_dir / "callm.db")
    assert [(r["model"], r["outcome"]) for r in got] == [("kept", "ok"), ("new", "ok")]
    err = capsys.readouterr().err
    assert "skipped 1 spilled usage row(s)" in err and "imported 1 usage row(s)" in err
    assert not spill.exists()


def test_append_after_a_torn_line_starts_a_new_line(tmp_path: Path) -> None:
    f = tmp_path / "spill.jsonl"
    f.write_bytes(b'{"torn')
    usage._append(f, b'{"a": 1}\n')
    assert f.read_bytes().splitlines() == [b'{"torn', b'{"a": 1}']


def test_locked_db_is_retried_not_spilled(data_dir: Path, monkeypatch, capsys) -> None:
    from callm.ledger import db as dbmod

    real = dbmod.connect
    calls = {"n": 0}

    def flaky(path=None):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise CallmError("data DB x is not usable: database is locked")
        return real(path)

    monkeypatch.setattr(dbmod, "connect", flaky)
    record(row(model="patient"))
    assert calls["n"] == 3
    assert [r["model"] for r in rows(data_dir / "callm.db")] == ["patient"]
    assert capsys.readouterr().err == ""


def test_disk_full_spills_at_once(data_dir: Path, monkeypatch, capsys) -> None:
    from callm.ledger import db as dbmod

    calls = {"n": 0}

    def full(path=None):
        calls["n"] += 1
        raise CallmError("data DB x is not usable: database or disk is full")

    monkeypatch.setattr(dbmod, "connect", full)
    data_dir.mkdir(parents=True)
    record(row(model="big"))
    assert calls["n"] == 1  # not a lock: no point retrying
    spilled = (data_dir / usage.SPILL_NAME).read_text().splitlines()
    assert [json.loads(x)["model"] for x in spilled] == ["big"]
    assert "database or disk is full" in capsys.readouterr().err


def test_a_writer_holding_the_lock_is_waited_for(data_dir: Path) -> None:
    record(row(model="first"))
    holder = sqlite3.connect(data_dir / "callm.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO usage (ts, provider, model, outcome) VALUES (1, 'x', 'held', 'ok')")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    t = time.perf_counter()
    record(row(model="second"))
    release.join()
    holder.close()
    assert time.perf_counter() - t >= 0.4
    assert [r["model"] for r in rows(data_dir / "callm.db")] == ["first", "held", "second"]


def test_a_lock_held_too_long_spills_instead_of_hanging(data_dir: Path, monkeypatch) -> None:
    from callm.ledger import db as dbmod

    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(usage, "MAX_WAIT", 0.5)
    record(row(model="first"))
    holder = sqlite3.connect(data_dir / "callm.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    t = time.perf_counter()
    record(row(model="second"))
    assert time.perf_counter() - t < 5
    holder.execute("ROLLBACK")
    holder.close()
    assert (data_dir / usage.SPILL_NAME).exists()
    record(row(model="third"))
    assert [r["model"] for r in rows(data_dir / "callm.db")] == ["first", "second", "third"]


def test_rollups_follow_inserts_and_deletes(data_dir: Path, ledger_backend) -> None:
    from callm.ledger.db import connect

    for lat in (10, 120, 123, None):
        record(row(latency_ms=lat, cost_usd=None if lat == 10 else 0.25))
    conn = connect()  # the file in data_dir, or PostgreSQL (its PL/pgSQL trigger)
    assert conn.execute(
        "SELECT sum(requests), sum(unpriced), sum(cost_usd) FROM usage_day"
    ).fetchone() == (4, 1, 0.75)  # quarters: exact in binary
    assert conn.execute(
        "SELECT lat_bucket, n, lat_min, lat_max FROM usage_latency ORDER BY 1"
    ).fetchall() == [(10, 1, 10, 10), (120, 2, 120, 123)]
    conn.execute("DELETE FROM usage WHERE latency_ms IN (10, 123)")
    assert conn.execute("SELECT sum(requests), sum(unpriced) FROM usage_day").fetchone() == (2, 0)
    assert conn.execute("SELECT lat_bucket, n FROM usage_latency").fetchall() == [(120, 1)]
    conn.close()


WRITER = """
import sys, time
from callm.ledger.usage import UsageRow, record
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
record(UsageRow(ts=time.time(), provider="sim", model="w" + sys.argv[1], latency_ms=5,
                cost_usd=0.001))
"""


@pytest.mark.slow
def test_fifty_processes_at_once_all_land(data_dir: Path) -> None:
    env = {**os.environ}
    start = time.time() + 3.0  # all import first, then write in the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(i), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(50)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0] * 50
    assert [err for _, err in results if err] == []  # no "database is locked", no spill
    got = rows(data_dir / "callm.db")
    assert sorted(r["model"] for r in got) == sorted(f"w{i}" for i in range(50))
    assert not any(p.exists() for p in spill_paths(data_dir / "callm.db"))
    conn = sqlite3.connect(data_dir / "callm.db")
    assert conn.execute("SELECT sum(requests) FROM usage_day").fetchone() == (50,)
    conn.close()
