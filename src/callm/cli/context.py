"""What every command gets: global options, the output decision, lazy config access."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from callm.render.output import Output

if TYPE_CHECKING:
    from callm.config.schema import Config


def number(value: float | None, flag: str, *, positive: bool = False) -> float | None:
    """A number given to `flag`, refused (exit 2) when it is inf or nan, as in the config:
    `--max-cost nan` would otherwise pass every budget check."""
    from callm.errors import UsageError

    if value is None:
        return None
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, not {value}")
    if positive and value <= 0:
        raise UsageError(f"{flag} must be positive, not {value:g}")
    return value


@dataclass
class State:
    config_override: str | None = None
    out: Output = field(default_factory=Output)
    _config: Config | None = None

    @property
    def config_path(self) -> Path:
        from callm.paths import config_path

        return config_path(self.config_override)

    def config(self, creating: bool = False) -> Config:
        """Loaded and validated on first use. A --config file that does not exist is an
        error (a typo would otherwise look like an empty config), unless a command is
        about to create it."""
        if self._config is None:
            from callm.config.store import load
            from callm.ledger import backend

            path = self.config_path
            if self.config_override and not creating and not path.exists():
                from callm.errors import ConfigError

                raise ConfigError(
                    f"config file {path} does not exist",
                    hint="check the --config path (`callm providers add` creates it)",
                )
            self._config = load(path)
            backend.configure(self._config.ledger.url)
        return self._config

    def update(self, change: Callable[[Config], Config]) -> Config:
        """Read-modify-write under the config lock: `change` gets the config as it is on
        disk now (another callm may have saved since this one loaded it)."""
        from callm.config.store import update

        self._config = update(self.config_path, change)
        return self._config


def state(ctx: typer.Context) -> State:
    """The State the root callback created (a fresh default one when called directly)."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj
