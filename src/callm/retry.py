"""When to retry, how long to wait, when to fall back. Pure functions, no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callm.errors import CallmError, HostNotFoundError, NotFoundError, StreamError

if TYPE_CHECKING:
    from callm.config.schema import RetryConfig


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    cooldown_after: int = 3
    cooldown_seconds: float = 60.0

    @classmethod
    def from_config(cls, rc: RetryConfig) -> RetryPolicy:
        return cls(rc.attempts, rc.base_delay, rc.max_delay, rc.cooldown_after, rc.cooldown_seconds)


def root_cause(exc: CallmError) -> CallmError:
    """A broken stream is judged by what broke it."""
    if isinstance(exc, StreamError) and exc.cause is not None:
        return exc.cause
    return exc


def wait_before_retry(
    exc: CallmError, attempt: int, policy: RetryPolicy, rand: float | None = None
) -> float:
    """What the server asked (Retry-After & co.), else exponential backoff with jitter;
    capped at policy.max_delay either way."""
    asked = getattr(root_cause(exc), "retry_after", None)
    if asked is not None:
        return max(0.0, min(float(asked), policy.max_delay))
    backoff = policy.base_delay * (2 ** (attempt - 1))
    jitter = 0.5 + (random.random() if rand is None else rand)  # 0.5x .. 1.5x
    return min(backoff * jitter, policy.max_delay)


def should_fall_back(exc: CallmError) -> bool:
    """After retries: a retryable failure or an unknown model moves on to the next model.
    Auth, bad requests and context-length errors would fail the same way elsewhere... or
    are the user's to fix, so they stop the chain."""
    cause = root_cause(exc)
    return cause.retryable or isinstance(cause, (NotFoundError, HostNotFoundError))


def counts_against_provider(exc: CallmError) -> bool:
    """Failures that say the provider is unwell (for cooldowns), not that the user erred."""
    return root_cause(exc).retryable
