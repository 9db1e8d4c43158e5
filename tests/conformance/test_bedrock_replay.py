"""Real recorded Bedrock traffic (tests/conformance/cases/bedrock, with provenance in its
README) replayed byte for byte through a server on 127.0.0.1, through callm's whole path:
request building, SigV4 signing, HTTP, event-stream decoding with its CRCs, error mapping.
Each `expect` was read independently of callm (by the converter that stored the case)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from aws_fake import ACCESS_KEY, SECRET_KEY
from callm.call_types import CallSpec
from callm.config.schema import Config
from callm.engine import call
from callm.types import Message
from replay_server import Reply, serving

CASES = Path(__file__).parent / "cases" / "bedrock"


def _interactions() -> list[Any]:
    out = []
    for path in sorted(CASES.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc["source"]["repo"] and doc["source"]["commit"] and doc["source"]["license"]
        for i, it in enumerate(doc["interactions"]):
            out.append(pytest.param(it, id=f"{path.stem[:60]}#{i}"))
    return out


@pytest.mark.parametrize("it", _interactions())
def test_recorded_bedrock_interaction(it: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    resp, exp = it["response"], it["expect"]
    body = (
        base64.b64decode(resp["body_base64"])
        if "body_base64" in resp
        else resp["body"].encode("utf-8")
    )
    recorded = urlsplit(it["request"]["url"]).path  # /model/<id>/<operation>
    model = unquote(recorded.split("/")[2])
    with serving(Reply(resp["status"], dict(resp["headers"]), body)) as srv:
        cfg = Config.from_dict(
            {
                "providers": {
                    "aws": {"driver": "bedrock", "region": "us-east-1", "endpoint_url": srv.url}
                },
                "retry": {"attempts": 1},
            }
        )
        spec = CallSpec(model=f"aws/{model}", messages=[Message("user", "hello")])
        outcome = call(cfg, spec, lambda _ev: None, lambda _msg: None)
        (seen,) = srv.seen
    assert seen.path == recorded  # same operation, model id encoded the same way
    assert seen.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 Credential=")
    assert set(seen.json) <= set(it["request"]["json"]) | {"inferenceConfig"}
    if "error" in exp:
        assert outcome.error is not None and outcome.error.kind == exp["error"]
        assert outcome.error.status == exp["status"]
        return
    assert outcome.error is None, outcome.error.one_line()
    r = outcome.result
    assert r.text == exp["text"]
    assert r.finish_reason == exp["finish"]
    assert [t.name for t in r.tool_calls] == exp["tool_calls"]
    assert outcome.usage_source == "reported"
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (
        exp["input_tokens"],
        exp["output_tokens"],
    )
