"""`usage report`: totals per provider, model or day, aggregated in SQL.

Whole local days come from the rollups `usage_day` (counts), `usage_latency` (a latency
histogram) and `usage_attempt_day` (attempts per provider, failed ones included: a provider
whose failure a fallback answered shows with 0 requests), kept by triggers (ledger/db.py,
ledger/attempts.py); the partial days at the edges of a --since/--until
range come from the `usage` rows themselves (ts index), in the same shape; merged here.
Latency percentiles are nearest-rank over those buckets: exact while a bucket holds one distinct
latency (small ledgers), otherwise interpolated between the bucket's min and max (~5% wide).
Days are local days; the rollups use the time zone of the process that wrote each row.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from callm.errors import UsageError
from callm.ledger.migrations import FAILED_SQL

BY = ("provider", "model", "day", "token")
FIELDS = (
    "requests",
    "failures",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "unpriced_requests",
    "p50_latency_ms",
    "p95_latency_ms",
    "attempts",  # models tried of the group's provider, whichever answered (ledger/attempts.py)
    "failed_attempts",
)
_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$", re.IGNORECASE)
_UNIT = {"h": 3600, "d": 86400, "w": 7 * 86400}

# ---- dates ----------------------------------------------------------------------------------


def parse_when(text: str, *, until: bool = False, now: float | None = None) -> float:
    """`7d`, `24h`, `2w` (ago), `today`, `yesterday`, `2026-11-01` (local midnight) or an ISO
    datetime -> unix time. With until=True the result is an exclusive upper bound: a bare date
    means the end of that day, a datetime includes that instant."""
    now = time.time() if now is None else now
    s = text.strip()
    m = _REL.match(s)
    if m:  # no row is older than 1970: a huge span (99999999d) means "from the start"
        return max(0.0, now - float(m.group(1)) * _UNIT[m.group(2).lower()])
    low = s.lower()
    if low in ("today", "yesterday"):
        d = date.fromtimestamp(now) - timedelta(days=low == "yesterday")
        return day_start(d + timedelta(days=1) if until else d)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        try:
            d = date.fromisoformat(s)
        except ValueError:
            raise _bad(text, until) from None
        return day_start(d + timedelta(days=1) if until else d)
    try:
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in "zZ" else s)
    except ValueError:
        raise _bad(text, until) from None
    try:
        ts = max(0.0, dt.timestamp())  # naive = local time; nothing is older than 1970
    except (OverflowError, OSError, ValueError):  # year 1 in a zone east of UTC
        ts = 0.0
    return math.nextafter(ts, math.inf) if until else ts


def _bad(text: str, until: bool) -> UsageError:
    flag = "--until" if until else "--since"
    return UsageError(
        f"{flag} {text!r} is not a date: use 7d, 24h, 2w, today, 2026-11-01 or 2026-11-01T09:30"
    )


def day_start(d: date) -> float:
    """Unix time of local midnight starting day d."""
    return time.mktime((d.year, d.month, d.day, 0, 0, 0, 0, 0, -1))


def _day(ts: float) -> date:
    return date.fromtimestamp(ts)


def plan(
    since: float | None, until: float | None
) -> tuple[tuple[str | None, str | None] | None, list[tuple[float | None, float | None]]]:
    """Split [since, until) into whole local days (for the rollup; None = open end) and
    partial-day ranges (for the raw rows). Returns (days or None, raw ranges)."""
    raw: list[tuple[float | None, float | None]] = []
    lo = hi = None
    if since is not None:
        d0 = _day(since)
        if day_start(d0) != since:
            d0 += timedelta(days=1)
            raw.append((since, day_start(d0)))
        lo = d0
    if until is not None:
        d1 = _day(until)
        if day_start(d1) != until:
            raw.append((day_start(d1), until))
        hi = d1 - timedelta(days=1)
    if lo is not None and hi is not None and lo > hi:  # no whole day inside: one raw range
        return None, [(since, until)]
    days = (lo.isoformat() if lo else None, hi.isoformat() if hi else None)
    return days, raw


# ---- the report -----------------------------------------------------------------------------


@dataclass
class _Acc:
    requests: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    lat: dict[int, list[int]] = field(default_factory=dict)  # bucket -> [n, min, max]

    def add(self, row: tuple[Any, ...]) -> None:
        n, fails, tin, tout, cost, unpriced = row
        self.requests += n
        self.failures += fails or 0
        self.input_tokens += tin or 0
        self.output_tokens += tout or 0
        self.cost += cost or 0.0
        self.unpriced += unpriced or 0

    def add_tries(self, n: int, failed: int) -> None:
        self.attempts += n or 0
        self.failed_attempts += failed or 0

    def add_lat(self, bucket: int, n: int, lmin: int, lmax: int) -> None:
        b = self.lat.get(bucket)
        if b is None:
            self.lat[bucket] = [n, lmin, lmax]
        else:
            b[0] += n
            b[1] = min(b[1], lmin)
            b[2] = max(b[2], lmax)

    def merge(self, other: _Acc) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        self.unpriced += other.unpriced
        self.add_tries(other.attempts, other.failed_attempts)
        for bucket, (n, lmin, lmax) in other.lat.items():
            self.add_lat(bucket, n, lmin, lmax)

    def result(self) -> dict[str, Any]:
        priced = self.requests - self.unpriced
        return {
            "requests": self.requests,
            "failures": self.failures,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            # the sum over priced requests; None when every request had an unknown price
            "cost_usd": round(self.cost, 10) if priced or not self.requests else None,
            "unpriced_requests": self.unpriced,
            "p50_latency_ms": percentile(self.lat, 0.50),
            "p95_latency_ms": percentile(self.lat, 0.95),
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
        }


def percentile(hist: dict[int, list[int]], q: float) -> int | None:
    """Nearest-rank percentile over latency buckets {bucket: [n, min, max]}."""
    total = sum(b[0] for b in hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for bucket in sorted(hist):
        n, lmin, lmax = hist[bucket]
        if seen + n >= rank:
            if n == 1 or lmin == lmax:
                return int(lmin)
            return round(lmin + (lmax - lmin) * (rank - seen - 1) / (n - 1))
        seen += n
    return None  # pragma: no cover - rank <= total


_KEY = {  # (the group's key in the rollups, GROUP BY there, the key computed from raw rows)
    "provider": ("provider", "provider", "provider"),
    "model": ("provider || '/' || model", "provider, model", "provider || '/' || model"),
    "day": ("day", "day", "{day}"),  # the dialect's DAY_SQL
    # not in the rollups: read from the rows; calls made without the gateway show as "-"
    "token": ("", "", "coalesce(token, '-')"),
}
# usage_attempt_day has the token too ('' for none), so attempts of whole days come from it
_TRIES_KEY = {**_KEY, "token": ("coalesce(nullif(token, ''), '-')", "token", _KEY["token"][2])}


def report(
    *,
    since: float | None = None,
    until: float | None = None,
    by: str = "model",
    provider: str | None = None,
    path: Path | None = None,
) -> dict[str, Any]:
    """{"groups": [{"key", ...FIELDS}], "totals": {...FIELDS}} for calls in [since, until)."""
    if by not in BY:
        raise UsageError(f"--by {by!r}: use one of {', '.join(BY)}")
    if since is not None and until is not None and since >= until:
        raise UsageError("--since is not before --until")
    from callm.ledger.backend import exists

    groups: dict[str, _Acc] = {}
    if exists(path):
        counts, lats, tries = _rows(path, since, until, by, provider)
        for key, *row in counts:
            groups.setdefault(key, _Acc()).add(tuple(row))
        for key, n, failed in tries:  # a provider that only failed has no counts row
            groups.setdefault(key, _Acc()).add_tries(n, failed)
        for key, bucket, n, lmin, lmax in lats:
            groups.setdefault(key, _Acc()).add_lat(bucket, n, lmin, lmax)
    total = _Acc()
    for acc in groups.values():
        total.merge(acc)
    out = [{"key": k, **acc.result()} for k, acc in groups.items()]
    if by == "day":
        out.sort(key=lambda g: g["key"])
    else:
        out.sort(key=lambda g: (-(g["cost_usd"] or 0.0), -g["requests"], -g["attempts"], g["key"]))
    return {"groups": out, "totals": total.result()}


def _rows(
    db: Path | None, since: float | None, until: float | None, by: str, provider: str | None
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(counts: key, requests, failures, in, out, cost, unpriced; latency: key, bucket, n,
    min, max; attempts: key, attempts, failed), from the rollups for whole days and from the
    rows for the partial ones."""
    from callm.ledger.db import connect

    conn = connect(db)
    try:
        counts, lats = _calls(conn, since, until, by, provider)
        return counts, lats, _tries(conn, since, until, by, provider)
    finally:
        conn.close()


