"""Misbehaving keyring backends, selectable with PYTHON_KEYRING_BACKEND=keyring_backends.NAME
(tests/ on PYTHONPATH) or installed in-process with keyring.set_keyring()."""

from __future__ import annotations

import threading

from jaraco.classes import properties
from keyring.backend import KeyringBackend


class _TestBackend(KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        return -1.0  # below every real backend: never chosen automatically

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        pass

    def delete_password(self, service: str, username: str) -> None:
        pass


class SleepingKeyring(_TestBackend):
    """A locked keychain whose unlock dialog nobody answers: every call blocks until
    `release()` (in-process tests call it at teardown so the worker thread ends)."""

    def __init__(self) -> None:
        super().__init__()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def get_password(self, service: str, username: str) -> str | None:
        self._released.wait()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self._released.wait()

    def delete_password(self, service: str, username: str) -> None:
        self._released.wait()


class ForgetfulKeyring(_TestBackend):
    """Accepts every write and keeps nothing."""


class ExplodingKeyring(_TestBackend):
    """Every call fails, like a backend whose D-Bus service crashed."""

    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError("secret service went away")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError("secret service went away")

    def delete_password(self, service: str, username: str) -> None:
        raise RuntimeError("secret service went away")
