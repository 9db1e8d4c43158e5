"""Issue 12, bad input: each becomes a clear one-line error with exit 2 (never a traceback,
never a call that spends), and values are checked when entered, not at the next call.
The installed `callm` in a subprocess with a temporary HOME (isolated_env)."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import time

import pytest

from isolation import CALLM, IsolatedEnv

LAB = ["--driver", "openai-compatible", "--no-key", "--no-verify"]
ASCII_ONLY = "the value must be printable ASCII (no line breaks or NUL)"
OLD_LAB = '[providers.lab]\ndriver = "openai-compatible"\nbase_url = "{url}"\nkey = "none"\n'


def callm(
    *args: str | bytes,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CALLM, *args],
        input=stdin,
        stdout=stdout,
        stderr=stderr,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def usage_error(p: subprocess.CompletedProcess[bytes], first_line: str) -> None:
    err = p.stderr.decode()
    assert "Traceback" not in err, err
    assert p.returncode == 2, err
    assert err.splitlines()[0] == first_line, err


def usage_rows(env: IsolatedEnv) -> int:
    db = env.data_dir / "callm.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])
    finally:
        conn.close()


# ---- crashes -------------------------------------------------------------------------------


def test_non_utf8_stdin_and_arguments(isolated_env: IsolatedEnv) -> None:
    p = callm("chat", "-m", "sim", "x", stdin=b"caf\xe9")
    usage_error(p, "error: the prompt is not valid UTF-8 (byte 0xe9 at character 6)")
    p = callm("chat", "-m", "sim", b"caf\xe9")
    usage_error(p, "error: argument 4 is not valid UTF-8 (byte 0xe9 at character 3)")
    assert usage_rows(isolated_env) == 0


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_verify_timeout_must_be_finite(isolated_env: IsolatedEnv, value: str) -> None:
    p = callm("providers", "verify", "--timeout", value)
    said = "must be positive, not -1" if value == "-1" else f"must be a finite number, not {value}"
    usage_error(p, f"error: --timeout {said}")


def test_max_cost_nan_refuses_before_calling(isolated_env: IsolatedEnv) -> None:
    p = callm("chat", "-m", "sim", "--max-cost", "nan", "hi")
    usage_error(p, "error: --max-cost must be a finite number, not nan")
    assert p.stdout == b""
    assert usage_rows(isolated_env) == 0, "no call was made"


def test_usage_report_since_a_huge_span_means_from_the_start(isolated_env: IsolatedEnv) -> None:
    assert callm("chat", "-m", "sim", "hi").returncode == 0
    p = callm("--json", "usage", "report", "--since", "99999999d")
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["totals"]["requests"] == 1


def test_host_label_too_long_is_refused_at_add_and_at_call(isolated_env: IsolatedEnv) -> None:
    url = f"http://{'a' * 64}.example/v1"
    p = callm("providers", "add", "lab", "--base-url", url, *LAB)
    usage_error(p, f"error: base_url {url!r}: host name parts must be 1 to 63 characters")
    isolated_env.write_config(OLD_LAB.format(url=url))
    p = callm("chat", "-m", "lab/m", "hi")
    usage_error(
        p, f"error: provider lab: base_url {url!r}: host name parts must be 1 to 63 characters"
    )


def test_closed_stdout_refuses_to_call_and_closed_stderr_is_fine(
    isolated_env: IsolatedEnv,
) -> None:
    closed = subprocess.run(
        f"{CALLM} chat -m sim hi >&-", shell=True, capture_output=True, timeout=60
    )
    assert closed.returncode == 2, closed.stderr
    assert closed.stderr.decode().splitlines() == [
        "error: standard output is closed: the reply would be lost"
    ]
    assert usage_rows(isolated_env) == 0
    quiet = subprocess.run(f"{CALLM} chat -m sim hi 2>&-", shell=True, capture_output=True)
    assert quiet.returncode == 0
    assert quiet.stdout.strip()
    assert usage_rows(isolated_env) == 1


# ---- values checked when entered -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "first"),
    [
        ("X Bad=1", "error: --header: 'X Bad' is not a valid HTTP header name"),
        ("X-Ok=a\nb", f"error: --header X-Ok: {ASCII_ONLY}"),
        ("X-Ok=caf\u00e9", f"error: --header X-Ok: {ASCII_ONLY}"),
    ],
)
def test_header_checked_at_add(isolated_env: IsolatedEnv, header: str, first: str) -> None:
    p = callm("providers", "add", "lab", "--base-url", "http://127.0.0.1:9/v1", *LAB,
              "--header", header)  # fmt: skip
    usage_error(p, first)
    assert not isolated_env.config_path.exists()


@pytest.mark.parametrize(
    ("key", "first"),
    [
        (b"sk-abc\x00def", "error: the key on standard input contains a NUL byte (character 7)"),
        (
            "sk-caf\u00e9".encode(),
            "error: the key on standard input contains a non-ASCII character (character 7)",
        ),
    ],
)
def test_bad_key_checked_at_entry(isolated_env: IsolatedEnv, key: bytes, first: str) -> None:
    isolated_env.write_config('[providers.lab]\ndriver = "openai"\n')
    p = callm("providers", "set-key", "lab", "--key-stdin", stdin=key)
    usage_error(p, first)
    assert not isolated_env.keyring_file.exists()


def test_ctrl_d_at_the_key_prompt_is_no_key_given(isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[providers.lab]\ndriver = "openai"\n')
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [CALLM, "providers", "set-key", "lab"], stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    time.sleep(1.0)
    os.write(master, b"\x04")  # Ctrl-D
    got = bytearray()
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        got += data
    os.close(master)
    assert proc.wait(timeout=60) == 2, got
    assert b"error: no key given" in got
    assert b"Traceback" not in got


def test_model_names_with_line_breaks_and_empty_model(isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config(OLD_LAB.format(url="http://127.0.0.1:9/v1"))
    p = callm("models", "default", "lab/a\nb")
    usage_error(p, "error: model name 'lab/a\\nb' has a line break, control character or blank")
    assert "default_model" not in isolated_env.config_path.read_text()
    p = callm("chat", "-m", "", "hi")
    usage_error(p, "error: -m/--model is empty")


@pytest.mark.parametrize(
    ("url", "first"),
    [
        ("http://127.0.0.1:99999/v1", "error: base_url 'http://127.0.0.1:99999/v1' has a bad port"),
        ("http://127.0.0.1:x/v1", "error: base_url 'http://127.0.0.1:x/v1' has a bad port"),
        (
            "http://user:pw@127.0.0.1:9/v1",
            "error: base_url 'http://***@127.0.0.1:9/v1' carries credentials (user:password@); "
            "store the key with `callm providers set-key` instead",
        ),
    ],
)
def test_base_url_checked_at_add(isolated_env: IsolatedEnv, url: str, first: str) -> None:
    p = callm("providers", "add", "lab", "--base-url", url, *LAB)
    usage_error(p, first)
    assert b"pw@" not in p.stderr
    assert not isolated_env.config_path.exists()


def test_user_info_in_an_old_config_is_masked(isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config(OLD_LAB.format(url="http://user:hunter2@127.0.0.1:9/v1"))
    for args in (
        ["providers", "list"],
        ["providers", "show", "lab"],
        ["--json", "providers", "list"],
    ):
        p = callm(*args)
        assert p.returncode == 0, p.stderr
        assert b"hunter2" not in p.stdout + p.stderr
        assert b"***@127.0.0.1:9" in p.stdout


def test_add_sim_needs_force(isolated_env: IsolatedEnv) -> None:
    p = callm("providers", "add", "sim")
    usage_error(p, "error: 'sim' is the built-in simulator")
    assert not isolated_env.config_path.exists()
    assert callm("providers", "add", "sim", "--force").returncode == 0


# ---- numbers in the config (refused by the schema; here through the installed callm) ------

INF = "must be a finite number, not inf"


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ('[providers.lab]\ndriver = "sim"\ntimeout = inf\n', f"providers.lab.timeout: {INF}"),
        ("[retry]\nmax_delay = 1e309\n", "retry.max_delay: must be a finite number, not inf"),
        ("[pricing.sim]\ninput = nan\n", "pricing.sim.input: must be a finite number, not nan"),
    ],
)  # fmt: skip
def test_non_finite_config_numbers_exit_2(isolated_env: IsolatedEnv, text: str, first: str) -> None:
    path = isolated_env.write_config(text)
    p = callm("chat", "-m", "sim", "hi")
    usage_error(p, f"error: {path}: {first}")
    assert usage_rows(isolated_env) == 0


def test_huge_prices_never_give_a_non_finite_cost(isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[pricing."sim/sim-small"]\ninput = 1e308\noutput = 1e308\n')
    p = callm("--json", "chat", "-m", "sim", "hi")
    assert p.returncode == 0, p.stderr

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    obj = json.loads(p.stdout, parse_constant=refuse)
    assert obj["cost_usd"] is None
    assert b"$inf" not in p.stderr
