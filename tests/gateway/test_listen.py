"""`callm serve` listening: uvicorn binds the address (callm opens no socket itself); a port
that is taken is one line and exit 2, with nothing of uvicorn's log around it."""

from __future__ import annotations

import socket
import subprocess
import sys

from callm.errors import EXIT_USAGE


def test_a_taken_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "callm", "serve", "--port", str(port), "--no-auth"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    assert proc.returncode == EXIT_USAGE, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == f"error: cannot listen on 127.0.0.1:{port}: address already in use"
    assert not any(line.startswith(("ERROR", "Traceback", "INFO")) for line in lines), lines
    assert "listening on" not in proc.stderr
