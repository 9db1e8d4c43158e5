"""Verify fan-out: 10 loopback providers that each answer their model listing after 500 ms.

    /work/venv/bin/python bench/verify_fanout.py [--providers 10] [--delay 0.5] [--runs 5]

Prints the wall time of `callm --json providers verify` (goal: < 1 s for 10 x 500 ms, i.e.
the checks overlap instead of adding up) next to `callm --version` (bare start-up) and
`callm --json providers list` (start-up plus config load: what any such command pays).
Everything runs on 127.0.0.1 with a fake key in a throwaway HOME. Not a test."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from loopback import Loopback, json_reply  # noqa: E402

CALLM = str(Path(sys.executable).with_name("callm"))
FAKE_KEY = "sk-test-FAKE0000000000000000"


def config(url: str, n: int) -> str:
    return "".join(
        f'[providers.p{i}]\ndriver = "openai-compatible"\nbase_url = "{url}/p{i}"\n'
        'key_env = "CALLM_BENCH_KEY"\n'
        for i in range(n)
    )


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    return time.perf_counter() - start, proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--providers", type=int, default=10)
    ap.add_argument("--delay", type=float, default=0.5, help="seconds before each answer")
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory() as home, Loopback() as srv:
        for i in range(opts.providers):
            srv.route(
                f"/p{i}/models",
                json_reply({"data": [{"id": "m1"}, {"id": "m2"}]}, delay=opts.delay),
            )
        cfg = Path(home) / "config.toml"
        cfg.write_text(config(srv.url, opts.providers))
        env = {
            **os.environ,
            "HOME": home,
            "XDG_CONFIG_HOME": home,
            "XDG_DATA_HOME": home,
            "CALLM_DATA_DIR": str(Path(home) / "data"),
            "CALLM_CONFIG": str(cfg),
            "CALLM_BENCH_KEY": FAKE_KEY,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        startup = [timed([CALLM, "--version"], env)[0] for _ in range(opts.runs)]
        floor = [timed([CALLM, "--json", "providers", "list"], env)[0] for _ in range(opts.runs)]
        walls: list[float] = []
        for _ in range(opts.runs):
            wall, proc = timed([CALLM, "--json", "providers", "verify"], env)
            rows = json.loads(proc.stdout)
            if proc.returncode != 0 or len(rows) != opts.providers:
                print(proc.stdout, proc.stderr, file=sys.stderr)
                return 1
            walls.append(wall)
        inner = max(r["latency_ms"] for r in rows)

    serial = opts.providers * opts.delay
    print(
        f"providers: {opts.providers}, each answering after {opts.delay * 1000:.0f} ms "
        f"(serial would take {serial:.1f} s)"
    )
    print(f"callm --version:            median {statistics.median(startup):.3f} s")
    print(
        f"callm providers list:       median {statistics.median(floor):.3f} s "
        "(start-up + config load, no network: the floor)"
    )
    print(
        f"callm providers verify:     median {statistics.median(walls):.3f} s, "
        f"min {min(walls):.3f} s, max {max(walls):.3f} s over {opts.runs} runs"
    )
    print(f"slowest single check:       {inner} ms (last run)")
    goal = statistics.median(walls) < 1.0
    print(f"goal < 1 s: {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
