"""Bench: `callm usage report` on a 1,000,000-row ledger.

    python bench/usage_report.py [--rows N] [--keep DIR] [--runs K]

Builds the ledger in one INSERT ... SELECT over a recursive CTE (rollup triggers set aside and
the rollups rebuilt in one statement: ~15 s, ~190 MB), then runs each command as a fresh
subprocess, interleaved, after a warm-up round: median and best wall time, and the child's
CPU time (steadier on a loaded machine). The same command on an empty ledger shows what is
CLI start-up; `in-process` lines time report() alone. Also checks the report's totals against
a plain aggregate over every row. Goal: `usage report --by model` < 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("gemini", "gemini-2.5-pro"),
    ("groq", "llama-3.1-8b-instant"),
    ("mistral", "mistral-large-latest"),
    ("deepseek", "deepseek-chat"),
    ("lab", "qwen3-32b"),
    ("sim", "sim-1"),
]


def build(db: Path, rows: int) -> float:
    """A ledger of `rows` calls over 90 days. The rollup trigger is set aside during the bulk
    insert and the rollup rebuilt in one statement (what migration 4 does), then restored."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from callm.ledger.db import connect
    from callm.ledger.report import rebuild_rollups

    t = time.perf_counter()
    conn = connect(db)
    conn.execute("PRAGMA cache_size = -262144")  # 256 MB for the index builds
    conn.execute("CREATE TEMP TABLE m (i INTEGER PRIMARY KEY, provider TEXT, model TEXT)")
    conn.executemany("INSERT INTO m VALUES (?, ?, ?)", [(i, *pm) for i, pm in enumerate(MODELS)])
    triggers = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'usage'"
    ).fetchall()
    now = time.time()
    conn.execute("BEGIN")
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(
        f"""
        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows}),
        r AS (SELECT x, abs(random()) AS a, abs(random()) AS b FROM n)
        INSERT INTO usage (ts, provider, model, driver, input_tokens, output_tokens,
                           cache_read_tokens, usage_source, cost_usd, price_source, latency_ms,
                           ttft_ms, outcome, error_kind, attempts)
        SELECT {now} - ({rows} - x) * {90 * 86400 / rows}, m.provider, m.model, m.provider,
               a % 4000, b % 1500, (a % 7 = 0) * (a % 2000), 'reported',
               CASE WHEN m.provider = 'lab' THEN NULL
                    ELSE (a % 4000) * 2.5e-6 + (b % 1500) * 1e-5 END,
               'catalog 2026-11-01', 150 + (b % 6000) + (a % 500), 80 + (b % 700),
               CASE WHEN a % 20 = 0 THEN 'error' ELSE 'ok' END,
               CASE WHEN a % 20 = 0 THEN 'rate_limit' END, 1
        FROM r JOIN m ON m.i = r.x % {len(MODELS)}
        """
    )
    rebuild_rollups(conn)
    for _, sql in triggers:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - t


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run; cpu is the child's own user + system time, which moves
    less than wall time with the load of a shared machine."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(
    cases: list[list[str]], env: dict[str, str], runs: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Every case once per round, interleaved, after one unmeasured warm-up round."""
    exe = [sys.executable, "-m", "callm"]
    out: dict[str, tuple[list[float], list[float]]] = {" ".join(c): ([], []) for c in cases}
    for i in range(runs + 1):
        for args in cases:
            wall, cpu = run_once([*exe, *args], env)
            if i:
                out[" ".join(args)][0].append(wall)
                out[" ".join(args)][1].append(cpu)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="data dir to (re)use instead of a temp dir")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = a.keep or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        db = data / "callm.db"
        if not db.exists():
            print(f"building {a.rows:,} rows ... ", end="", flush=True)
            print(f"{build(db, a.rows):.2f} s ({db.stat().st_size / 1e6:.0f} MB)")
        env = {**os.environ, "CALLM_DATA_DIR": str(data), "CALLM_CONFIG": str(data / "none.toml")}
        exe = [sys.executable, "-m", "callm"]
        empty = Path(tmp) / "empty"
        empty.mkdir()
        cases = [
            ["--help"],
            ["usage", "report", "--by", "model", "--json"],
            ["usage", "report", "--by", "model"],
            ["usage", "report", "--by", "provider", "--json"],
            ["usage", "report", "--by", "day", "--json"],
            ["usage", "report", "--by", "model", "--since", "7d", "--json"],
            ["usage", "report", "--by", "model", "--since", "36h", "--json"],
        ]
        load = os.getloadavg()[0]
        print(f"{'callm ...':<48} {'median':>8} {'best':>8} {'cpu':>8}   (load {load:.1f})")
        results = measure(cases, env, a.runs)
        results["usage report --by model --json, EMPTY ledger"] = measure(
            [cases[1]], {**env, "CALLM_DATA_DIR": str(empty)}, a.runs
        )[" ".join(cases[1])]
        for label, (walls, cpus) in results.items():
            print(
                f"{label:<48} {statistics.median(walls):>7.3f}s {min(walls):>7.3f}s"
                f" {statistics.median(cpus):>7.3f}s"
            )
        check(db, env, exe)
        in_process(data, a.runs)


def in_process(data: Path, runs: int) -> None:
    """The report's own work, without the interpreter and CLI start-up."""
    os.environ["CALLM_DATA_DIR"] = str(data)
    from callm.ledger.report import parse_when, report

    for by in ("model", "provider", "day"):
        for since in (None, "7d"):
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                report(by=by, since=parse_when(since) if since else None)
                times.append(time.perf_counter() - t)
            label = f"report(by={by!r}, since={since!r})"
            print(f"in-process {label:<40} median {statistics.median(times):.3f} s")


def check(db: Path, env: dict[str, str], exe: list[str]) -> None:
    """The rollup's answer equals a plain aggregate over every row."""
    import json
    import sqlite3

    got = json.loads(
        subprocess.run(
            [*exe, "usage", "report", "--json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )["totals"]
    conn = sqlite3.connect(db)
    n, fails, tin, cost, unpriced = conn.execute(
        "SELECT count(*), sum(outcome != 'ok'), sum(input_tokens), total(cost_usd),"
        " sum(cost_usd IS NULL) FROM usage"
    ).fetchone()
    ok = (got["requests"], got["failures"], got["input_tokens"], got["unpriced_requests"]) == (
        n,
        fails,
        tin,
        unpriced,
    ) and abs(got["cost_usd"] - cost) < 1e-6 * max(1.0, cost)
    print(f"check against a plain aggregate of {n:,} rows: {'ok' if ok else f'MISMATCH {got}'}")


if __name__ == "__main__":
    main()
