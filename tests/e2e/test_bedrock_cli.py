"""Bedrock end to end: `callm chat`, `providers verify` and `models sync` against a server on
127.0.0.1 that recomputes each request's SigV4 signature with botocore and refuses a wrong
one with a 403, as AWS does; plus the Bedrock API key (Bearer) path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aws_fake import (
    ACCESS_KEY,
    API_KEY,
    REGION,
    SECRET_KEY,
    FakeBedrock,
    Stream,
    converse_reply,
    event,
    exception,
    profiles_page,
    text_stream,
)
from isolation import Cli, IsolatedEnv

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
PROFILE_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture
def aws(isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch) -> FakeBedrock:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    with FakeBedrock() as fake:
        isolated_env.write_config(
            f'[providers.bedrock]\ndriver = "bedrock"\nregion = "{REGION}"\n'
            f'endpoint_url = "{fake.url}"\n[retry]\nattempts = 1\n'
        )
        yield fake


def _clean(out: str) -> None:
    assert "Traceback" not in out
    assert SECRET_KEY not in out and API_KEY not in out


def test_chat_streamed_is_signed_and_checked(cli: Cli, aws: FakeBedrock) -> None:
    aws.streams.append(Stream(text_stream("Hello", " from", " Bedrock")))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "--json", "hi")
    assert r.code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["text"] == "Hello from Bedrock"
    assert obj["finish_reason"] == "stop"
    assert obj["usage"]["input_tokens"] == 9 and obj["usage"]["output_tokens"] == 4
    (seen,) = aws.seen
    assert seen.refused is None
    assert seen.path == "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream"
    assert seen.json() == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    _clean(r.output)


def test_chat_not_streamed_with_an_inference_profile(cli: Cli, aws: FakeBedrock) -> None:
    aws.replies.append((200, converse_reply("Hi there"), {}))
    r = cli(
        "chat",
        "-m",
        f"bedrock/{PROFILE_MODEL}",
        "--no-stream",
        "-s",
        "Be brief.",
        "--max-tokens",
        "50",
        "-o",
        "top_p=0.9",
        "-o",
        "stop=END",
        "hi",
    )
    assert r.code == 0, r.output
    assert r.stdout.strip() == "Hi there"
    (seen,) = aws.seen
    assert seen.refused is None
    assert seen.path == f"/model/{PROFILE_MODEL.replace(':', '%3A')}/converse"
    body = seen.json()
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"] == {"maxTokens": 50, "topP": 0.9, "stopSequences": ["END"]}


def test_a_wrong_secret_is_refused_by_the_signature_check(
    cli: Cli, aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-the-server-knows-00000000")
    aws.streams.append(Stream(text_stream("never")))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 3, r.output
    assert "signature" in r.stderr.lower()
    assert aws.seen[0].refused
    assert "not-the-secret" not in r.output
    _clean(r.output)


def test_the_bearer_api_key_path(
    cli: Cli, aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", API_KEY)
    aws.api_key = API_KEY
    aws.streams.append(Stream(text_stream("keyed")))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 0, r.output
    assert r.stdout.strip() == "keyed"
    (seen,) = aws.seen
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "X-Amz-Date" not in seen.headers
    _clean(r.output)


def test_the_api_key_from_the_keychain(
    cli: Cli, aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    aws.api_key = API_KEY
    assert cli("providers", "set-key", "bedrock", "--key-stdin", stdin=API_KEY + "\n").code == 0
    aws.replies.append((200, converse_reply("from keychain"), {}))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "--no-stream", "hi")
    assert r.code == 0, r.output
    assert aws.seen[0].headers["Authorization"] == f"Bearer {API_KEY}"


def test_no_credentials_at_all_is_exit_3(
    cli: Cli, aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 3, r.output
    assert "no AWS credentials found" in r.stderr
    assert not aws.seen
    _clean(r.output)


def test_credentials_from_a_named_profile(
    cli: Cli, aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch, isolated_env: IsolatedEnv
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    creds = isolated_env.home / "aws-credentials"
    creds.write_text(
        f"[work]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    isolated_env.write_config(
        f'[providers.bedrock]\ndriver = "bedrock"\nregion = "{REGION}"\nprofile = "work"\n'
        f'endpoint_url = "{aws.url}"\n[retry]\nattempts = 1\n'
    )
    aws.streams.append(Stream(text_stream("profiled")))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 0, r.output
    assert r.stdout.strip() == "profiled"
    assert aws.seen[0].refused is None


def test_an_unknown_profile_is_a_config_error(
    cli: Cli, aws: FakeBedrock, isolated_env: IsolatedEnv
) -> None:
    isolated_env.write_config(
        f'[providers.bedrock]\ndriver = "bedrock"\nregion = "{REGION}"\nprofile = "nope"\n'
        f'endpoint_url = "{aws.url}"\n'
    )
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 2, r.output
    assert "profile 'nope'" in r.stderr
    _clean(r.output)


def test_no_region_is_a_config_error(cli: Cli, aws: FakeBedrock, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[providers.bedrock]\ndriver = "bedrock"\n')
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 2, r.output
    assert "no AWS region" in r.stderr


@pytest.mark.parametrize(
    ("kind", "message", "code", "error"),
    [
        (
            "throttlingException",
            "Too many requests, please wait before trying again.",
            4,
            "rate_limit",
        ),
        ("validationException", "Input is too long for requested model.", 1, "context_length"),
        (
            "serviceUnavailableException",
            "Bedrock is unable to process your request.",
            1,
            "overloaded",
        ),
    ],
)
def test_an_exception_frame_before_any_text(
    cli: Cli, aws: FakeBedrock, kind: str, message: str, code: int, error: str
) -> None:
    aws.streams.append(
        Stream([event("messageStart", {"role": "assistant"}), exception(kind, message)])
    )
    r = cli("chat", "-m", f"bedrock/{MODEL}", "--json", "hi")
    assert r.code == code, r.output
    assert json.loads(r.stdout)["error"]["kind"] == error
    assert message in r.stderr


def test_an_exception_frame_mid_stream_keeps_the_text(cli: Cli, aws: FakeBedrock) -> None:
    frames = text_stream("Partial", " answer")[:3]
    frames.append(exception("modelStreamErrorException", "The model stopped unexpectedly."))
    aws.streams.append(Stream(frames, chunk=7))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "--json", "hi")
    assert r.code == 1, r.output
    obj = json.loads(r.stdout)
    assert obj["error"]["kind"] == "mid_stream"
    assert obj["text"] == "Partial answer"


def test_a_bad_crc_mid_stream_keeps_the_text(cli: Cli, aws: FakeBedrock) -> None:
    frames = text_stream("Good", " bytes")
    broken = bytearray(frames[3])
    broken[-1] ^= 0xFF  # the message CRC no longer matches
    frames[3] = bytes(broken)
    aws.streams.append(Stream(frames))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "--json", "hi")
    assert r.code == 1, r.output
    obj = json.loads(r.stdout)
    assert obj["error"]["kind"] == "mid_stream"
    assert obj["text"] == "Good bytes"
    assert "checksum" in r.stderr.lower()


def test_one_byte_at_a_time_over_http(cli: Cli, aws: FakeBedrock) -> None:
    aws.streams.append(Stream(text_stream("slow", "ly"), chunk=1))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 0, r.output
    assert r.stdout.strip() == "slowly"


def test_http_errors_map_like_aws_sends_them(cli: Cli, aws: FakeBedrock) -> None:
    aws.replies.append(
        (
            404,
            {"message": "The provided model identifier is invalid."},
            {"x-amzn-ErrorType": "ResourceNotFoundException:http://internal.amazon.com/coral/"},
        )
    )
    r = cli("chat", "-m", "bedrock/anthropic.nope", "--no-stream", "--json", "hi")
    assert r.code == 2, r.output
    assert json.loads(r.stdout)["error"]["kind"] == "not_found"


def test_verify_and_sync_use_the_control_plane(cli: Cli, aws: FakeBedrock) -> None:
    aws.profile_pages += [
        profiles_page([PROFILE_MODEL], next_token="page/2+"),
        profiles_page(["us.amazon.nova-lite-v1:0"]),
    ]
    r = cli("providers", "verify", "bedrock", "--json")
    assert r.code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["ok"] is True and row["models"] == 4  # 2 text models + 2 profiles
    paths = [s.path for s in aws.seen]
    assert paths[:3] == [
        "/foundation-models",
        "/inference-profiles?maxResults=1000",
        "/inference-profiles?maxResults=1000&nextToken=page%2F2%2B",
    ]
    assert all(s.refused is None for s in aws.seen)
    r = cli("models", "sync", "bedrock")
    assert r.code == 0, r.output
    r = cli("models", "list", "--provider", "bedrock", "--json")
    assert r.code == 0, r.output
    assert PROFILE_MODEL in r.stdout and "amazon.titan-embed" not in r.stdout


def test_verify_reports_a_refused_signature_at_auth(
    cli: Cli, aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0000000000000000000000000")
    r = cli("providers", "verify", "bedrock", "--json")
    assert r.code == 1, r.output
    assert '"auth"' in r.stdout
    assert "wrong-secret" not in r.output


def test_without_botocore_a_one_line_hint(aws: FakeBedrock, isolated_env: IsolatedEnv) -> None:
    code = (
        "import sys; sys.modules['botocore'] = None\n"
        "from callm.cli.app import run\n"
        f"sys.exit(run(['chat', '-m', 'bedrock/{MODEL}', 'hi']))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        cwd=str(Path(isolated_env.home)),
    )
    assert p.returncode == 2, p.stderr
    assert "pip install 'callm[bedrock]'" in p.stderr
    assert "Traceback" not in p.stderr
    assert not aws.seen


def test_providers_add_bedrock_needs_no_url(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config("")
    r = cli(
        "providers", "add", "bedrock", "--region", "eu-central-1", "--profile", "ci", "--no-verify"
    )
    assert r.code == 0, r.output
    text = isolated_env.config_path.read_text()
    assert 'driver = "bedrock"' in text and 'region = "eu-central-1"' in text
    assert 'profile = "ci"' in text and "base_url" not in text
    r = cli(
        "providers", "add", "bedrock2", "--driver", "bedrock", "--region", "eu/../x", "--no-verify"
    )
    assert r.code == 2 and "region must be an AWS region" in r.stderr, r.output


def test_a_bad_region_from_the_environment_is_refused(
    cli: Cli, aws: FakeBedrock, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.write_config('[providers.bedrock]\ndriver = "bedrock"\n')
    monkeypatch.setenv("AWS_REGION", "evil.example.com/x")
    r = cli("chat", "-m", "bedrock/amazon.nova-lite-v1:0", "hi")
    assert r.code == 2 and "bad AWS region" in r.stderr
    assert not aws.seen


def test_temporary_credentials_sign_their_session_token(
    cli: Cli, aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "FwoGZXIvYXdzEFAKE-session-token-for-tests-0000000000"
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    aws.streams.append(Stream(text_stream("temporary")))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 0, r.output
    seen = aws.seen[0]
    assert seen.refused is None and seen.headers["X-Amz-Security-Token"] == token
    # and a refused request never shows the token or the secret
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another-wrong-secret-000000000000000000")
    from callm import aws_auth

    aws_auth.reset()  # a process keeps the credentials it loaded: start afresh, as a new one
    r = cli("chat", "-m", f"bedrock/{MODEL}", "--verbose", "hi")
    assert r.code == 3, r.output
    assert token not in r.output and "another-wrong-secret" not in r.output


def test_a_json_reply_on_the_stream_route_is_read_as_a_reply(cli: Cli, aws: FakeBedrock) -> None:
    """A proxy or stub that ignores streaming and answers with the Converse JSON."""
    aws.streams.append(
        Stream(
            [json.dumps(converse_reply("whole reply")).encode()], content_type="application/json"
        )
    )
    r = cli("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 0, r.output
    assert r.stdout.strip() == "whole reply"


def test_a_separate_process_streams_and_does_not(cli: Cli, aws: FakeBedrock) -> None:
    """The way users run it: a fresh `python -m callm` that loads botocore and the chain."""
    aws.streams.append(Stream(text_stream("from", " a", " process")))
    aws.replies.append((200, converse_reply("not streamed"), {}))
    r = cli.sub("chat", "-m", f"bedrock/{MODEL}", "hi")
    assert r.code == 0, r.output
    assert r.stdout.strip() == "from a process"
    r = cli.sub("chat", "-m", f"bedrock/{MODEL}", "--no-stream", "hi")
    assert r.code == 0, r.output
    assert r.stdout.strip() == "not streamed"
    assert [s.refused for s in aws.seen] == [None, None]
    _clean(r.output)


def test_a_stream_that_ends_inside_a_frame_keeps_its_text(cli: Cli, aws: FakeBedrock) -> None:
    frames = text_stream("Cut", " short")
    frames[3] = frames[3][:-9]  # the server stops sending in the middle of a frame
    aws.streams.append(Stream(frames[:4]))
    r = cli("chat", "-m", f"bedrock/{MODEL}", "--json", "hi")
    assert r.code == 1, r.output
    obj = json.loads(r.stdout)
    assert obj["error"]["kind"] == "mid_stream" and obj["text"] == "Cut short"
    assert "inside a frame" in r.stderr


def test_an_attachment_and_a_schema_reach_converse(
    cli: Cli, aws: FakeBedrock, isolated_env: IsolatedEnv
) -> None:
    img = isolated_env.home / "dot.png"
    img.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d4944415478da63f8cfc0f01f0005000201e221bc330000000049454e44ae426082"
        )
    )
    aws.replies.append((200, converse_reply('{"a": "dot"}'), {}))
    r = cli(
        "chat", "-m", f"bedrock/{MODEL}", "--no-stream", "-a", str(img),
        "--schema", '{"type": "object", "properties": {"a": {"type": "string"}}}', "what?",
    )  # fmt: skip
    assert r.code == 0, r.output
    body = aws.seen[0].json()
    image, prompt = body["messages"][0]["content"]
    assert image["image"]["format"] == "png" and prompt == {"text": "what?"}
    assert "jsonSchema" in body["outputConfig"]["textFormat"]["structure"]
    assert aws.seen[0].refused is None
