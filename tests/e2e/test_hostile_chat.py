"""Issue 12, calls: signals mid-stream, private data files, and a server's control characters
on a terminal. The installed `callm` in a subprocess with a temporary HOME (isolated_env)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from isolation import CALLM, IsolatedEnv
from replay_server import Reply, serving

FAKE_KEY = "test-key-123"


def rows(env: IsolatedEnv) -> list[sqlite3.Row]:
    conn = sqlite3.connect(env.data_dir / "callm.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM usage ORDER BY id").fetchall()
    finally:
        conn.close()


def lab_config(env: IsolatedEnv, base_url: str) -> None:
    env.write_config(
        f'[providers.lab]\ndriver = "openai-compatible"\nbase_url = "{base_url}/v1"\n'
        'key_env = "CALLM_LAB_KEY"\n[retry]\nattempts = 1\n'
    )


def sse(*texts: str) -> bytes:
    chunks = [
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
        for t in texts
    ]
    chunks.append({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def on_terminal(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run callm with stdout and stderr on a pseudo-terminal; everything it wrote there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [CALLM, *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100", **(env or {})},
    )
    os.close(slave)
    got = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        got += data
    os.close(master)
    return proc.wait(timeout=60), got.decode("utf-8", "replace")


# ---- 3. SIGTERM and SIGHUP mid-stream -----------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_mid_stream_keeps_text_and_records_one_interrupted_row(
    isolated_env: IsolatedEnv, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [CALLM, "chat", "-m", "sim", "-o", "length=4000", "-o", "delay_ms=5", "tell me"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.read1(64)  # the reply is streaming
    assert first
    time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert (first + out).decode().strip(), "the text that arrived stays"
    assert b"Traceback" not in err and err.endswith(b"interrupted\n")
    (row,) = rows(isolated_env)
    assert (row["outcome"], row["error_kind"]) == ("interrupted", "interrupted")
    assert row["output_tokens"] > 0
    assert json.loads(row["attempts_json"])[0]["outcome"] == "interrupted"


def test_internal_error_is_recorded_as_error_not_interrupted(isolated_env: IsolatedEnv) -> None:
    """A bug in whatever consumes the stream is an `error` row (in-process: it needs a sink
    that fails, which no command line produces)."""
    from callm.call_types import CallSpec
    from callm.config.schema import Config
    from callm.engine import call
    from callm.types import Message

    def broken_sink(ev: Any) -> None:
        raise ZeroDivisionError("a bug")

    spec = CallSpec(model="sim", messages=[Message("user", "hi")])
    with pytest.raises(ZeroDivisionError):
        call(Config(), spec, broken_sink, lambda line: None)
    (row,) = rows(isolated_env)
    assert row["outcome"] == "error"
    assert json.loads(row["attempts_json"])[0]["outcome"] == "error"


# ---- 7. private data files ------------------------------------------------------------------


def test_data_db_is_private(isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config("log_prompts = true\n")
    p = subprocess.run(
        [CALLM, "chat", "-m", "sim", "my secret plan"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert os.stat(isolated_env.data_dir).st_mode & 0o777 == 0o700
    for f in isolated_env.data_dir.glob("callm.db*"):
        assert os.stat(f).st_mode & 0o777 == 0o600, f.name


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
def test_spill_file_of_another_user_is_not_appended(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data folder should be")
    db = blocker / "callm" / "callm.db"
    tag = hashlib.sha256(os.path.abspath(db).encode()).hexdigest()[:12]
    planted = tmp / f"callm-{os.getuid()}-{tag}-usage-spill.jsonl"
    planted.write_text("")
    os.chown(planted, 65534, 65534)  # "nobody" made it first, to read what we spill
    p = subprocess.run(
        [CALLM, "chat", "-m", "sim", "my secret plan"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmp), "CALLM_DATA_DIR": str(blocker / "callm")},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert planted.read_text() == "", "nothing of ours went into someone else's file"
    assert "row: {" in p.stderr  # the row is not dropped: it goes to stderr


# ---- 8. control characters from a server, on a terminal --------------------------------------


def test_reply_escapes_do_not_reach_the_terminal(isolated_env: IsolatedEnv) -> None:
    hostile = ["Hello \x1b]0;pwned-title\x07there", " \x1b[2Jcleared\r\x08 ok\n\tend"]
    with serving(Reply(headers={"content-type": "text/event-stream"}, body=sse(*hostile))) as srv:
        lab_config(isolated_env, srv.url)
        code, shown = on_terminal(["chat", "-m", "lab/m", "hi"], {"CALLM_LAB_KEY": FAKE_KEY})
    assert code == 0, shown
    for raw in ("\x1b]0;", "\x07", "\x1b[2J", "\x08"):
        assert raw not in shown, repr(shown)
    assert "pwned-title" in shown and "cleared" in shown  # the text stays, only controls go
    # piped, the reply is the server's bytes, untouched
    with serving(Reply(headers={"content-type": "text/event-stream"}, body=sse(*hostile))) as srv:
        lab_config(isolated_env, srv.url)
        p = subprocess.run(
            [CALLM, "chat", "-m", "lab/m", "hi"],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
            env={**os.environ, "CALLM_LAB_KEY": FAKE_KEY},
        )  # fmt: skip
    assert p.stdout.decode() == "".join(hostile) + "\n"


def test_model_ids_and_errors_with_escapes_are_cleaned_on_a_terminal(
    isolated_env: IsolatedEnv,
) -> None:
    ids = ["good-model", "evil\x1b]0;title\x07-model", "two\nlines\x1b[2J"]
    listing = json.dumps({"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
    with serving(Reply(body=listing.encode(), headers={"content-type": "application/json"})) as srv:
        lab_config(isolated_env, srv.url)
        code, shown = on_terminal(["models", "sync", "lab"], {"CALLM_LAB_KEY": FAKE_KEY})
        assert code == 0, shown
    code, shown = on_terminal(["models", "list", "-p", "lab"], {"COLUMNS": "300"})
    assert code == 0, shown
    assert "\x1b]0;" not in shown and "\x07" not in shown and "\x1b[2J" not in shown
    assert "good-model" in shown and "evil]0;title-model" in shown
    err = json.dumps({"error": {"message": "bad \x1b]0;owned\x07 key\x1b[2J", "type": "x"}})
    with serving(Reply(status=400, body=err.encode())) as srv:
        lab_config(isolated_env, srv.url)
        code, shown = on_terminal(["chat", "-m", "lab/m", "hi"], {"CALLM_LAB_KEY": FAKE_KEY})
    assert code == 1, shown
    assert "\x1b]0;" not in shown and "\x07" not in shown and "\x1b[2J" not in shown
    assert "owned" in shown


# ---- 4. one key variable, one provider; key = "none" sends none ------------------------------


def _add(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CALLM, "providers", "add", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_names_sharing_a_key_variable_cannot_coexist(isolated_env: IsolatedEnv) -> None:
    lab = ["--driver", "openai-compatible", "--base-url", "http://127.0.0.1:9/v1", "--no-verify"]
    assert _add("a-b", *lab, "--no-key").returncode == 0
    p = _add("a.b", *lab, "--no-key")
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == (
        "error: providers 'a-b' and 'a.b' would both read CALLM_A_B_API_KEY"
    )
    isolated_env.write_config(
        '[providers.a-b]\ndriver = "openai-compatible"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[providers.a_b]\ndriver = "openai-compatible"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    p = subprocess.run([CALLM, "providers", "list"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == (
        f"error: {isolated_env.config_path}: providers 'a-b' and 'a_b' both read CALLM_A_B_API_KEY"
    )


def test_keyless_provider_never_sends_a_key(isolated_env: IsolatedEnv) -> None:
    with serving(Reply(headers={"content-type": "text/event-stream"}, body=sse("hi"))) as srv:
        isolated_env.write_config(
            f'[providers."a.b"]\ndriver = "openai-compatible"\nbase_url = "{srv.url}/v1"\n'
            'key = "none"\n'
        )
        p = subprocess.run(
            [CALLM, "chat", "-m", "a.b/m", "hi"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
            env={**os.environ, "CALLM_A_B_API_KEY": FAKE_KEY},
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        (seen,) = srv.seen
    assert not any(FAKE_KEY in v for v in seen.headers.values()), seen.headers
    assert "Authorization" not in seen.headers


# ---- 5. credentials never go into the config ------------------------------------------------


def test_credential_headers_are_refused_with_the_key_header_hint(
    isolated_env: IsolatedEnv,
) -> None:
    lab = ["--driver", "openai-compatible", "--base-url", "http://127.0.0.1:9/v1", "--no-verify"]
    for header in ("X-Api-Key=SECRET-123", "Authorization=Bearer SECRET-123", "X-Token=SECRET-123"):
        p = _add("lab", *lab, "--no-key", "--header", header)
        name = header.split("=")[0]
        assert p.returncode == 2
        assert p.stderr.splitlines() == [
            f"error: --header {name}: credentials do not go into the config",
            f"hint: use --key-header {name} (and --key-prefix if needed); the key goes to the "
            "keychain",
        ]
        assert "SECRET-123" not in p.stderr
    assert not isolated_env.config_path.exists()


def test_key_header_sends_the_keychain_key_in_that_header(isolated_env: IsolatedEnv) -> None:
    with serving(Reply(headers={"content-type": "text/event-stream"}, body=sse("hi"))) as srv:
        p = _add(
            "lab", "--driver", "openai-compatible", "--base-url", f"{srv.url}/v1", "--no-verify",
            "--key-header", "x-api-key", "--key-prefix", "Token ", "--key-stdin", stdin=FAKE_KEY,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        text = isolated_env.config_path.read_text(encoding="utf-8")
        assert FAKE_KEY not in text
        assert 'key_header = "x-api-key"' in text and 'key_prefix = "Token "' in text
        shown = subprocess.run(
            [CALLM, "providers", "show", "lab"], capture_output=True, text=True, timeout=60
        )
        assert FAKE_KEY not in shown.stdout + shown.stderr
        p = subprocess.run(
            [CALLM, "chat", "-m", "lab/m", "hi"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        (seen,) = srv.seen
    assert seen.headers.get("x-api-key") == f"Token {FAKE_KEY}"
    assert "Authorization" not in seen.headers


# ---- latency is the call's, not the wait for a locked ledger ----------------------------------


def test_latency_excludes_waiting_for_a_locked_data_db(isolated_env: IsolatedEnv) -> None:
    first = subprocess.run([CALLM, "chat", "-m", "sim", "hi"], capture_output=True, timeout=60)
    assert first.returncode == 0
    holder = sqlite3.connect(isolated_env.data_dir / "callm.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another callm (or a report) writing for a while
    try:
        began = time.monotonic()
        proc = subprocess.Popen(
            [CALLM, "chat", "-m", "sim", "hi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        time.sleep(3.0)
    finally:
        holder.execute("COMMIT")
        holder.close()
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert time.monotonic() - began >= 3.0
    latest = rows(isolated_env)[-1]
    assert latest["latency_ms"] < 2000, latest["latency_ms"]
