"""callm.fanout: jobs run at once, the deadline abandons the slow ones, and work the caller
does while they wait (`on_start`) loses no answer that arrived meanwhile."""

from __future__ import annotations

import threading
import time

from callm.fanout import fan_out


def _sleeper(seconds: dict[str, float]):  # type: ignore[no-untyped-def]
    def job(key: str) -> str:
        time.sleep(seconds[key])
        if key == "bad":
            raise ValueError("broken")
        return key.upper()

    return job


def test_jobs_overlap_and_the_slow_one_is_abandoned() -> None:
    waits = {"a": 0.2, "b": 0.2, "c": 0.2, "slow": 5.0, "bad": 0.0}
    start = time.monotonic()
    got = fan_out(list(waits), _sleeper(waits), budget=1.0)
    took = time.monotonic() - start
    assert took < 1.5  # 0.6 s in a row; and the 5 s job is not waited for
    assert {k: v for k, v in got.items() if k != "bad"} == {"a": "A", "b": "B", "c": "C"}
    assert isinstance(got["bad"], ValueError)


def test_answers_that_came_during_on_start_are_kept_past_the_deadline() -> None:
    waits = {"a": 0.05, "b": 0.1}
    seen: list[str] = []
    started = threading.Event()

    def on_start() -> None:
        started.set()
        time.sleep(0.5)  # longer than the whole budget

    got = fan_out(
        list(waits),
        _sleeper(waits),
        budget=0.2,
        on_done=lambda k, v: seen.append(k),
        on_start=on_start,
    )
    assert started.is_set()
    assert got == {"a": "A", "b": "B"} and sorted(seen) == ["a", "b"]
