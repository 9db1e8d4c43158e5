"""Keys: resolution order, keychain access (timeout, read-back), masking and scrubbing.
The keychain here is a real backend: keyrings.alt's file keyring in the temp home."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr
from pathlib import Path

import keyring
import keyring.core
import pytest
from keyring.backends import fail

from callm import secrets
from callm.errors import EXIT_AUTH, EXIT_FAILED, CallmError, ConfigError, KeychainError
from callm.secrets import (
    env_name,
    keychain_delete,
    keychain_get,
    keychain_set,
    mask,
    read_key_stdin,
    remember,
    resolve_key,
    scrub,
)
from isolation import Cli, IsolatedEnv
from keyring_backends import ExplodingKeyring, ForgetfulKeyring, SleepingKeyring

TESTS = Path(__file__).parent
FAKE = "sk-FAKE-test-0000-vX2Q"  # obviously not a real key


@pytest.fixture
def use_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[object], None]]:
    """Install a keyring backend instance for this test only."""
    installed: list[object] = []

    def install(backend: object) -> None:
        installed.append(backend)
        monkeypatch.setattr(keyring.core, "_keyring_backend", backend)

    yield install
    for backend in installed:
        if isinstance(backend, SleepingKeyring):
            backend.release()


def _sub_env(backend: str, timeout: str = "0.5") -> dict[str, str]:
    """Environment for a callm subprocess that uses one of tests/keyring_backends.py."""
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {
        "PYTHONPATH": path,
        "PYTHON_KEYRING_BACKEND": f"keyring_backends.{backend}",
        "CALLM_KEYRING_TIMEOUT": timeout,
    }


# ---- the real (file) backend ---------------------------------------------------------------


def test_the_isolated_keyring_is_the_temp_file_backend(isolated_env: IsolatedEnv) -> None:
    kr = keyring.get_keyring()
    assert type(kr).__module__ + "." + type(kr).__name__ == "keyrings.alt.file.PlaintextKeyring"
    keychain_set("openai", FAKE)
    assert isolated_env.keyring_file.is_file()
    assert str(isolated_env.keyring_file).startswith(str(isolated_env.home))


def test_set_get_delete(isolated_env: IsolatedEnv) -> None:
    assert keychain_get("openai") is None
    keychain_set("openai", FAKE)
    assert keychain_get("openai") == FAKE
    assert keychain_get("anthropic") is None
    assert keychain_delete("openai") is True
    assert keychain_get("openai") is None
    assert keychain_delete("openai") is False


def test_entries_use_service_callm_and_provider_as_user() -> None:
    keychain_set("groq", FAKE)
    assert keyring.get_password("callm", "groq") == FAKE


# ---- resolution order ----------------------------------------------------------------------

VENDOR = ("OPENAI_API_KEY",)


def test_resolution_order_first_hit_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_OPENAI", "from-key-env-0001")
    monkeypatch.setenv("CALLM_OPENAI_API_KEY", "from-callm-var-0002")
    keychain_set("openai", "from-keychain-0003")
    monkeypatch.setenv("OPENAI_API_KEY", "from-vendor-var-0004")

    assert resolve_key("openai", key_env="MY_OPENAI", vendor_vars=VENDOR) == "from-key-env-0001"
    assert resolve_key("openai", vendor_vars=VENDOR) == "from-callm-var-0002"
    monkeypatch.delenv("CALLM_OPENAI_API_KEY")
    assert resolve_key("openai", vendor_vars=VENDOR) == "from-keychain-0003"
    keychain_delete("openai")
    assert resolve_key("openai", vendor_vars=VENDOR) == "from-vendor-var-0004"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(CallmError) as info:
        resolve_key("openai", vendor_vars=VENDOR)
    assert info.value.exit_code == EXIT_AUTH


@pytest.mark.parametrize("level", ["key_env", "callm_var", "keychain", "vendor_var"])
def test_each_level_alone(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    value = f"only-{level}-key-0005"
    key_env = None
    if level == "key_env":
        monkeypatch.setenv("MY_OPENAI", value)
        key_env = "MY_OPENAI"
    elif level == "callm_var":
        monkeypatch.setenv("CALLM_OPENAI_API_KEY", value)
    elif level == "keychain":
        keychain_set("openai", value)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", value)
    assert resolve_key("openai", key_env=key_env, vendor_vars=VENDOR) == value


def test_key_env_that_is_not_set_is_an_error_and_does_not_fall_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLM_OPENAI_API_KEY", "from-callm-var-0002")
    monkeypatch.setenv("OPENAI_API_KEY", "from-vendor-var-0004")
    with pytest.raises(CallmError) as info:
        resolve_key("openai", key_env="MY_OPENAI", vendor_vars=VENDOR)
    assert "MY_OPENAI" in info.value.message
    assert info.value.exit_code == EXIT_AUTH


def test_callm_variable_name() -> None:
    assert env_name("openai") == "CALLM_OPENAI_API_KEY"
    assert env_name("my-lab") == "CALLM_MY_LAB_API_KEY"


def test_hyphenated_provider_reads_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_MY_LAB_API_KEY", "lab-key-0006")
    assert resolve_key("my-lab") == "lab-key-0006"


def test_vendor_variables_in_catalog_order(monkeypatch: pytest.MonkeyPatch) -> None:
    both = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-0007")
    assert resolve_key("gemini", vendor_vars=both) == "google-key-0007"
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-0008")
    assert resolve_key("gemini", vendor_vars=both) == "gemini-key-0008"


def test_key_none_needs_nothing_and_skips_the_keychain(
    use_backend: Callable[[object], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(SleepingKeyring())  # would hang if it were asked
    monkeypatch.setenv("CALLM_KEYRING_TIMEOUT", "30")
    start = time.monotonic()
    assert resolve_key("lab", key_mode="none") is None
    assert time.monotonic() - start < 1


def test_missing_key_says_where_it_looked() -> None:
    with pytest.raises(CallmError) as info:
        resolve_key("openai", vendor_vars=VENDOR)
    msg = info.value.message
    for place in ("CALLM_OPENAI_API_KEY", "keychain", "OPENAI_API_KEY"):
        assert place in msg
    assert "set-key openai" in (info.value.hint or "")


def test_without_a_keychain_variables_still_work(
    use_backend: Callable[[object], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(fail.Keyring())
    monkeypatch.setenv("OPENAI_API_KEY", "from-vendor-var-0004")
    assert resolve_key("openai", vendor_vars=VENDOR) == "from-vendor-var-0004"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(CallmError, match="no OS keychain"):
        resolve_key("openai", vendor_vars=VENDOR)


# ---- misbehaving keychains -----------------------------------------------------------------


def test_keychain_that_never_answers_times_out(
    use_backend: Callable[[object], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(SleepingKeyring())
    monkeypatch.setenv("CALLM_KEYRING_TIMEOUT", "0.2")
    for call in (lambda: keychain_get("openai"), lambda: keychain_set("openai", FAKE)):
        start = time.monotonic()
        with pytest.raises(KeychainError, match=r"did not answer within 0\.2 s"):
            call()
        assert time.monotonic() - start < 2


def test_resolution_survives_a_hanging_keychain(
    use_backend: Callable[[object], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(SleepingKeyring())
    monkeypatch.setenv("CALLM_KEYRING_TIMEOUT", "0.2")
    monkeypatch.setenv("OPENAI_API_KEY", "from-vendor-var-0004")
    assert resolve_key("openai", vendor_vars=VENDOR) == "from-vendor-var-0004"


@pytest.mark.parametrize("value", ["soon", "inf", "nan", "-1", "0"])
def test_bad_timeout_setting_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Issue 12: a bad value is named (exit 2), never a crash or a wait without end."""
    from callm.errors import UsageError

    monkeypatch.setenv("CALLM_KEYRING_TIMEOUT", value)
    with pytest.raises(UsageError, match="CALLM_KEYRING_TIMEOUT must be"):
        keychain_set("openai", FAKE)
    monkeypatch.setenv("CALLM_KEYRING_TIMEOUT", "2.5")
    keychain_set("openai", FAKE)
    assert keychain_get("openai") == FAKE


