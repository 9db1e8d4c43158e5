"""Bad input around the call: a config with wrong types, an unusable data dir, a full disk
while saving the config. Never a traceback, never lost data."""

from __future__ import annotations

import json
import os
import resource
import signal
from pathlib import Path

import pytest
from faults import KEYS, openai_error, openai_ok
from harness import KEY_VARS, callm

from replay_server import ReplayServer


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[providers.lab]\ndriver = "openai"\ntimeout = "slow"\n', "providers.lab.timeout"),
        (
            '[providers.lab]\ndriver = "openai"\nconnect_timeout = -1\n',
            "providers.lab.connect_timeout",
        ),
        ('[retry]\nattempts = "three"\n', "retry.attempts"),
        ("[retry]\nmax_delay = [1]\n", "retry.max_delay"),
        ("fallbacks = 3\n", "fallbacks"),
        ('[fallbacks]\n"lab/x" = "backup/y"\n', "fallbacks.lab/x"),
        ("default_model = 5\n", "default_model"),
        ('[providers.lab]\ndriver = "openai"\nheaders = "x"\n', "providers.lab.headers"),
    ],
)
def test_config_with_wrong_types(isolated_env, text: str, field: str) -> None:
    path = isolated_env.write_config(text)
    r = callm("chat", "-m", "sim", "hi")
    assert r.code == 2
    assert r.first_err.startswith(f"error: {path}: {field}: ")
    assert "hint: fix the file by hand; callm will not overwrite it" in r.stderr
    assert path.read_text() == text
    r.assert_clean()


def test_config_that_is_not_toml(isolated_env) -> None:
    text = '[providers.lab\ndriver = "openai"\n'
    path = isolated_env.write_config(text)
    r = callm("chat", "-m", "sim", "hi")
    assert r.code == 2
    assert r.first_err.startswith(f"error: {path}: invalid TOML: ")
    assert "line 1" in r.first_err
    assert path.read_text() == text


def test_config_that_is_not_utf8(isolated_env) -> None:
    isolated_env.config_path.parent.mkdir(parents=True, exist_ok=True)
    isolated_env.config_path.write_bytes(b'default_model = "sim/\xff"\n')
    r = callm("chat", "-m", "sim", "hi")
    assert r.code == 2
    assert r.first_err == f"error: {isolated_env.config_path}: not valid UTF-8 (byte 21)"


def _spilled(tmp: Path, data_dir: Path) -> list[dict]:
    rows = []
    for p in [*tmp.glob("callm-*-usage-spill.jsonl"), data_dir / "usage-spill.jsonl"]:
        if p.exists():
            rows += [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return rows


def test_data_dir_that_cannot_be_created(tmp_path: Path, server: ReplayServer, configure) -> None:
    """CALLM_DATA_DIR under a regular file: the call works, the usage row spills to the temp
    dir, and a failure still gets its own message and exit code."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {"CALLM_DATA_DIR": str(blocker / "callm"), "TMPDIR": str(tmp_path)}
    server.add(openai_ok("still works"), openai_error(429, "slow down", {"retry-after": "0"}))
    configure({"lab": ("openai", server.url)}, attempts=1)
    r = callm("chat", "-m", "lab/gpt-test", "hi", env=env)
    assert r.code == 0, r.stderr
    assert r.stdout == "still works\n"
    assert r.stderr.startswith("warning: usage ledger ")
    assert "not writable" in r.stderr
    r2 = callm("chat", "-m", "lab/gpt-test", "hi", env=env)
    assert r2.code == 4
    assert r2.first_err == "error: rate-limited (lab/gpt-test): slow down"
    rows = _spilled(tmp_path, blocker / "callm")
    assert [(row["provider"], row["outcome"], row["error_kind"]) for row in rows] == [
        ("lab", "ok", None),
        ("lab", "error", "rate_limit"),
    ]
    for run in (r, r2):
        run.assert_clean()


def test_data_db_that_is_garbage(tmp_path: Path, isolated_env) -> None:
    data = isolated_env.data_dir
    data.mkdir(parents=True, exist_ok=True)
    (data / "callm.db").write_bytes(os.urandom(8192))
    r = callm("chat", "-m", "sim", "hi", env={"TMPDIR": str(tmp_path)})
    assert r.code == 0, r.stderr
    assert r.stdout.strip()
    assert "warning: usage ledger" in r.stderr
    assert len(_spilled(tmp_path, data)) == 1
    r.assert_clean()


def _limit_file_size() -> None:
    """In the child: any file write past 200 bytes fails (EFBIG), as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))


