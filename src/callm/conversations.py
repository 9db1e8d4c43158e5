"""Conversations: every call belongs to one. Continuing one loads its logged turns (the
ledger is the single store), fits them into the model's context window, and hands the
engine a plain list of Messages, which each driver writes in its vendor's format; so a
conversation may switch model or provider between turns.

Two processes continuing the same conversation at once each append their own turn: rows are
inserted when a call ends, so the log holds both, in order of completion."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from callm.types import Message

if TYPE_CHECKING:
    from callm.call_types import CallOutcome, CallSpec
    from callm.config.schema import Config
    from callm.ledger.logs import Turn

Notice = Callable[[str], None]

# Option names whose values are never logged, whatever they look like.
_SECRET_NAMES = ("key", "token", "secret", "password", "authorization", "auth", "credential")


def new_cid() -> str:
    """12 hex digits, random (os.urandom: the `secrets` module's imports cost a chat call)."""
    return os.urandom(6).hex()


def logging_on(cfg: Config, spec: CallSpec) -> bool:
    """--no-log wins; otherwise the config's log_prompts (on unless turned off)."""
    return bool(cfg.log_prompts) if spec.log is None else spec.log


def resume(cfg: Config, spec: CallSpec, cid: str | None, notice: Notice) -> list[Message]:
    """Point `spec` at a logged conversation (`cid`, else the latest) and return its turns.
    The model and system prompt default to the conversation's last ones."""
    from callm.ledger import logs

    conn = logs.connect()
    try:
        found = logs.resolve_cid(conn, cid) if cid else logs.latest_cid(conn)
        entries = logs.turns(conn, found) if found else []
    finally:
        conn.close()
    if not found:
        notice("no logged conversation to continue; starting a new one")
        spec.cid = new_cid()
        return []
    spec.cid = found
    if entries:
        last = entries[-1]
        if spec.model is None:
            spec.model = f"{last.provider}/{last.model}"
        if spec.system is None and last.system:
            spec.system = last.system
    return history(entries)


def history(entries: list[Turn]) -> list[Message]:
    """User/assistant pairs of the calls that got a reply (a partial one counts: Ctrl-C and
    broken streams keep what arrived); a call that failed before any text is left out."""
    out: list[Message] = []
    for e in entries:
        if e.prompt is not None and e.reply:
            out += [Message("user", e.prompt), Message("assistant", e.reply)]
    return out


def context_window(cfg: Config, provider: str, model: str) -> int | None:
    """From `models sync` if synced, else the catalog, else the simulator's own list."""
    from callm.endpoints import provider_config

    pc = provider_config(cfg, provider)
    try:
        from callm.ledger.models import get

        info = get(provider, model)
        if info is not None and info.context_window:
            return info.context_window
    except Exception:  # a cache problem must not stop a call
        pass
    if pc.driver == "sim":
        from callm.model_query import _sim_rows

        return next((m.context_window for m in _sim_rows(provider) if m.id == model), None)
    from callm.catalog.models import lookup

    info = lookup(provider, model, driver=pc.driver, base_url=pc.base_url)
    return info.context_window if info is not None else None


def fit(cfg: Config, spec: CallSpec, notice: Notice) -> int:
    """Drop the oldest turns of spec.messages until the estimated prompt (system, history,
    the new message) plus room for the reply fits the model's context window. Returns how
    many turns were dropped, each drop said on stderr, never silently."""
    from callm.endpoints import resolve_target
    from callm.pricing import TOKENS_PER_MESSAGE, estimate_text_tokens

    if len(spec.messages) < 3:
        return 0
    target = resolve_target(cfg, spec.model)
    window = context_window(cfg, target.provider, target.model)
    if not window:
        return 0
    room = spec.max_tokens or window // 8  # keep some of the window for the reply
    sizes = [estimate_text_tokens(m.content) + TOKENS_PER_MESSAGE for m in spec.messages]
    total = sum(sizes) + estimate_text_tokens(spec.system or "") + room
    start = 0
    while total > window and len(spec.messages) - start > 1:
        total -= sizes[start] + sizes[start + 1]  # a user message and its reply
        start += 2
    if not start:
        return 0
    spec.messages = spec.messages[start:]
    turns = start // 2
    notice(
        f"dropped the oldest {turns} turn(s) of conversation {spec.cid} to fit"
        f" {target.label}'s context window ({window:,} tokens)"
    )
    return turns


def log_columns(cfg: Config, spec: CallSpec, out: CallOutcome) -> dict[str, Any]:
    """What the log stores with the usage row: this turn's prompt (the history is in the
    earlier rows), the reply (partial if interrupted), system prompt, options, attachments.
    Nothing when logging is off. ledger/usage.py scrubs key-shaped text."""
    if not logging_on(cfg, spec):
        return {}
    last = spec.messages[-1] if spec.messages else None
    options: dict[str, Any] = {
        k: "[redacted]" if any(s in k.lower() for s in _SECRET_NAMES) else v
        for k, v in spec.options.items()
    }
    if spec.temperature is not None:
        options["temperature"] = spec.temperature
    if spec.max_tokens is not None:
        options["max_tokens"] = spec.max_tokens
    parsed = getattr(out, "parsed", None)
    return {
        "cid": spec.cid,
        "prompt": last.content if last is not None and last.role == "user" else "",
        "reply": out.result.text,
        "system": spec.system,
        "options_json": _dumps(options) if options else None,
        "attachments_json": _dumps(attachments(spec)) if attachments(spec) else None,
        "reply_json": _dumps(parsed) if parsed is not None else None,
    }


def attachments(spec: CallSpec) -> list[dict[str, Any]]:
    """Names, sizes and SHA-256 of the files attached to the call (never their bytes)."""
    out = []
    for a in getattr(spec, "attachments", None) or []:
        import hashlib

        data = getattr(a, "data", None)
        name = getattr(a, "name", None) or getattr(a, "path", None) or str(a)
        entry: dict[str, Any] = {"name": str(name)}
        if getattr(a, "mime", None):
            entry["mime"] = a.mime
        if isinstance(data, (bytes, bytearray)):
            entry["sha256"] = hashlib.sha256(data).hexdigest()
            entry["bytes"] = len(data)
        out.append(entry)
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
