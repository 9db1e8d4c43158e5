"""Shared pieces of the benchmark runner: timing child processes (wall clock, CPU and peak
RSS from wait4, so each child's numbers are its own), medians, machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CALLM_PY = Path(sys.executable)  # the runner runs in callm's venv
PEERS = BENCH / ".venv-peers"
PEERS_PY = PEERS / "bin" / "python"


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the child
    maxrss_mib: float  # the child's peak resident set
    rc: int
    stderr: str = ""


@dataclass
class Series:
    """Repeated runs of one command."""

    label: str
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.rc == 0 for r in self.runs)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def best(self) -> float:
        return min(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def rss(self) -> float:
        return max(r.maxrss_mib for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ok": self.ok,
            "median_s": self.wall if self.runs else None,
            "best_s": self.best if self.runs else None,
            "cpu_s": self.cpu if self.runs else None,
            "max_rss_mib": self.rss if self.runs else None,
            "walls": [r.wall for r in self.runs],
            "rcs": [r.rc for r in self.runs],
            "note": self.note,
            "stderr_tail": (self.runs[-1].stderr[-400:] if self.runs else ""),
        }


TIME = Path("/usr/bin/time")  # GNU time: reports the peak RSS of the command alone


def run_child(
    cmd: Sequence[str],
    env: Mapping[str, str],
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    cwd: Path | None = None,
    timeout: float = 300.0,
) -> Run:
    """Run cmd once: wall time from spawn to exit, CPU (user + sys) and peak RSS.

    Peak RSS comes from GNU time when it is installed: Linux folds the forking parent's
    high-water mark into the child's ru_maxrss at exec, so wait4 on a child of this (larger)
    process would report at least this process's RSS; GNU time is small and forks the
    command itself."""
    rss_file = None
    full = list(cmd)
    if TIME.exists():
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        full = [str(TIME), "-f", "%M", "-o", rss_file, *full]
    t0 = time.perf_counter()
    p = subprocess.Popen(
        full,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    assert p.stderr is not None
    killer = threading.Timer(timeout, p.kill)  # a hung child is killed, not waited for forever
    killer.start()
    try:
        err = p.stderr.read()  # small: a usage line or an error; EOF when the child exits
        p.stderr.close()
        _pid, status, ru = os.wait4(p.pid, 0)
    finally:
        killer.cancel()
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from reaping again
    maxrss_kib = float(ru.ru_maxrss)  # KiB on Linux
    if rss_file is not None:
        try:
            maxrss_kib = float(Path(rss_file).read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
        finally:
            os.unlink(rss_file)
    return Run(
        wall=wall,
        cpu=ru.ru_utime + ru.ru_stime,  # GNU time's own share is a few hundred microseconds
        maxrss_mib=maxrss_kib / 1024,
        rc=p.returncode,
        stderr=err.decode("utf-8", "replace"),
    )


@dataclass
class Case:
    label: str
    cmd: Sequence[str]
    env: Mapping[str, str] | None = None  # None: the env given to interleaved()
    note: str = ""


def interleaved(
    cases: Sequence[Case], env: Mapping[str, str], reps: int, warmup: int = 1
) -> dict[str, Series]:
    """Rounds of a b c a b c ...: a change in machine load hits every command alike. The
    first `warmup` rounds (bytecode caches, page cache) are not measured. A command that
    fails is reported with its exit code and not run again."""
    out = {c.label: Series(c.label, note=c.note) for c in cases}
    for round_ in range(warmup + reps):
        for c in cases:
            s = out[c.label]
            if s.runs and s.runs[-1].rc != 0:
                continue
            r = run_child(c.cmd, c.env or env)
            if round_ >= warmup or r.rc != 0:
                s.runs.append(r)
    return out


def series(
    label: str,
    cmd: Sequence[str],
    env: Mapping[str, str],
    reps: int,
    warmup: int = 0,
    note: str = "",
    timeout: float = 300.0,
) -> Series:
    """`reps` runs of one (long) command, after `warmup` unmeasured ones."""
    for _ in range(warmup):
        run_child(cmd, env, timeout=timeout)
    s = Series(label, note=note)
    for _ in range(reps):
        r = run_child(cmd, env, timeout=timeout)
        s.runs.append(r)
        if r.rc != 0:
            break
    return s


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": f"{cpu} ({os.cpu_count()} logical cores)",
        "memory": mem,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def versions(python: Path, names: Sequence[str]) -> dict[str, str]:
    """Installed versions of packages in another interpreter's environment."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    import json

    try:
        p = subprocess.run(
            [str(python), "-c", code, *names], capture_output=True, text=True, timeout=60
        )
        return json.loads(p.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {n: "?" for n in names}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
