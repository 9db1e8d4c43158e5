"""`callm usage report`: grouping, date filters, percentiles, JSON/CSV shapes, empty ledgers.
Rows go in through record() into a real SQLite file, and again into a real PostgreSQL database
(tests/pgcluster.py): the same expectations hold on both. The CLI runs in-process."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from callm.ledger.report import FIELDS, parse_when, plan, report
from callm.ledger.usage import UsageRow, record

KEYS = ["key", *FIELDS]

# Every test on both ledgers: the SQLite file and a PostgreSQL database (same output).
pytestmark = pytest.mark.usefixtures("ledger_backend")


def at(text: str) -> float:
    """Local time -> unix time."""
    return datetime.fromisoformat(text).timestamp()


def add(ts: float, provider: str = "sim", model: str = "m", **kw) -> None:
    record(UsageRow(ts=ts, provider=provider, model=model, **kw))


def as_json(cli, *args: str) -> dict:
    r = cli("usage", "report", "--json", *args)
    assert r.code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture
def tz(request, monkeypatch):
    """Run in a given local time zone (SQLite's 'localtime' and Python's agree)."""
    monkeypatch.setenv("TZ", getattr(request, "param", "UTC"))
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def ledger(tz) -> None:
    """Three providers over three days (local time)."""
    common = {"input_tokens": 100, "output_tokens": 10}
    add(at("2026-11-01T09:00"), "openai", "gpt-4o", cost_usd=0.5, latency_ms=100, **common)
    add(at("2026-11-01T23:59:59"), "openai", "gpt-4o", cost_usd=0.25, latency_ms=300, **common)
    add(at("2026-11-02T00:00"), "openai", "gpt-4o-mini", cost_usd=0.125, latency_ms=200, **common)
    add(
        at("2026-11-02T12:00"),
        "anthropic",
        "claude",
        cost_usd=1.0,
        latency_ms=1000,
        outcome="error",
        error_kind="server",
        **common,
    )
    add(at("2026-11-03T08:00"), "lab", "qwen", latency_ms=50, **common)  # unpriced
    add(at("2026-11-03T09:00"), "lab", "qwen", outcome="interrupted", **common)  # no latency


def test_by_provider(cli, ledger) -> None:
    data = as_json(cli, "--by", "provider")
    assert set(data) == {"groups", "totals"}
    groups = {g["key"]: g for g in data["groups"]}
    assert [g["key"] for g in data["groups"]] == ["anthropic", "openai", "lab"]  # by cost
    assert groups["openai"] == {
        "key": "openai",
        "requests": 3,
        "failures": 0,
        "input_tokens": 300,
        "output_tokens": 30,
        "cost_usd": 0.875,
        "unpriced_requests": 0,
        "p50_latency_ms": 200,
        "p95_latency_ms": 300,
        "attempts": 3,  # no attempts_json: each row is one attempt of its own provider
        "failed_attempts": 0,
    }
    assert groups["anthropic"]["failures"] == groups["anthropic"]["failed_attempts"] == 1
    lab = groups["lab"]
    assert (lab["requests"], lab["failures"], lab["unpriced_requests"], lab["cost_usd"]) == (
        2,
        1,
        2,
        None,  # nothing known: unknown, not $0
    )
    assert (lab["p50_latency_ms"], lab["p95_latency_ms"]) == (50, 50)
    t = data["totals"]
    assert list(t) == list(FIELDS)
    assert (t["requests"], t["failures"], t["input_tokens"], t["output_tokens"]) == (6, 2, 600, 60)
    assert (t["cost_usd"], t["unpriced_requests"]) == (1.875, 2)
    # latencies 50, 100, 200, 300, 1000 -> nearest rank: p50 = 3rd, p95 = 5th
    assert (t["p50_latency_ms"], t["p95_latency_ms"]) == (200, 1000)


def test_by_model_and_by_day(cli, ledger) -> None:
    by_model = {g["key"]: g["requests"] for g in as_json(cli, "--by", "model")["groups"]}
    assert by_model == {
        "openai/gpt-4o": 2,
        "openai/gpt-4o-mini": 1,
        "anthropic/claude": 1,
        "lab/qwen": 2,
    }
    days = as_json(cli, "--by", "day")["groups"]
    assert [(g["key"], g["requests"], g["cost_usd"]) for g in days] == [
        ("2026-11-01", 2, 0.75),
        ("2026-11-02", 2, 1.125),
        ("2026-11-03", 2, None),
    ]


def test_model_is_the_default_grouping_and_global_json_works(cli, ledger) -> None:
    r = cli("--json", "usage", "report")
    assert r.code == 0
    assert json.loads(r.stdout) == as_json(cli, "--by", "model")


def test_provider_filter(cli, ledger) -> None:
    data = as_json(cli, "--provider", "openai", "--by", "day")
    assert [(g["key"], g["requests"]) for g in data["groups"]] == [
        ("2026-11-01", 2),
        ("2026-11-02", 1),
    ]
    assert data["totals"]["requests"] == 3


def test_date_filters(cli, ledger) -> None:
    def total(*args: str) -> int:
        return as_json(cli, *args)["totals"]["requests"]

    assert total("--since", "2026-11-02") == 4
    assert total("--until", "2026-11-01") == 2  # a bare --until date includes that day
    assert total("--since", "2026-11-02", "--until", "2026-11-02") == 2
    assert total("--since", "2026-11-01T12:00", "--until", "2026-11-02T00:00") == 2  # inclusive
    assert total("--since", "2026-11-01T23:59:59") == 5
    assert total("--since", "2026-11-03T08:30", "--until", "2026-11-03T08:45") == 0
    assert total("--since", "2026-11-04") == 0


def test_relative_dates(cli, tz) -> None:
    now = time.time()
    add(now - 3600)
    add(now - 2 * 86400)
    add(now - 10 * 86400)
    counts = [as_json(cli, "--since", s)["totals"]["requests"] for s in ("2h", "3d", "2w", "1w")]
    assert counts == [1, 2, 3, 2]
    assert as_json(cli, "--since", "today")["totals"]["requests"] >= 1
    assert as_json(cli, "--until", "1d")["totals"]["requests"] == 2


def test_parse_when() -> None:
    now = 1_800_000_000.0
    assert parse_when("7d", now=now) == now - 7 * 86400
    assert parse_when("24h", now=now) == now - 86400
    assert parse_when("2w", now=now) == now - 14 * 86400
    assert (
        parse_when("2026-11-01T10:00:00Z")
        == datetime.fromisoformat("2026-11-01T10:00:00+00:00").timestamp()
    )
    assert parse_when("2026-11-01T10:00", until=True) > at("2026-11-01T10:00")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "last tuesday"], "--since 'last tuesday' is not a date"),
        (["--until", "2026-13-01"], "--until '2026-13-01' is not a date"),
        (["--since", "5x"], "is not a date"),
        (["--by", "week"], "--by 'week': use one of provider, model, day"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "--since is not before --until"),
        (["--json", "--csv"], "--json and --csv do not go together"),
    ],
)
def test_bad_values_are_usage_errors(cli, args, message) -> None:
    r = cli("usage", "report", *args)
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in r.output


def test_csv(cli, ledger) -> None:
    r = cli("usage", "report", "--csv", "--by", "provider")
    assert r.code == 0
    table = list(csv.reader(io.StringIO(r.stdout)))
    assert table[0] == KEYS
    assert len(table) == 1 + 3  # a header, a row per group, no totals row
    rows = {row[0]: dict(zip(KEYS, row, strict=True)) for row in table[1:]}
    assert rows["openai"]["cost_usd"] == "0.875" and rows["openai"]["p95_latency_ms"] == "300"
    assert rows["lab"]["cost_usd"] == "" and rows["lab"]["unpriced_requests"] == "2"


@pytest.mark.parametrize("args", [[], ["--since", "7d", "--by", "day"]])
def test_empty_or_missing_ledger(cli, isolated_env, args) -> None:
    db = isolated_env.data_dir / "callm.db"
    data = as_json(cli, *args)
    assert data == {
        "groups": [],
        "totals": {
            "requests": 0,
            "failures": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "unpriced_requests": 0,
            "p50_latency_ms": None,
            "p95_latency_ms": None,
            "attempts": 0,
            "failed_attempts": 0,
        },
    }
    assert not db.exists()  # reading never creates the DB
    r = cli("usage", "report", *args)
    assert r.code == 0 and "no calls recorded" in r.stderr
    r = cli("usage", "report", "--csv")
    assert r.code == 0 and r.stdout.splitlines() == [",".join(KEYS)]


def test_empty_existing_db(cli, isolated_env) -> None:
    from callm.ledger.db import connect

    connect().close()  # the configured ledger, created empty
    assert as_json(cli)["totals"]["requests"] == 0


def test_piped_output_is_plain(cli, ledger) -> None:
    r = cli("usage", "report", "--by", "provider")
    assert r.code == 0 and "\x1b[" not in r.stdout
    lines = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert lines[0][0] == "provider" and lines[-1][0] == "total"
    assert lines[1][0] == "anthropic" and "$1.00" in lines[1]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_output_has_a_cost_chart(ledger, monkeypatch) -> None:
    from callm.cli.usage import _human
    from callm.ledger.report import report as build
    from callm.render.output import Output

    out = Output(stdout=_Tty(), no_color=True)
    _human(out, build(by="provider"), "provider", "all time")
    text = out.stdout.getvalue()
    assert "usage by provider" in text and "cost" in text
    bars = {ln.split()[0]: ln.count("█") for ln in text.splitlines() if "█" in ln}
    assert bars["anthropic"] > bars["openai"] > 0  # $1.00 vs $0.875


# ---- the rollup + raw edges agree with a plain computation ----------------------------------

LATENCIES = [20, 45, 120, 250, 600, 1500, 3000, 8000, None]  # one per bucket: exact p50/p95


def _nearest_rank(values: list[int], q: float) -> int | None:
    if not values:
        return None
    values = sorted(values)
    return values[max(1, math.ceil(q * len(values))) - 1]


def _expected(rows: list[dict], lo: float | None, hi: float | None, by: str) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if (lo is None or r["ts"] >= lo) and (hi is None or r["ts"] < hi):
            key = {
                "provider": r["provider"],
                "model": f"{r['provider']}/{r['model']}",
                "day": date.fromtimestamp(r["ts"]).isoformat(),
            }[by]
            groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        lats = [r["latency_ms"] for r in rs if r["latency_ms"] is not None]
        out[key] = (
            len(rs),
            sum(r["outcome"] not in ("ok", "fallback") for r in rs),
            sum(r["input_tokens"] for r in rs),
            sum(r["cost_usd"] or 0 for r in rs),
            sum(r["cost_usd"] is None for r in rs),
            _nearest_rank(lats, 0.5),
            _nearest_rank(lats, 0.95),
        )
    return out


def _insert(rows: list[dict]) -> None:
    from callm.ledger.db import connect

    cols = list(rows[0])
    conn = connect()
    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO usage ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [tuple(r[c] for c in cols) for r in rows],
    )
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/New_York"], indirect=True)
def test_report_matches_a_plain_computation(tz) -> None:
    rnd = random.Random(7)
    start = at("2026-10-28T00:00")
    rows = []
    for _ in range(400):
        r = {
            "ts": start + rnd.uniform(0, 12 * 86400),  # crosses a DST change in New York
            "provider": rnd.choice(["openai", "anthropic", "lab"]),
            "model": rnd.choice(["a", "b"]),
            "outcome": rnd.choice(["ok", "ok", "ok", "fallback", "error", "interrupted"]),
            "input_tokens": rnd.randint(0, 5000),
            "cost_usd": rnd.choice([None, 0.25, 0.5, 1.0]),  # exact in binary: sums compare
            "latency_ms": rnd.choice(LATENCIES),
        }
        rows.append(r)
    _insert(rows)  # one transaction; the triggers keep the rollups as record() would
    cases: list[tuple[float | None, float | None]] = [(None, None)]
    for _ in range(25):
        a, b = sorted(start + rnd.uniform(-86400, 13 * 86400) for _ in range(2))
        cases += [(a, b), (a, None), (None, b)]
    d = date(2026, 10, 30)
    cases.append((at(d.isoformat()), at((d + timedelta(days=3)).isoformat())))  # whole days
    for lo, hi in cases:
        for by in ("provider", "model", "day"):
            got = report(since=lo, until=hi, by=by)
            have = {
                g["key"]: (
                    g["requests"],
                    g["failures"],
                    g["input_tokens"],
                    g["cost_usd"] or 0,
                    g["unpriced_requests"],
                    g["p50_latency_ms"],
                    g["p95_latency_ms"],
                )
                for g in got["groups"]
            }
            assert have == _expected(rows, lo, hi, by), (lo, hi, by, plan(lo, hi))
            assert got["totals"]["requests"] == sum(v[0] for v in have.values())


def test_plan_splits_whole_days_from_edges(tz) -> None:
    d1, d3 = at("2026-11-01"), at("2026-11-03")
    assert plan(None, None) == ((None, None), [])
    assert plan(d1, d3) == (("2026-11-01", "2026-11-02"), [])
    noon = at("2026-11-01T12:00")
    days, raw = plan(noon, at("2026-11-03T06:00"))
    assert days == ("2026-11-02", "2026-11-02")
    assert raw == [(noon, at("2026-11-02")), (d3, at("2026-11-03T06:00"))]
    assert plan(noon, at("2026-11-01T13:00")) == (None, [(noon, at("2026-11-01T13:00"))])


def test_big_ledger_is_read_from_the_rollups(tz, isolated_env) -> None:
    """20,000 rows bulk-loaded: the answer equals a plain aggregate and comes quickly."""
    from callm.ledger.db import connect

    conn = connect()  # the configured ledger: the file in the data dir or PostgreSQL
    base = at("2026-09-01")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO usage (ts, provider, model, input_tokens, cost_usd, latency_ms, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (base + i * 300, f"p{i % 3}", f"m{i % 5}", i % 700, 0.001, 100 + i % 900, "ok")
            for i in range(20_000)
        ],
    )
    conn.execute("COMMIT")
    plain = conn.execute("SELECT count(*), sum(input_tokens) FROM usage").fetchone()
    conn.close()
    t = time.perf_counter()
    data = report(by="model")
    elapsed = time.perf_counter() - t
    assert (data["totals"]["requests"], data["totals"]["input_tokens"]) == plain
    assert len(data["groups"]) == 15
    p50 = data["totals"]["p50_latency_ms"]
    assert 540 <= p50 <= 560  # uniform 100..999: within a ~5% bucket of 550
    assert elapsed < 2.0


def test_report_function_rejects_bad_by(tmp_path: Path) -> None:
    from callm.errors import UsageError

    with pytest.raises(UsageError):
        report(by="week", path=tmp_path / "none.db")


def test_an_answer_from_a_fallback_model_is_not_a_failure(cli, tz) -> None:
    """outcome 'fallback' means the user got a reply (from a later model in the chain)."""
    now = time.time()
    add(now - 60, outcome="ok", latency_ms=10)
    add(now - 50, outcome="fallback", latency_ms=20, attempts=3)
    add(now - 40, outcome="error", error_kind="auth", latency_ms=5)
    add(now - 30, outcome="broken_stream", error_kind="mid_stream", latency_ms=5)
    add(now - 20, outcome="interrupted", latency_ms=5)
    totals = as_json(cli, "--since", "1d")["totals"]
    assert (totals["requests"], totals["failures"]) == (5, 3)
