"""Bench: what the newest typer costs per command, against the typer callm pins (issue 11).

typer 0.29 builds a pydantic TypeAdapter for every option of the command it runs. This times,
in fresh interpreters, a 12-option command run once (all options given), its `--help`, and
the same run in an app that imports pydantic anyway (as callm's commands that read the config
do), on two interpreters: callm's venv (pinned typer) and one with the newest typer, e.g. the
one .ci/run makes:

    python -m venv .venv-typer-latest && .venv-typer-latest/bin/pip install -e '.[test]'
    .venv-typer-latest/bin/pip install 'typer>=0.29'
    python bench/typer_pin.py [--runs 15] [--latest .venv-typer-latest/bin/python] [--json]

The pin below 0.29 in pyproject stays only while `extra` (newest - pinned, median of a plain
run) is over 50 ms; the figure goes in the comment beside the pin.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import ROOT, Series, run_child

LIMIT_MS = 50.0

APP = """
import sys
if "--with-pydantic" in sys.argv:
    sys.argv.remove("--with-pydantic")
    import pydantic  # noqa: F401
from typing import Annotated
import typer

app = typer.Typer(add_completion=False)


@app.command()
def run(
    name: Annotated[str, typer.Argument()],
    model: Annotated[str, typer.Option("--model", "-m")] = "m",
    system: Annotated[str | None, typer.Option("--system", "-s")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o")] = None,
    fallback: Annotated[list[str] | None, typer.Option("--fallback")] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream")] = False,
    estimate: Annotated[bool, typer.Option("--estimate")] = False,
    max_cost: Annotated[float | None, typer.Option("--max-cost")] = None,
    timeout: Annotated[float, typer.Option("--timeout")] = 60.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    pass


app()
"""

ARGS = [
    "x", "-m", "a/b", "-s", "sys", "--temperature", "0.5", "--max-tokens", "10", "-o", "k=v",
    "--fallback", "c/d", "--no-stream", "--max-cost", "0.1", "--timeout", "5", "-q", "--json",
]  # fmt: skip


def typer_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('typer'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def series(label: str, cmd: list[str], runs: int) -> Series:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    s = Series(label)
    run_child(cmd, env)  # warm the page cache and __pycache__
    for _ in range(runs):
        s.runs.append(run_child(cmd, env))
    if not s.ok:
        raise SystemExit(f"{label} failed: {s.runs[-1].stderr[-400:]}")
    return s


def main() -> int:
    parser = argparse.ArgumentParser(description="typer pin: newest typer's cost per command")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pinned", default=sys.executable, help="python with the pinned typer")
    parser.add_argument(
        "--latest", default=str(ROOT / ".venv-typer-latest" / "bin" / "python"),
        help="python with the newest typer",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(args.latest).exists():
        raise SystemExit(f"no {args.latest}: make it as the docstring says, or pass --latest")
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app12.py"
        app.write_text(APP)
        cases = {
            "run": [str(app), *ARGS],
            "run, pydantic already imported": [str(app), "--with-pydantic", *ARGS],
            "--help": [str(app), "--help"],
        }
        rows = []
        for label, tail in cases.items():
            row: dict[str, object] = {"case": label}
            for which in ("pinned", "latest"):
                s = series(f"{which} {label}", [getattr(args, which), *tail], args.runs)
                row[which], row[f"{which}_cpu"] = s.wall * 1000, s.cpu * 1000
            row["extra_ms"] = row["latest"] - row["pinned"]  # type: ignore[operator]
            row["extra_cpu_ms"] = row["latest_cpu"] - row["pinned_cpu"]  # type: ignore[operator]
            rows.append(row)
    versions = {w: typer_version(getattr(args, w)) for w in ("pinned", "latest")}
    # CPU time decides: wall time on a shared machine swings with the load; CPU does less
    extra = float(rows[0]["extra_cpu_ms"])  # type: ignore[arg-type]
    verdict = "keep the pin" if extra > LIMIT_MS else "drop the pin"
    if args.json:
        print(json.dumps({"versions": versions, "runs": args.runs, "rows": rows,
                          "limit_ms": LIMIT_MS, "verdict": verdict}))  # fmt: skip
        return 0
    print(f"typer {versions['pinned']} (pinned) vs {versions['latest']} (newest), "
          f"12-option command, median of {args.runs} fresh runs")  # fmt: skip
    print(f"{'case':<32} {'wall: pinned':>13} {'newest':>8} {'extra':>8}"
          f" {'cpu: pinned':>12} {'newest':>8} {'extra':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['case']:<32} {r['pinned']:>11.0f}ms {r['latest']:>6.0f}ms"
              f" {r['extra_ms']:>+6.0f}ms {r['pinned_cpu']:>10.0f}ms {r['latest_cpu']:>6.0f}ms"
              f" {r['extra_cpu_ms']:>+6.0f}ms")  # fmt: skip
    print(f"newest typer costs {extra:.0f} ms of CPU per command (limit {LIMIT_MS:.0f} ms):"
          f" {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