def test_full_disk_while_saving_config_keeps_the_old_one(isolated_env) -> None:
    import subprocess

    from harness import CALLM

    blocks = "".join(
        f'[providers.p{i}]  # mine\ndriver = "openai-compatible"\n'
        f'base_url = "http://127.0.0.1:9/v{i}"\nkey = "none"\n\n'
        for i in range(8)
    )
    text = f'# my own comment\ndefault_model = "sim/sim-small"\n\n{blocks}'
    path = isolated_env.write_config(text)
    assert len(text.encode()) > 200
    p = subprocess.run(
        [CALLM, "models", "default", "sim/other"],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=20,
    )
    assert p.returncode == 1, p.stderr  # the file system failed, not the user's config
    assert p.stderr.splitlines()[0] == (
        f"error: could not save {path}: File too large; the previous config is unchanged"
    )
    assert "Traceback" not in p.stderr
    assert path.read_text() == text
    assert sorted(os.listdir(path.parent)) == ["config.toml"], "no temp file left behind"
    ok = callm("models", "default", "sim/other")  # with room again, it saves and keeps comments
    assert ok.code == 0, ok.stderr
    assert "# my own comment" in path.read_text() and 'default_model = "sim/other"' in (
        path.read_text()
    )


def test_keys_never_reach_the_data_dir(server: ReplayServer, configure, isolated_env) -> None:
    server.add(
        openai_error(401, f"Incorrect API key provided: {KEYS['lab']}"),
        openai_error(500, f"echo {KEYS['lab']}"),
        openai_ok(),
    )
    configure({"lab": ("openai", server.url)}, attempts=1)
    for _ in range(3):
        callm("chat", "-m", "lab/gpt-test", "--json", "hi").assert_clean()
    assert server.seen[0].headers["Authorization"] == f"Bearer {KEYS['lab']}"
    for f in isolated_env.data_dir.rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            for key in KEYS.values():
                assert key.encode() not in blob, f
    assert KEY_VARS["lab"] in isolated_env.config_path.read_text()


@pytest.mark.parametrize(
    ("base_url", "headers", "first_err", "hint"),
    [
        (
            "htp://127.0.0.1:9/v1",
            "",
            "error: network error (lab/gpt-test): bad URL htp://127.0.0.1:9/v1/chat/completions:"
            " unsupported scheme 'htp'",
            "hint: check lab's base_url in the config",
        ),
        (
            "http://[::1/v1",
            "",
            "error: network error (lab/gpt-test): bad URL http://[::1/v1/chat/completions:"
            " Invalid IPv6 URL",
            "hint: check lab's base_url in the config",
        ),
        (
            "http://127.0.0.1:9/v1",
            'headers = { "X-Team" = "équipe" }\n',
            "error: network error (lab/gpt-test): cannot send the request: a header value is not"
            " plain ASCII (ordinal not in range(128))",
            "hint: check lab's `headers` in the config, and its key",
        ),
    ],
    ids=["scheme", "invalid-url", "non-ascii-header"],
)
def test_requests_that_cannot_be_sent_are_not_retried(
    isolated_env, base_url: str, headers: str, first_err: str, hint: str
) -> None:
    isolated_env.write_config(
        f'[providers.lab]\ndriver = "openai"\nbase_url = "{base_url}"\n'
        f'key_env = "{KEY_VARS["lab"]}"\n{headers}'
        "[retry]\nattempts = 3\nbase_delay = 0.5\n"
    )
    r = callm("chat", "-m", "lab/gpt-test", "hi")
    assert r.code == 1
    assert r.stderr.splitlines() == [first_err, hint], "no retry notice"
    assert r.seconds < 5
    r.assert_clean()


def test_data_db_without_the_tables_callm_expects(
    tmp_path: Path, server: ReplayServer, server2: ReplayServer, configure, isolated_env
) -> None:
    """A DB that says it is newer than this callm and lacks provider_state: the cooldown
    check must not stop a call with fallbacks (it was an internal error)."""
    import sqlite3

    data = isolated_env.data_dir
    data.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data / "callm.db")
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    server.default = openai_error(500)
    server2.default = openai_ok("backup")
    configure({"lab": ("openai", server.url), "backup": ("openai", server2.url)}, attempts=1)
    r = callm(
        "chat", "-m", "lab/gpt-test", "--fallback", "backup/b", "hi", env={"TMPDIR": str(tmp_path)}
    )
    assert r.code == 0, r.stderr
    assert r.stdout == "backup\n"
    assert "lab/gpt-test failed (server); falling back to backup/b" in r.stderr
    assert len(_spilled(tmp_path, data)) == 1
    r.assert_clean()
