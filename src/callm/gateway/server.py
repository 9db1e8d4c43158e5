"""Run the gateway on uvicorn, which listens on the address (asyncio's server: TCP_NODELAY on
every connection, so a stream's first chunk does not wait for a delayed ACK); a taken port is
one clear line. Serve until SIGINT/SIGTERM, letting open streams finish for up to `grace`
seconds."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from callm.errors import UsageError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _BindFailure(logging.Filter):
    """Keeps the error uvicorn logs when it cannot listen (then it exits): callm says it in
    its own one line instead."""

    def __init__(self) -> None:
        super().__init__()
        self.error: OSError | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, OSError):
            self.error = record.msg
            return False
        return True


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's, except that it says where it listens once it does (`on_listening`
        with the port, the real one for port 0), a port it cannot listen on is a UsageError,
        and after a graceful stop on SIGTERM/SIGINT the process exits with our code (0, or
        130 for Ctrl-C) instead of re-raising the signal."""

        signals: list[int]
        on_listening: Callable[[int], None]

        async def startup(self, sockets: Any = None) -> None:
            caught = _BindFailure()
            log = logging.getLogger("uvicorn.error")
            log.addFilter(caught)
            try:
                await super().startup(sockets)
            except SystemExit:
                c = self.config
                why = caught.error.strerror if caught.error else None
                why = (why or "cannot start").rpartition("): ")[2]
                raise UsageError(f"cannot listen on {c.host}:{c.port}: {why}") from None
            finally:
                log.removeFilter(caught)
            self.on_listening(self.servers[0].sockets[0].getsockname()[1])

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

    stats = Stats(log=None if live else sys.stderr)
    gw = Gateway(cfg, Settings(auth=auth, grace=grace), stats)
    config = uvicorn.Config(
        build(gw),
        host=host,
        port=port,
        backlog=2048,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=grace,
        timeout_keep_alive=30,
    )
    server = _server_class()(config)
    views: list[LiveView] = []

    def listening(real_port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{real_port}"
        note = "" if auth else " (no auth)"
        sys.stderr.write(f"callm serve: listening on {url}{note}\n")
        if gw.keyring is not None and not gw.keyring.count:
            sys.stderr.write("hint: no access token yet: callm serve token create NAME\n")
        sys.stderr.flush()
        if live:
            views.append(LiveView(stats, url))
            views[0].start()

    server.on_listening = listening
    keeper = _keep_db_open()
    try:
        server.run()
    finally:
        for view in views:
            view.stop()
        if keeper is not None:
            keeper.close()
    return 130 if signal.SIGINT in server.signals else 0
