"""Issue 12, config and keychain: the installed `callm` in a subprocess with a temporary HOME
(the autouse isolated_env), fed the files and races a hostile or unlucky user produces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from isolation import CALLM, FILE_KEYRING, IsolatedEnv

ADD_LAB = ["providers", "add", "lab", "--driver", "openai-compatible",
           "--base-url", "http://127.0.0.1:9/v1", "--no-key", "--no-verify"]  # fmt: skip


def callm(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CALLM, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def no_traceback(p: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in p.stderr, p.stderr


# ---- 1. symlinks and files that are not files ---------------------------------------------


def test_symlinked_config_is_written_through_to_the_real_file(isolated_env: IsolatedEnv) -> None:
    dotfiles = isolated_env.home / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "callm.toml"
    real.write_text("# kept in my dotfiles\n", encoding="utf-8")
    link = isolated_env.config_path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(real)
    p = callm(*ADD_LAB)
    assert p.returncode == 0, p.stderr
    assert link.is_symlink(), "the link was replaced by a plain file"
    text = real.read_text(encoding="utf-8")
    assert text.startswith("# kept in my dotfiles\n")
    assert "lab" in tomllib.loads(text)["providers"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_config_that_is_not_a_regular_file_is_refused(
    isolated_env: IsolatedEnv, tmp_path: Path, kind: str
) -> None:
    if kind == "fifo":
        path = tmp_path / "config.fifo"
        os.mkfifo(path)
        shown = "a FIFO"
    elif kind == "directory":
        path = tmp_path / "config.d"
        path.mkdir()
        shown = "a directory"
    else:
        path = Path(os.devnull)
        shown = "a device"
    before = os.stat(path)
    for args in (["providers", "list"], ADD_LAB):
        p = callm("--config", str(path), *args, timeout=10)  # a FIFO used to hang here
        assert p.returncode == 2, p.stderr
        assert p.stderr.splitlines()[0] == f"error: {path} is {shown}, not a regular file"
        no_traceback(p)
    after = os.stat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    p = callm("--config", str(path), "providers", "list")
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == f"error: config file {path} does not exist"
    p = callm("--config", str(path), *ADD_LAB)  # a command that writes creates it
    assert p.returncode == 0, p.stderr
    assert "lab" in tomllib.loads(path.read_text(encoding="utf-8"))["providers"]


def test_config_with_a_bom_is_read_and_keeps_working(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.config_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'\xef\xbb\xbfdefault_model = "sim/sim-small"\n')
    p = callm("models", "default")
    assert (p.returncode, p.stdout) == (0, "sim/sim-small\n"), p.stderr
    p = callm(*ADD_LAB)
    assert p.returncode == 0, p.stderr
    assert tomllib.loads(path.read_text(encoding="utf-8-sig"))["default_model"] == "sim/sim-small"


@pytest.mark.parametrize("text", ["a = " + "[" * 100_000, "a = " + "{ b = " * 100_000])
def test_deeply_nested_config_is_a_clear_error(isolated_env: IsolatedEnv, text: str) -> None:
    isolated_env.write_config(text)
    p = callm("providers", "list")
    assert p.returncode == 2
    first = p.stderr.splitlines()[0]
    assert first.startswith(f"error: {isolated_env.config_path}: invalid TOML"), first
    assert "nested too deeply" in first or "line 1" in first
    no_traceback(p)


def _read_only(folder: Path, on: bool) -> None:
    """chmod for a user; root writes anywhere, so for root the folder is made immutable."""
    if os.geteuid() != 0:
        folder.chmod(0o555 if on else 0o755)
        return
    done = subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True)
    if on and done.returncode != 0:
        pytest.skip("running as root where chattr +i is not possible")


def test_read_only_config_folder_names_the_file_and_exits_2(isolated_env: IsolatedEnv) -> None:
    text = 'default_model = "sim/sim-small"\n'
    path = isolated_env.write_config(text)
    folder = path.parent
    _read_only(folder, True)
    try:
        p = callm("models", "default", "sim/other")
    finally:
        _read_only(folder, False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines()[0].startswith(
        f"error: cannot save {path}: its folder {folder} is not writable"
    )
    no_traceback(p)
    assert path.read_text(encoding="utf-8") == text


# ---- 2. concurrent read-modify-writes -----------------------------------------------------


@pytest.mark.parametrize("count", [10, 50])
def test_concurrent_adds_keep_every_provider_and_every_key(
    isolated_env: IsolatedEnv, count: int
) -> None:
    procs = [
        subprocess.Popen(
            [
                CALLM,
                "providers",
                "add",
                f"p{i}",
                "--driver",
                "openai-compatible",
                "--base-url",
                f"http://127.0.0.1:9/v{i}",
                "--key-stdin",
                "--no-verify",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CALLM_KEYRING_TIMEOUT": "120"},  # 50 starts on a busy machine
        )
        for i in range(count)
    ]
    results = [p.communicate(f"test-key-{i}\n", timeout=180) for i, p in enumerate(procs)]
    added = {i for i, p in enumerate(procs) if p.returncode == 0}
    for i in range(count):
        if i not in added:  # allowed only as a clear "busy", never a lost write
            assert "busy" in results[i][1], results[i][1]
    assert len(added) >= count // 2
    config = tomllib.loads(isolated_env.config_path.read_text(encoding="utf-8"))
    assert set(config["providers"]) == {f"p{i}" for i in added}
    import keyring

    for i in added:  # the file keyring: rewritten whole by each writer, so a race loses keys
        assert keyring.get_password("callm", f"p{i}") == f"test-key-{i}"


# ---- 6. keyring backend --------------------------------------------------------------------


def _without_explicit_backend(isolated_env: IsolatedEnv) -> dict[str, str]:
    """The state a `pip install .[test]` leaves: keyrings.alt installed, nothing chosen."""
    rc = isolated_env.config_home / "python_keyring" / "keyringrc.cfg"
    rc.unlink()
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent"
    return env


def test_plain_text_keyring_is_refused_unless_chosen(isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[providers.lab]\ndriver = "openai"\n')
    env = _without_explicit_backend(isolated_env)
    probe = subprocess.run(
        [sys.executable, "-c", "import keyring; print(type(keyring.get_keyring()).__name__)"],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    if "Plaintext" not in probe.stdout:
        pytest.skip(f"this machine's default keyring is {probe.stdout.strip()}")
    p = subprocess.run(
        [CALLM, "providers", "set-key", "lab", "--key-stdin"],
        input="test-key-123", capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "error: the only keyring backend here (file PlaintextKeyring) keeps keys in a "
        "plain-text file",
        f"hint: set key_env for the provider, or choose it knowingly: "
        f"PYTHON_KEYRING_BACKEND={FILE_KEYRING}",
    ]
    assert not isolated_env.keyring_file.exists()
    # chosen explicitly (the test suite's own setting): stored, and named for what it is
    p = callm("providers", "set-key", "lab", "--key-stdin", stdin="test-key-123")
    assert p.returncode == 0, p.stderr
    assert p.stderr == (
        "stored key tes...-123 for lab in a plain-text file (file PlaintextKeyring)\n"
    )


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_bad_keyring_timeout_is_a_usage_error(isolated_env: IsolatedEnv, value: str) -> None:
    isolated_env.write_config('[providers.lab]\ndriver = "openai"\n')
    p = callm(
        "providers", "set-key", "lab", "--key-stdin",
        stdin="test-key-123", env={"CALLM_KEYRING_TIMEOUT": value},
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == (
        f"error: CALLM_KEYRING_TIMEOUT must be a number of seconds above 0, got {value!r}"
    )


# ---- saving a large config is linear: `add` appends the new table -----------------------------


@pytest.mark.parametrize(
    "before",
    [
        '# mine\n[providers.a]\ndriver = "openai-compatible"\nbase_url = "http://127.0.0.1:9/v1"\n'
        "# trailing comment",
        'providers = { a = { driver = "sim", headers = { X-A = "1" } } }\n',
        '[providers.a]\ndriver = "sim"\n[retry]\nattempts = 2\n',
    ],
)
def test_add_keeps_the_file_and_adds_the_provider(isolated_env: IsolatedEnv, before: str) -> None:
    path = isolated_env.write_config(before)
    p = callm(*ADD_LAB)
    assert p.returncode == 0, p.stderr
    text = path.read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert set(config["providers"]) == {"a", "lab"}
    assert config["providers"]["lab"]["key"] == "none"
    if before.startswith("# mine"):
        assert text.startswith(before)  # appended: comments and layout untouched
    assert callm("providers", "list").returncode == 0
