"""Per-provider state kept in the data DB: last verification, failure streak, cooldown."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProviderState:
    name: str
    last_verified: str | None = None
    last_verify_ok: bool | None = None
    failures: int = 0
    cooldown_until: float | None = None

    def cooldown_until_iso(self) -> str | None:
        import time

        if not self.cooldown_until or self.cooldown_until <= time.time():
            return None
        return time.strftime("%H:%M:%S", time.localtime(self.cooldown_until))


def read_states() -> dict[str, ProviderState]:
    return {}
