"""Run one blocking job per key concurrently, with a deadline for the lot.

Each job runs in a daemon thread. A job still running at the deadline is abandoned: its key
is missing from the answer, and (being a daemon thread) it never holds up the process's exit,
which a ThreadPoolExecutor's workers would."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Failed(Generic[T]):
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def fan_out(
    keys: list[str],
    job: Callable[[str], T],
    budget: float,
    on_done: Callable[[str, T | BaseException], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> dict[str, T | BaseException]:
    """key -> the job's result, or the exception it raised; keys whose job did not finish
    within `budget` seconds are absent. `on_done` is called in the caller's thread, and so
    is `on_start`, once the jobs are started: work that overlaps their waiting (a job that
    finished meanwhile is still collected, even past the deadline)."""
    done: queue.Queue[tuple[str, T | _Failed[T]]] = queue.Queue()

    def run(key: str) -> None:
        try:
            done.put((key, job(key)))
        except BaseException as exc:  # a worker must always report
            done.put((key, _Failed(exc)))

    deadline = time.monotonic() + budget
    for key in dict.fromkeys(keys):
        threading.Thread(target=run, args=(key,), name=f"callm-{key}", daemon=True).start()
    if on_start:
        on_start()
    results: dict[str, T | BaseException] = {}
    pending = set(keys)
    while pending:
        try:  # past the deadline, only what is already there
            key, value = done.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            break
        result: T | BaseException = value.exc if isinstance(value, _Failed) else value
        results[key] = result
        pending.discard(key)
        if on_done:
            on_done(key, result)
    return results
