"""The published shape of `callm logs list --json` and `callm logs show --json`: a JSON list
of LogEntry objects. The commands build plain dicts (ledger/logs.py: importing pydantic would
cost `logs list` more than its query); tests validate their output against this model, and
`LogList.model_json_schema()` is the schema users get."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    mime: str | None = Field(None, description="the type callm sent it as")
    sha256: str | None = Field(None, description="SHA-256 of the file's bytes, hex")
    bytes: int | None = Field(None, description="size of the file")


class LogEntry(BaseModel):
    """One logged call."""

    model_config = ConfigDict(extra="forbid", title="LogEntry")

    id: int = Field(description="the call's id (its usage row): `callm logs show ID`")
    ts: float = Field(description="unix time the call started")
    time: str = Field(description="the same, ISO 8601 local time with offset")
    provider: str
    model: str
    cid: str | None = Field(description="conversation id: `callm chat --cid ID` continues it")
    prompt: str | None = Field(description="this turn's prompt (earlier turns are other calls)")
    reply: str | None = Field(description="the reply; partial if the call was interrupted")
    system: str | None = None
    reply_json: Any = Field(None, description="the parsed reply of a --schema call")
    options: dict[str, Any] = Field(
        default_factory=dict, description="temperature, max_tokens and -o options (secrets masked)"
    )
    attachments: list[Attachment] = Field(default_factory=list)
    outcome: Literal["ok", "error", "interrupted", "broken_stream", "fallback"]
    interrupted: bool = Field(description="Ctrl-C or a closed pipe ended the reply")
    error_kind: str | None = None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = Field(description="null when the price was unknown")
    latency_ms: int | None = None


class LogList(RootModel[list[LogEntry]]):
    """`callm logs list --json` and `callm logs show --json`: newest first for list, oldest
    first for a conversation shown with --cid."""

    model_config = ConfigDict(title="callm logs")
