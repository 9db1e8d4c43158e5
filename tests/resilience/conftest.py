"""Fixtures for the resilience tests: fault servers and the config that points at them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from harness import config_text

from replay_server import ReplayServer


@pytest.fixture
def configure(isolated_env: Any) -> Any:
    """configure({"lab": ("openai", srv.url)}, attempts=2, ...) writes the config file."""

    def write(providers: dict[str, tuple[str, str]], **kw: Any) -> Path:
        return isolated_env.write_config(config_text(providers, **kw))

    return write


def _replay_server() -> Iterator[ReplayServer]:
    srv = ReplayServer().start()
    try:
        yield srv
    finally:
        srv.stop()


# Up to three independent loopback vendors per test (fallback chains need more than one).
server = pytest.fixture(_replay_server, name="server")
server2 = pytest.fixture(_replay_server, name="server2")
server3 = pytest.fixture(_replay_server, name="server3")
