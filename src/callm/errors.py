"""The error tree. Each error knows its kind (stable, machine-readable) and its exit code."""

from __future__ import annotations

from typing import ClassVar

# Exit codes (SPEC: Exit codes)
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_RATE_LIMIT = 4
EXIT_BUDGET = 5
EXIT_INTERRUPTED = 130


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C: what arrived stays, one `interrupted` row;
    the exit code is 128 + the signal's number, as shells report it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def interrupt_exit_code(exc: BaseException) -> int:
    signum = getattr(exc, "signum", None)
    return 128 + signum if isinstance(signum, int) else EXIT_INTERRUPTED


class OutputClosed(Exception):
    """Whoever reads our output went away (`| head -1`): the call stops, as if interrupted."""


class CallmError(Exception):
    kind: ClassVar[str] = "error"
    exit_code: ClassVar[int] = EXIT_FAILED
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.provider = provider
        self.model = model
        self.status = status

    def where(self) -> str:
        if self.provider and self.model:
            return f"{self.provider}/{self.model}"
        return self.provider or self.model or ""

    def one_line(self) -> str:
        """`<what happened> (<provider>/<model>): <vendor message>` as in the SPEC."""
        where = self.where()
        what = self.summary()
        if where:
            return (
                f"{what} ({where}): {self.message}" if self.message != what else f"{what} ({where})"
            )
        return self.message if self.message == what else f"{what}: {self.message}"

    def summary(self) -> str:
        return self.message


class ConfigError(CallmError):
    kind = "config"
    exit_code = EXIT_USAGE


class UsageError(CallmError):
    """Bad flag, unknown provider or model name given by the user."""

    kind = "usage"
    exit_code = EXIT_USAGE


class KeychainError(CallmError):
    kind = "keychain"
    exit_code = EXIT_FAILED


class MissingKeyError(CallmError):
    kind = "missing_key"
    exit_code = EXIT_AUTH

    def summary(self) -> str:
        return "no API key"


class AuthError(CallmError):
    kind = "auth"
    exit_code = EXIT_AUTH

    def summary(self) -> str:
        return "authentication failed"


class NotFoundError(CallmError):
    kind = "not_found"
    exit_code = EXIT_USAGE

    def summary(self) -> str:
        return "model or endpoint not found"


class RateLimitError(CallmError):
    kind = "rate_limit"
    exit_code = EXIT_RATE_LIMIT
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    def summary(self) -> str:
        return "rate-limited"


class BadRequestError(CallmError):
    kind = "bad_request"
    exit_code = EXIT_FAILED

    def summary(self) -> str:
        return "request rejected"


class ContextLengthError(BadRequestError):
    kind = "context_length"

    def summary(self) -> str:
        return "prompt too long for the model's context window"


class ServerError(CallmError):
    kind = "server"
    exit_code = EXIT_FAILED
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    def summary(self) -> str:
        return "server error"


class OverloadedError(ServerError):
    kind = "overloaded"

    def summary(self) -> str:
        return "provider overloaded"


class NetworkError(CallmError):
    kind = "network"
    exit_code = EXIT_FAILED
    retryable = True

    def summary(self) -> str:
        return "network error"


class HostNotFoundError(NetworkError):
    """The provider's host name does not resolve: asking again a second later gives the same
    answer, so it is not retried (a fallback on another host may still answer)."""

    retryable = False


class CallTimeoutError(NetworkError):
    kind = "timeout"

    def summary(self) -> str:
        return "timed out"


class BadResponseError(CallmError):
    """The vendor answered something we cannot read (HTML page, truncated JSON...)."""

    kind = "bad_response"
    exit_code = EXIT_FAILED

    def summary(self) -> str:
        return "unreadable response"


class StreamError(CallmError):
    """A stream that broke after it started. `partial` keeps the text that arrived."""

    kind = "mid_stream"
    exit_code = EXIT_FAILED

    def __init__(
        self, message: str, *, partial: str = "", cause: CallmError | None = None, **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.partial = partial
        self.cause = cause

    def summary(self) -> str:
        return "stream broke"


class SchemaError(CallmError):
    """The reply is not JSON, or does not match --schema."""

    kind = "schema"
    exit_code = EXIT_FAILED


class BudgetError(CallmError):
    kind = "budget"
    exit_code = EXIT_BUDGET

    def summary(self) -> str:
        return "refused by --max-cost"


class BudgetLimitError(BudgetError):
    """A `[budgets]` limit (daily/monthly) refused the call."""

    def summary(self) -> str:
        return "refused by budget"


def error_for_kind(kind: str, message: str, **kw: object) -> CallmError:
    """Build the error class that matches a canonical kind string."""
    cls = _BY_KIND.get(kind, CallmError)
    return cls(message, **kw)  # type: ignore[arg-type]


_BY_KIND: dict[str, type[CallmError]] = {
    c.kind: c
    for c in (
        ConfigError,
        UsageError,
        MissingKeyError,
        AuthError,
        NotFoundError,
        RateLimitError,
        BadRequestError,
        ContextLengthError,
        ServerError,
        OverloadedError,
        NetworkError,
        CallTimeoutError,
        BadResponseError,
        StreamError,
        SchemaError,
        BudgetError,
    )
}
