"""Running the installed `callm` against fault servers: config files, runs, the ledger."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faults import KEYS

CALLM = str(Path(sys.executable).with_name("callm"))
KEY_VARS = {name: f"RESILIENCE_{name.upper()}_KEY" for name in KEYS}

# wire format -> the path under the server's root that the provider's base_url points to
_BASE_PATH = {
    "openai": "/v1",
    "openai-compatible": "/v1",
    "anthropic": "/v1",
    "gemini": "/v1beta",
    "ollama": "",
}


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def first_err(self) -> str:
        """The first stderr line that is not a retry/fallback notice: what the user reads."""
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]
        return lines[0] if lines else ""

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def assert_clean(self) -> None:
        """No traceback, no key (whole or in part beyond the mask) in any output."""
        for stream in (self.stdout, self.stderr):
            assert "Traceback" not in stream, stream
            assert "internal error" not in stream, stream
            for key in KEYS.values():
                assert key not in stream
                assert key[8:-4] not in stream, "a key leaked, partly unmasked"


def callm(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 20
) -> Run:
    """The installed `callm ARGS` in a subprocess, with every fake key in its environment."""

    full = {**os.environ, **{KEY_VARS[n]: k for n, k in KEYS.items()}, "NO_COLOR": "1"}
    full.update(env or {})
    t0 = time.monotonic()
    p = subprocess.run(
        [CALLM, *args], input=stdin, capture_output=True, text=True, env=full, timeout=timeout
    )
    return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def provider_block(name: str, driver: str, url: str, **extra: Any) -> str:
    lines = [
        f"[providers.{name}]",
        f'driver = "{driver}"',
        f'base_url = "{url}{_BASE_PATH[driver]}"',
    ]
    if driver == "ollama":
        lines.append('key = "none"')
    else:
        lines.append(f'key_env = "{KEY_VARS[name]}"')
    for k, v in extra.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def config_text(
    providers: dict[str, tuple[str, str]],
    *,
    attempts: int = 3,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    cooldown_after: int = 3,
    cooldown_seconds: float = 60.0,
    fallbacks: dict[str, list[str]] | None = None,
    timeout: float = 5.0,
    connect_timeout: float = 2.0,
) -> str:
    """providers: name -> (driver, server URL)."""
    parts = [
        provider_block(n, d, u, timeout=timeout, connect_timeout=connect_timeout)
        for n, (d, u) in providers.items()
    ]
    parts.append(
        f"[retry]\nattempts = {attempts}\nbase_delay = {base_delay}\nmax_delay = {max_delay}\n"
        f"cooldown_after = {cooldown_after}\ncooldown_seconds = {cooldown_seconds}\n"
    )
    if fallbacks:
        parts.append("[fallbacks]\n")
        parts.extend(f'"{k}" = {json.dumps(v)}\n' for k, v in fallbacks.items())
    return "\n".join(parts)


def ledger_rows(data_dir: Path) -> list[dict[str, Any]]:
    """The usage rows, oldest first (from PostgreSQL when CALLM_LEDGER_URL is set)."""
    url = os.environ.get("CALLM_LEDGER_URL")
    if url:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(url, row_factory=dict_row) as pg:
            return list(pg.execute("SELECT * FROM usage ORDER BY id"))
    conn = sqlite3.connect(data_dir / "callm.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM usage ORDER BY id")]
    finally:
        conn.close()
