"""API keys: resolution order, keychain access with a timeout, masking and scrubbing.

A key is never written to the config file, never taken from argv, never printed unmasked.
Every key this process sees is remembered so `scrub()` can remove it from any message.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from callm.errors import ConfigError, KeychainError, MissingKeyError, UsageError

SERVICE = "callm"
_T = TypeVar("_T")
_known_keys: set[str] = set()

# Shapes of well-known vendor keys, scrubbed even if this process never loaded them. A key
# starts a word: "disk-space-exhausted-on-volume" is not an "sk-" key.
_KEY_PATTERNS = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(sk-(?:proj-|ant-(?:api\d\d-)?|or-v1-)?[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}"
    r"|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,})"
)


def remember(key: str) -> str:
    if key and len(key) >= 4:
        _known_keys.add(key)
    return key


def mask(key: str | None) -> str:
    """First 3 and last 4 characters: `sk-...vX2Q`. Short keys are fully hidden."""
    if not key:
        return ""
    if len(key) < 12:
        return "*" * 8
    return f"{key[:3]}...{key[-4:]}"


def scrub(text: str) -> str:
    """Remove every known key (and anything shaped like a vendor key) from text."""
    if not text:
        return text
    for key in sorted(_known_keys, key=len, reverse=True):
        if key in text:
            text = text.replace(key, mask(key))
    return _KEY_PATTERNS.sub(lambda m: mask(m.group(0)), text)


def env_name(provider: str) -> str:
    """CALLM_<NAME>_API_KEY, NAME upper-cased with '-' (and '.') as '_'."""
    return "CALLM_" + re.sub(r"[^A-Za-z0-9]", "_", provider).upper() + "_API_KEY"


def key_variable_clash(names: list[str]) -> tuple[str, str] | None:
    """Two provider names that read the same CALLM_<NAME>_API_KEY (`a-b`, `a.b`, `a_b`)."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(env_name(name), name)
        if other != name:
            return other, name
    return None


# ---- keychain -----------------------------------------------------------------------------


def _timeout() -> float:
    """CALLM_KEYRING_TIMEOUT seconds (default 5); anything but a positive finite number is
    a usage error, not a thread that waits forever or a crash."""
    raw = os.environ.get("CALLM_KEYRING_TIMEOUT", "5")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 < value < 86400):
        raise UsageError(f"CALLM_KEYRING_TIMEOUT must be a number of seconds above 0, got {raw!r}")
    return value


