"""What every command gets: global options, the output decision, lazy config access."""

from __future__ import annotations

import math
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

    def config(self) -> Config:
        """Loaded and validated on first use."""
        if self._config is None:
            from callm.config.store import load

            self._config = load(self.config_path)
        return self._config

    def save(self, config: Config) -> None:
        from callm.config.store import save

        save(self.config_path, config)
        self._config = config


def state(ctx: typer.Context) -> State:
    """The State the root callback created (a fresh default one when called directly)."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj
