"""The pure parts: reading a server's "retry later", the wait, which failures move on."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callm.drivers.base import error_from_http, parse_duration, parse_retry_after
from callm.errors import (
    AuthError,
    BadRequestError,
    BadResponseError,
    CallTimeoutError,
    ContextLengthError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
    StreamError,
)
from callm.retry import RetryPolicy, should_fall_back, wait_before_retry

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"RETRY-AFTER-MS": "250"}, 0.25),
        ({"retry-after": "1", "retry-after-ms": "1800"}, 1.8),  # both: the larger
        ({"retry-after": email.utils.formatdate(NOW + 7, usegmt=True)}, 7.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),  # past: now
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], want: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [("48s", 48.0), ("1.5s", 1.5), ("250ms", 0.25), ("3", 3.0), ("x", None), (None, None)],
)
def test_parse_duration(text: str | None, want: float | None) -> None:
    assert parse_duration(text) == want


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5))
def test_parse_retry_after_never_raises(headers: dict[str, str]) -> None:
    wait = parse_retry_after(headers)
    assert wait is None or wait >= 0


def test_the_wait_is_what_the_server_asked_capped() -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.5, max_delay=10.0)
    assert wait_before_retry(RateLimitError("x", retry_after=2.5), 1, policy) == 2.5
    assert wait_before_retry(RateLimitError("x", retry_after=3600), 1, policy) == 10.0
    assert wait_before_retry(OverloadedError("x", retry_after=0.0), 2, policy) == 0.0
    broken = StreamError("x", cause=ServerError("y", retry_after=4.0))
    assert wait_before_retry(broken, 1, policy) == 4.0


@given(st.integers(1, 12), st.floats(0, 1, exclude_max=True))
def test_backoff_is_exponential_with_jitter_and_capped(attempt: int, rand: float) -> None:
    policy = RetryPolicy(attempts=20, base_delay=0.5, max_delay=30.0)
    wait = wait_before_retry(ServerError("x"), attempt, policy, rand=rand)
    base = 0.5 * 2 ** (attempt - 1)
    assert wait == pytest.approx(min(base * (0.5 + rand), 30.0))
    assert 0 <= wait <= 30.0


@pytest.mark.parametrize(
    ("exc", "retry", "fall_back"),
    [
        (RateLimitError("x"), True, True),
        (OverloadedError("x"), True, True),
        (ServerError("x"), True, True),
        (NetworkError("x"), True, True),
        (CallTimeoutError("x"), True, True),
        (NotFoundError("x"), False, True),
        (AuthError("x"), False, False),
        (BadRequestError("x"), False, False),
        (ContextLengthError("x"), False, False),
        (BadResponseError("x"), False, False),
    ],
)
def test_what_is_retried_and_what_moves_on(exc, retry: bool, fall_back: bool) -> None:
    assert exc.retryable is retry
    assert should_fall_back(exc) is fall_back


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "rate_limit"), (500, "server"), (502, "server"), (503, "server"), (504, "server"),
     (529, "overloaded"), (408, "server"), (401, "auth"), (403, "auth"), (404, "not_found"),
     (400, "bad_request"), (422, "bad_request")],
)  # fmt: skip
def test_status_decides_the_kind(status: int, kind: str) -> None:
    assert error_from_http(status, "whatever the vendor says").kind == kind


def test_error_from_http_takes_the_larger_of_body_and_header_waits() -> None:
    err = error_from_http(429, "slow", headers={"retry-after": "3"}, retry_after=1.0)
    assert err.retry_after == 3.0  # type: ignore[attr-defined]
    err = error_from_http(429, "slow", headers={"retry-after": "1"}, retry_after=5.0)
    assert err.retry_after == 5.0  # type: ignore[attr-defined]
