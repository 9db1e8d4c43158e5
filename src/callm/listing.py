"""A provider's model list, all pages of it, through its driver. Shared by `providers verify`
(the listing call is how we check a key at no cost) and `models sync`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from callm.errors import BadResponseError, CallmError, CallTimeoutError

if TYPE_CHECKING:
    from callm.config.schema import ProviderConfig
    from callm.types import Endpoint, ModelInfo

MAX_PAGES = 50  # a vendor that keeps sending a next-page token is not followed forever


def list_models(
    name: str,
    pc: ProviderConfig,
    timeout: float = 10.0,
    key_override: str | None = None,
) -> list[ModelInfo]:
    """Every model the provider lists. Resolves the key (MissingKeyError), then follows
    pagination within `timeout` seconds overall. Errors are canonical CallmErrors."""
    from callm.endpoints import endpoint

    ep = endpoint(name, pc, key_override=key_override)
    return list_endpoint(ep, timeout, connect_timeout=pc.connect_timeout)


def list_endpoint(
    ep: Endpoint, timeout: float = 10.0, *, connect_timeout: float | None = None
) -> list[ModelInfo]:
    """The listing for an already resolved endpoint; `timeout` bounds all pages together."""
    from callm.drivers import get_driver

    driver = get_driver(ep.driver)
    if getattr(driver, "local", False):
        return list(driver.list_models(ep))
    deadline = time.monotonic() + timeout
    models: list[ModelInfo] = []
    seen_tokens: set[str] = set()
    token: str | None = None
    for _ in range(MAX_PAGES):
        page, token = _page(driver, ep, token, deadline, timeout, connect_timeout)
        models.extend(page)
        if not token or token in seen_tokens:  # done, or the vendor repeats itself
            break
        seen_tokens.add(token)
    return _dedupe(models)


def _page(
    driver: Any,
    ep: Endpoint,
    token: str | None,
    deadline: float,
    timeout: float,
    connect_timeout: float | None,
) -> tuple[list[ModelInfo], str | None]:
    from callm import transport

    left = deadline - time.monotonic()
    if left <= 0:
        raise CallTimeoutError(f"listing models took longer than {timeout:g} s", provider=ep.name)
    connect = min(left, connect_timeout) if connect_timeout else left
    req = driver.models_request(ep, token)
    t = transport.Timeouts(connect=connect, read=left, deadline=min(left, ep.deadline or left))
    resp = transport.send(req, t, provider=ep.name, tls=ep.tls)
    if resp.status >= 400:
        err = driver.parse_error(resp.status, resp.headers, resp.body)
        if err.provider is None:
            err.provider = ep.name
        if err.status is None:
            err.status = resp.status
        raise err
    try:
        return driver.parse_models(ep, resp.body)
    except CallmError as exc:
        if exc.provider is None:
            exc.provider = ep.name
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a shape we cannot read
        raise BadResponseError(
            f"unreadable model list: {type(exc).__name__}: {exc}", provider=ep.name
        ) from None


def _dedupe(models: list[ModelInfo]) -> list[ModelInfo]:
    """Keep the first row per id (pages may overlap when a vendor's list changes mid-walk)."""
    seen: set[str] = set()
    out: list[ModelInfo] = []
    for m in models:
        if m.id not in seen:
            seen.add(m.id)
            out.append(m)
    return out
