"""A private PostgreSQL cluster for the tests: initdb in a temp dir, its own free port, the
unix socket in that dir, run by a non-root user (the `postgres` system user when the tests
run as root, as CI does), trust authentication for the test user, stopped at the end.

The binaries are found at run time on PATH (.ci/run puts Debian's versioned bin dir there).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

# The system temp dir, read before any test points tempfile.tempdir at a private dir the
# server's user cannot enter.
SYSTEM_TMP = tempfile.gettempdir()
USER = "callm_test"
# A throwaway cluster: nothing is worth an fsync or a full-page image (only the OS crashing
# would lose data). synchronous_commit stays on: the tests stop the server with `-m immediate`
# and a commit must survive that.
SETTINGS = [
    "listen_addresses=127.0.0.1",
    "max_connections=300",
    "shared_buffers=64MB",
    "fsync=off",
    "full_page_writes=off",
]
PASSWORD_USER = "callm_pw"


def _base_dir() -> str:
    """Where the cluster's dir goes: the system temp dir, unless the server's user cannot
    enter it (a temp dir left 0700 by root): then that user's own home."""
    if os.geteuid() != 0:
        return SYSTEM_TMP
    import pwd

    for candidate in (SYSTEM_TMP, pwd.getpwnam("postgres").pw_dir):
        path = Path(candidate).resolve()
        if path.is_dir() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents)):
            return str(path)
    return SYSTEM_TMP


def find_bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner() -> list[str]:
    """The command prefix that runs a server binary as a non-root user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


@dataclass
class Cluster:
    bin_dir: Path
    root: Path
    port: int
    _next: Future[str] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = env["LANG"] = "C"
        subprocess.run(
            [*_as_owner(), *args],
            check=True,
            capture_output=True,
            env=env,
            cwd=self.root,
            timeout=120,
        )

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        # trust for the test user; a password (SCRAM) for PASSWORD_USER, to test where it
        # comes from (keychain, PGPASSWORD)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        self._start_server()

    def _start_server(self) -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            " ".join([f"-p {self.port} -k {self.root}", *(f"-c {s}" for s in SETTINGS)]),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        except (subprocess.SubprocessError, OSError):
            pass

    def restart(self) -> None:
        """Up again after stop(), same port, data and settings."""
        self._start_server()


def start_cluster() -> Cluster:
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="callm-pg-", dir=_base_dir()))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(bin_dir, root, _free_port())
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(
            f"cannot start PostgreSQL: {exc.stderr.decode(errors='replace')}{detail}"
        ) from None
    return cluster


def remove(cluster: Cluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def fresh_database(cluster: Cluster) -> str:
    """The URL of a new, empty database. The next one is made meanwhile, in the background
    (CREATE DATABASE copies a template: ~0.1-0.3 s a test, hidden behind the test's own work).
    One made while the server was stopped by a test is simply made again."""
    ahead, cluster._next = cluster._next, None
    try:
        url = ahead.result(timeout=60) if ahead is not None else _create(cluster)
    except Exception:
        url = _create(cluster)
    later: Future[str] = Future()
    cluster._next = later

    def make() -> None:
        try:
            later.set_result(_create(cluster))
        except Exception as exc:  # the test stopped the server: made again when needed
            later.set_exception(exc)

    threading.Thread(target=make, daemon=True).start()
    return url


_numbers = itertools.count(1)


def _create(cluster: Cluster) -> str:
    import psycopg

    name = f"t{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
    return cluster.url(name)