def _with_timeout(fn: Callable[[], _T], what: str) -> _T:
    """Run a keychain call in a daemon thread so a locked or absent keychain cannot hang us."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    timeout = _timeout()
    t = threading.Thread(target=target, name="callm-keyring", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise KeychainError(
            f"the OS keychain did not answer within {timeout:g} s while {what}",
            hint="unlock it, or set the key in an environment variable (key_env)",
        )
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, KeychainError):  # already says what happened (e.g. no backend)
            raise exc
        raise KeychainError(
            f"the OS keychain failed while {what}: {type(exc).__name__}: {exc}",
            hint="set the key in an environment variable instead (key_env)",
        )
    return box.get("value")  # type: ignore[return-value]


def _plain_text(kr: object) -> bool:
    """A backend that keeps keys in a readable file (keyrings.alt's PlaintextKeyring, ...)."""
    kinds = [kr, *getattr(kr, "backends", ())]  # a ChainerBackend writes to its first
    return any("plaintext" in type(k).__name__.lower() for k in kinds[:2])


def _chosen_explicitly() -> bool:
    """The user named the backend: PYTHON_KEYRING_BACKEND or keyringrc.cfg's default-keyring."""
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return True
    from keyring.core import load_config

    try:
        return load_config() is not None
    except Exception:  # a broken keyringrc: keyring itself falls back to its own choice
        return False


def _backend() -> object:
    import keyring
    from keyring.backends import fail

    kr = keyring.get_keyring()
    name = type(kr).__module__ + "." + type(kr).__name__
    if isinstance(kr, fail.Keyring) or "null" in name.lower():
        raise KeychainError(
            "no OS keychain is available here",
            hint='set key_env = "VAR" for the provider, or CALLM_<NAME>_API_KEY',
        )
    if _plain_text(kr) and not _chosen_explicitly():
        raise KeychainError(
            f"the only keyring backend here ({kr.name}) keeps keys in a plain-text file",
            hint="set key_env for the provider, or choose it knowingly: "
            f"PYTHON_KEYRING_BACKEND={name}",
        )
    return kr


def backend_label() -> str:
    """How `set-key` names where the key went: the OS keychain, or a plain-text file."""
    kr = _backend()
    where = "a plain-text file" if _plain_text(kr) else "the OS keychain"
    return f"{where} ({getattr(kr, 'name', type(kr).__name__)})"


def _keychain_lock() -> AbstractContextManager[None]:
    """Writes hold a lock: a file backend rewrites its whole file, so two concurrent
    writers would drop each other's keys."""
    from callm.locking import dir_lock
    from callm.paths import data_dir

    return dir_lock(data_dir(), "the keychain")


def keychain_get(provider: str) -> str | None:
    def get() -> str | None:
        return _backend().get_password(SERVICE, provider)  # type: ignore[attr-defined]

    value = _with_timeout(get, "reading a key")
    return remember(value) if value else None


def keychain_set(provider: str, key: str) -> None:
    """Store and read back: some backends accept writes and keep nothing."""
    remember(key)

    def put() -> str | None:
        kr = _backend()
        kr.set_password(SERVICE, provider, key)  # type: ignore[attr-defined]
        return kr.get_password(SERVICE, provider)  # type: ignore[attr-defined]

    with _keychain_lock():
        kept = _with_timeout(put, "storing a key")
    if kept != key:
        raise KeychainError(
            "the OS keychain accepted the key but did not keep it",
            hint='set key_env = "VAR" for the provider instead',
        )


def keychain_delete(provider: str) -> bool:
    """Delete the entry; False when there was none."""

    def delete() -> bool:
        from keyring.errors import PasswordDeleteError

        kr = _backend()
        try:
            kr.delete_password(SERVICE, provider)  # type: ignore[attr-defined]
        except PasswordDeleteError:
            return False
        return True

    with _keychain_lock():
        return _with_timeout(delete, "deleting a key")


def keychain_name() -> str:
    try:
        kr = _with_timeout(_backend, "opening the keychain")
    except KeychainError:
        return "none"
    return getattr(kr, "name", type(kr).__name__)


# ---- resolution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySource:
    """Where a key comes from, as far as the config says (no keychain read, no secret)."""

    kind: str  # "env" | "keychain" | "none"
    var: str | None = None

    def describe(self) -> str:
        if self.kind == "env":
            return f"env {self.var}"
        return self.kind


def declared_source(provider: str, key_mode: str, key_env: str | None) -> KeySource:
    if key_env:
        return KeySource("env", key_env)
    if key_mode == "none":
        return KeySource("none")
    return KeySource("keychain")


def resolve_key(
    provider: str,
    *,
    key_mode: str = "keychain",
    key_env: str | None = None,
    vendor_vars: tuple[str, ...] = (),
) -> str | None:
    """SPEC key resolution: key_env > CALLM_<NAME>_API_KEY > keychain > vendor variable.
    Returns None only for providers configured with key = "none"."""
    if key_mode == "none":  # the provider takes no key: send none, whatever variable is set
        return None
    looked: list[str] = []
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            raise MissingKeyError(
                f"key_env says {key_env}, but {key_env} is not set",
                provider=provider,
                hint=f"export {key_env}=... or change key_env in the config",
            )
        return remember(check_key(value, key_env))
    own = env_name(provider)
    value = os.environ.get(own)
    if value:
        return remember(check_key(value, own))
    looked.append(own)
    keychain_problem = ""
    try:
        value = keychain_get(provider)
        if value:
            return value
        looked.append("the OS keychain")
    except KeychainError as exc:
        keychain_problem = f" ({exc.message})"
        looked.append("the OS keychain")
    for var in vendor_vars:
        value = os.environ.get(var)
        if value:
            return remember(check_key(value, var))
        looked.append(var)
    raise MissingKeyError(
        f"no API key found; looked in {', '.join(looked)}{keychain_problem}",
        provider=provider,
        hint=f"run `callm providers set-key {provider}` or export {own}",
    )


def check_key(key: str, where: str = "the key") -> str:
    """A key goes into an HTTP header: printable ASCII only. Checked when it is entered, so
    the mistake is named now rather than at the next call."""
    for i, c in enumerate(key):
        if c == "\x00":
            raise UsageError(f"{where} contains a NUL byte (character {i + 1})")
        if not c.isascii():
            raise UsageError(f"{where} contains a non-ASCII character (character {i + 1})")
        if ord(c) < 0x20 or ord(c) == 0x7F or c == " ":
            raise UsageError(f"{where} contains a space or control character (character {i + 1})")
    return key


def read_key_stdin(stream: object) -> str:
    """The key from --key-stdin: first line, stripped."""
    if stream is None:  # standard input closed
        raise ConfigError("--key-stdin: there is no standard input")
    text = stream.read()  # type: ignore[attr-defined]
    key = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not key:
        raise ConfigError("--key-stdin: no key on standard input")
    return remember(check_key(key, "the key on standard input"))
