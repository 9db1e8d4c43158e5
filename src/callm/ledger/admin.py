"""`callm ledger status|migrate|copy`: what the ledger is, bringing its schema up to date,
and moving a SQLite ledger into a shared PostgreSQL one.

`copy` is idempotent: each usage row carries its origin (`sqlite:<id>:<ts>`, unique in
PostgreSQL) and goes in with ON CONFLICT DO NOTHING, so a second run adds nothing; the other
tables are keyed already (a row the shared ledger has is kept as it is there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callm.errors import CallmError, UsageError

# The tables `status` counts and `copy` moves, with the columns that identify a row.
TABLES: dict[str, tuple[str, ...]] = {
    "usage": (),  # by origin, see copy()
    "models": ("provider", "id"),
    "model_sync": ("provider",),
    "provider_state": ("name",),
    "gateway_tokens": ("name",),
}
ROLLUPS = ("usage_day", "usage_latency", "usage_attempt_day")
BATCH = 2000


def status(path: Path | None = None) -> dict[str, Any]:
    """Backend, schema version, row counts and the spill backlog of the configured ledger."""
    from callm.ledger import backend
    from callm.ledger.db import connect
    from callm.ledger.migrations import MIGRATIONS
    from callm.paths import db_path

    url = backend.shared(path)
    local = path or db_path()
    out: dict[str, Any] = {
        "backend": "postgresql" if url else "sqlite",
        "location": backend.describe(url) if url else str(local),
        "schema_version": None,
        "latest_version": len(MIGRATIONS),
        "reachable": True,
        "error": None,
        "rows": {},
        "spill_backlog": backlog(local),
    }
    if url is None and not local.is_file():
        out["schema_version"] = 0
        out["rows"] = dict.fromkeys([*TABLES, *ROLLUPS], 0)
        return out
    try:
        conn = connect(path)
    except CallmError as exc:
        out.update(reachable=False, error=exc.message)
        return out
    try:
        out["schema_version"] = _version(conn)
        out["rows"] = {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            for t in (*TABLES, *ROLLUPS)
        }
    finally:
        conn.close()
    return out


def _version(conn: Any) -> int:
    from callm.ledger.backend import dialect

    if dialect(conn) == "postgres":
        from callm.ledger import pg

        return pg.version(conn)
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def backlog(local: Path) -> int:
    """Usage rows waiting in spill files to be written to the ledger."""
    from callm.ledger.usage import spill_paths

    n = 0
    for p in spill_paths(local):
        try:
            n += sum(1 for line in p.read_bytes().splitlines() if line.strip())
        except OSError:
            continue
    return n


def migrate(path: Path | None = None) -> dict[str, Any]:
    """Bring the schema up to date (connecting does it, under the migration lock) and write
    any spilled rows in. Returns status() afterwards plus `imported`."""
    from callm.ledger.db import connect
    from callm.ledger.usage import import_spilled

    connect(path).close()
    imported = import_spilled(path)
    return {**status(path), "imported": imported}


def copy(to_url: str, source: Path | None = None) -> dict[str, int]:
    """Every row of the SQLite ledger `source` (default: the data dir's) into the PostgreSQL
    ledger at `to_url`. Returns rows added per table (0 everywhere on a second run)."""
    import sqlite3

    from callm.ledger import backend, pg
    from callm.ledger.db import connect
    from callm.ledger.usage import COLUMNS
    from callm.paths import db_path

    backend.check_url(to_url)
    src_path = source or db_path()
    if not src_path.is_file():
        raise UsageError(f"no SQLite ledger at {src_path} to copy")
    src = connect(src_path)  # migrated: the columns below exist
    dst = pg.connect(to_url)
    added: dict[str, int] = {}
    try:
        cols = ", ".join(COLUMNS)
        added["usage"] = _copy_rows(
            src,
            dst,
            f"SELECT id, {cols} FROM usage ORDER BY id",
            f"INSERT INTO usage ({cols}, origin) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})"
            " ON CONFLICT (origin) DO NOTHING",
            lambda r: (*r[1:], f"sqlite:{r[0]}:{r[1]!r}"),
        )
        for table, key in TABLES.items():
            if not key:
                continue
            names = [d[1] for d in src.execute(f"PRAGMA table_info({table})").fetchall()]
            listed = ", ".join(names)
            added[table] = _copy_rows(
                src,
                dst,
                f"SELECT {listed} FROM {table}",
                f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(names))})"
                f" ON CONFLICT ({', '.join(key)}) DO NOTHING",
                tuple,
            )
    except sqlite3.Error as exc:
        raise CallmError(f"ledger copy stopped: {exc}", hint="run it again: it resumes") from None
    finally:
        src.close()
        dst.close()
    return added


def _copy_rows(src: Any, dst: Any, select: str, insert: str, shape: Any) -> int:
    """Batches of BATCH rows, one transaction each (a second run skips what landed)."""
    cur = src.execute(select)
    added = 0
    while True:
        rows = cur.fetchmany(BATCH)
        if not rows:
            return added
        dst.execute("BEGIN")
        try:
            added += dst.executemany(insert, [shape(r) for r in rows])
            dst.execute("COMMIT")
        except BaseException:
            dst.execute("ROLLBACK")
            raise