def test_keychain_that_keeps_nothing_is_reported(use_backend: Callable[[object], None]) -> None:
    use_backend(ForgetfulKeyring())
    with pytest.raises(KeychainError, match="did not keep it"):
        keychain_set("openai", FAKE)


def test_failing_backend_becomes_a_keychain_error(use_backend: Callable[[object], None]) -> None:
    use_backend(ExplodingKeyring())
    with pytest.raises(KeychainError, match="secret service went away"):
        keychain_get("openai")


def test_cli_set_key_with_hanging_keychain_fails_fast_in_one_line(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    isolated_env.write_config('[providers.openai]\ndriver = "openai"\n')
    start = time.monotonic()
    res = cli.sub(
        "providers", "set-key", "openai", "--key-stdin", stdin=FAKE, env=_sub_env("SleepingKeyring")
    )
    assert time.monotonic() - start < 15
    assert res.code == EXIT_FAILED
    lines = res.stderr.splitlines()
    assert lines[0].startswith("error: the OS keychain did not answer within 0.5 s"), res.stderr
    assert [line[:5] for line in lines[1:]] == ["hint:"]
    assert FAKE not in res.output


def test_cli_set_key_with_forgetful_keychain_is_reported(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    path = isolated_env.write_config('[providers.openai]\ndriver = "openai"\nkey_env = "MY_VAR"\n')
    before = path.read_bytes()
    res = cli.sub(
        "providers",
        "set-key",
        "openai",
        "--key-stdin",
        stdin=FAKE,
        env=_sub_env("ForgetfulKeyring"),
    )
    assert res.code == EXIT_FAILED
    assert res.stderr.startswith("error: the OS keychain accepted the key but did not keep it")
    assert path.read_bytes() == before  # still reads MY_VAR: the key went nowhere
    assert FAKE not in res.output


def test_cli_without_any_keychain_points_to_variables(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.write_config('[providers.openai]\ndriver = "openai"\n')
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    res = cli.sub("providers", "set-key", "openai", "--key-stdin", stdin=FAKE)
    assert res.code == EXIT_FAILED
    assert res.stderr.splitlines()[0] == "error: no OS keychain is available here"
    assert "key_env" in res.stderr


# ---- entering keys -------------------------------------------------------------------------


def test_read_key_stdin_takes_the_first_line_stripped() -> None:
    assert read_key_stdin(io.StringIO(f"  {FAKE}\r\nsecond line\n")) == FAKE


@pytest.mark.parametrize("text", ["", "\n", "   \n\n"])
def test_read_key_stdin_rejects_nothing(text: str) -> None:
    with pytest.raises(ConfigError, match="no key"):
        read_key_stdin(io.StringIO(text))


def test_no_command_takes_a_key_as_an_argument() -> None:
    import typer.main

    from callm.cli.app import app

    def walk(cmd: object, path: str) -> Iterator[tuple[str, str]]:
        for param in cmd.params:  # type: ignore[attr-defined]
            for opt in (*param.opts, *param.secondary_opts):
                yield path, opt
            if param.param_type_name == "argument":
                yield path, param.name
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            yield from walk(sub, f"{path} {name}")

    names = list(walk(typer.main.get_command(app), "callm"))
    assert names
    offenders = [
        (path, name)
        for path, name in names
        if name.lstrip("-").replace("_", "-") in ("key", "api-key", "token", "secret", "password")
    ]
    assert offenders == []


def test_key_given_as_argument_is_refused_and_not_echoed(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    isolated_env.write_config('[providers.openai]\ndriver = "openai"\n')
    res = cli("providers", "set-key", "openai", FAKE)
    assert res.code == 2
    assert FAKE not in res.output
    assert not isolated_env.keyring_file.exists()
    res = cli("providers", "add", "groq", "--key", FAKE, "--no-verify")
    assert res.code == 2
    assert FAKE not in res.output


def test_hidden_prompt_on_a_terminal(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return f" {FAKE} "

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    isolated_env.write_config('[providers.openai]\ndriver = "openai"\n')
    res = cli("providers", "set-key", "openai", tty=True)
    assert res.code == 0, res.output
    assert prompts == ["API key for openai (input hidden): "]
    assert keychain_get("openai") == FAKE
    assert FAKE not in res.output


def test_no_terminal_and_no_key_stdin_is_a_usage_error(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[providers.openai]\ndriver = "openai"\n')
    res = cli("providers", "set-key", "openai")
    assert res.code == 2
    assert "--key-stdin" in res.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a Linux pty")
def test_real_prompt_does_not_echo_the_key(isolated_env: IsolatedEnv) -> None:
    """On a real terminal: the prompt appears, the typed key is not echoed, it is stored."""
    import pty

    isolated_env.write_config('[providers.openai]\ndriver = "openai"\n')
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal
        os.execv(sys.executable, [sys.executable, "-m", "callm", "providers", "set-key", "openai"])
    seen = _read_until(fd, b"(input hidden): ")
    os.write(fd, FAKE.encode() + b"\n")
    seen += _read_until(fd, b"")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"API key for openai (input hidden): " in seen
    assert FAKE.encode() not in seen
    assert b"sk-...vX2Q" in seen
    assert keychain_get("openai") == FAKE


def _read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    """Read from the pty until `marker` shows up (or EOF when marker is empty)."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return data
        if not chunk:
            return data
        data += chunk
        if marker and marker in data:
            return data
    raise AssertionError(f"timed out waiting for {marker!r}; got {data!r}")


# ---- showing keys --------------------------------------------------------------------------


def test_mask_shows_first_three_and_last_four() -> None:
    assert mask(FAKE) == "sk-...vX2Q"
    assert mask("fake-key-for-tests-0009") == "fak...0009"


@pytest.mark.parametrize("key", ["", "short", "elevenchars"])
def test_mask_hides_short_keys_entirely(key: str) -> None:
    masked = mask(key)
    assert key == "" or key not in masked
    assert masked in ("", "********")


def test_scrub_removes_every_known_key() -> None:
    keys = ["plain-secret-one-0010", "another-secret-0011", "plain-secret-one-0010-longer"]
    for k in keys:
        remember(k)
    text = " | ".join(f"vendor said {k}!" for k in keys)
    cleaned = scrub(text)
    for k in keys:
        assert k not in cleaned
    assert "vendor said pla...0010!" in cleaned
    assert "pla...nger" in cleaned  # the longer key is masked as a whole


def test_scrub_masks_vendor_shaped_keys_it_never_saw() -> None:
    shaped = [
        "sk-" + "F" * 24,
        "sk-proj-" + "FAKE" * 5,
        "sk-ant-api03-" + "FAKE" * 4,
        "sk-or-v1-" + "0" * 20,
        "AIza" + "F" * 31,
        "gsk_" + "F" * 24,
        "xai-" + "F" * 24,
    ]
    for key in shaped:
        assert key not in scrub(f"Incorrect API key provided: {key}.")


@pytest.mark.parametrize(
    "text",
    [
        "model gpt-4o-mini not found (openai/gpt-4o-mini): see https://x.test/sk-docs",
        "disk-space-exhausted-on-volume-one",
        "model task-specific-finetune-v2-large is not available",
    ],
)
def test_scrub_leaves_ordinary_text_alone(text: str) -> None:
    assert scrub(text) == text


def test_remembered_keys_include_every_key_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_LAB_API_KEY", "lab-secret-from-env-0012")
    resolve_key("lab")
    assert "lab-secret-from-env-0012" not in scrub("echo: lab-secret-from-env-0012")


def test_error_messages_are_scrubbed() -> None:
    from callm.cli.errors import handle

    remember("unshaped-secret-value-0013")
    err = io.StringIO()
    with redirect_stderr(err):
        code = handle(CallmError("the vendor echoed unshaped-secret-value-0013 back", hint=FAKE))
    assert code == EXIT_FAILED
    assert "unshaped-secret-value-0013" not in err.getvalue()
    assert FAKE not in err.getvalue()
    assert "uns...0013" in err.getvalue()


def test_secrets_module_has_one_service_name() -> None:
    assert secrets.SERVICE == "callm"
