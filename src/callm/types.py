"""Canonical values shared by every layer. Stdlib only, so importing them is free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_call", "content_filter", "error", "unknown"]


@dataclass(slots=True)
class ToolCall:
    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    # An assistant turn that called tools; a "tool" turn answers the call `tool_call_id`.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None  # the tool a "tool" turn answers (Gemini, Ollama want it)
    images: tuple[str, ...] = ()  # image URLs or data: URLs sent with a user turn


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; `parameters` is its JSON Schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with the prompt (`-a FILE`). `kind` is decided from the bytes."""

    name: str
    mime: str  # image/png, image/jpeg, image/webp, image/gif, application/pdf, text/plain
    data: bytes = field(repr=False)
    width: int | None = None  # images, when the header says
    height: int | None = None
    pages: int | None = None  # PDFs, counted roughly

    @property
    def kind(self) -> str:
        """image | pdf | text"""
        if self.mime.startswith("image/"):
            return "image"
        return "pdf" if self.mime == "application/pdf" else "text"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the user asked for, independent of any vendor."""

    model: str  # the vendor's model id (no provider prefix)
    messages: tuple[Message, ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = True
    # Extra vendor/driver options from `-o KEY=VALUE` (strings) and `-o KEY:=JSON`.
    options: dict[str, Any] = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None  # auto | none | required | the name of one tool
    stop: tuple[str, ...] = ()
    # {"type": "json_object"} or {"type": "json_schema", "name": ..., "schema": {...}}
    response_format: dict[str, Any] | None = None
    schema: dict[str, Any] | None = None  # a JSON schema the reply must match (--schema)
    attachments: tuple[Attachment, ...] = ()  # sent with the last user message


@dataclass(frozen=True, slots=True)
class Tls:
    """A provider's own TLS settings (a corporate gateway); None: the defaults."""

    ca_bundle: str | None = None  # PEM CA file (or directory) trusted instead of certifi's
    client_cert: str | None = None  # PEM certificate presented to the server
    client_key: str | None = None  # its private key, when not in client_cert


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Who we talk to: a configured provider with its key resolved (never logged)."""

    name: str
    driver: str
    base_url: str
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    api_version: str | None = None  # azure-openai only
    region: str | None = None  # bedrock: the AWS region requests are signed for
    profile: str | None = None  # bedrock: the AWS profile credentials come from
    key_in_headers: bool = False  # the key went into `headers` (config key_header)
    deadline: float | None = None  # the most one request may take, head and body
    tls: Tls | None = None

    def __repr__(self) -> str:  # never show the key in a traceback or log
        return f"Endpoint(name={self.name!r}, driver={self.driver!r}, base_url={self.base_url!r})"


@dataclass(frozen=True, slots=True)
class AwsSigning:
    """Sign with AWS SigV4 (callm.aws_auth) right before sending: the signature covers the
    final URL, headers and body bytes, which only callm.transport knows."""

    region: str
    service: str = "bedrock"
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request a driver wants sent. Drivers build these; only callm.transport sends them."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    aws: AwsSigning | None = None  # set: transport signs the request with these

    def __repr__(self) -> str:  # headers carry keys
        return f"HttpRequest({self.method} {self.url})"


@dataclass(slots=True)
class Usage:
    """Token counts, normalised (see SPEC: usage conventions)."""

    input_tokens: int = 0  # all prompt tokens, cached ones included
    output_tokens: int = 0  # reasoning/thinking included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


# ---- stream events: every driver emits only these -------------------------------------


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True)
class RefusalDelta:
    text: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # a fragment of the JSON arguments


@dataclass(slots=True)
class UsageReport:
    """Usage as known so far. A later report replaces an earlier one."""

    usage: Usage


@dataclass(slots=True)
class Finished:
    reason: FinishReason


StreamEvent = Union[TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta, UsageReport, Finished]


@dataclass(slots=True)
class ChatResult:
    """Everything a call produced; built by drivers.base.StreamAccumulator."""

    text: str = ""
    reasoning: str = ""
    refusal: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: FinishReason | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; None = unknown (never treated as 0)."""

    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    source: str = "unknown"  # e.g. "catalog 2026-11-01", "override lab/*", "vendor sync"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: str
    id: str
    context_window: int | None = None
    max_output: int | None = None
    price: Price | None = None
    capabilities: tuple[str, ...] = ()
    display_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
