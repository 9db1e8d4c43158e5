"""Shared fixtures. `isolated_env` is autouse: no test ever reads or writes the real home
directory, config, data DB or OS keychain, and no key from the developer's shell leaks in.
The pieces live in tests/isolation.py; import types and helpers from there, not from here."""

from __future__ import annotations

import pytest

from isolation import Cli, IsolatedEnv, isolate


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> IsolatedEnv:
    """A fresh temp home for every test (see isolation.isolate)."""
    return isolate(tmp_path_factory.mktemp("home"), monkeypatch)


@pytest.fixture
def cli() -> Cli:
    """`cli(ARGS...)` runs callm in this process; `cli.sub(ARGS...)` as a subprocess."""
    return Cli()
