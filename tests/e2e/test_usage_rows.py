"""Every `callm chat` adds exactly one usage row, whatever happens: interrupted by Ctrl-C,
a broken stream, or 50 processes writing at the same moment."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from isolation import IsolatedEnv

CALLM = str(Path(sys.executable).with_name("callm"))


def rows(env: IsolatedEnv) -> list[sqlite3.Row]:
    conn = sqlite3.connect(env.data_dir / "callm.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM usage ORDER BY id").fetchall()
    finally:
        conn.close()


def test_ctrl_c_mid_stream_keeps_text_and_records_row(isolated_env: IsolatedEnv) -> None:
    proc = subprocess.Popen(
        [CALLM, "chat", "-m", "sim", "-o", "length=4000", "-o", "delay_ms=5", "tell me"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    first = proc.stdout.read1(64)  # wait until the reply is streaming
    assert first
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    text = (first + out).decode()
    assert proc.returncode == 130, err
    assert text.strip(), "the text received stays"
    assert b"Traceback" not in err and b"interrupted" in err
    (row,) = rows(isolated_env)
    assert row["outcome"] == "interrupted"
    assert row["provider"] == "sim"
    assert row["output_tokens"] > 0, "tokens that arrived are counted (estimated)"
    assert row["usage_source"] == "estimated"


def test_broken_stream_records_row(isolated_env: IsolatedEnv) -> None:
    p = subprocess.run(
        [CALLM, "chat", "-m", "sim", "-o", "fail=mid_stream", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 1
    assert p.stdout.strip(), "the partial text was printed"
    (row,) = rows(isolated_env)
    assert row["outcome"] == "broken_stream"
    assert row["error_kind"] == "mid_stream"


def test_error_before_any_text_records_row(isolated_env: IsolatedEnv) -> None:
    p = subprocess.run(
        [CALLM, "chat", "-m", "sim", "-o", "fail=auth", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 3
    (row,) = rows(isolated_env)
    assert (row["outcome"], row["error_kind"], row["cost_usd"]) == ("error", "auth", 0.0)


def test_fifty_concurrent_chats_all_land(isolated_env: IsolatedEnv) -> None:
    procs = [
        subprocess.Popen(
            [CALLM, "chat", "-q", "-m", "sim", "-o", "length=20", f"prompt {i}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(50)
    ]
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=240)
        if p.returncode != 0 or err:
            errors.append((p.returncode, err.decode()))
    assert not errors, errors[:3]
    got = rows(isolated_env)
    assert len(got) == 50
    assert all(r["outcome"] == "ok" for r in got)
    assert all("locked" not in (r["error_kind"] or "") for r in got)
