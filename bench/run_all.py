"""Run every callm benchmark against its peers and write bench/RESULTS.md.

    /work/venv/bin/python bench/run_all.py [--quick] [--reps N] [--no-peers] [--only A,B]

Run it with the interpreter of callm's venv (it imports callm for the in-process parts).
The peers (simonw's llm, the openai SDK) live in bench/.venv-peers, created on first use by
bench/setup_peers.sh (PyPI only). All traffic goes to a loopback server on 127.0.0.1 that this
script starts (bench/sse_server.py); keys are fake. See bench/README.md.

Sections (for --only): startup, typerpin, chat, stream, parse, render, fanout, report, profile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
from _harness import BENCH, CALLM_PY, PEERS, PEERS_PY, ROOT, log, machine, versions

FAKE_KEY = "sk-bench-FAKE000"
SECTIONS = (
    "startup",
    "typerpin",
    "chat",
    "stream",
    "parse",
    "render",
    "fanout",
    "report",
    "report_pg",
    "profile",
)
CALLM = CALLM_PY.with_name("callm")
LLM = PEERS / "bin" / "llm"
ONE_SHOT_TOKENS = 200
STREAM_TOKENS = 200_000


@dataclass
class Reps:
    light: int  # cold start, one-shot chat (each run well under a second)
    heavy: int  # 200k-chunk streams end to end
    sdk_stream: int  # the openai SDK on 200k chunks (about a minute a run here)
    inproc: int  # in-process parsing and rendering
    sdk_tokens: int  # chunks for the SDK's in-process parse (per-chunk figures compared)
    report_runs: int
    mode_quick: bool


QUICK = Reps(
    light=5, heavy=1, sdk_stream=1, inproc=3, sdk_tokens=20_000, report_runs=3, mode_quick=True
)
FULL = Reps(
    light=9, heavy=3, sdk_stream=1, inproc=5, sdk_tokens=50_000, report_runs=5, mode_quick=False
)


class Bench:
    """The shared state of one run: workspace, environment, loopback server, results."""

    def __init__(self, reps: Reps, peers: bool, work: Path) -> None:
        self.reps = reps
        self.peers = peers
        self.work = work
        self.results: dict[str, Any] = {}
        self.server: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.env = self._base_env()

    # ---- environment -------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        """The user's environment minus anything that changes how Python or the tools run
        (bytecode writing, unbuffered stdout, keys, config overrides), in a throwaway HOME."""
        drop_exact = {
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONUNBUFFERED",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PYTHONPROFILEIMPORTTIME",
            "PYTHONHOME",
            "VIRTUAL_ENV",
            "NO_COLOR",
        }
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in drop_exact
            and not k.startswith(("CALLM_", "LLM_", "OPENAI_"))
            and not k.endswith("_API_KEY")
        }
        home = self.work / "home"
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            XDG_CACHE_HOME=str(home / ".cache"),
            CALLM_CONFIG=str(self.work / "callm" / "config.toml"),
            CALLM_DATA_DIR=str(self.work / "callm" / "data"),
            LLM_USER_PATH=str(self.work / "llm"),
            BENCH_LAB_KEY=FAKE_KEY,
            # bytecode is cached as for any installed tool, but outside the source tree
            PYTHONPYCACHEPREFIX=str(BENCH / "out" / "pycache"),
        )
        return env

    def base_url(self, tokens: int) -> str:
        return f"http://127.0.0.1:{self.port}/t{tokens}/v1"

    def write_configs(self) -> None:
        """callm: 20 providers (lab and big on the loopback server); llm: the same two models
        as extra OpenAI-compatible models with a fake key."""
        cfg = Path(self.env["CALLM_CONFIG"])
        cfg.parent.mkdir(parents=True, exist_ok=True)
        Path(self.env["HOME"]).mkdir(parents=True, exist_ok=True)
        rows = [
            ("lab", "openai", self.base_url(ONE_SHOT_TOKENS), 'key_env = "BENCH_LAB_KEY"'),
            ("big", "openai", self.base_url(STREAM_TOKENS), 'key_env = "BENCH_LAB_KEY"'),
            ("openai", "openai", "https://api.openai.com/v1", ""),
            ("anthropic", "anthropic", "https://api.anthropic.com/v1", ""),
            ("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta", ""),
            ("ollama", "ollama", "http://127.0.0.1:11434", 'key = "none"'),
            ("openrouter", "openai-compatible", "https://openrouter.ai/api/v1", ""),
            ("groq", "openai-compatible", "https://api.groq.com/openai/v1", ""),
            ("mistral", "openai-compatible", "https://api.mistral.ai/v1", ""),
            ("deepseek", "openai-compatible", "https://api.deepseek.com", ""),
            ("together", "openai-compatible", "https://api.together.xyz/v1", ""),
            ("fireworks", "openai-compatible", "https://api.fireworks.ai/inference/v1", ""),
            ("xai", "openai-compatible", "https://api.x.ai/v1", ""),
            ("lmstudio", "openai-compatible", "http://127.0.0.1:1234/v1", 'key = "none"'),
            ("vllm", "openai-compatible", "http://127.0.0.1:8000/v1", 'key = "none"'),
        ]
        rows += [
            (f"team{i}", "openai-compatible", f"http://127.0.0.1:{9100 + i}/v1", 'key = "none"')
            for i in range(20 - len(rows))
        ]
        text = ['default_model = "lab/gpt-bench"\n']
        for name, driver, url, extra in rows:
            text.append(f'\n[providers.{name}]\ndriver = "{driver}"\nbase_url = "{url}"\n')
            text.append(
                f'default_model = "gpt-bench"\n{extra}\n' if extra else 'default_model = "m"\n'
            )
        cfg.write_text("".join(text))
        llm_dir = Path(self.env["LLM_USER_PATH"])
        llm_dir.mkdir(parents=True, exist_ok=True)
        (llm_dir / "keys.json").write_text(json.dumps({"bench": FAKE_KEY}))
        (llm_dir / "extra-openai-models.yaml").write_text(
            "".join(
                f'- model_id: {mid}\n  model_name: gpt-bench\n  api_base: "{self.base_url(n)}"\n'
                "  api_key_name: bench\n"
                for mid, n in (("gpt-bench", ONE_SHOT_TOKENS), ("gpt-bench-big", STREAM_TOKENS))
            )
        )

    # ---- loopback server -----------------------------------------------------------------

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [str(CALLM_PY), str(BENCH / "sse_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline().strip()
        if not line:
            raise SystemExit("the loopback server did not start")
        self.port = int(line)

    def stop_server(self) -> None:
        if self.server is None:
            return
        assert self.server.stdin is not None
        self.server.stdin.close()  # the server exits when its stdin closes
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    # ---- helpers -------------------------------------------------------------------------

    def capture(self, cmd: list[str]) -> tuple[int, str, str]:
        p = subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
        )
        return p.returncode, p.stdout, p.stderr

    def peer(self, *paths: Path) -> bool:
        return self.peers and all(p.exists() for p in paths)


def ensure_peers(setup: bool) -> bool:
    if PEERS_PY.exists() and LLM.exists():
        return True
    if not setup:
        return False
    log("creating bench/.venv-peers (llm==0.36, openai) with bench/setup_peers.sh ...")
    out = BENCH / "out" / "setup_peers.log"
    with out.open("w") as fh:
        rc = subprocess.call(["bash", str(BENCH / "setup_peers.sh")], stdout=fh, stderr=fh)
    if rc != 0:
        log(f"setup_peers.sh failed ({rc}); see {out}; continuing without peers")
    return rc == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (about half the time)")
    ap.add_argument("--reps", type=int, help="repetitions of the light benchmarks (default 11)")
    ap.add_argument("--heavy-reps", type=int, help="repetitions of the 200k-chunk streams")
    ap.add_argument("--no-peers", action="store_true", help="skip llm and the openai SDK")
    ap.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite --out from the last run's bench/out/results.json",
    )
    a = ap.parse_args()
    if a.render_only:
        results = json.loads((BENCH / "out" / "results.json").read_text())
        a.out.write_text(report.render(results))
        print(report.summary(results))
        return 0
    reps = QUICK if a.quick else FULL
    if a.reps:
        reps.light = a.reps
        reps.inproc = max(1, min(a.reps, reps.inproc))
    if a.heavy_reps:
        reps.heavy = a.heavy_reps
    only = set(a.only.split(",")) if a.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    (BENCH / "out").mkdir(exist_ok=True)
    peers = False if a.no_peers else ensure_peers(setup=True)
    if not CALLM.exists():
        raise SystemExit(f"{CALLM} not found: run this with the python of callm's venv")

    import sections

    started = time.monotonic()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="callm-bench-"))
    b = Bench(reps, peers, work)
    try:
        b.write_configs()
        b.start_server()
        b.write_configs()  # now with the server's port
        steps: list[tuple[str, Callable[[Bench], None]]] = [
            ("startup", sections.startup),
            ("typerpin", sections.typer_pin),
            ("chat", sections.one_shot),
            ("stream", sections.stream_e2e),
            ("parse", sections.parse_inproc),
            ("render", sections.render),
            ("fanout", sections.verify_fanout),
            ("report", sections.usage_report),
            ("report_pg", sections.usage_report_pg),
            ("profile", sections.profile),
        ]
        for name, fn in steps:
            if name not in only:
                continue
            t = time.monotonic()
            log(f"{name} ...")
            try:
                fn(b)
            except Exception as exc:  # one broken section must not lose the others
                b.results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
                log(f"{name} failed: {type(exc).__name__}: {exc}")
            log(f"{name} done in {time.monotonic() - t:.0f} s")
    finally:
        b.stop_server()
        shutil.rmtree(work, ignore_errors=True)
    meta = {
        **machine(),
        "load_before": " ".join(f"{x:.2f}" for x in load_before),
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "elapsed_s": time.monotonic() - started,
        "mode": "quick" if a.quick else "full",
        "reps": reps.__dict__,
        "git": git_state(),
        "callm_versions": versions(CALLM_PY, ["callm", "typer", "rich", "certifi"]),
        "peer_versions": versions(PEERS_PY, ["llm", "openai", "httpx", "pydantic"])
        if peers
        else {},
        "sections": sorted(only),
    }
    b.results["meta"] = meta
    (BENCH / "out" / "results.json").write_text(json.dumps(b.results, indent=2, default=str))
    a.out.write_text(report.render(b.results))
    log(
        f"wrote {a.out.relative_to(ROOT) if a.out.is_relative_to(ROOT) else a.out} "
        f"in {meta['elapsed_s']:.0f} s"
    )
    print(report.summary(b.results))
    return 0


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        n = len([d for d in dirty if d.strip()])
        return f"{head}" + (f" + {n} uncommitted file(s) in src/" if n else "")
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