def _calls(
    conn: Any, since: float | None, until: float | None, by: str, provider: str | None
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    from callm.ledger.backend import dialect
    from callm.ledger.migrations import DAY_SQL, LAT_BUCKET_SQL

    key, group, raw_key = _KEY[by]
    days, raw = plan(since, until) if group else (None, [(since, until)])
    raw_key = raw_key.format(day=DAY_SQL[dialect(conn)].format(ts="ts"))
    counts: list[tuple[Any, ...]] = []
    lats: list[tuple[Any, ...]] = []
    if days is not None:
        where, args = _where(provider, [("day >= ?", days[0]), ("day <= ?", days[1])])
        counts += conn.execute(
            f"SELECT {key}, sum(requests), sum(failures), sum(input_tokens),"
            f" sum(output_tokens), sum(cost_usd), sum(unpriced)"
            f" FROM usage_day{where} GROUP BY {group}",
            args,
        ).fetchall()
        lats += conn.execute(
            f"SELECT {key}, lat_bucket, sum(n), min(lat_min), max(lat_max)"
            f" FROM usage_latency{where} GROUP BY {group}, lat_bucket",
            args,
        ).fetchall()
    failed = FAILED_SQL.format(row="usage")
    for lo, hi in raw:
        where, args = _where(provider, [("ts >= ?", lo), ("ts < ?", hi)])
        counts += conn.execute(
            f"SELECT {raw_key}, count(*), sum(CAST({failed} AS INTEGER)),"
            f" sum(input_tokens), sum(output_tokens), coalesce(sum(cost_usd), 0.0),"
            f" sum(CAST(cost_usd IS NULL AS INTEGER))"
            f" FROM usage{where} GROUP BY 1",
            args,
        ).fetchall()
        bucket = LAT_BUCKET_SQL.format(l="latency_ms")
        lat_where = f"{where} AND latency_ms >= 0" if where else " WHERE latency_ms >= 0"
        lats += conn.execute(
            f"SELECT {raw_key}, {bucket}, count(*), min(latency_ms), max(latency_ms)"
            f" FROM usage{lat_where} GROUP BY 1, 2",
            args,
        ).fetchall()
    return counts, lats


def _tries(
    conn: Any, since: float | None, until: float | None, by: str, provider: str | None
) -> list[tuple[Any, ...]]:
    """Attempts per group (ledger/attempts.py). --provider keeps the attempts of that
    provider, whichever provider answered the call."""
    from callm.ledger.attempts import attempt_sql
    from callm.ledger.backend import dialect
    from callm.ledger.migrations import DAY_SQL

    key, group, raw_key = _TRIES_KEY[by]
    days, raw = plan(since, until)
    raw_key = raw_key.format(day=DAY_SQL[dialect(conn)].format(ts="ts"))
    tries: list[tuple[Any, ...]] = []
    if days is not None:
        where, args = _where(provider, [("day >= ?", days[0]), ("day <= ?", days[1])])
        tries += conn.execute(
            f"SELECT {key}, sum(attempts), sum(failed)"
            f" FROM usage_attempt_day{where} GROUP BY {group}",
            args,
        ).fetchall()
    join, a_provider, a_model, a_failed = attempt_sql(dialect(conn), "usage", FAILED_SQL)
    for lo, hi in raw:
        # the attempts of the rows, in columns named like the row's (raw_key reads them)
        where, args = _where(None, [("ts >= ?", lo), ("ts < ?", hi)])
        outer, more = _where(provider, [])
        tries += conn.execute(
            f"SELECT {raw_key}, count(*), sum(failed) FROM (SELECT usage.ts AS ts,"
            f" usage.token AS token, {a_provider} AS provider, {a_model} AS model,"
            f" {a_failed} AS failed FROM usage {join}{where}) AS a{outer} GROUP BY 1",
            args + more,
        ).fetchall()
    return tries


def _where(provider: str | None, conds: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    parts = [(sql, v) for sql, v in conds if v is not None]
    if provider:
        parts.append(("provider = ?", provider))
    if not parts:
        return "", []
    return " WHERE " + " AND ".join(p for p, _ in parts), [v for _, v in parts]


def rebuild_rollups(conn: Any) -> None:
    """Recompute usage_day, usage_latency and usage_attempt_day from every row (e.g. after a
    bulk load made with the triggers set aside). Runs the backfill statements of the
    migrations that made them."""
    from callm.ledger.attempts import backfill_sql
    from callm.ledger.backend import dialect
    from callm.ledger.db import _statements
    from callm.ledger.migrations import DAY_SQL, LAT_BUCKET_SQL, MIGRATIONS

    conn.execute("DELETE FROM usage_day")
    conn.execute("DELETE FROM usage_latency")
    conn.execute("DELETE FROM usage_attempt_day")
    conn.execute(backfill_sql(dialect(conn), FAILED_SQL, DAY_SQL[dialect(conn)]))
    if dialect(conn) == "postgres":  # what PostgreSQL's trigger would have written
        day = DAY_SQL["postgres"].format(ts="ts")
        conn.execute(
            f"INSERT INTO usage_day SELECT provider, model, {day}, count(*),"
            f" sum(CAST({FAILED_SQL.format(row='usage')} AS INTEGER)), sum(input_tokens),"
            " sum(output_tokens), total(cost_usd), sum(CAST(cost_usd IS NULL AS INTEGER))"
            " FROM usage GROUP BY 1, 2, 3"
        )
        conn.execute(
            f"INSERT INTO usage_latency SELECT provider, model,"
            f" {LAT_BUCKET_SQL.format(l='latency_ms')}, {day}, count(*), min(latency_ms),"
            " max(latency_ms) FROM usage WHERE latency_ms >= 0 GROUP BY 1, 2, 3, 4"
        )
        return
    script = next(m for m in reversed(MIGRATIONS) if "CREATE TABLE usage_day" in m)
    for stmt in _statements(script):
        if stmt.lstrip().startswith("INSERT INTO usage_"):
            conn.execute(stmt)


def to_csv(data: dict[str, Any]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", *FIELDS])
    for g in data["groups"]:
        w.writerow([g["key"], *("" if g[f] is None else g[f] for f in FIELDS)])
    return buf.getvalue()
