"""`callm serve` tokens in the ledger, on both backends: the SQLite file and a team's
PostgreSQL ledger (CALLM_LEDGER_URL), through the CLI and the store a gateway reads."""

from __future__ import annotations

import json
import time

from callm.gateway import tokens
from callm.ledger.usage import UsageRow, record
from isolation import Cli


def test_create_list_check_and_remove(cli: Cli, ledger_backend: str) -> None:
    r = cli("--json", "serve", "token", "create", "ci", "--budget", "2", "-m", "fast")
    assert r.code == 0, r.output
    token = json.loads(r.stdout)["token"]
    assert token.startswith(tokens.PREFIX)
    dup = cli("serve", "token", "create", "ci")
    assert dup.code == 2 and "exists" in dup.stderr and "Traceback" not in dup.output
    listed = cli("--json", "serve", "token", "list")
    assert [(t["name"], t["budget_usd_day"], t["models"]) for t in json.loads(listed.stdout)] == [
        ("ci", 2.0, ["fast"])
    ]
    assert token not in listed.output

    ring = tokens.Keyring()  # what a gateway holds
    who = ring.check(token)
    assert who is not None and who.name == "ci" and who.allows("fast") and not who.allows("sim")
    assert ring.check("callm-wrong") is None and ring.check(None) is None

    now = time.time()
    record(UsageRow(ts=now, provider="sim", model="m", cost_usd=0.25, token="ci"))
    record(UsageRow(ts=now, provider="sim", model="m", cost_usd=0.5, token="ci"))
    record(UsageRow(ts=now, provider="sim", model="m", cost_usd=9.0))  # no token: not its
    record(UsageRow(ts=now - 2 * 86400, provider="sim", model="m", cost_usd=9.0, token="ci"))
    assert tokens.spent_today("ci") == 0.75

    assert cli("serve", "token", "rm", "ci").code == 0
    gone = cli("serve", "token", "rm", "ci")
    assert gone.code == 2 and "no token named 'ci'" in gone.stderr
    assert json.loads(cli("--json", "serve", "token", "list").stdout) == []
    ring._loaded -= 10  # the gateway's periodic re-read (every 5 s), without the wait
    assert ring.check(token) is None


def test_a_token_created_while_a_gateway_runs_works_at_once(ledger_backend: str) -> None:
    ring = tokens.Keyring()
    assert ring.count == 0
    ring._loaded -= 2  # more than a second since it last looked
    token = tokens.create("late")
    assert (ring.check(token) or tokens.TokenInfo("?", 0)).name == "late"


def test_a_gateway_keeps_its_tokens_while_the_ledger_is_away(pg_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import socket

    monkeypatch.setenv("CALLM_LEDGER_URL", pg_url)
    token = tokens.create("kept")
    ring = tokens.Keyring()
    with socket.socket() as s:  # a port nobody listens on: the server is gone
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("CALLM_LEDGER_URL", f"postgresql://x@127.0.0.1:{s.getsockname()[1]}/x")
    ring._loaded -= 10  # time for its periodic re-read, which fails
    assert (ring.check(token) or tokens.TokenInfo("?", 0)).name == "kept"
    assert ring.error is not None and "cannot reach the ledger" in ring.error
    assert ring.check("callm-unknown") is None
    monkeypatch.setenv("CALLM_LEDGER_URL", pg_url)  # back
    ring._loaded -= 10
    assert ring.check(token) is not None and ring.error is None
