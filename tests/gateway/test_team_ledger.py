"""A team on one PostgreSQL ledger (tests/pgcluster.py): `callm serve` on several "hosts"
(each its own home and data dir) and many `callm chat` processes write to it at once, every
row lands once; a gateway token made on one host works on every gateway, and its removal
reaches them all."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_server import Gateway, callm, env_for

pytest.importorskip("uvicorn")

GATEWAYS = 4
# requests of each client (two a gateway): OpenAI (plain, streamed) and Anthropic in turn,
# at least MIN, and on while chats still run
MIN_PER_CLIENT = 5
CHATS = 50
# sim costs nothing; a price makes the report's cost column mean something
CONFIG = '[retry]\nattempts = 1\n[pricing."sim/*"]\ninput = 1000.0\noutput = 2000.0\n'


def host(root: Path, name: str, pg_url: str) -> dict[str, str]:
    """The environment of one machine of the team: its own home, config and data dir."""
    env = env_for(root / name)
    env["CALLM_LEDGER_URL"] = pg_url
    cfg = Path(env["XDG_CONFIG_HOME"]) / "callm" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(CONFIG, encoding="utf-8")
    return env


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def ask(client: httpx.Client, url: str, token: str, kind: int, prompt: str) -> str:
    """One request of the given kind; the reply's text (raises on a non-200)."""
    msgs = [{"role": "user", "content": prompt}]
    if kind == 2:
        r = client.post(
            url + "/v1/messages",
            headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
            json={"model": "sim", "max_tokens": 16, "messages": msgs},
        )
        r.raise_for_status()
        return str(r.json()["content"][0]["text"])
    body: dict[str, Any] = {"model": "sim", "max_tokens": 16, "messages": msgs}
    if kind == 1:
        body["stream"] = True
    r = client.post(
        url + "/v1/chat/completions", headers={"authorization": f"Bearer {token}"}, json=body
    )
    r.raise_for_status()
    if kind == 0:
        return str(r.json()["choices"][0]["message"]["content"])
    assert r.text.rstrip().endswith("data: [DONE]"), r.text[-200:]
    return r.text


def start_gateways(envs: list[dict[str, str]]) -> list[Gateway]:
    with ThreadPoolExecutor(len(envs)) as pool:
        return list(pool.map(lambda e: Gateway(e), envs))


def stop_all(gateways: list[Gateway]) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(len(gateways)) as pool:
        return list(pool.map(lambda g: g.stop(), gateways))


def test_four_gateways_and_fifty_chats_share_one_ledger(tmp_path: Path, pg_url: str) -> None:
    envs = [host(tmp_path, f"gw{i}", pg_url) for i in range(GATEWAYS)]
    made = callm(envs[0], "serve", "token", "create", "team")  # made on one host only
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    gateways = start_gateways(envs)
    chat_env = host(tmp_path, "laptop", pg_url)
    callm_bin = str(Path(sys.executable).with_name("callm"))
    chats_done = threading.Event()
    clients_writing = threading.Barrier(GATEWAYS * 2 + 1, timeout=120)

    def client(i: int, c: int) -> list[str]:
        """Requests until every chat has exited, and one more after: the gateways write
        before, during and after the chats, whatever the machine's speed."""
        sent: list[str] = []
        deadline = time.monotonic() + 180
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < deadline:
                last = chats_done.is_set() and len(sent) >= MIN_PER_CLIENT
                prompt = f"gw{i} c{c} req{len(sent)}"
                assert ask(http, gateways[i].url, token, len(sent) % 3, prompt)
                sent.append(prompt)
                if len(sent) == 1:
                    clients_writing.wait()
                if last:
                    return sent
        raise AssertionError("the chats did not end within 180 s")

    try:
        with ThreadPoolExecutor(GATEWAYS * 2) as pool:  # two clients per gateway
            clients = [pool.submit(client, i, c) for i in range(GATEWAYS) for c in range(2)]
            try:
                clients_writing.wait()  # every client has a row in before the chats start
                chats = [
                    subprocess.Popen(
                        [callm_bin, "chat", "-m", "sim", "-o", "delay_ms=1", f"chat {k}"],
                        env=chat_env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                    for k in range(CHATS)
                ]
                chat_results = [
                    (p.communicate(timeout=180)[1].decode(), p.returncode) for p in chats
                ]
            finally:
                chats_done.set()
                clients_writing.abort()  # a client that failed early does not hang the rest
            prompts = [p for f in clients for p in f.result(timeout=180)]
    finally:
        stopped = stop_all(gateways)
    assert [code for _, code in chat_results] == [0] * CHATS, [e for e, _ in chat_results][:3]
    assert [e for e, _ in chat_results if "warning" in e] == []  # nothing spilled
    for code, err in stopped:
        assert code == 0 and "Traceback" not in err and "warning" not in err, err

    # every request is one row, once: the gateways' with the token, the chats' without
    want = Counter({(f"chat {k}", None, "ok"): 1 for k in range(CHATS)})
    want.update((p, "team", "ok") for p in prompts)
    got = Counter(pg_rows(pg_url, "SELECT prompt, token, outcome FROM usage"))
    assert got == want
    total = sum(want.values())
    assert total == CHATS + len(prompts) >= CHATS + GATEWAYS * 2 * MIN_PER_CLIENT
    (gw_first, gw_last, chat_first, chat_last, gw_among_chats) = pg_rows(
        pg_url,
        "WITH c AS (SELECT min(id) lo, max(id) hi FROM usage WHERE token IS NULL)"
        " SELECT min(id) FILTER (WHERE token IS NOT NULL),"
        " max(id) FILTER (WHERE token IS NOT NULL), c.lo, c.hi,"
        " count(*) FILTER (WHERE token IS NOT NULL AND id BETWEEN c.lo AND c.hi)"
        " FROM usage, c GROUP BY c.lo, c.hi",
    )[0]
    # the gateways wrote before the chats began, after they ended, and while they ran
    assert gw_first < chat_first and chat_last < gw_last
    assert gw_among_chats > 0
    chat_cids = "SELECT count(DISTINCT cid), count(cid) FROM usage WHERE token IS NULL"
    assert pg_rows(pg_url, chat_cids) == [(CHATS, CHATS)]  # a conversation each
    (in_tok, out_tok, cost) = pg_rows(
        pg_url, "SELECT sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM usage"
    )[0]
    assert pg_rows(pg_url, "SELECT sum(requests) FROM usage_day") == [(total,)]
    assert out_tok > 0 and cost > 0

    # every host's report reads the same shared totals
    rep = callm(envs[3], "--json", "usage", "report", "--by", "token")
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    t = data["totals"]
    assert (t["requests"], t["failures"]) == (total, 0)
    assert (t["input_tokens"], t["output_tokens"]) == (int(in_tok), int(out_tok))
    assert t["cost_usd"] == pytest.approx(float(cost))
    by_token = {g["key"]: g["requests"] for g in data["groups"]}
    assert by_token["team"] == len(prompts)
    assert sum(by_token.values()) == total
    logs = callm(chat_env, "--json", "logs", "status")
    assert logs.returncode == 0, logs.stderr
    assert json.loads(logs.stdout)["calls"] == total
    status = callm(envs[1], "ledger", "status", "--json")
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    assert st["rows"]["usage"] == total and st["spill_backlog"] == 0


def _status(client: httpx.Client, url: str, token: str) -> int:
    r = client.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"} if token else {},
        json={"model": "sim", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]},
    )
    return r.status_code


