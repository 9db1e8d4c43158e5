"""What one chat call is asked (CallSpec) and what came of it (CallOutcome, with an Attempt
per model tried): shared by callm.engine, the CLI, the gateway and the call log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callm.errors import CallmError, StreamError
from callm.types import Attachment, ChatResult, Message, Tool, Usage

if TYPE_CHECKING:
    from callm.endpoints import Target
    from callm.types import Price


@dataclass
class CallSpec:
    """What `callm chat` asks for, before any model is resolved."""

    model: str | None
    messages: list[Message]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None
    token: str | None = None  # the gateway token that made the call (its ledger column)
    # The models to try, in order, when the caller already chose them (a route); else the
    # chain comes from `model` and the fallbacks.
    targets: list[Target] | None = None
    cid: str | None = None  # the conversation (callm.conversations); None: not logged as one
    log: bool | None = None  # False: --no-log; None: the config's log_prompts
    schema: dict[str, Any] | None = None  # --schema: the reply is checked against it
    attachments: tuple[Attachment, ...] = ()  # -a FILE
    timeout: float | None = None  # --timeout: each request's deadline, over the provider's


@dataclass
class Attempt:
    provider: str
    model: str
    outcome: str  # ok | error | skipped
    error_kind: str | None = None
    latency_ms: int | None = None
    tries: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": f"{self.provider}/{self.model}",
            "outcome": self.outcome,
            "error_kind": self.error_kind,
            "latency_ms": self.latency_ms,
            "tries": self.tries,
        }


@dataclass
class CallOutcome:
    target: Target | None = None
    result: ChatResult = field(default_factory=ChatResult)
    usage: Usage = field(default_factory=Usage)
    usage_source: str = "reported"
    cost_usd: float | None = None
    price: Price | None = None
    latency_ms: int = 0
    ttft_ms: int | None = None
    attempts: list[Attempt] = field(default_factory=list)
    error: CallmError | None = None
    parsed: Any = None  # the reply as JSON, when a schema was given and it matched
    interrupted: bool = False
    # why it was interrupted: "interrupted" (Ctrl-C), or what the exception that stopped it
    # says in its `outcome` attribute (the gateway's "client_gone")
    interrupted_as: str = "interrupted"
    text_shown: bool = False  # some text reached the sink
    cid: str | None = None  # the logged conversation, for `chat --json`

    @property
    def outcome(self) -> str:
        if self.interrupted:
            return self.interrupted_as
        if self.error is None:
            return "fallback" if len(self.attempts) > 1 else "ok"
        if isinstance(self.error, StreamError):
            return "broken_stream"
        return "error"
