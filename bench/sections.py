"""The benchmark sections run by run_all.py. Each takes the run's Bench (workspace, env,
loopback server, repetitions) and stores plain data in `b.results[section]`; report.py turns
it into Markdown. Scripts the other benchmarks live in (startup.py, verify_fanout.py,
usage_report.py) are called as they are, when present."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import (
    BENCH,
    CALLM_PY,
    PEERS,
    PEERS_PY,
    Case,
    Series,
    interleaved,
    log,
    series,
)
from sse_server import token

if TYPE_CHECKING:
    from run_all import Bench

CALLM = str(CALLM_PY.with_name("callm"))
LLM = str(PEERS / "bin" / "llm")
PY = str(CALLM_PY)
PEER_PY = str(PEERS_PY)
FLOOR = str(BENCH / "floor_httpx.py")
SDK = str(BENCH / "peer_openai_sdk.py")
# the third-party and stdlib imports of callm chat (pydantic only when a file changed)
DEPS = "typer + sqlite3 + httpx"
DEPS_CALLM = "typer + sqlite3 + httpx without its CLI (as callm)"
_TIMED = re.compile(
    r"^(?P<label>[^\d\s].*?)[:\s]+(?:median\s+)?(?P<v>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)\b", re.M
)


def expected_text(n: int) -> str:
    return "".join(token(i) for i in range(n)).strip()


def rows(found: dict[str, Series]) -> list[dict[str, Any]]:
    return [s.as_dict() for s in found.values()]


def medians_from_text(text: str) -> list[dict[str, Any]]:
    """The first time on each line of a script's plain output: `label ... median 0.123 s`
    or `label   0.123s  0.100s ...` (a table whose first column is the median)."""
    out = []
    for m in _TIMED.finditer(text):
        v = float(m.group("v")) / (1000 if m.group("unit") == "ms" else 1)
        out.append({"label": m.group("label").strip(), "median_s": v})
    return out


def _script(b: Bench, name: str, args: list[str], timeout: float) -> dict[str, Any] | None:
    """Run bench/NAME as it is (another benchmark's script); None when it is not there."""
    path = BENCH / name
    if not path.exists():
        return None
    try:
        p = subprocess.run(
            [PY, str(path), *args],
            env=b.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {
            "script": name,
            "args": args,
            "rc": None,
            "stdout": "",
            "stderr": f"timed out after {timeout:.0f} s",
        }
    return {
        "script": name,
        "args": args,
        "rc": p.returncode,
        "stdout": p.stdout,
        "stderr": p.stderr[-2000:],
    }


# ---- cold start ---------------------------------------------------------------------------


def no_copy_env(b: Bench) -> dict[str, str]:
    """b.env with a cache folder callm cannot create: every run validates the config and the
    catalog with pydantic, as the first run after an edit does (callm.validated_cache)."""
    blocker = b.work / "cache-blocked"
    blocker.write_text("a file where the cache folder would go\n")
    return {**b.env, "CALLM_CACHE_DIR": str(blocker / "callm")}


NO_COPY = " (no validated copy)"


def startup(b: Bench) -> None:
    res: dict[str, Any] = {}
    ext = _script(b, "startup.py", ["--json", "--runs", str(b.reps.light)], timeout=300)
    own_floor = True
    if ext is not None:
        res["script"] = {k: ext[k] for k in ("script", "args", "rc", "stderr")}
        try:
            data = json.loads(ext["stdout"].strip().splitlines()[-1])
            res["script_rows"] = [
                {
                    "label": r["command"],
                    "median_s": r["median_ms"] / 1000,
                    "best_s": r["best_ms"] / 1000,
                    "cpu_s": r["cpu_ms"] / 1000,
                    "ok": True,
                }
                for r in data["rows"]
            ]
            own_floor = False
        except (ValueError, KeyError, IndexError):
            res["script_output"] = ext["stdout"][-2000:]
    # Our own interleaved rounds: the peers, with callm --help and the typer floor beside
    # them so every ratio in this table comes from the same rounds.
    cases = [
        Case("python -c pass", [PY, "-c", "pass"]),
        Case('python -c "import typer"', [PY, "-c", "import typer"]),
        Case('python -c "import typer, pydantic"', [PY, "-c", "import typer, pydantic"]),
        Case("callm --help", [CALLM, "--help"]),
        Case("callm providers list (20 providers)", [CALLM, "providers", "list"]),
        Case(
            "callm providers list (20 providers)" + NO_COPY,
            [CALLM, "providers", "list"],
            env=no_copy_env(b),
        ),
    ]
    if b.peer(PEERS / "bin" / "llm"):
        cases += [Case("llm --help", [LLM, "--help"]), Case("llm keys list", [LLM, "keys", "list"])]
    res["rows"] = rows(interleaved(cases, b.env, b.reps.light))
    res["own_floor"] = own_floor
    b.results["startup"] = res


# ---- the typer pin (issue 11) ------------------------------------------------------------

TYPER_LATEST = BENCH / ".venv-typer-latest"


def _typer_latest() -> Path | None:
    """A venv with callm and the newest typer (made once, like the peers' venv). callm pins
    typer below 0.29, so typer is upgraded after callm is installed (pip warns; fine here)."""
    py = TYPER_LATEST / "bin" / "python"
    ready = TYPER_LATEST / ".ready"
    if ready.exists():
        return py
    log("creating bench/.venv-typer-latest (callm + newest typer) ...")
    root = BENCH.parent
    with (BENCH / "out" / "typer_latest.log").open("w") as fh:
        for cmd in (
            [PY, "-m", "venv", "--clear", str(TYPER_LATEST)],
            [str(py), "-m", "pip", "install", "-q", "-e", str(root)],
            [str(py), "-m", "pip", "install", "-q", "typer>=0.29"],
        ):
            if subprocess.call(cmd, stdout=fh, stderr=fh) != 0:
                log("could not make it; see bench/out/typer_latest.log")
                return None
    ready.touch()
    return py


def typer_pin(b: Bench) -> None:
    """bench/typer_pin.py (when present): what the newest typer costs per command."""
    if not (BENCH / "typer_pin.py").exists():
        b.results["typer_pin"] = {"missing": True}
        return
    latest = _typer_latest()
    if latest is None:
        b.results["typer_pin"] = {"error": "no venv with the newest typer"}
        return
    runs = str(max(5, b.reps.light))
    ext = _script(b, "typer_pin.py", ["--json", "--runs", runs, "--latest", str(latest)], 600)
    assert ext is not None
    try:
        b.results["typer_pin"] = json.loads(ext["stdout"].strip().splitlines()[-1])
    except (ValueError, IndexError):
        b.results["typer_pin"] = {"error": f"rc={ext['rc']}: {ext['stderr'][-300:]}"}


# ---- one-shot chat ------------------------------------------------------------------------


def _chat_cases(b: Bench, tokens: int, big: bool) -> list[Case]:
    url = b.base_url(tokens)
    cases = [
        Case(
            "callm chat", [CALLM, "chat", "-m", "big/gpt-bench" if big else "lab/gpt-bench", "hi"]
        ),
    ]
    if not big:
        cases.append(Case("callm chat" + NO_COPY, cases[0].cmd, env=no_copy_env(b)))
    # the floor runs on callm's own interpreter: it imports the same stack (issue 11)
    cases.insert(0, Case("floor: typer + httpx + pydantic, one request", [PY, FLOOR, url]))
    if b.peer(PEERS_PY):
        cases.append(Case("openai SDK script", [PEER_PY, SDK, url]))
    if not big and b.peer(PEERS / "bin" / "llm"):
        cases.append(Case("llm", [LLM, "-m", "gpt-bench", "hi"]))
    return cases


def one_shot(b: Bench) -> None:
    cases = _chat_cases(b, 200, big=False)
    want = expected_text(200)
    checks = {}
    for c in cases:  # each client must really print the whole reply
        rc, out, err = b.capture(list(c.cmd))
        checks[c.label] = "ok" if rc == 0 and out.strip() == want else f"rc={rc}: {err[-300:]!r}"
    found = interleaved(cases, b.env, b.reps.light)
    b.results["chat"] = {"rows": rows(found), "checks": checks, "tokens": 200}


# ---- streaming throughput, end to end -----------------------------------------------------


def stream_e2e(b: Bench) -> None:
    out: list[dict[str, Any]] = []
    n = 200_000
    for c in _chat_cases(b, n, big=True):
        reps = b.reps.sdk_stream if c.label.startswith("openai") else b.reps.heavy
        log(f"  {c.label}: {reps} run(s) of {n:,} chunks")
        s = series(c.label, c.cmd, b.env, reps, timeout=600)
        out.append(s.as_dict())
    b.results["stream"] = {"rows": out, "chunks": n}


# ---- in-process parsing -------------------------------------------------------------------


def _parse_run(py: str, impl: str, tokens: int, feed: str) -> dict[str, Any]:
    p = subprocess.run(
        [
            py,
            str(BENCH / "parse_bench.py"),
            impl,
            "--tokens",
            str(tokens),
            "--reps",
            "1",
            "--feed",
            feed,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if p.returncode != 0:
        raise RuntimeError(f"parse_bench {impl}: {p.stderr[-500:]}")
    return json.loads(p.stdout)


def parse_inproc(b: Bench) -> None:
    """One process per (impl, rep), interleaved, so load changes hit all alike."""
    n = 200_000
    impls = [("callm", PY), ("callm+acc", PY), ("raw", PY)]
    feeds = ["event"] if b.reps.mode_quick else ["event", "64k"]
    res: dict[str, Any] = {"tokens": n, "rows": []}
    for feed in feeds:
        got: dict[str, list[dict[str, Any]]] = {i: [] for i, _ in impls}
        # 64 KiB slices are a side view (how much is per-call overhead): fewer runs
        for _ in range(b.reps.inproc if feed == "event" else min(3, b.reps.inproc)):
            for impl, py in impls:
                if feed != "event" and impl == "callm+acc":
                    continue
                got[impl].append(_parse_run(py, impl, n, feed))
        res["rows"] += [_parse_row(impl, feed, n, runs) for impl, runs in got.items() if runs]
    if b.peer(PEERS_PY):
        sdk_n = b.reps.sdk_tokens
        log(f"  openai SDK in-process: {sdk_n:,} chunks")
        res["rows"].append(
            _parse_row("openai", "event", sdk_n, [_parse_run(PEER_PY, "openai", sdk_n, "event")])
        )
    b.results["parse"] = res


def _parse_row(impl: str, feed: str, n: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["times"][0] for r in runs]
    cpus = [r["cpu"][0] for r in runs]
    med = statistics.median(walls)
    return {
        "impl": impl,
        "feed": feed,
        "tokens": n,
        "median_s": med,
        "cpu_s": statistics.median(cpus),
        "us_per_chunk": med / n * 1e6,
        "cpu_us_per_chunk": statistics.median(cpus) / n * 1e6,
        "runs": len(runs),
        "text_chars": runs[0]["text_chars"],
    }


# ---- rendering ----------------------------------------------------------------------------


def _render_lines(b: Bench, args: list[str], timeout: float) -> tuple[list[dict[str, Any]], str]:
    cmd = [PY, str(BENCH / "render_bench.py"), *args]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=b.env)
    try:
        stdout, stderr = p.communicate(timeout=timeout)
        note = "" if p.returncode == 0 else stderr[-400:]
    except subprocess.TimeoutExpired:
        p.kill()
        stdout, _ = p.communicate()
        note = f"stopped after {timeout:.0f} s"
    return [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")], note


def render(b: Bench) -> None:
    probe, _ = _render_lines(
        b,
        [
            "--doc",
            "fence",
            "--tokens",
            "50",
            "--reps",
            "1",
            "--draw-probe",
            "2000",
            "4000",
            "8000",
            "16000",
            "32000",
        ],
        120,
    )
    mixed, note = _render_lines(b, ["--tokens", "10000", "20000", "--reps", str(b.reps.light)], 300)
    fence_sizes = [1000, 2000, 4000, 8000]
    fence, fence_note = _render_lines(
        b, ["--doc", "fence", "--reps", "1", "--tokens", *map(str, fence_sizes)], 30
    )
    b.results["render"] = {
        "draw_probe": next((r["draw_probe"] for r in probe if "draw_probe" in r), []),
        "mixed": mixed,
        "mixed_note": note,
        "fence": fence,
        "fence_sizes": fence_sizes,
        "fence_note": fence_note,
    }


# ---- scripts of the other benchmarks --------------------------------------------------------


def verify_fanout(b: Bench) -> None:
    ext = _script(b, "verify_fanout.py", ["--runs", str(min(b.reps.light, 5))], timeout=300)
    if ext is None:
        b.results["fanout"] = {"missing": True}
        return
    b.results["fanout"] = {**ext, "medians": medians_from_text(ext["stdout"])}


def usage_report(b: Bench) -> None:
    ext = _script(b, "usage_report.py", ["--runs", str(b.reps.report_runs)], timeout=400)
    if ext is None:
        b.results["report"] = {"missing": True}
        return
    b.results["report"] = {**ext, "medians": medians_from_text(ext["stdout"])}


def usage_report_pg(b: Bench) -> None:
    """The same report on both backends (issue 17); needs PostgreSQL's initdb on PATH."""
    import shutil

    if shutil.which("initdb") is None:
        b.results["report_pg"] = {"missing": True, "why": "no initdb on PATH"}
        return
    runs = ["--runs", str(b.reps.report_runs)]
    ext = _script(b, "usage_report_pg.py", runs, timeout=1200)
    b.results["report_pg"] = ext if ext is not None else {"missing": True}


# ---- where the time goes ------------------------------------------------------------------


def profile(b: Bench) -> None:
    """Evidence for the misses: import costs, -X importtime and cProfile of a one-shot chat."""
    imports = [
        ("typer", "import typer"),
        ("pydantic", "import pydantic"),
        # `import pydantic` is lazy; a BaseModel (the config schema) pulls in the model machinery
        ("pydantic.BaseModel", "from pydantic import BaseModel"),
        ("sqlite3", "import sqlite3"),
        (DEPS, "import typer, sqlite3, httpx"),
        # what callm's chat path imports: httpx without its command line (transport/httpx_lib)
        (DEPS_CALLM, "import typer, sqlite3, callm.transport.httpx_lib"),
        ("rich.markdown + rich.live", "import rich.markdown, rich.live"),
        # httpx imports its own command line (httpx._main) when these are installed, as they
        # are beside callm: part of a plain `import httpx` (the floor, the SDK), not callm's
        (
            "httpx._main's click, rich, pygments",
            "import click, pygments.lexers, rich.console, rich.progress, rich.syntax, rich.table",
        ),
    ]
    cases = [Case(f"import {label}", [PY, "-c", code]) for label, code in imports]
    cases.append(Case("import httpx", [PY, "-c", "import httpx"]))
    cases.append(Case("import httpx + httpx.Client()", [PY, "-c", "import httpx; httpx.Client()"]))
    res: dict[str, Any] = {"imports": rows(interleaved(cases, b.env, b.reps.light))}
    chat = [CALLM, "chat", "-m", "lab/gpt-bench", "hi"]
    p = subprocess.run(
        [PY, "-X", "importtime", "-m", "callm", *chat[1:]],
        env=b.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    res["importtime_chat"] = importtime_top(p.stderr)
    p = subprocess.run(
        [PY, "-X", "importtime", "-m", "callm", "--help"],
        env=b.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    res["importtime_help"] = importtime_top(p.stderr)
    res["phases_chat"] = chat_phases(b)
    res["cprofile_chat"] = cprofile(b, ["-m", "callm", *chat[1:]], "chat.pstats")
    if not b.reps.mode_quick:
        big = ["-m", "callm", "chat", "-m", "big/gpt-bench", "hi"]
        res["cprofile_stream"] = cprofile(
            b, big, "stream.pstats", sort="tottime", n=16, restrict=None
        )
    b.results["profile"] = res


def chat_phases(b: Bench, runs: int = 7) -> dict[str, float]:
    """Median milliseconds per phase of `callm chat` over a few runs (chat_phases.py)."""
    got: dict[str, list[float]] = {}
    for _ in range(runs):
        p = subprocess.run(
            [PY, str(BENCH / "chat_phases.py"), "lab/gpt-bench"],
            env=b.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        try:
            data = json.loads(p.stderr.strip().splitlines()[-1])
        except (ValueError, IndexError):
            continue
        for k, v in data["ms"].items():
            got.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in got.items()}


def importtime_top(stderr: str, n: int = 16) -> dict[str, list[dict[str, Any]]]:
    """From -X importtime: the top-level imports by cumulative time, and the self time of
    every import summed per top-level package (who costs what, wherever it was imported
    from). Its own overhead inflates every figure a little."""
    top: list[dict[str, Any]] = []
    by_pkg: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        self_us = parts[0].rsplit(":", 1)[-1].strip()
        if len(parts) != 3 or not parts[1].strip().isdigit() or not self_us.isdigit():
            continue
        name = parts[2].rstrip()
        module = name.strip()
        pkg = module.split(".", 1)[0]
        by_pkg[pkg] = by_pkg.get(pkg, 0) + int(self_us)
        if not name.startswith("  "):
            top.append({"module": module, "cumulative_ms": int(parts[1]) / 1000})
    top.sort(key=lambda r: -r["cumulative_ms"])
    pkgs = sorted(by_pkg.items(), key=lambda kv: -kv[1])
    mods: dict[str, int] = {}
    for line in stderr.splitlines():
        parts = line.split("|")
        if (
            line.startswith("import time:")
            and len(parts) == 3
            and parts[2].strip().startswith("callm")
        ):
            self_us = parts[0].rsplit(":", 1)[-1].strip()
            if self_us.isdigit():
                mods[parts[2].strip()] = int(self_us)
    return {
        "callm_modules": [
            {"module": k, "cumulative_ms": v / 1000}
            for k, v in sorted(mods.items(), key=lambda kv: -kv[1])[:10]
        ],
        "top": top[:n],
        "packages": [{"module": k, "cumulative_ms": v / 1000} for k, v in pkgs[:n]],
        "total_ms": [{"module": "all imports", "cumulative_ms": sum(by_pkg.values()) / 1000}],
    }


PROFILE_FILTER = (
    r"(callm/|typer/_coercion|typer/_adapters|typer/core.py.*invoke|pydantic/plugin|"
    r"importlib/metadata/__init__.py.*entry_points|callm/transport/|ssl.py)"
)


def cprofile(
    b: Bench,
    args: list[str],
    name: str,
    sort: str = "cumulative",
    n: int = 28,
    restrict: str | None = PROFILE_FILTER,
) -> list[str]:
    """cProfile one run; the top n lines (of the functions matching `restrict`)."""
    path = BENCH / "out" / name
    subprocess.run(
        [PY, "-m", "cProfile", "-o", str(path), *args],
        env=b.env,
        capture_output=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    code = (
        "import io, pstats, sys\n"
        "s = io.StringIO()\n"
        "st = pstats.Stats(sys.argv[1], stream=s).sort_stats(sys.argv[2])\n"
        "st.print_stats(*([sys.argv[4]] if len(sys.argv) > 4 else []), int(sys.argv[3]))\n"
        "print(s.getvalue())\n"
    )
    p = subprocess.run(
        [PY, "-c", code, str(path), sort, str(n), *([restrict] if restrict else [])],
        capture_output=True,
        text=True,
    )
    lines = p.stdout.splitlines()
    total = next((ln.strip() for ln in lines if "function calls" in ln), "")
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls")), 0)
    return [total, "", *[_shorten(ln) for ln in lines[start:] if ln.strip()]]


def _shorten(line: str) -> str:
    for prefix in (
        str(Path(PY).parents[1] / "lib"),
        str(BENCH.parent / "src"),
        "/root/.pyenv/versions",
    ):
        line = line.replace(prefix, "…")
    return line
