"""The call log: reading, searching and removing what `callm chat` stored with each usage row
(prompt, reply, system prompt, options, attachments, conversation id). Writing happens with
the usage row itself (ledger/usage.py), so a logged call and its cost land together.

`logs rm` clears the text of a call but keeps its usage row: what a call cost is history
that `callm usage` must still add up."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from callm.errors import NotFoundError, UsageError
from callm.ledger.backend import dialect

_CID = re.compile(r"[0-9a-z]{1,32}")
_FIELDS = (
    "id, ts, provider, model, cid, system, prompt, reply, reply_json, options_json,"
    " attachments_json, outcome, error_kind, input_tokens, output_tokens, cost_usd, latency_ms"
)


@dataclass
class LogEntry:
    """One logged call (the shape of `callm logs list/show --json`)."""

    id: int
    ts: float
    time: str  # ISO 8601, local time with offset
    provider: str
    model: str
    cid: str | None
    prompt: str | None
    reply: str | None
    system: str | None = None
    reply_json: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "ok"
    interrupted: bool = False
    error_kind: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _entry(r: tuple[Any, ...]) -> LogEntry:
    from datetime import datetime

    (id_, ts, provider, model, cid, system, prompt, reply, reply_json, opts, atts) = r[:11]
    outcome, error_kind, n_in, n_out, cost, latency = r[11:]
    return LogEntry(
        id=id_,
        ts=ts,
        time=datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds"),
        provider=provider,
        model=model,
        cid=cid,
        prompt=prompt,
        reply=reply,
        system=system,
        reply_json=_loads(reply_json, None),
        options=_loads(opts, {}),
        attachments=_loads(atts, []),
        outcome=outcome,
        interrupted=outcome == "interrupted",
        error_kind=error_kind,
        input_tokens=n_in,
        output_tokens=n_out,
        cost_usd=cost,
        latency_ms=latency,
    )


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def connect(path: Path | None = None) -> sqlite3.Connection:
    from callm.ledger.db import connect as open_db

    return open_db(path)


def fts_query(text: str) -> str:
    """Words as quoted FTS5 terms, all required: punctuation in the search text is never
    FTS5 syntax (`-q "C++ AND"` searches for those words)."""
    words = [w for w in re.split(r"\s+", text.strip()) if w]
    if not words:
        raise UsageError("-q wants some text to search for")
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def list_entries(
    conn: sqlite3.Connection,
    *,
    limit: int = 20,
    model: str | None = None,
    provider: str | None = None,
    since: float | None = None,
    cid: str | None = None,
    query: str | None = None,
) -> list[LogEntry]:
    """Logged calls, newest first."""
    where = ["u.prompt IS NOT NULL"]
    args: list[Any] = []
    if model:
        where.append("u.model = ?")
        args.append(model)
    if provider:
        where.append("u.provider = ?")
        args.append(provider)
    if since is not None:
        where.append("u.ts >= ?")
        args.append(since)
    if cid:
        where.append("u.cid = ?")
        args.append(resolve_cid(conn, cid))
    cols = ", ".join(f"u.{c.strip()}" for c in _FIELDS.split(","))
    if query and dialect(conn) == "postgres":
        from callm.ledger.pg_migrations import LOG_TSVECTOR

        fts_query(query)  # the same refusal of an empty search
        words = " ".join(w for w in re.split(r"\s+", query.strip()) if w)
        sql = (
            f"SELECT {cols} FROM usage u WHERE {LOG_TSVECTOR.replace('coalesce(', 'coalesce(u.')}"
            f" @@ plainto_tsquery('simple', ?) AND {' AND '.join(where)}"
            " ORDER BY u.id DESC LIMIT ?"
        )
        args = [words, *args]
    elif query:
        sql = (
            f"SELECT {cols} FROM logs_fts f JOIN usage u ON u.id = f.rowid"
            f" WHERE logs_fts MATCH ? AND {' AND '.join(where)} ORDER BY f.rowid DESC LIMIT ?"
        )
        args = [fts_query(query), *args]
    else:
        # ts, id: the order of the (provider|model, ts) indexes, so a filter needs no sort
        sql = (
            f"SELECT {cols} FROM usage u WHERE {' AND '.join(where)}"
            " ORDER BY u.ts DESC, u.id DESC LIMIT ?"
        )
    rows = conn.execute(sql, (*args, limit)).fetchall()
    return [_entry(r) for r in rows]


def get(conn: sqlite3.Connection, log_id: int) -> LogEntry:
    row = conn.execute(
        f"SELECT {_FIELDS} FROM usage WHERE id = ? AND prompt IS NOT NULL", (log_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no logged call with id {log_id}", hint="see `callm logs list`")
    return _entry(row)


def conversation(conn: sqlite3.Connection, cid: str) -> list[LogEntry]:
    """Every logged call of a conversation, oldest first."""
    rows = conn.execute(
        f"SELECT {_FIELDS} FROM usage WHERE cid = ? AND prompt IS NOT NULL ORDER BY id", (cid,)
    ).fetchall()
    return [_entry(r) for r in rows]


class Turn(NamedTuple):
    """What continuing a conversation needs of a call (lighter than a LogEntry)."""

    prompt: str
    reply: str | None
    provider: str
    model: str
    system: str | None


def turns(conn: sqlite3.Connection, cid: str) -> list[Turn]:
    """The conversation's calls, oldest first (in order of completion)."""
    rows = conn.execute(
        "SELECT prompt, reply, provider, model, system FROM usage"
        " WHERE cid = ? AND prompt IS NOT NULL ORDER BY id",
        (cid,),
    ).fetchall()
    return [Turn(*r) for r in rows]


def latest_cid(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(
        "SELECT cid FROM usage WHERE cid IS NOT NULL AND prompt IS NOT NULL"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def resolve_cid(conn: sqlite3.Connection, given: str) -> str:
    """A conversation id, or a unique start of one (as git takes short hashes)."""
    cid = given.strip().lower()
    if not _CID.fullmatch(cid):
        raise UsageError(f"{given!r} is not a conversation id", hint="see `callm logs list`")
    rows = conn.execute(
        "SELECT DISTINCT cid FROM usage WHERE cid >= ? AND cid < ? LIMIT 2", (cid, cid + "~")
    ).fetchall()
    if not rows:
        raise NotFoundError(f"no conversation {given!r}", hint="see `callm logs list`")
    if len(rows) > 1 and not any(r[0] == cid for r in rows):
        raise UsageError(f"conversation id {given!r} is ambiguous: give more characters")
    return cid if any(r[0] == cid for r in rows) else rows[0][0]


def remove(conn: sqlite3.Connection, *, log_id: int | None = None, cid: str | None = None) -> int:
    """Forget the text of one call or of a whole conversation. Usage rows stay (their cost
    is history); returns how many calls were cleared."""
    if log_id is not None:
        get(conn, log_id)  # NotFoundError if absent
        where, arg = "id = ?", log_id
    elif cid is not None:
        where, arg = "cid = ?", resolve_cid(conn, cid)
    else:
        raise UsageError("give a log ID or --cid ID")
    cur = conn.execute(
        "UPDATE usage SET prompt = NULL, reply = NULL, system = NULL, reply_json = NULL,"
        f" options_json = NULL, attachments_json = NULL, cid = NULL WHERE {where}"
        " AND prompt IS NOT NULL",
        (arg,),
    )
    return cur.rowcount


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(logged calls, conversations)."""
    row = conn.execute(
        "SELECT count(*), count(DISTINCT cid) FROM usage WHERE prompt IS NOT NULL"
    ).fetchone()
    return int(row[0]), int(row[1])
