"""Advisory locks between callm processes, so concurrent read-modify-writes (config saves,
keychain writes that rewrite a file) queue up instead of losing each other's changes.

The lock is taken on a directory (the config's folder, the data folder): its inode survives
the atomic renames inside it, and no lock file is left beside the user's files."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from callm.errors import ConfigError

WAIT_S = 30.0  # longest wait for another callm before "busy"
_held: dict[str, int] = {}  # realpath -> depth, so a process never waits for itself


@contextmanager
def dir_lock(folder: Path, what: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing). Raises ConfigError (exit 2)
    naming `what` when another process holds it for longer than `wait_s`."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock; saves stay atomic
        yield
        return
    key = os.path.realpath(folder)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot lock {what}: {folder}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConfigError(
                        f"{what} busy: another callm has been changing it for {wait_s:g} s",
                        hint="wait for it to finish and try again",
                    ) from None
                time.sleep(0.01)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