def _until(want: int, probe: Any, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while True:
        got = int(probe())
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_a_token_made_on_one_host_works_on_the_others(tmp_path: Path, pg_url: str) -> None:
    a, b, c = (host(tmp_path, n, pg_url) for n in ("a", "b", "c"))
    gw_b, gw_c = start_gateways([b, c])  # running before the token exists
    try:
        made = callm(a, "--json", "serve", "token", "create", "alice", "--budget", "5")
        assert made.returncode == 0, made.stderr
        token = json.loads(made.stdout)["token"]
        listed = callm(b, "--json", "serve", "token", "list")
        assert listed.returncode == 0, listed.stderr
        (info,) = json.loads(listed.stdout)
        assert (info["name"], info["budget_usd_day"]) == ("alice", 5.0)
        assert token not in listed.stdout
        dup = callm(c, "serve", "token", "create", "alice")  # one namespace for the team
        assert dup.returncode == 2 and "exists" in dup.stderr, dup.stderr
        with httpx.Client(timeout=60) as client:
            # an unknown token makes a gateway look again (at most once a second)
            for gw in (gw_b, gw_c):
                assert _until(200, lambda g=gw: _status(client, g.url, token), 5) == 200
            assert _status(client, gw_b.url, "callm-not-a-token") == 401
            assert _status(client, gw_c.url, "") == 401  # none at all
            gone = callm(c, "serve", "token", "rm", "alice")  # removed from a third host
            assert gone.returncode == 0, gone.stderr
            assert callm(a, "--json", "serve", "token", "list").stdout.strip() == "[]"
            # the gateways drop it within seconds (they re-read the tokens every 5 s)
            for gw in (gw_b, gw_c):
                assert _until(401, lambda g=gw: _status(client, g.url, token), 10) == 401
    finally:
        stopped = stop_all([gw_b, gw_c])
    for code, err in stopped:
        assert code == 0 and "Traceback" not in err, err
    rows = pg_rows(pg_url, "SELECT token, outcome FROM usage")
    assert rows and set(rows) == {("alice", "ok")}  # refused requests leave no row


def test_the_ledger_going_away_under_a_running_gateway(tmp_path: Path, pg_cluster, pg_url) -> None:  # type: ignore[no-untyped-def]
    """Known tokens still work (their rows wait in the host's spill file and go in once the
    server is back); a token it cannot look up is a 503, a token budget it cannot check a 429."""
    env = host(tmp_path, "gw", pg_url)
    known = callm(env, "serve", "token", "create", "known").stdout.strip()
    capped = callm(env, "serve", "token", "create", "capped", "--budget", "1").stdout.strip()
    (gw,) = start_gateways([env])
    try:
        with httpx.Client(timeout=60) as client:
            assert _status(client, gw.url, known) == 200
            pg_cluster.stop()
            try:
                late = callm(env, "serve", "token", "create", "late")
                assert late.returncode == 1 and "cannot reach the ledger" in late.stderr
                for _ in range(3):
                    assert _status(client, gw.url, known) == 200  # calls still work
                time.sleep(1.1)  # an unknown token makes it look again after a second
                r = client.post(
                    gw.url + "/v1/chat/completions",
                    headers={"authorization": "Bearer callm-unknown"},
                    json={"model": "sim", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert r.status_code == 503 and "ledger" in r.json()["error"]["message"]
                r = client.post(
                    gw.url + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {capped}"},
                    json={"model": "sim", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert r.status_code == 429 and r.headers["x-should-retry"] == "false"
                assert "cannot check" in r.json()["error"]["message"]
            finally:
                pg_cluster.restart()
            assert _status(client, gw.url, known) == 200  # this row brings the spilled ones
    finally:
        code, err = gw.stop()
    assert code == 0 and "Traceback" not in err, err
    assert pg_rows(pg_url, "SELECT token, count(*) FROM usage GROUP BY token") == [("known", 5)]
