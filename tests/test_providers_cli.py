"""`callm providers ...`: every command, success and failure, with the SPEC's exit codes.
Runs in the temp home of `isolated_env` with the file keyring; endpoints live on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import keyring
import keyring.core
import pytest

from callm.secrets import keychain_get, keychain_set
from isolation import Cli, IsolatedEnv
from keyring_backends import ForgetfulKeyring
from replay_server import ReplayServer, Reply, serving

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAKE = "sk-FAKE-test-0000-vX2Q"
MODELS = Reply(
    200, {"content-type": "application/json"}, b'{"object":"list","data":[{"id":"m1"},{"id":"m2"}]}'
)


def config(env: IsolatedEnv) -> dict[str, Any]:
    return tomllib.loads(env.config_path.read_text())


def providers(env: IsolatedEnv) -> dict[str, Any]:
    return config(env).get("providers", {}) if env.config_path.exists() else {}


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    """An OpenAI-compatible endpoint on 127.0.0.1 that lists two models."""
    with serving() as srv:
        srv.default = MODELS
        yield srv


@pytest.fixture
def lab(cli: Cli, server: ReplayServer) -> str:
    """A configured keyless provider `lab` on the loopback server."""
    base = f"{server.url}/v1"
    res = cli("providers", "add", "lab", "--driver", "openai-compatible", "--base-url", base,
              "--no-key", "--no-verify")  # fmt: skip
    assert res.code == 0, res.output
    return base


def _closed_port_url() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


# ---- add -----------------------------------------------------------------------------------


def test_add_catalog_provider_fills_in_the_template(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("providers", "add", "openai", "--no-verify")
    assert res.code == 0, res.output
    assert res.stdout == ""
    assert providers(isolated_env)["openai"] == {
        "driver": "openai",
        "base_url": "https://api.openai.com/v1",
        "default_model": providers(isolated_env)["openai"]["default_model"],
    }
    assert "added openai" in res.stderr
    assert "OPENAI_API_KEY" in res.stderr and "set-key openai" in res.stderr


def test_add_refuses_a_base_url_with_a_fragment(cli: Cli, isolated_env: IsolatedEnv) -> None:
    """A fragment is never sent and paths would be joined after it: always a typo."""
    url = "https://gw.example.invalid/v1#models"
    res = cli("providers", "add", "gw", "--driver", "openai-compatible", "--base-url", url)
    assert res.code == 2, res.output
    assert "--base-url must not have a fragment (#...): https://gw.example.invalid/v1#..." in (
        res.stderr
    )
    assert "gw" not in providers(isolated_env)


def test_add_json(cli: Cli) -> None:
    res = cli("--json", "providers", "add", "groq", "--no-verify")
    assert res.code == 0
    assert json.loads(res.stdout) == {
        "added": "groq",
        "driver": "openai-compatible",
        "base_url": "https://api.groq.com/openai/v1",
        "key_source": "keychain",
    }


def test_add_with_key_stdin_stores_the_key_in_the_keychain_only(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    res = cli("providers", "add", "openai", "--key-stdin", "--no-verify", stdin=FAKE + "\n")
    assert res.code == 0, res.output
    assert keychain_get("openai") == FAKE
    assert FAKE not in isolated_env.config_path.read_text()
    assert "no key stored" not in res.stderr


def test_add_with_key_env(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("--json", "providers", "add", "openai", "--key-env", "MY_OPENAI", "--no-verify")
    assert res.code == 0, res.output
    assert providers(isolated_env)["openai"]["key_env"] == "MY_OPENAI"
    assert json.loads(res.stdout)["key_source"] == "missing (env MY_OPENAI)"


def test_add_no_key_and_keyless_catalog_entries(cli: Cli, isolated_env: IsolatedEnv) -> None:
    url = "http://127.0.0.1:9999/v1"
    args = ("--driver", "openai-compatible", "--base-url", url, "--no-key", "--no-verify")
    assert cli("providers", "add", "mine", *args).code == 0
    assert cli("providers", "add", "ollama", "--no-verify").code == 0
    got = providers(isolated_env)
    assert got["mine"]["key"] == "none"
    assert got["ollama"]["key"] == "none"
    assert got["ollama"]["base_url"] == "http://127.0.0.1:11434"


def test_add_custom_provider_with_headers_and_default_model(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    res = cli("providers", "add", "lab", "--driver", "openai-compatible",
              "--base-url", "http://127.0.0.1:8000/v1", "--header", "X-Team=a",
              "--header", "X-Env = b=c", "--default-model", "m1", "--no-verify")  # fmt: skip
    assert res.code == 0, res.output
    assert providers(isolated_env)["lab"] == {
        "driver": "openai-compatible",
        "base_url": "http://127.0.0.1:8000/v1",
        "headers": {"X-Team": "a", "X-Env": "b=c"},
        "default_model": "m1",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mystery"], "--driver is needed"),
        (["mine", "--driver", "openai-compatible"], "--base-url"),
        (["mine", "--driver", "opneai", "--base-url", "http://x"], "unknown driver 'opneai'"),
        (["mine", "--driver", "openai-compatible", "--base-url", "localhost:8000"], "base_url"),
        (["openai", "--header", "novalue"], "--header wants K=V"),
        (["openai", "--header", "=v"], "--header wants K=V"),
        (["openai", "--no-key", "--key-env", "V"], "only one of"),
        (["openai", "--key-stdin", "--no-key"], "only one of"),
        (["openai", "--bogus"], "--bogus"),
        ([], "Missing argument"),
    ],
)
def test_add_usage_errors(
    cli: Cli, isolated_env: IsolatedEnv, args: list[str], message: str
) -> None:
    res = cli("providers", "add", *args, "--no-verify")
    assert res.code == 2, res.output
    assert res.stderr.startswith("error: ")
    assert message in res.stderr
    assert not isolated_env.config_path.exists()


def test_add_refuses_to_overwrite_without_force(cli: Cli, isolated_env: IsolatedEnv) -> None:
    assert cli("providers", "add", "openai", "--no-verify").code == 0
    before = isolated_env.config_path.read_bytes()
    res = cli("providers", "add", "openai", "--base-url", "http://127.0.0.1:1/v1", "--no-verify")
    assert res.code == 2
    assert "already exists" in res.stderr and "--force" in res.stderr
    assert isolated_env.config_path.read_bytes() == before

    res = cli("providers", "add", "openai", "--base-url", "http://127.0.0.1:1/v1", "--force",
              "--no-verify")  # fmt: skip
    assert res.code == 0
    assert providers(isolated_env)["openai"]["base_url"] == "http://127.0.0.1:1/v1"


def test_add_with_empty_key_stdin(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("providers", "add", "openai", "--key-stdin", "--no-verify", stdin="\n")
    assert res.code == 2
    assert "no key" in res.stderr
    assert not isolated_env.config_path.exists()


def test_add_prompts_for_the_key_on_a_terminal(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": FAKE)
    res = cli("providers", "add", "openai", "--no-verify", tty=True)
    assert res.code == 0, res.output
    assert keychain_get("openai") == FAKE


def test_add_when_the_keychain_keeps_nothing_saves_nothing(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyring.core, "_keyring_backend", ForgetfulKeyring())
    res = cli("providers", "add", "openai", "--key-stdin", "--no-verify", stdin=FAKE)
    assert res.code == 1
    assert "did not keep it" in res.stderr
    assert not isolated_env.config_path.exists()


def test_add_verifies_by_default(cli: Cli, isolated_env: IsolatedEnv, server: ReplayServer) -> None:
    res = cli("providers", "add", "lab", "--driver", "openai-compatible",
              "--base-url", f"{server.url}/v1", "--key-stdin", stdin=FAKE)  # fmt: skip
    assert res.code == 0, res.output
    assert "verified lab: 2 models" in res.stderr
    assert server.seen[0].path == "/v1/models"
    assert server.seen[0].headers.get("Authorization") == f"Bearer {FAKE}"
    assert "lab" in providers(isolated_env)


def test_add_sim_verifies_offline(cli: Cli, isolated_env: IsolatedEnv) -> None:
    refused = cli("providers", "add", "sim")  # replacing the built-in simulator needs --force
    assert (refused.code, refused.stderr.splitlines()[0]) == (
        2,
        "error: 'sim' is the built-in simulator",
    )
    res = cli("providers", "add", "sim", "--force")
    assert res.code == 0, res.output
    assert "verified sim" in res.stderr
    assert providers(isolated_env)["sim"]["driver"] == "sim"


def test_add_that_fails_verification_saves_nothing(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("providers", "add", "lab", "--driver", "openai-compatible",
              "--base-url", _closed_port_url(), "--key-stdin", stdin=FAKE)  # fmt: skip
    assert res.code == 1, res.output
    assert "verification of lab failed" in res.stderr
    assert "--no-verify" in res.stderr
    assert not isolated_env.config_path.exists()
    assert keychain_get("lab") is None


def test_add_with_rejected_key_saves_nothing(cli: Cli, isolated_env: IsolatedEnv) -> None:
    body = b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
    with serving() as srv:
        srv.default = Reply(401, {"content-type": "application/json"}, body)
        res = cli("providers", "add", "lab", "--driver", "openai-compatible",
                  "--base-url", f"{srv.url}/v1", "--key-stdin", stdin=FAKE)  # fmt: skip
    assert res.code == 1, res.output
    assert "auth" in res.stderr
    assert not isolated_env.config_path.exists()


# ---- list ----------------------------------------------------------------------------------


def test_list_empty(cli: Cli) -> None:
    res = cli("providers", "list")
    assert res.code == 0
    assert res.stdout == ""
    assert "no providers configured" in res.stderr
    res = cli("--json", "providers", "list")
    assert (res.code, json.loads(res.stdout)) == (0, [])


def test_list_plain_is_tab_separated_without_ansi(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.write_config(
        '[providers.openai]\ndriver = "openai"\nbase_url = "https://api.openai.com/v1"\n'
        '[providers.env]\ndriver = "openai"\nbase_url = "http://127.0.0.1:1/v1"\nkey_env = "V1"\n'
        '[providers.gone]\ndriver = "openai"\nbase_url = "http://127.0.0.1:1/v1"\nkey_env = "V2"\n'
        '[providers.lab]\ndriver = "openai-compatible"\nbase_url = "http://127.0.0.1:2/v1"\n'
        'key = "none"\nenabled = false\ndefault_model = "m1"\n'
        '[providers.own]\ndriver = "openai"\nbase_url = "http://127.0.0.1:3/v1"\n'
    )
    monkeypatch.setenv("V1", "fake-key-for-tests-0001")
    monkeypatch.setenv("CALLM_OWN_API_KEY", "fake-key-for-tests-0002")
    res = cli("providers", "list")
    assert res.code == 0, res.output
    assert "\x1b[" not in res.stdout
    lines = [line.split("\t") for line in res.stdout.splitlines()]
    assert lines[0] == ["name", "driver", "base url", "key", "enabled", "default model",
                        "last verified"]  # fmt: skip
    rows = {r[0]: r for r in lines[1:]}
    assert list(rows) == ["env", "gone", "lab", "openai", "own"]
    assert rows["openai"][3] == "keychain"
    assert rows["env"][3] == "env V1"
    assert rows["gone"][3] == "missing (env V2)"
    assert rows["lab"][3:6] == ["none", "no", "m1"]
    assert rows["own"][3] == "env CALLM_OWN_API_KEY"
    assert rows["openai"][6] == "-"


def test_list_json_shape(cli: Cli, lab: str) -> None:
    res = cli("--json", "providers", "list")
    assert res.code == 0
    (row,) = json.loads(res.stdout)
    assert {"name", "driver", "base_url", "key_source", "enabled", "default_model",
            "last_verified"} <= set(row)  # fmt: skip
    assert (row["name"], row["base_url"], row["key_source"], row["enabled"]) == (
        "lab",
        lab,
        "none",
        True,
    )


def test_list_shows_last_verification(cli: Cli, lab: str) -> None:
    assert cli("providers", "verify", "lab").code == 0
    res = cli("--json", "providers", "list")
    (row,) = json.loads(res.stdout)
    assert row["last_verified"] and row["last_verify_ok"] is True
    assert "(ok)" in cli("providers", "list").stdout


# ---- show ----------------------------------------------------------------------------------


def test_show_masks_the_key(cli: Cli, isolated_env: IsolatedEnv) -> None:
    assert cli("providers", "add", "openai", "--key-stdin", "--no-verify", stdin=FAKE).code == 0
    res = cli("providers", "show", "openai")
    assert res.code == 0
    fields = dict(line.split(None, 1) for line in res.stdout.splitlines())
    assert fields["name"] == "openai"
    assert fields["key"] == "sk-...vX2Q"
    assert fields["key_source"] == "keychain"
    res = cli("--json", "providers", "show", "openai")
    data = json.loads(res.stdout)
    assert data["key"] == "sk-...vX2Q" and data["driver"] == "openai"


def test_show_without_a_key_says_it_is_missing(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[providers.openai]\ndriver = "openai"\nkey_env = "MY_OPENAI"\n')
    res = cli("--json", "providers", "show", "openai")
    assert res.code == 0
    assert json.loads(res.stdout)["key"].startswith("(missing: ")
    assert "MY_OPENAI" in json.loads(res.stdout)["key"]


def test_show_keyless(cli: Cli, lab: str) -> None:
    res = cli("--json", "providers", "show", "lab")
    assert json.loads(res.stdout)["key"] == "(none needed)"


def test_show_unknown_provider(cli: Cli, lab: str) -> None:
    res = cli("providers", "show", "nope")
    assert res.code == 2
    assert res.stderr.splitlines() == [
        "error: unknown provider 'nope' (configured: lab)",
        "hint: run `callm providers add nope`",
    ]


# ---- remove --------------------------------------------------------------------------------


def test_remove_deletes_config_and_keychain_entry(cli: Cli, isolated_env: IsolatedEnv) -> None:
    assert cli("providers", "add", "openai", "--key-stdin", "--no-verify", stdin=FAKE).code == 0
    assert cli("providers", "add", "groq", "--no-verify").code == 0
    res = cli("--json", "providers", "remove", "openai", "--yes")
    assert res.code == 0, res.output
    assert json.loads(res.stdout) == {"removed": "openai", "key_deleted": True}
    assert list(providers(isolated_env)) == ["groq"]
    assert keychain_get("openai") is None
    res = cli("providers", "remove", "groq", "-y")
    assert res.code == 0
    assert res.stderr == "removed groq\n"


def test_remove_keyless_provider_leaves_the_keychain_alone(
    cli: Cli, isolated_env: IsolatedEnv, lab: str
) -> None:
    keychain_set("lab", FAKE)  # stored by some other means; key = "none" says it is not ours
    res = cli("--json", "providers", "remove", "lab", "--yes")
    assert json.loads(res.stdout) == {"removed": "lab", "key_deleted": False}
    assert keychain_get("lab") == FAKE


def test_remove_asks_first(cli: Cli, isolated_env: IsolatedEnv, lab: str) -> None:
    res = cli("providers", "remove", "lab")  # no terminal to ask on
    assert res.code == 2
    assert "--yes" in res.stderr
    assert "lab" in providers(isolated_env)

    res = cli("providers", "remove", "lab", stdin="n\n", tty=True)
    assert res.code == 1
    assert "lab" in providers(isolated_env)

    res = cli("providers", "remove", "lab", stdin="y\n", tty=True)
    assert res.code == 0, res.output
    assert "lab" not in providers(isolated_env)


def test_remove_unknown(cli: Cli) -> None:
    res = cli("providers", "remove", "nope", "--yes")
    assert res.code == 2
    assert "unknown provider 'nope'" in res.stderr


# ---- enable / disable ----------------------------------------------------------------------


def test_disable_and_enable(cli: Cli, isolated_env: IsolatedEnv, lab: str) -> None:
    res = cli("--json", "providers", "disable", "lab")
    assert (res.code, json.loads(res.stdout)) == (0, {"name": "lab", "enabled": False})
    assert providers(isolated_env)["lab"]["enabled"] is False
    assert json.loads(cli("--json", "providers", "list").stdout)[0]["enabled"] is False
    res = cli("providers", "enable", "lab")
    assert (res.code, res.stderr) == (0, "enabled lab\n")
    assert "enabled" not in providers(isolated_env)["lab"]  # the default is left out


@pytest.mark.parametrize("command", ["enable", "disable"])
def test_enable_disable_unknown(cli: Cli, command: str) -> None:
    res = cli("providers", command, "nope")
    assert res.code == 2
    assert "unknown provider 'nope'" in res.stderr


# ---- set-key -------------------------------------------------------------------------------


def test_set_key(cli: Cli, isolated_env: IsolatedEnv) -> None:
    assert cli("providers", "add", "openai", "--no-verify").code == 0
    before = isolated_env.config_path.read_bytes()
    res = cli("providers", "set-key", "openai", "--key-stdin", stdin=FAKE)
    assert res.code == 0, res.output
    assert (
        res.stderr
        == "stored key sk-...vX2Q for openai in a plain-text file (file PlaintextKeyring)\n"
    )
    assert keychain_get("openai") == FAKE
    assert isolated_env.config_path.read_bytes() == before  # nothing to change in the file
    res = cli(
        "--json", "providers", "set-key", "openai", "--key-stdin", stdin="sk-FAKE-test-1111-wY3R"
    )
    assert json.loads(res.stdout) == {
        "name": "openai",
        "key": "sk-...wY3R",
        "stored_in": "keychain",
    }
    assert keychain_get("openai") == "sk-FAKE-test-1111-wY3R"


def test_set_key_switches_the_provider_to_the_keychain(
    cli: Cli, isolated_env: IsolatedEnv, lab: str
) -> None:
    isolated_env.write_config(
        isolated_env.config_path.read_text().replace('key = "none"', 'key_env = "LAB_KEY"')
    )
    res = cli("providers", "set-key", "lab", "--key-stdin", stdin=FAKE)
    assert res.code == 0, res.output
    pc = providers(isolated_env)["lab"]
    assert "key_env" not in pc and "key" not in pc  # keychain is the default


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["nope", "--key-stdin"], FAKE, "unknown provider 'nope'"),
        (["openai", "--key-stdin"], "", "no key on standard input"),
        (["openai"], "", "no terminal"),
    ],
)
def test_set_key_errors(
    cli: Cli, isolated_env: IsolatedEnv, args: list[str], stdin: str, message: str
) -> None:
    assert cli("providers", "add", "openai", "--no-verify").code == 0
    res = cli("providers", "set-key", *args, stdin=stdin)
    assert res.code == 2
    assert message in res.stderr
    assert keychain_get("openai") is None


# ---- catalog -------------------------------------------------------------------------------

CATALOG = {
    "openai", "anthropic", "gemini", "ollama", "openrouter", "groq", "mistral", "deepseek",
    "together", "fireworks", "xai", "azure-openai", "lmstudio", "vllm", "sim",
    "bedrock", "github", "cerebras", "perplexity",
}  # fmt: skip


def test_catalog_plain(cli: Cli) -> None:
    res = cli("providers", "catalog")
    assert res.code == 0
    lines = [line.split("\t") for line in res.stdout.splitlines()]
    assert lines[0][:3] == ["name", "driver", "base url"]
    assert {r[0] for r in lines[1:]} == CATALOG


def test_catalog_json(cli: Cli) -> None:
    res = cli("--json", "providers", "catalog")
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(rows) == CATALOG
    assert rows["gemini"]["key_env"] == ["GEMINI_API_KEY", "GOOGLE_API_KEY"]
    assert rows["openai"]["base_url"] == "https://api.openai.com/v1"


def test_catalog_needs_no_config(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config("this is [not toml")
    assert cli("providers", "catalog").code == 0


# ---- verify --------------------------------------------------------------------------------


def test_verify_passes(cli: Cli, lab: str, server: ReplayServer) -> None:
    res = cli("--json", "providers", "verify", "lab")
    assert res.code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert {"name", "ok", "stage", "error", "latency_ms", "models"} <= set(row)
    assert (row["name"], row["ok"], row["stage"], row["error"], row["models"]) == (
        "lab",
        True,
        None,
        None,
        2,
    )
    assert isinstance(row["latency_ms"], int)


def test_verify_all_enabled_by_default(cli: Cli, isolated_env: IsolatedEnv, lab: str) -> None:
    url = _closed_port_url()
    args = ("--driver", "openai-compatible", "--base-url", url, "--no-key", "--no-verify")
    assert cli("providers", "add", "dead", *args).code == 0
    res = cli("--json", "providers", "verify")
    assert res.code == 1
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["lab"]["ok"] is True
    assert rows["dead"]["ok"] is False and rows["dead"]["stage"] == "connect"

    assert cli("providers", "disable", "dead").code == 0
    res = cli("--json", "providers", "verify")
    assert res.code == 0
    assert "dead" not in {r["name"] for r in json.loads(res.stdout)}


def test_verify_sim_needs_no_configuration(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("--json", "providers", "verify", "sim")
    assert res.code == 0, res.output
    assert json.loads(res.stdout)[0]["ok"] is True


def test_verify_missing_key(cli: Cli, isolated_env: IsolatedEnv, server: ReplayServer) -> None:
    args = ("--driver", "openai-compatible", "--base-url", f"{server.url}/v1", "--no-verify")
    assert cli("providers", "add", "lab", *args).code == 0
    res = cli("--json", "providers", "verify", "lab")
    assert res.code == 1
    row = json.loads(res.stdout)[0]
    assert (row["ok"], row["stage"]) == (False, "key")
    assert server.seen == []  # nothing sent without a key


def test_verify_rejected_key(cli: Cli, isolated_env: IsolatedEnv) -> None:
    with serving() as srv:
        srv.default = Reply(401, {"content-type": "application/json"}, b'{"error": "bad key"}')
        args = ("--driver", "openai-compatible", "--base-url", f"{srv.url}/v1", "--no-verify")
        assert cli("providers", "add", "lab", *args, "--key-stdin", stdin=FAKE).code == 0
        res = cli("--json", "providers", "verify", "lab")
    assert res.code == 1
    row = json.loads(res.stdout)[0]
    assert (row["ok"], row["stage"]) == (False, "auth")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["nope"], "unknown provider 'nope'"), (["--timeout", "0"], "--timeout")],
)
def test_verify_usage_errors(cli: Cli, lab: str, args: list[str], message: str) -> None:
    res = cli("providers", "verify", *args)
    assert res.code == 2
    assert message in res.stderr


# ---- the providers group itself ------------------------------------------------------------


def test_providers_without_a_command_shows_help(cli: Cli) -> None:
    res = cli("providers")
    assert res.code in (0, 2)
    assert "add" in res.output and "set-key" in res.output


def test_unknown_subcommand(cli: Cli) -> None:
    res = cli("providers", "ad", "openai")
    assert res.code == 2
    assert res.stderr.startswith("error: ")


# ---- the key never shows ---------------------------------------------------------------------

# Not shaped like any vendor's key, so only callm's own bookkeeping can hide it.
SECRET = "plain-secret-token-0000-Zq9W"


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["plain", "json"])
@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["", "verbose"])
def test_the_key_never_appears_in_output_config_or_data(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch,
    json_flag: list[str], verbose: list[str],
) -> None:  # fmt: skip
    echoed = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}"}}).encode()
    outputs: list[str] = []

    def run(*args: str, stdin: str = "") -> None:
        res = cli(*json_flag, *verbose, "providers", *args, stdin=stdin)
        outputs.extend([res.stdout, res.stderr])

    with serving() as srv:
        base = f"{srv.url}/v1"
        srv.default = MODELS
        run("add", "lab", "--driver", "openai-compatible", "--base-url", base,
            "--key-stdin", stdin=SECRET + "\n")  # fmt: skip
        run("add", "lab2", "--driver", "openai-compatible", "--base-url", base,
            "--key-env", "LAB2_KEY", "--no-verify")  # fmt: skip
        monkeypatch.setenv("LAB2_KEY", SECRET)
        for args in (["list"], ["show", "lab"], ["show", "lab2"], ["verify"], ["catalog"],
                     ["disable", "lab"], ["enable", "lab"]):  # fmt: skip
            run(*args)
        run("set-key", "lab", "--key-stdin", stdin=SECRET)
        run("set-key", "nope", "--key-stdin", stdin=SECRET)  # fails: unknown provider
        run("add", "lab", "--driver", "openai-compatible", "--base-url", base,
            "--key-stdin", stdin=SECRET)  # fmt: skip  # fails: exists
        srv.default = Reply(401, {"content-type": "application/json"}, echoed)
        run("verify", "lab")  # the vendor echoes the key back
        run("add", "lab3", "--driver", "openai-compatible", "--base-url", base,
            "--key-stdin", stdin=SECRET)  # fmt: skip  # verification fails
        monkeypatch.setenv("CALLM_LAB_API_KEY", SECRET)
        run("show", "lab")
        run("verify", "lab")
        run("remove", "lab", "--yes")
        run("remove", "lab2", "--yes")

    assert keychain_get("lab3") is None
    assert any("pla...Zq9W" in o for o in outputs)  # shown masked: it was there to hide
    leaks = [o for o in outputs if SECRET in o]
    assert leaks == []
    for path in isolated_env.home.rglob("*"):
        if path.is_file() and path != isolated_env.keyring_file:
            assert SECRET.encode() not in path.read_bytes(), path


# ---- names, keyless drivers, no standard input ---------------------------------------------


@pytest.mark.parametrize("name", ["a/b", "my lab", "", "-x", "ünï"])
def test_add_rejects_names_that_cannot_be_a_provider(
    cli: Cli, isolated_env: IsolatedEnv, name: str
) -> None:
    res = cli("providers", "add", name, "--driver", "sim", "--no-verify")
    assert res.code == 2
    assert "bad provider name" in res.stderr or "No such option" in res.stderr
    assert not isolated_env.config_path.exists()


def test_add_hint_names_the_callm_variable(cli: Cli) -> None:
    url = "http://127.0.0.1:8000/v1"
    res = cli("providers", "add", "my-lab", "--driver", "openai-compatible", "--base-url", url,
              "--no-verify")  # fmt: skip
    assert "CALLM_MY_LAB_API_KEY" in res.stderr


def test_a_sim_provider_needs_no_key(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("providers", "add", "sim2", "--driver", "sim", "--no-verify", tty=True)
    assert res.code == 0, res.output  # no prompt, even on a terminal
    assert providers(isolated_env)["sim2"]["key"] == "none"


def _closed_stdin(*args: str) -> subprocess.CompletedProcess[str]:
    """`callm ARGS` with standard input closed (sys.stdin is None in the child)."""
    return subprocess.run(
        [sys.executable, "-m", "callm", *args],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.close(0),
        timeout=60,
    )


def test_commands_cope_with_no_standard_input(isolated_env: IsolatedEnv) -> None:
    proc = _closed_stdin("providers", "add", "openai", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    proc = _closed_stdin("providers", "set-key", "openai", "--key-stdin")
    assert (proc.returncode, proc.stderr) == (2, "error: --key-stdin: there is no standard input\n")
    proc = _closed_stdin("providers", "set-key", "openai")
    assert proc.returncode == 2 and "no terminal" in proc.stderr
    proc = _closed_stdin("providers", "remove", "openai")
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_at_the_key_prompt_exits_130(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(getpass, "getpass", interrupted)
    assert cli("providers", "add", "openai", "--no-verify").code == 0
    res = cli("providers", "set-key", "openai", tty=True)
    assert res.code == 130
    assert "Traceback" not in res.stderr and "error" not in res.stderr
    assert keychain_get("openai") is None


def test_output_cut_short_by_a_closed_pipe_exits_quietly(isolated_env: IsolatedEnv) -> None:
    proc = subprocess.run(
        f"{shlex.quote(sys.executable)} -m callm providers catalog | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.startswith("name\tdriver")
    assert proc.stderr == ""
