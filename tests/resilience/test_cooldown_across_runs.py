"""Cooldown across invocations: separate `callm` processes sharing CALLM_DATA_DIR. A provider
that failed N times in a row is skipped while a fallback exists, `providers list` shows it,
the period grows, and a success resets it. On both ledgers: the SQLite file and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faults import openai_error, openai_ok
from harness import callm, ledger_rows

from replay_server import ReplayServer

CHAIN = ("chat", "-m", "lab/gpt-test", "--json", "hi")
pytestmark = pytest.mark.usefixtures("ledger_backend")


def cooldown_row(data_dir: Path, name: str) -> tuple[int, float | None, int]:
    from callm.ledger.db import connect

    conn = connect()  # data_dir's file, or the PostgreSQL ledger of CALLM_LEDGER_URL
    try:
        row = conn.execute(
            "SELECT failures, cooldown_until, cooldown_level FROM provider_state WHERE name = ?",
            (name,),
        ).fetchone()
    finally:
        conn.close()
    return row if row else (0, None, 0)


def test_cooling_provider_is_skipped_by_the_third_run(
    server: ReplayServer, server2: ReplayServer, configure, isolated_env
) -> None:
    server.default = openai_error(503, "upstream unavailable")
    server2.default = openai_ok("backup answers")
    configure(
        {"lab": ("openai", server.url), "backup": ("openai", server2.url)},
        attempts=1,
        cooldown_after=2,
        cooldown_seconds=60,
        fallbacks={"lab/gpt-test": ["backup/b-model"]},
    )
    for run in (1, 2):
        r = callm(*CHAIN)
        assert r.code == 0, r.stderr
        assert [a["outcome"] for a in r.json["attempts"]] == ["error", "ok"], run
        assert len(server.seen) == run
    failures, until, level = cooldown_row(isolated_env.data_dir, "lab")
    assert (failures, level) == (0, 1)
    assert until is not None and 55 < until - time.time() <= 60

    r = callm(*CHAIN)  # the third run: lab is cooling down and backup exists
    assert r.code == 0, r.stderr
    assert len(server.seen) == 2, "lab was not called"
    assert r.json["text"] == "backup answers"
    assert [
        (a["model"], a["outcome"], a["error_kind"], a["tries"]) for a in r.json["attempts"]
    ] == [
        ("lab/gpt-test", "skipped", "cooldown", 0),
        ("backup/b-model", "ok", None, 1),
    ]
    notice = r.stderr.splitlines()[0]
    assert notice.startswith("skipping lab/gpt-test: lab is cooling down for another ")
    assert notice.endswith(" s after repeated failures")
    rows = ledger_rows(isolated_env.data_dir)
    assert len(rows) == 3 and rows[-1]["provider"] == "backup"

    listed = {p["name"]: p for p in callm("providers", "list", "--json").json}
    expected = time.strftime("%H:%M:%S", time.localtime(until))
    assert listed["lab"]["cooldown_until"] == expected
    assert listed["backup"]["cooldown_until"] is None
    table = callm("providers", "list")
    assert table.code == 0
    (lab_line,) = [ln for ln in table.stdout.splitlines() if ln.startswith("lab")]
    assert f"cooling down until {expected}" in lab_line
    for run in (r, table):
        run.assert_clean()


def test_only_option_is_tried_anyway_and_success_resets(
    server: ReplayServer, configure, isolated_env
) -> None:
    server.default = openai_error(500)
    configure({"lab": ("openai", server.url)}, attempts=1, cooldown_after=2)
    for _ in range(2):
        assert callm(*CHAIN).code == 1
    assert cooldown_row(isolated_env.data_dir, "lab")[1] is not None

    server.default = openai_ok("lab is back")
    r = callm(*CHAIN)  # lab is cooling down but is the only option: it is called
    assert r.code == 0, r.stderr
    assert r.json["text"] == "lab is back"
    assert "skipping" not in r.stderr
    assert len(server.seen) == 3
    assert cooldown_row(isolated_env.data_dir, "lab") == (0, None, 0)
    assert callm("providers", "list", "--json").json[0]["cooldown_until"] is None


def test_cooldown_grows(server: ReplayServer, configure, isolated_env) -> None:
    server.default = openai_error(502)
    configure({"lab": ("openai", server.url)}, attempts=1, cooldown_after=1, cooldown_seconds=30)
    callm(*CHAIN)
    first = cooldown_row(isolated_env.data_dir, "lab")[1]
    callm(*CHAIN)  # still the only option, fails again: the next period is twice as long
    _, second, level = cooldown_row(isolated_env.data_dir, "lab")
    assert first is not None and second is not None
    assert 25 < first - time.time() <= 30
    assert 55 < second - time.time() <= 60
    assert level == 2


def test_the_users_errors_do_not_cool_a_provider(
    server: ReplayServer, configure, isolated_env
) -> None:
    server.default = openai_error(400, "Invalid 'messages'")
    configure({"lab": ("openai", server.url)}, attempts=1, cooldown_after=1)
    assert callm(*CHAIN).code == 1
    assert cooldown_row(isolated_env.data_dir, "lab") == (0, None, 0)
