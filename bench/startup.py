"""Bench: cold start of `callm --help` and `callm providers list` against `import typer`.

    python bench/startup.py [--runs 15] [--json] [--check]

Each command runs as a fresh subprocess (what a user waits for: interpreter start, imports,
work, exit); the figure is the median wall time of --runs runs, interleaved, after one warm-up
round (the child's CPU time is shown too: it moves less with machine load).
`providers list` reads a config with 20 providers and has no data DB, in a temp home with the
file keyring, so nothing of the user's is read. Goal: `--help` <= 1.3x `import typer`.
--check exits 1 when the goal is missed.
"""

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

GOAL = 1.3  # callm --help / import typer


def callm_cmd() -> list[str]:
    """The installed console script next to this interpreter, else `python -m callm`."""
    script = Path(sys.executable).with_name("callm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "callm"]


def isolated_env(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("CALLM_") or k.endswith("_API_KEY") or k == "PYTHONPROFILEIMPORTTIME")
    }
    env.update(
        HOME=str(root),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_DATA_HOME=str(root / "data"),
        CALLM_DATA_DIR=str(root / "data" / "callm"),
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
    )
    config = root / "config" / "callm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "\n".join(
            f'[providers.p{i:02d}]\ndriver = "openai-compatible"\n'
            f'base_url = "http://127.0.0.1:{8000 + i}/v1"\ndefault_model = "m{i}"\n'
            for i in range(20)
        )
    )
    return env


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run; cpu is the child's own user + system time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(cases: list[tuple[str, list[str]]], env: dict[str, str], runs: int) -> dict:
    """Runs interleaved (a b c a b c ...) so a change in machine load hits every command
    alike; one unmeasured warm-up round first. label -> (walls, cpus)."""
    walls: dict[str, list[float]] = {label: [] for label, _ in cases}
    cpus: dict[str, list[float]] = {label: [] for label, _ in cases}
    for round_ in range(runs + 1):
        for label, cmd in cases:
            wall, cpu = run_once(cmd, env)
            if round_:
                walls[label].append(wall)
                cpus[label].append(cpu)
    return {label: (walls[label], cpus[label]) for label, _ in cases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--check", action="store_true", help="exit 1 if --help misses the goal")
    args = parser.parse_args()

    callm = callm_cmd()
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ('python -c "import typer"', [sys.executable, "-c", "import typer"]),
        ("callm --help", [*callm, "--help"]),
        ("callm providers list (20)", [*callm, "providers", "list"]),
    ]
    with tempfile.TemporaryDirectory(prefix="callm-bench-") as tmp:
        results = measure(cases, isolated_env(Path(tmp)), args.runs)

    med = {label: statistics.median(w) for label, (w, _) in results.items()}
    typer_s = med['python -c "import typer"']
    rows = [
        {
            "command": label,
            "median_ms": round(med[label] * 1000, 1),
            "best_ms": round(min(w) * 1000, 1),
            "cpu_ms": round(statistics.median(c) * 1000, 1),
            "x_typer": round(med[label] / typer_s, 2),
        }
        for label, (w, c) in results.items()
    ]
    help_ratio = med["callm --help"] / typer_s
    ok = help_ratio <= GOAL
    if args.json:
        print(json.dumps({"runs": args.runs, "goal_x_typer": GOAL, "ok": ok, "rows": rows}))
    else:
        print(f"cold start, median of {args.runs} interleaved runs ({sys.executable})")
        print(f"{'command':<28} {'median':>9} {'best':>9} {'cpu':>9} {'x typer':>8}")
        for r in rows:
            print(
                f"{r['command']:<28} {r['median_ms']:>7.0f}ms {r['best_ms']:>7.0f}ms"
                f" {r['cpu_ms']:>7.0f}ms {r['x_typer']:>7.2f}x"
            )
        print(f"goal: callm --help <= {GOAL}x import typer: {'met' if ok else 'MISSED'}")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
