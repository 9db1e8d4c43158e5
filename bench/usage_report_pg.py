"""Bench: `callm usage report` on a 1,000,000-row ledger, SQLite and PostgreSQL side by side.

    python bench/usage_report_pg.py [--rows N] [--runs K] [--url postgresql://...]

Builds the SQLite ledger as bench/usage_report.py does, then loads the very same rows into
PostgreSQL with COPY (rollup trigger set aside, rollups rebuilt in two statements, as a
migration would). Without --url a private cluster is started for the run (tests/pgcluster.py:
initdb in a temp dir). Then each report runs as a fresh subprocess on each backend, and the
two JSON outputs must be identical.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "bench")]

from usage_report import build, run_once  # noqa: E402

COLS = (
    "ts, provider, model, driver, input_tokens, output_tokens, cache_read_tokens,"
    " usage_source, cost_usd, price_source, latency_ms, ttft_ms, outcome, error_kind, attempts"
)


def load_pg(db: Path, url: str) -> float:
    """The SQLite rows into PostgreSQL: COPY, then the rollups in one pass."""
    import sqlite3

    from callm.ledger import pg
    from callm.ledger.report import rebuild_rollups

    t = time.perf_counter()
    conn = pg.connect(url)
    conn.execute("ALTER TABLE usage DISABLE TRIGGER usage_rollup")
    src = sqlite3.connect(db)
    with conn.raw.cursor() as cur, cur.copy(f"COPY usage ({COLS}) FROM STDIN") as copy:
        for row in src.execute(f"SELECT {COLS} FROM usage"):
            copy.write_row(row)
    src.close()
    conn.execute("BEGIN")
    rebuild_rollups(conn)
    conn.execute("COMMIT")
    conn.execute("ALTER TABLE usage ENABLE TRIGGER usage_rollup")
    conn.execute("ANALYZE")
    conn.discard()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--url", help="an empty PostgreSQL database (default: a private cluster)")
    a = ap.parse_args()
    cluster = None
    url = a.url
    if url is None:
        import pgcluster

        cluster = pgcluster.start_cluster()
        url = cluster.url()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            db = data / "callm.db"
            print(f"SQLite: building {a.rows:,} rows ... {build(db, a.rows):.1f} s")
            print(f"PostgreSQL: loading the same rows ... {load_pg(db, url):.1f} s")
            env = {**os.environ, "CALLM_DATA_DIR": str(data), "CALLM_CONFIG": str(data / "x")}
            env.pop("CALLM_LEDGER_URL", None)
            envs = {"sqlite": env, "postgresql": {**env, "CALLM_LEDGER_URL": url}}
            cases = [
                ["usage", "report", "--by", "model", "--json"],
                ["usage", "report", "--by", "provider", "--json"],
                ["usage", "report", "--by", "day", "--json"],
                ["usage", "report", "--by", "model", "--since", "36h", "--json"],
            ]
            exe = [sys.executable, "-m", "callm"]
            print(f"{'callm ...':<46} {'backend':<11} {'median':>8} {'best':>8}", end="")
            print(f"   (load {os.getloadavg()[0]:.1f})")
            for args in cases:
                for name, e in envs.items():
                    walls = [run_once([*exe, *args], e)[0] for _ in range(a.runs)]
                    label = " ".join(args)
                    print(
                        f"{label:<46} {name:<11} {statistics.median(walls):>7.3f}s"
                        f" {min(walls):>7.3f}s"
                    )
            same(exe, envs, cases)
    finally:
        if cluster is not None:
            import pgcluster

            pgcluster.remove(cluster)


def same(exe: list[str], envs: dict[str, dict[str, str]], cases: list[list[str]]) -> None:
    import subprocess

    for args in cases:
        outs = {
            name: subprocess.run(
                [*exe, *args], env=e, capture_output=True, text=True, check=True
            ).stdout
            for name, e in envs.items()
        }
        verdict = "identical" if len(set(outs.values())) == 1 else "DIFFERENT"
        print(f"{' '.join(args)}: SQLite and PostgreSQL output {verdict}")


if __name__ == "__main__":
    main()
