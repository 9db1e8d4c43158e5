"""Where one `callm chat` spends its time, phase by phase, in one process.

    python bench/chat_phases.py MODEL    (CALLM_CONFIG etc. set by the caller; run_all.py)

Imports the third-party packages the chat path uses, then callm's own modules, timing each
step; then wraps a few of callm's functions with timers (only those that exist, so a
refactor does not break this) and runs `callm chat -m MODEL hi` through the app's own entry
point. Prints one JSON object {phase: milliseconds} on stderr's last line (stdout carries the
reply). A diagnostic, not a benchmark: the wrappers add a few microseconds per call.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

T0 = time.perf_counter()
THIRD_PARTY = ("typer", "sqlite3", "httpx")  # pydantic and tomllib: only when a file changed
# httpx as callm imports it: without its command-line tool (callm/transport/httpx_lib.py)
IMPORT_AS = {"httpx": "callm.transport.httpx_lib"}
CALLM_MODULES = (
    "callm.cli.app",
    "callm.cli.chat",
    "callm.engine",
    "callm.config.schema",
    "callm.config.store",
    "callm.transport",
    "callm.transport.clients",
    "callm.drivers.openai",
    "callm.ledger.usage",
    "callm.ledger.db",
    "callm.cooldown",
    "callm.pricing",
    "callm.render.stream",
    "callm.secrets",
    "callm.endpoints",
)
WRAP = {
    "callm.config.store": ["load"],
    "callm.engine": ["call", "_one_call", "settle_usage", "record_call"],
    "callm.transport": ["_open"],
    "callm.cooldown": ["record_result", "filter_chain"],
}


def timed_imports(names: tuple[str, ...]) -> float:
    t = time.perf_counter()
    for name in names:
        try:
            importlib.import_module(IMPORT_AS.get(name, name))
        except ImportError:
            pass
    return time.perf_counter() - t


def wrap(timings: dict[str, float], module: Any, name: str) -> None:
    inner: Callable[..., Any] = getattr(module, name)

    @functools.wraps(inner)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            key = f"{module.__name__}.{name}"
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t

    setattr(module, name, timed)


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "lab/gpt-bench"
    timings: dict[str, float] = {}
    timings["import " + ", ".join(THIRD_PARTY)] = timed_imports(THIRD_PARTY)
    timings["import callm's modules"] = timed_imports(CALLM_MODULES)
    for module_name, names in WRAP.items():
        module = sys.modules.get(module_name)
        for name in names:
            if module is not None and callable(getattr(module, name, None)):
                wrap(timings, module, name)
    from callm.cli.app import run

    t = time.perf_counter()
    code = run(["chat", "-m", model, "hi"])
    timings["app run (parse, config, call, ledger, output)"] = time.perf_counter() - t
    timings["script total (after interpreter start)"] = time.perf_counter() - T0
    sys.stderr.write(
        json.dumps({"rc": code, "ms": {k: v * 1000 for k, v in timings.items()}}) + "\n"
    )


if __name__ == "__main__":
    main()
