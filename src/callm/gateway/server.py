"""Run the gateway on uvicorn: bind first (a clear error for a taken port), then serve until
SIGINT/SIGTERM, letting open streams finish for up to `grace` seconds."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from callm.errors import UsageError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it each first SSE chunk waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's, except that after a graceful stop on SIGTERM/SIGINT the process exits
        with our code (0, or 130 for Ctrl-C) instead of re-raising the signal."""

        signals: list[int]

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            self.signals = []
            if threading.current_thread() is not threading.main_thread():
                yield
                return

            def on(sig: int, frame: Any) -> None:
                self.signals.append(sig)
                self.handle_exit(sig, frame)

            original = {s: signal.signal(s, on) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in original.items():
                    signal.signal(s, handler)

    return Server


def _keep_db_open() -> Any:
    """One connection to the data DB held for the server's life: then no ledger write is
    the last connection to close, and none pays SQLite's checkpoint-on-close (~20-40 ms of
    fsync per request; rows stay safe in the WAL, checkpointed every 1000 pages)."""
    from callm.errors import CallmError
    from callm.ledger.db import connect

    try:
        return connect()
    except CallmError:
        return None  # record() spills rows when the DB is unusable; nothing to keep open


def serve(cfg: Any, host: str, port: int, auth: bool, grace: float, live: bool) -> int:
    """Serve until stopped; the exit code (0, or 130 after Ctrl-C)."""
    import uvicorn

    from callm.gateway.app import Gateway, Settings, build
    from callm.gateway.ops import LiveView, Stats

    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{real_port}"
    stats = Stats(log=None if live else sys.stderr)
    gw = Gateway(cfg, Settings(auth=auth, grace=grace), stats)
    config = uvicorn.Config(
        build(gw),
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=grace,
        timeout_keep_alive=30,
    )
    server = _server_class()(config)
    note = "" if auth else " (no auth)"
    sys.stderr.write(f"callm serve: listening on {url}{note}\n")
    if gw.keyring is not None and not gw.keyring.count:
        sys.stderr.write("hint: no access token yet: callm serve token create NAME\n")
    sys.stderr.flush()
    keeper = _keep_db_open()
    view = LiveView(stats, url) if live else None
    if view:
        view.start()
    try:
        server.run(sockets=[sock])
    finally:
        if view:
            view.stop()
        sock.close()
        if keeper is not None:
            keeper.close()
    return 130 if signal.SIGINT in server.signals else 0
