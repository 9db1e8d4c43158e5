"""`providers import` and `providers key` with the real (file) keyring: keys found in the
environment, llm's keys.json and aichat's config.yaml at their documented places under the
temp home, shown masked, stored only with --yes or a confirmation; `key` for scripts."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

OPENAI = "sk-test-FAKEopenai0000000000000"
ANTHROPIC = "sk-ant-test-FAKEanthropic000000000"
GROQ = "gsk_testFAKEgroq000000000000000"
GEMINI = "AIzaTESTFAKEgemini00000000000000000000"


def llm_keys(env, keys: dict[str, str]) -> None:
    path = env.config_home / "io.datasette.llm" / "keys.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"// Note": "This file stores secret API credentials", **keys}))


def aichat_config(env, text: str) -> None:
    path = env.config_home / "aichat" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


AICHAT = f"""\
model: openai:gpt-4o
clients:
  - type: claude
    api_key: {ANTHROPIC}
  - type: openai-compatible
    name: groq
    api_base: https://api.groq.com/openai/v1
    api_key: {GROQ}
  - type: openai-compatible
    name: my-local
    api_base: http://localhost:8080/v1
    api_key: sk-test-FAKElocal00000000000000
"""


def no_key_printed(text: str) -> None:
    for k in (OPENAI, ANTHROPIC, GROQ, GEMINI):
        assert k not in text


def test_dry_run_shows_masked_keys_from_every_source(cli, isolated_env, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    llm_keys(isolated_env, {"gemini": GEMINI, "openai": "sk-test-FAKEother0000000000000"})
    aichat_config(isolated_env, AICHAT)
    res = cli("providers", "import", "--dry-run")
    assert res.code == 0, res.output
    no_key_printed(res.output)
    lines = res.stdout.splitlines()
    assert lines[0] == "provider\taction\tkey\tfound in\tnote"
    rows = {ln.split("\t")[0] + "|" + ln.split("\t")[3]: ln.split("\t") for ln in lines[1:]}
    assert rows["openai|env OPENAI_API_KEY"][1:3] == ["add provider + store key", "sk-...0000"]
    assert rows["gemini|llm keys.json"][1] == "add provider + store key"
    assert "a different key already found in env OPENAI_API_KEY" in rows["openai|llm keys.json"][4]
    assert rows["anthropic|aichat config.yaml"][1] == "add provider + store key"
    assert rows["groq|aichat config.yaml"][1] == "add provider + store key"
    assert not any(r.startswith("my-local") for r in rows)  # not a catalog provider
    # nothing was stored or configured
    assert not isolated_env.config_path.exists()
    assert not isolated_env.keyring_file.exists()


def test_yes_stores_keys_in_the_keychain_and_adds_providers(cli, isolated_env, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    aichat_config(isolated_env, AICHAT)
    res = cli("--json", "providers", "import", "--yes")
    assert res.code == 0, res.output
    no_key_printed(res.output + isolated_env.config_path.read_text())
    imported = {d["provider"] for d in json.loads(res.stdout)["imported"]}
    assert imported == {"openai", "anthropic", "groq"}
    from callm.secrets import keychain_get

    assert keychain_get("openai") == OPENAI and keychain_get("groq") == GROQ
    assert keychain_get("anthropic") == ANTHROPIC
    listed = {r["name"]: r for r in json.loads(cli("--json", "providers", "list").stdout)}
    assert set(listed) == {"openai", "anthropic", "groq"}
    # again: everything is already there
    res = cli("providers", "import", "--yes")
    assert res.code == 0 and "nothing to import" in res.stderr
    assert "already stored" in res.stdout


def test_without_a_terminal_or_yes_it_refuses_and_asks_on_one(cli, isolated_env, monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", GROQ)
    res = cli("providers", "import")
    assert res.code == 2 and "--yes" in res.stderr, res.output
    assert not isolated_env.config_path.exists()
    res = cli("providers", "import", stdin="n\n", tty=True)
    assert res.code == 1 and not isolated_env.config_path.exists()
    res = cli("providers", "import", stdin="y\n", tty=True)
    assert res.code == 0, res.output
    from callm.secrets import keychain_get

    assert keychain_get("groq") == GROQ


def test_existing_providers_keep_their_keys(cli, isolated_env, monkeypatch) -> None:
    from callm.secrets import keychain_set

    isolated_env.write_config(
        '[providers.openai]\ndriver = "openai"\nbase_url = "https://api.openai.com/v1"\n'
        '[providers.groq]\ndriver = "openai-compatible"\n'
        'base_url = "https://api.groq.com/openai/v1"\nkey_env = "MY_GROQ"\n'
        '[providers.anthropic]\ndriver = "anthropic"\nbase_url = "https://api.anthropic.com"\n'
    )
    keychain_set("openai", "sk-test-FAKEkept00000000000000")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    monkeypatch.setenv("GROQ_API_KEY", GROQ)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC)
    res = cli("--json", "providers", "import", "--dry-run")
    plan = {p["provider"]: p for p in json.loads(res.stdout)["plan"]}
    assert plan["openai"]["action"] == "skip" and "different key" in plan["openai"]["reason"]
    assert plan["groq"]["action"] == "skip" and "MY_GROQ" in plan["groq"]["reason"]
    assert plan["anthropic"]["action"] == "store"
    assert cli("providers", "import", "-y").code == 0
    from callm.secrets import keychain_get

    assert keychain_get("openai") == "sk-test-FAKEkept00000000000000"
    assert keychain_get("anthropic") == ANTHROPIC


def test_from_path_and_bad_files(cli, isolated_env, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)  # ignored: --from reads only the file
    keys = isolated_env.home / "elsewhere.json"
    keys.write_text(json.dumps({"mistral": "test-key-mistral-123456", "unknown-x": "zzz"}))
    res = cli("--json", "providers", "import", "--from", str(keys), "--dry-run")
    assert [p["provider"] for p in json.loads(res.stdout)["plan"]] == ["mistral"]
    bad = isolated_env.home / "bad.yaml"
    bad.write_text(f"clients: [\n  api_key: {GROQ}\n  - oops", encoding="utf-8")
    res = cli("providers", "import", "--from", str(bad), "--dry-run")
    assert res.code == 2 and "cannot read aichat config" in res.stderr, res.output
    no_key_printed(res.output)
    res = cli("providers", "import", "--from", str(isolated_env.home / "none.json"))
    assert res.code == 2 and "no such file" in res.stderr


def test_key_prints_for_scripts_and_refuses_a_terminal(cli, isolated_env) -> None:
    from callm.secrets import keychain_set

    isolated_env.write_config(
        '[providers.openai]\ndriver = "openai"\nbase_url = "https://api.openai.com/v1"\n'
        '[providers.local]\ndriver = "ollama"\nbase_url = "http://127.0.0.1:1"\nkey = "none"\n'
    )
    keychain_set("openai", OPENAI)
    res = cli("providers", "key", "openai")
    assert res.code == 0 and res.stdout == OPENAI + "\n" and res.stderr == ""
    assert cli("providers", "key", "local").code == 2
    assert cli("providers", "key", "nope").code == 2
    isolated_env.write_config(
        '[providers.openai]\ndriver = "openai"\nbase_url = "https://api.openai.com/v1"\n'
        '[providers.other]\ndriver = "openai"\nbase_url = "https://api.openai.com/v1"\n'
    )
    assert cli("providers", "key", "other").code == 3  # no key anywhere
    # a real terminal on stdout: refused unless --show
    for extra, code in (([], 2), (["--show"], 0)):
        main, child = pty.openpty()
        proc = subprocess.run(
            [sys.executable, "-m", "callm", "providers", "key", "openai", *extra],
            stdout=child,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
            timeout=60,
        )
        os.close(child)
        shown = os.read(main, 4096).decode() if code == 0 else ""
        os.close(main)
        assert proc.returncode == code, proc.stderr
        if code == 2:
            assert b"refusing to print a key to a terminal" in proc.stderr
        else:
            assert OPENAI in shown


@pytest.mark.parametrize("var", ["LLM_USER_PATH", "AICHAT_CONFIG_DIR"])
def test_tool_dirs_from_their_variables(cli, isolated_env, monkeypatch, var) -> None:
    d = isolated_env.home / "custom"
    d.mkdir()
    if var == "LLM_USER_PATH":
        (d / "keys.json").write_text(json.dumps({"claude": ANTHROPIC}))
    else:
        (d / "config.yaml").write_text(f"clients:\n- type: claude\n  api_key: {ANTHROPIC}\n")
    monkeypatch.setenv(var, str(d))
    res = cli("--json", "providers", "import", "--dry-run")
    assert [p["provider"] for p in json.loads(res.stdout)["plan"]] == ["anthropic"]
