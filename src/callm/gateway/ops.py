"""What an operator sees: counters kept as calls end, one JSON line per request on stderr,
or a live table on a terminal (rich Live)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from datetime import date
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callm.call_types import CallOutcome, CallSpec


class Stats:
    """Thread-safe counters; `log` (when set) gets one JSON line per finished request."""

    def __init__(self, log: IO[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.log = log
        self.in_flight = 0
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.cost_day = date.today()
        self.cost_today = 0.0
        self.started = time.time()

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1

    def end(self, spec: CallSpec, out: CallOutcome | None) -> None:
        """`out` is None when the call raised (the client went away)."""
        model = out.target.label if out and out.target else (spec.model or "?")
        outcome = out.outcome if out else "client_gone"
        with self._lock:
            self.in_flight -= 1
            self.requests[model] += 1
            if outcome not in ("ok", "fallback"):
                self.errors[outcome if out is None or out.error is None else out.error.kind] += 1
            if self.cost_day != date.today():
                self.cost_day, self.cost_today = date.today(), 0.0
            if out and out.cost_usd:
                self.cost_today += out.cost_usd
        if self.log is not None:
            line: dict[str, Any] = {
                "ts": round(time.time(), 3),
                "model": model,
                "asked": spec.model,
                "token": spec.token,
                "outcome": outcome,
            }
            if out is not None:
                line.update(
                    error=out.error.kind if out.error else None,
                    latency_ms=out.latency_ms,
                    ttft_ms=out.ttft_ms,
                    input_tokens=out.usage.input_tokens,
                    output_tokens=out.usage.output_tokens,
                    cost_usd=out.cost_usd,
                )
            self._write(line)

    def refused(self, path: str, status: int, token: str | None = None) -> None:
        """A request turned away before any call (bad token, unknown model...)."""
        with self._lock:
            self.errors[f"refused {status}"] += 1
        self._write(
            {
                "ts": round(time.time(), 3),
                "path": path,
                "token": token,
                "outcome": "refused",
                "status": status,
            }
        )

    def _write(self, line: dict[str, Any]) -> None:
        if self.log is None:
            return
        try:
            self.log.write(json.dumps(line) + "\n")
            self.log.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not stop the server

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "in_flight": self.in_flight,
                "requests": dict(self.requests),
                "errors": dict(self.errors),
                "cost_today": self.cost_today,
            }


class LiveView:
    """A table redrawn twice a second on the terminal, in its own thread."""

    def __init__(self, stats: Stats, url: str) -> None:
        self.stats = stats
        self.url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _table(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        s = self.stats.snapshot()
        up = int(time.time() - self.stats.started)
        head = Text(
            f"callm serve {self.url}   up {up // 3600}:{up // 60 % 60:02d}:{up % 60:02d}"
            f"   in flight {s['in_flight']}   cost today ${s['cost_today']:.4f}"
        )
        t = Table(box=None, pad_edge=False)
        t.add_column("model")
        t.add_column("requests", justify="right")
        for model, n in sorted(s["requests"].items(), key=lambda kv: -kv[1]):
            t.add_row(model, str(n))
        for kind, n in sorted(s["errors"].items()):
            t.add_row(Text(f"errors: {kind}", style="red"), str(n))
        return Group(head, t)

    def _run(self) -> None:
        from rich.console import Console
        from rich.live import Live

        with Live(self._table(), console=Console(file=sys.stderr), auto_refresh=False) as live:
            while not self._stop.wait(0.5):
                live.update(self._table(), refresh=True)
