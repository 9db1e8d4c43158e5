"""Bench: the call log at scale, measured in-process.

    python bench/logs_bench.py [--rows N] [--keep DIR] [--runs K]

Builds a data DB of N logged calls (default 100,000: prompts of ~20 words, replies of ~120,
from a 3,000-word vocabulary, in 5,000 conversations of 20 turns, plus one of 200 turns),
indexed by the real FTS5 triggers of migration 7. Then times, in this process:

- `logs list` (20 newest) and `logs list --model M`: the query and the JSON rendering;
- `logs -q WORD` for a common word (in ~1/3 of calls), a rare one, and two words;
- the whole `callm logs list --json` / `callm logs -q WORD --json` command run in-process
  (callm.cli.app.run, output to a buffer): everything but interpreter start-up;
- continuing the 200-turn conversation: what `chat -c` adds before the request leaves
  (resume: find it, load its turns; fit: trim to the context window).

Goals (issue 14): list and -q < 100 ms each; continuing 200 turns < 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("sim", "sim-large")]


def build(db: Path, rows: int) -> float:
    from callm.ledger.db import connect

    rnd = random.Random(14)
    vocab = [f"w{i}" for i in range(3000)] + ["colour"] * 30  # "colour" in ~1/3 of calls
    t = time.perf_counter()
    conn = connect(db)
    now = time.time() - rows
    long_cid = "c0ffee000200"
    batch = []
    for i in range(rows):
        provider, model = MODELS[i % len(MODELS)]
        cid = f"{i // 20:012x}"
        if i >= rows - 200:  # the long one, on a model with a 200k window
            provider, model, cid = "sim", "sim-large", long_cid
        prompt = " ".join(rnd.choices(vocab, k=20))
        reply = " ".join(rnd.choices(vocab, k=120))
        batch.append((now + i, provider, model, "ok", 30, 150, cid, prompt, reply))
    if rows:
        batch[rows // 2] = (*batch[rows // 2][:7], "the rare zeppelin word", batch[rows // 2][8])
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO usage (ts, provider, model, outcome, input_tokens, output_tokens, cid,"
        " prompt, reply) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - t


def timed(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()  # warm: page cache, imports
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def cli(*args: str) -> None:
    from callm.cli.app import run

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = run(list(args))
    assert code == 0, out.getvalue()[:200]


def cli_json(*args: str) -> None:
    cli(*args, "--json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    tmp = a.keep or Path(tempfile.mkdtemp(prefix="callm-logs-bench-"))
    os.environ["CALLM_DATA_DIR"] = str(tmp)
    os.environ["CALLM_CONFIG"] = str(tmp / "config.toml")
    db = tmp / "callm.db"
    if not db.exists():
        print(f"building {a.rows:,} logged calls in {db} ...", flush=True)
        print(f"  built in {build(db, a.rows):.1f} s, {db.stat().st_size / 1e6:.0f} MB")

    from callm import conversations
    from callm.call_types import CallSpec
    from callm.config.schema import Config
    from callm.ledger import logs
    from callm.types import Message

    conn = logs.connect(db)

    def listing(**kw: object) -> None:
        for e in logs.list_entries(conn, **kw):  # type: ignore[arg-type]
            e.as_dict()

    cfg = Config()

    def resume() -> None:
        spec = CallSpec(model=None, messages=[])
        history = conversations.resume(cfg, spec, "c0ffee000200", lambda s: None)
        spec.messages = [*history, Message("user", "next")]
        conversations.fit(cfg, spec, lambda s: None)
        assert len(history) == 400

    results = [
        ("logs list (query + JSON dicts)", lambda: listing()),
        ("logs list --model gpt-4o", lambda: listing(model="gpt-4o")),
        ("logs -q colour (common word)", lambda: listing(query="colour")),
        ("logs -q zeppelin (rare word)", lambda: listing(query="zeppelin")),
        ("logs -q 'colour w17' (two words)", lambda: listing(query="colour w17")),
        ("callm logs list --json (in-process CLI)", lambda: cli("logs", "list", "--json")),
        (
            "callm logs -q colour --json (in-process CLI)",
            lambda: cli("logs", "-q", "colour", "--json"),
        ),
        ("chat -c: resume + fit a 200-turn conversation", resume),
    ]
    print(f"{'what':<48} {'median':>9} {'best':>9}")
    for label, fn in results:
        med, best = timed(fn, a.runs)
        print(f"{label:<48} {med * 1000:>7.1f} ms {best * 1000:>6.1f} ms")
    conn.close()


if __name__ == "__main__":
    main()
