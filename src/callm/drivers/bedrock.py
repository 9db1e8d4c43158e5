"""Amazon Bedrock Converse API: POST /model/{modelId}/converse and /converse-stream.

Model ids are URL-encoded into the path (`anthropic.claude-...-v1:0`, inference profiles such
as `us.anthropic....` and ARNs alike). Streams are AWS event-stream frames
(application/vnd.amazon.eventstream), read in bedrock_events.py.

Auth is not built here: with a key (a Bedrock API key) the request carries it as Bearer;
without one it is marked for SigV4 and callm.transport signs it (callm.aws_auth) right before
sending, when the final bytes are known. Model listing is the control plane
(bedrock.REGION.amazonaws.com): ListFoundationModels, then ListInferenceProfiles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from callm.drivers import parts
from callm.drivers.base import (
    body_text,
    join_url,
    loads,
    reads_error_body,
    reads_json,
    reply_end,
    whole_tool_call,
)
from callm.drivers.bedrock_events import FINISH, BedrockStreamParser, bedrock_error, converse_usage
from callm.errors import BadResponseError, CallmError, UsageError
from callm.types import (
    AwsSigning,
    ChatRequest,
    Endpoint,
    HttpRequest,
    Message,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
)

__all__ = ["BedrockDriver", "BedrockStreamParser", "control_plane"]

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


def _inference_value(field: str, value: Any) -> Any:
    """`-o top_p=0.9` may arrive as the string "0.9": inferenceConfig wants typed values."""
    if field == "stopSequences":
        return [value] if isinstance(value, str) else value
    if isinstance(value, str):
        try:
            return int(value) if field == "maxTokens" else float(value)
        except ValueError:
            raise UsageError(f"option {field} must be a number, not {value!r}") from None
    return value


def _options(body: dict[str, Any], inference: dict[str, Any], options: Mapping[str, Any]) -> None:
    extra: dict[str, Any] = {}
    for key, value in options.items():
        if key in _INFERENCE:
            inference[_INFERENCE[key]] = _inference_value(_INFERENCE[key], value)
        elif key == "json_schema":  # structured output: the reply's text follows the schema
            body["outputConfig"] = output_config(value)
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


def output_config(schema: Any) -> dict[str, Any]:
    """Structured output (--schema, or -o json_schema): Converse takes the schema as text."""
    text = schema if isinstance(schema, str) else json.dumps(schema)
    fmt = {"type": "json_schema", "structure": {"jsonSchema": {"schema": text, "name": "reply"}}}
    return {"textFormat": fmt}


def control_plane(base_url: str) -> str:
    """bedrock-runtime[-fips].REGION.amazonaws.com -> bedrock[-fips].REGION.amazonaws.com
    (VPC endpoint names too); any other endpoint_url (a proxy, a test server) serves both."""
    parts = urlsplit(base_url)
    labels = parts.netloc.split(".")
    for i, label in enumerate(labels):
        if label in ("bedrock-runtime", "bedrock-runtime-fips"):
            labels[i] = label.replace("bedrock-runtime", "bedrock")
            break
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{'.'.join(labels)}{parts.path.rstrip('/')}{query}"


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
        if req.attachments:
            parts.bedrock(messages, req.attachments)
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        if req.schema is not None:
            body["outputConfig"] = output_config(req.schema)
        inference: dict[str, Any] = {}
        if req.max_tokens:
            inference["maxTokens"] = req.max_tokens
        if req.temperature is not None:
            inference["temperature"] = req.temperature
        _options(body, inference, req.options)
        if inference:
            body["inferenceConfig"] = inference
        op = "converse-stream" if req.stream else "converse"
        url = join_url(ep.base_url, f"model/{quote(req.model, safe='')}/{op}")
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
                out.append(
                    whole_tool_call(
                        tools, tool.get("toolUseId"), tool.get("name"), tool.get("input")
                    )
                )
                tools += 1
        return out + reply_end(obj.get("usage"), obj.get("stopReason"), converse_usage, FINISH)

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
            return self._request(ep, "GET", join_url(base, "foundation-models"))
        nxt = page_token.partition(":")[2]
        path = "inference-profiles?maxResults=1000"
        if nxt:
            path += "&nextToken=" + quote(nxt, safe="")
        return self._request(ep, "GET", join_url(base, path))

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
