"""Test isolation and CLI runners, shared by the tests (a plain module, so tests import it
by name; conftest.py only turns it into fixtures, and several conftest.py files may exist)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest


def _installed_callm() -> str:
    """The `callm` script installed beside this interpreter (the venv the tests run in)."""
    beside = Path(sys.executable).with_name("callm")
    return str(beside) if beside.exists() else (shutil.which("callm") or "callm")


CALLM = _installed_callm()

# The file backend of keyrings.alt: a real keyring backend, kept in XDG_DATA_HOME (a temp dir).
FILE_KEYRING = "keyrings.alt.file.PlaintextKeyring"

# Variables that would change what callm sees: its own, every vendor's key variable, and
# anything that reaches the user's keychain or desktop session.
# AWS_: credentials, profile, region, Bedrock key; PG: libpq's (PGPASSWORD, PGHOST, ...)
_SCRUBBED_PREFIXES = ("CALLM_", "AWS_", "PG")
_SCRUBBED_SUFFIXES = ("_API_KEY", "_API_TOKEN")
_SCRUBBED_NAMES = (
    "NO_COLOR",
    "PYTHON_KEYRING_BACKEND",
    "KEYRING_PROPERTY_FILE_PATH",
    "DBUS_SESSION_BUS_ADDRESS",
    "GNOME_KEYRING_CONTROL",
    "XDG_RUNTIME_DIR",
)


@dataclass(frozen=True)
class IsolatedEnv:
    home: Path
    config_home: Path  # XDG_CONFIG_HOME
    data_home: Path  # XDG_DATA_HOME
    data_dir: Path  # CALLM_DATA_DIR

    @property
    def config_path(self) -> Path:
        """Where callm looks for its config by default."""
        return self.config_home / "callm" / "config.toml"

    @property
    def keyring_file(self) -> Path:
        """The file keyring's storage (keyrings.alt writes it under XDG_DATA_HOME)."""
        return self.data_home / "python_keyring" / "keyring_pass.cfg"

    def write_config(self, text: str) -> Path:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(text, encoding="utf-8")
        return self.config_path


def _vendor_key_vars() -> set[str]:
    """Every key variable the built-in catalog knows (GOOGLE_API_KEY, ...)."""
    try:
        from callm.catalog.providers import catalog
    except ImportError:  # pragma: no cover - catalog missing or broken
        return set()
    return {var for t in catalog().values() for var in t.key_env}


def isolate(root: Path, monkeypatch: pytest.MonkeyPatch) -> IsolatedEnv:
    """HOME, XDG_CONFIG_HOME, XDG_DATA_HOME and CALLM_DATA_DIR under `root`; CALLM_* and
    vendor key variables cleared; keyring = the file backend under `root` (undone with
    `monkeypatch`)."""
    env = IsolatedEnv(
        home=root,
        config_home=root / ".config",
        data_home=root / ".local" / "share",
        data_dir=root / ".local" / "share" / "callm",
    )
    vendor_vars = _vendor_key_vars()
    for name in list(os.environ):
        if (
            name.startswith(_SCRUBBED_PREFIXES)
            or name.endswith(_SCRUBBED_SUFFIXES)
            or name in _SCRUBBED_NAMES
            or name in vendor_vars
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(env.home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.config_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(env.data_home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / ".cache"))
    monkeypatch.setenv("CALLM_DATA_DIR", str(env.data_dir))
    # botocore's credential chain: no instance-metadata probe (it would leave 127.0.0.1)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws_auth = sys.modules.get("callm.aws_auth")
    if aws_auth is not None:
        aws_auth.reset()  # cached sessions saw the previous test's environment
    # Both ways keyring picks a backend point at the file backend: the variable (this process
    # and its children) and keyringrc.cfg (for a child that clears the variable).
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FILE_KEYRING)
    rc = env.config_home / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(f"[backend]\ndefault-keyring={FILE_KEYRING}\n", encoding="utf-8")
    # keyring caches the backend it chose; make it choose again, from the variables above.
    core = sys.modules.get("keyring.core")
    if core is not None:
        monkeypatch.setattr(core, "_keyring_backend", None)
    # The ledger location is read from the config once per process: read it afresh.
    from callm.ledger import backend

    backend.set_config_override(None)
    return env


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class FakeStdin(io.StringIO):
    """Standard input for in-process runs; `tty=True` makes it look like a terminal."""

    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def invoke(args: Sequence[str], stdin: str = "", tty: bool = False) -> CliResult:
    """Run `callm ARGS` in this process (callm.cli.app.run) and capture what it prints."""
    from callm.cli.app import run

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = FakeStdin(stdin, tty=tty)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = run(list(args))
    finally:
        sys.stdin = old_stdin
    return CliResult(code, out.getvalue(), err.getvalue())


class Cli:
    """`cli(...)`: run callm in this process; `cli.sub(...)`: the real command in a subprocess."""

    def __call__(self, *args: str, stdin: str = "", tty: bool = False) -> CliResult:
        return invoke(args, stdin=stdin, tty=tty)

    @staticmethod
    def sub(
        *args: str,
        stdin: str | None = "",
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> CliResult:
        """`python -m callm ARGS`; stdin=None gives the child /dev/null."""
        proc = subprocess.run(
            [sys.executable, "-m", "callm", *args],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
