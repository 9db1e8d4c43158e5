"""Azure OpenAI: Chat Completions on a deployment.

base_url is the resource endpoint, https://RESOURCE.openai.azure.com (a trailing `/openai`
is accepted too), and the model id is the *deployment* name:

    POST {base}/openai/deployments/{deployment}/chat/completions?api-version={version}
    header `api-key: KEY` (not Bearer); no "model" in the body (the deployment picks it)

`api_version` defaults to DEFAULT_API_VERSION, the current GA data-plane version (it made
streamed usage, `stream_options.include_usage`, generally available). Replies, streams and
errors are OpenAI's (plus `prompt_filter_results` chunks with empty `choices`), so the
OpenAI parser is reused as is.

A base URL ending in `/openai/v1` selects Azure's v1 API instead: OpenAI's own paths with
"model" (the deployment) in the body and no api-version; same `api-key` header.

Model listing: the ids a chat call takes are deployment names, so `models sync` lists the
deployments: GET {base}/openai/deployments?api-version=2023-03-15-preview, whose rows are
{"id": <deployment>, "model": <underlying model>, "status", ...} (the model goes to
ModelInfo.extra["model"]). That route is in no GA data-plane version (it left after
2023-03-15-preview; the GA "Models - List", /openai/models, lists what *could* be deployed,
not what can be called), and the control plane that lists deployments needs an Entra ID
token, not an api-key. Azure still serves that preview version for this route (the Azure
SDKs and other clients use it), so it is pinned here whatever `api_version` says. With the
v1 API it is GET {base}/models.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

from callm.drivers.base import join_url
from callm.drivers.openai import OpenAIChatDriver
from callm.drivers.structured import schema_instruction
from callm.errors import MissingKeyError, UsageError
from callm.types import ChatRequest, Endpoint, HttpRequest

DEFAULT_API_VERSION = "2024-10-21"
DEPLOYMENTS_API_VERSION = "2023-03-15-preview"
NEW_FIELDS_VERSION = "2024-09-01"  # max_completion_tokens, stream_options, json_schema
DEVELOPER_VERSION = (
    "2024-12-01"  # the "developer" message role  # the last version with /openai/deployments
)


def _resource_root(base_url: str) -> tuple[str, bool]:
    """(URL that paths are joined to, True for the v1 API); a query in it is kept."""
    base, sep, query = base_url.partition("?")
    base = base.rstrip("/")
    if base.endswith("/openai/v1"):
        return base + sep + query, True
    if base.endswith("/openai"):
        base = base[: -len("/openai")]
    return base + sep + query, False


class AzureOpenAIDriver(OpenAIChatDriver):
    name = "azure-openai"
    key_required = True
    max_tokens_field = "max_completion_tokens"  # max_tokens is refused by o-series models

    def _headers(self, ep: Endpoint) -> dict[str, str]:
        if not ep.key:
            raise MissingKeyError(
                f"provider {ep.name!r} has no API key",
                provider=ep.name,
                hint=f"run `callm providers set-key {ep.name}`",
            )
        headers = {"Content-Type": "application/json", "api-key": ep.key}
        headers.update(ep.headers)
        return headers

    def _query(self, ep: Endpoint) -> str:
        return "api-version=" + quote(ep.api_version or DEFAULT_API_VERSION, safe="")

    def chat_request(self, ep: Endpoint, req: ChatRequest) -> HttpRequest:
        root, v1 = _resource_root(ep.base_url)
        version = "v1" if v1 else (ep.api_version or DEFAULT_API_VERSION)
        body = self.versioned_body(req, version)
        if v1:
            url = join_url(root, "chat/completions")
        else:
            del body["model"]
            deployment = quote(req.model, safe="")
            path = f"openai/deployments/{deployment}/chat/completions?{self._query(ep)}"
            url = join_url(root, path)
        return HttpRequest("POST", url, self._headers(ep), body)

    def versioned_body(self, req: ChatRequest, version: str) -> dict[str, Any]:
        """The body the api-version knows. Before 2024-09-01 there is no
        max_completion_tokens, stream_options or json_schema response_format; the developer
        role came with 2024-12-01; file (PDF) parts only with the v1 API."""
        old = version != "v1" and version[:10] < NEW_FIELDS_VERSION
        if version != "v1" and any(a.kind == "pdf" for a in req.attachments):
            # the dated versions' user content parts are text and image_url only
            raise UsageError(
                f"azure-openai api-version {version} takes no PDF attachments",
                hint="use the v1 API (a base_url ending in /openai/v1) for PDFs",
            )
        json_mode = old and req.schema is not None
        if json_mode and req.schema is not None:
            # json_object mode, with the schema said in the system prompt; the reply is
            # checked against the schema when it arrives all the same
            note = schema_instruction(req.schema)
            system = f"{req.system}\n\n{note}" if req.system else note
            req = replace(req, schema=None, system=system)
        role_ok = version == "v1" or version[:10] >= DEVELOPER_VERSION
        body = self.chat_body(req, developer_role=role_ok)
        if old:
            if "max_completion_tokens" in body:
                body["max_tokens"] = body.pop("max_completion_tokens")
            body.pop("stream_options", None)
        if json_mode:
            body.setdefault("response_format", {"type": "json_object"})
        return body

    def models_request(self, ep: Endpoint, page_token: str | None = None) -> HttpRequest:
        headers = self._headers(ep)
        del headers["Content-Type"]
        root, v1 = _resource_root(ep.base_url)
        if v1:
            url = join_url(root, "models")
        else:
            url = join_url(root, f"openai/deployments?api-version={DEPLOYMENTS_API_VERSION}")
        return HttpRequest("GET", url, headers)
