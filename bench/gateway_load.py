"""Load on `callm serve`: N concurrent streaming clients (httpx async) through one gateway to
a loopback upstream (bench/sse_server.py), against the same clients straight to the upstream.

    python bench/gateway_load.py [--clients 200] [--tokens 50] [--litellm]

Checks every stream completed (ends with `data: [DONE]`) and the ledger has one row per
request; prints time to first token (p50/p99) direct and through the gateway, the overhead,
and chunks per second. With --litellm, a LiteLLM proxy from bench/.venv-peers (if installed
there: `bench/.venv-peers/bin/pip install 'litellm[proxy]'`, or LITELLM=path/to/litellm)
in front of the same upstream,
measured the same way in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
PEERS_BIN = BENCH / ".venv-peers" / "bin"


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _upstream() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "sse_server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline().strip())


def _drain(stream: Any) -> None:
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


def _gateway(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "callm", "serve", "--no-auth", "--port", "0", "--log"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "listening on" not in line:
        raise SystemExit(f"callm serve did not start: {line}")
    _drain(proc.stderr)  # the JSON log lines
    return proc, line.split("listening on ")[1].split()[0]


def _litellm(upstream: str) -> tuple[subprocess.Popen[str], str] | None:
    exe = Path(os.environ.get("LITELLM") or PEERS_BIN / "litellm")
    if not exe.exists():
        print(f"litellm: {exe} not installed (skipped)")
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            str(exe),
            "--model",
            "openai/gpt-bench",
            "--api_base",
            upstream,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        # no master key: a local, loopback-only benchmark (recent LiteLLM refuses otherwise)
        env={
            **os.environ,
            "OPENAI_API_KEY": "sk-bench-FAKE",
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):  # it takes ~20 s to start
        try:
            if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    print("litellm: did not start (skipped)")
    return None


async def _one(client: httpx.AsyncClient, url: str, model: str) -> tuple[float, int, bool]:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    t0 = time.perf_counter()
    ttft = -1.0
    chunks = 0
    tail = b""
    try:
        async with client.stream("POST", url, json=body) as r:
            async for data in r.aiter_bytes():
                if ttft < 0:
                    ttft = time.perf_counter() - t0
                chunks += data.count(b"data: ")
                tail = (tail + data)[-64:]
    except httpx.HTTPError as exc:  # counted as incomplete, and said
        print(f"{url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return max(ttft, 0.0), chunks, False
    return ttft, chunks, r.status_code == 200 and tail.rstrip().endswith(b"data: [DONE]")


async def _load(url: str, model: str, n: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await _one(client, url, model)  # warm-up (imports, first connection)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(_one(client, url, model) for _ in range(n)))
        wall = time.perf_counter() - t0
    ttfts = [r[0] * 1000 for r in results]
    return {
        "complete": sum(r[2] for r in results),
        "p50": statistics.median(ttfts),
        "p99": _pct(ttfts, 0.99),
        "chunks_per_s": sum(r[1] for r in results) / wall,
        "wall_s": wall,
    }


async def _serial(url: str, model: str, n: int = 20) -> float:
    """Median time to first token of `n` requests one after another (no load)."""
    async with httpx.AsyncClient(timeout=60) as client:
        await _one(client, url, model)
        ttfts = [(await _one(client, url, model))[0] * 1000 for _ in range(n)]
    return statistics.median(ttfts)


def _rows(data_dir: Path) -> int:
    db = data_dir / "callm.db"
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--litellm", action="store_true")
    args = ap.parse_args()
    n = args.clients
    up, port = _upstream()
    upstream = f"http://127.0.0.1:{port}/t{args.tokens}/v1"
    procs: list[subprocess.Popen[str]] = [up]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CALLM_")}
            env.update(XDG_CONFIG_HOME=str(root / "c"), CALLM_DATA_DIR=str(root / "d"))
            cfg = root / "c" / "callm" / "config.toml"
            cfg.parent.mkdir(parents=True)
            cfg.write_text(
                f'[providers.up]\ndriver = "openai-compatible"\nbase_url = "{upstream}"\n'
                'key = "none"\n[retry]\nattempts = 1\n'
            )
            gw, url = _gateway(env)
            procs.append(gw)
            direct = asyncio.run(_load(upstream + "/chat/completions", "gpt-bench", n))
            through = asyncio.run(_load(url + "/v1/chat/completions", "up/gpt-bench", n))
            idle_direct = asyncio.run(_serial(upstream + "/chat/completions", "gpt-bench"))
            idle_callm = asyncio.run(_serial(url + "/v1/chat/completions", "up/gpt-bench"))
            time.sleep(0.5)
            rows = _rows(root / "d") - 21  # the serial requests and their warm-up
            out: dict[str, Any] = {
                "clients": n,
                "tokens": args.tokens,
                "direct": direct,
                "callm": through,
                "callm_rows": rows,
                "callm_overhead_p50_ms": through["p50"] - direct["p50"],
                "callm_overhead_p99_ms": through["p99"] - direct["p99"],
                "idle_ttft_ms": {"direct": idle_direct, "callm": idle_callm},
            }
            if args.litellm:
                lite = _litellm(upstream)
                if lite:
                    procs.append(lite[0])
                    res = asyncio.run(
                        _load(lite[1] + "/v1/chat/completions", "openai/gpt-bench", n)
                    )
                    out["litellm"] = res
                    out["litellm_overhead_p50_ms"] = res["p50"] - direct["p50"]
            print(json.dumps(out, indent=2))
            ok = through["complete"] == n and rows == n + 1  # + the warm-up request
            print(
                f"every stream complete: {through['complete']}/{n}; rows recorded: {rows}/{n + 1}"
            )
            sys.exit(0 if ok else 1)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
