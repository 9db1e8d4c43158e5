"""Amazon Bedrock Converse API: POST /model/{modelId}/converse and /converse-stream.

Model ids are URL-encoded into the path (`anthropic.claude-...-v1:0`, inference profiles such
as `us.anthropic....` and ARNs alike). Streams are AWS event-stream frames
(application/vnd.amazon.eventstream), decoded with botocore's parser, CRCs checked; a frame
with `:message-type: exception` is an error sent inside the 200 stream.

Auth is not built here: with a key (a Bedrock API key) the request carries it as Bearer;
without one it is marked for SigV4 and transport.py signs it (callm.aws_auth) right before
sending, when the final bytes are known. Model listing is the control plane
(bedrock.REGION.amazonaws.com): ListFoundationModels, then ListInferenceProfiles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from callm.drivers.base import (
    READ_ERRORS,
    body_text,
    defer_after_events,
    error_from_http,
    loads,
    reads_error_body,
    reads_json,
)
from callm.errors import (
    AuthError,
    BadResponseError,
    CallmError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from callm.types import (
    AwsSigning,
    ChatRequest,
    Endpoint,
    Finished,
    FinishReason,
    HttpRequest,
    Message,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Converse's own request fields; any other `-o` option goes to additionalModelRequestFields
# (the model's native parameters, e.g. top_k).
_TOP_LEVEL = {
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
    "outputConfig",
    "serviceTier",
    "inferenceConfig",
    "system",
}
# -o spellings -> inferenceConfig fields
_INFERENCE = {
    "top_p": "topP",
    "topP": "topP",
    "stop": "stopSequences",
    "stop_sequences": "stopSequences",
    "stopSequences": "stopSequences",
    "max_tokens": "maxTokens",
    "maxTokens": "maxTokens",
    "temperature": "temperature",
}
# exception type (lower case, no "exception") -> the HTTP status AWS documents for it
_STATUS = {
    "accessdenied": 403,
    "unrecognizedclient": 403,
    "invalidsignature": 403,
    "expiredtoken": 403,
    "incompletesignature": 403,
    "missingauthenticationtoken": 403,
    "validation": 400,
    "resourcenotfound": 404,
    "throttling": 429,
    "servicequotaexceeded": 429,
    "modelnotready": 429,
    "modeltimeout": 408,
    "modelerror": 424,
    "modelstreamerror": 424,
    "internalserver": 500,
    "serviceunavailable": 503,
}


def _kind(etype: str | None) -> str:
    """`ThrottlingException`, `throttlingException`, `ValidationException:http://...` ->
    `throttling`, `validation`."""
    name = (etype or "").split(":", 1)[0].split("#")[-1].strip().lower()
    return name[: -len("exception")] if name.endswith("exception") else name


def bedrock_error(
    etype: str | None, message: str, status: int | None = None, headers: Any = None
) -> CallmError:
    """An AWS error (HTTP reply or in-stream exception) as a canonical error."""
    kind = _kind(etype)
    status = status if status and status >= 400 else _STATUS.get(kind, 500)
    # AWS appends the canonical request to a signature error after a blank line: keep line one
    msg = (message or "").split("\n\n", 1)[0].strip() or etype or f"HTTP {status}"
    if kind in ("accessdenied", "unrecognizedclient", "invalidsignature", "expiredtoken"):
        return AuthError(msg, status=status)
    if kind in ("incompletesignature", "missingauthenticationtoken"):
        return AuthError(msg, status=status)
    if kind in ("throttling", "servicequotaexceeded"):
        return RateLimitError(msg, status=status)
    if kind in ("modelnotready", "serviceunavailable"):
        return OverloadedError(msg, status=status)
    if kind == "resourcenotfound":
        return NotFoundError(msg, status=status)
    if kind in ("modeltimeout", "modelerror", "modelstreamerror", "internalserver"):
        return ServerError(msg, status=status)
    if kind == "validation":
        low = msg.lower()
        if any(m in low for m in _CONTEXT_MARKERS):
            return ContextLengthError(msg, status=status)
        return error_from_http(400, msg, headers=headers)
    return error_from_http(status, msg, code=etype, headers=headers)


# What Bedrock's validation messages say when the prompt does not fit the model
_CONTEXT_MARKERS = (
    "input is too long",
    "too many input tokens",
    "too many tokens",
    "prompt is too long",
    "context window",
    "context length",
    "maximum context",
    "exceeds the maximum",
    "max_tokens_to_sample",
)


def _usage(u: Mapping[str, Any]) -> Usage:
    """Converse's inputTokens leaves out cached tokens; callm counts every prompt token."""
    inp = u.get("inputTokens") or 0
    read = u.get("cacheReadInputTokens") or 0
    write = u.get("cacheWriteInputTokens") or 0
    return Usage(
        input_tokens=inp + read + write,
        output_tokens=u.get("outputTokens") or 0,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


class BedrockStreamParser:
    """ConverseStream event-stream frames -> canonical events."""

    __slots__ = ("_buffer", "_error", "_fed", "_json", "_read", "_tool_index")

    def __init__(self) -> None:
        from callm.aws_auth import need_botocore

        need_botocore()
        from botocore.eventstream import EventStreamBuffer

        self._buffer = EventStreamBuffer()
        self._fed = 0  # bytes given to the buffer
        self._read = 0  # bytes of the complete frames taken out of it
        self._tool_index: dict[int, int] = {}  # content block index -> tool call ordinal
        self._error: CallmError | None = None
        # A body starting with "{" is JSON, not frames (a frame this long would be > 2 GB): a
        # server that ignored the stream, whose whole reply the engine reads as such.
        self._json = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._error:
            raise self._error
        if self._json or (self._fed == 0 and data[:1] == b"{"):
            self._json = True
            return []
        out: list[StreamEvent] = []
        try:
            self._buffer.add_data(data)
            self._fed += len(data)
            for message in self._buffer:
                self._read += message.prelude.total_length
                self._frame(message.headers, message.payload, out)
        except READ_ERRORS as exc:
            self._error = defer_after_events(exc, out)
        except Exception as exc:  # botocore's ParserError: a bad CRC or length
            self._error = defer_after_events(_corrupt(exc), out)
        return out

    def close(self) -> list[StreamEvent]:
        if self._error:
            raise self._error
        if self._fed != self._read:
            raise BadResponseError(
                f"the event stream ended inside a frame ({self._fed - self._read} bytes left)"
            )
        return []

    def _frame(self, headers: Mapping[str, Any], payload: bytes, out: list[StreamEvent]) -> None:
        mtype = headers.get(":message-type")
        if mtype == "exception":
            body = loads(payload) if payload else {}
            message = (body.get("message") or body.get("Message")) if isinstance(body, dict) else ""
            raise bedrock_error(headers.get(":exception-type"), message or "")
        if mtype == "error":
            raise bedrock_error(headers.get(":error-code"), headers.get(":error-message") or "")
        if mtype != "event":
            return
        event = headers.get(":event-type")
        obj = loads(payload) if payload else {}
        if event == "contentBlockDelta":
            self._delta(obj, out)
        elif event == "contentBlockStart":
            tool = (obj.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                idx = len(self._tool_index)
                self._tool_index[obj.get("contentBlockIndex", idx)] = idx
                out.append(ToolCallDelta(idx, id=tool.get("toolUseId"), name=tool.get("name")))
        elif event == "messageStop":
            reason = obj.get("stopReason")
            out.append(Finished(_FINISH.get(reason, "unknown") if reason else "stop"))
        elif event == "metadata" and isinstance(obj.get("usage"), dict):
            out.append(UsageReport(_usage(obj["usage"])))
        # messageStart, contentBlockStop and future events carry nothing callm shows

    def _delta(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = obj.get("delta") or {}
        if delta.get("text"):
            out.append(TextDelta(delta["text"]))
        elif isinstance(delta.get("toolUse"), dict):
            part = delta["toolUse"].get("input")
            idx = self._tool_index.get(obj.get("contentBlockIndex", -1))
            if part and idx is not None:
                out.append(ToolCallDelta(idx, arguments=part))
        elif isinstance(delta.get("reasoningContent"), dict):
            text = delta["reasoningContent"].get("text")
            if text:
                out.append(ReasoningDelta(text))


def _corrupt(exc: Exception) -> BadResponseError:
    what = "checksum mismatch" if "Checksum" in type(exc).__name__ else type(exc).__name__
    return BadResponseError(f"corrupt event-stream frame from the provider ({what}): {exc}")


def _messages(req: ChatRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages). Converse wants user/assistant turns that alternate, so
    consecutive turns of one role are merged into one message of several blocks."""
    system = [{"text": req.system}] if req.system else []
    turns: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role == "system":
            system.append({"text": m.content})
            continue
        block = _block(m)
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": m.role, "content": [block]})
    return system, turns


def _block(m: Message) -> dict[str, Any]:
    return {"text": m.content}


def _options(body: dict[str, Any], inference: dict[str, Any], options: Mapping[str, Any]) -> None:
    extra: dict[str, Any] = {}
    for key, value in options.items():
        if key in _INFERENCE:
            field = _INFERENCE[key]
            inference[field] = (
                [value] if field == "stopSequences" and isinstance(value, str) else value
            )
        elif key == "json_schema":  # structured output: the reply's text follows the schema
            body["outputConfig"] = {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {
                        "jsonSchema": {
                            "schema": value if isinstance(value, str) else json.dumps(value),
                            "name": "reply",
                        }
                    },
                }
            }
        elif key in _TOP_LEVEL:
            if key == "inferenceConfig" and isinstance(value, dict):
                inference.update(value)
            elif key == "additionalModelRequestFields" and isinstance(value, dict):
                extra.update(value)
            else:
                body[key] = value
        else:
            extra[key] = value
    if extra:
        body["additionalModelRequestFields"] = extra


def control_plane(base_url: str) -> str:
    """bedrock-runtime.REGION.amazonaws.com -> bedrock.REGION.amazonaws.com; any other
    endpoint_url (a test server, a proxy) serves both."""
    parts = urlsplit(base_url)
    host = parts.netloc
    if host.startswith("bedrock-runtime."):
        host = "bedrock." + host[len("bedrock-runtime.") :]
    elif ".bedrock-runtime." in host:  # bedrock-runtime-fips, VPC endpoint names
        host = host.replace(".bedrock-runtime.", ".bedrock.")
    return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"


class BedrockDriver:
    name = "bedrock"
    local = False

    def _request(self, ep: Endpoint, method: str, url: str, body: Any = None) -> HttpRequest:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        aws = None
        if ep.key:  # a Bedrock API key
            headers["Authorization"] = f"Bearer {ep.key}"
        else:
            aws = AwsSigning(region=ep.region or "us-east-1", profile=ep.profile)
        headers.update(ep.headers)
        return HttpRequest(method, url, headers, body, aws=aws)

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest:
        system, messages = _messages(req)
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        inference: dict[str, Any] = {}
        if req.max_tokens:
            inference["maxTokens"] = req.max_tokens
        if req.temperature is not None:
            inference["temperature"] = req.temperature
        _options(body, inference, req.options)
        if inference:
            body["inferenceConfig"] = inference
        op = "converse-stream" if req.stream else "converse"
        url = f"{ep.base_url.rstrip('/')}/model/{quote(req.model, safe='')}/{op}"
        http = self._request(ep, "POST", url, body)
        if req.stream:
            http.headers["Accept"] = "application/vnd.amazon.eventstream"
        return http

    def stream_parser(self) -> BedrockStreamParser:
        return BedrockStreamParser()

    @reads_json
    def parse_response(self, body: bytes) -> list[StreamEvent]:
        obj = loads(body)
        if not isinstance(obj, dict):
            raise BadResponseError(f"expected a Converse reply, got: {body_text(body, 200)}")
        out: list[StreamEvent] = []
        tools = 0
        message = (obj.get("output") or {}).get("message") or {}
        for block in message.get("content") or ():
            if block.get("text"):
                out.append(TextDelta(block["text"]))
            elif isinstance(block.get("reasoningContent"), dict):
                text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
                if text:
                    out.append(ReasoningDelta(text))
            elif isinstance(block.get("toolUse"), dict):
                tool = block["toolUse"]
                args = tool.get("input")
                out.append(
                    ToolCallDelta(
                        tools,
                        id=tool.get("toolUseId"),
                        name=tool.get("name"),
                        arguments=json.dumps(args if args is not None else {}),
                    )
                )
                tools += 1
        if isinstance(obj.get("usage"), dict):
            out.append(UsageReport(_usage(obj["usage"])))
        reason = obj.get("stopReason")
        if reason:
            out.append(Finished(_FINISH.get(reason, "unknown")))
        return out

    @reads_error_body
    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> CallmError:
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            obj = json.loads(body) if body else {}
        except ValueError:
            obj = None
        message = ""
        etype = lower.get("x-amzn-errortype")
        if isinstance(obj, dict):
            message = obj.get("message") or obj.get("Message") or ""
            etype = etype or obj.get("__type")
        if not message:
            message = body_text(body) if body else f"HTTP {status}"
        return bedrock_error(etype, message, status, headers)

    def models_request(self, ep: Endpoint, page_token: str | None = None) -> HttpRequest:
        """Page tokens: None = the foundation models; "profiles:" then "profiles:NEXT" =
        the inference profiles (the ids cross-region calls take)."""
        base = control_plane(ep.base_url)
        if page_token is None:
            return self._request(ep, "GET", f"{base}/foundation-models")
        nxt = page_token.partition(":")[2]
        url = f"{base}/inference-profiles?maxResults=1000"
        if nxt:
            url += "&nextToken=" + quote(nxt, safe="")
        return self._request(ep, "GET", url)

    @reads_json
    def parse_models(self, ep: Endpoint, body: bytes) -> tuple[list[ModelInfo], str | None]:
        obj = loads(body)
        if not isinstance(obj, dict):
            raise BadResponseError(f"expected a model list, got: {body_text(body, 200)}")
        models: list[ModelInfo] = []
        if "inferenceProfileSummaries" in obj:
            for p in obj.get("inferenceProfileSummaries") or ():
                pid = p.get("inferenceProfileId")
                if pid and p.get("status", "ACTIVE") == "ACTIVE":
                    extra = {k: p[k] for k in ("type", "inferenceProfileArn") if k in p}
                    models.append(
                        ModelInfo(
                            ep.name, pid, display_name=p.get("inferenceProfileName"), extra=extra
                        )
                    )
            nxt = obj.get("nextToken")
            return models, f"profiles:{nxt}" if nxt else None
        for m in obj.get("modelSummaries") or ():
            mid = m.get("modelId")
            if not mid or "TEXT" not in (m.get("outputModalities") or ["TEXT"]):
                continue
            caps = ["streaming"] if m.get("responseStreamingSupported") else []
            if "IMAGE" in (m.get("inputModalities") or ()):
                caps.append("vision")
            extra = {
                k: m[k]
                for k in ("providerName", "inferenceTypesSupported", "modelLifecycle")
                if k in m
            }
            models.append(
                ModelInfo(
                    ep.name,
                    mid,
                    display_name=m.get("modelName"),
                    capabilities=tuple(caps),
                    extra=extra,
                )
            )
        return models, "profiles:"
