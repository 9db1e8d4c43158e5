"""Base URLs: checked when entered (a bad port or host fails now, not at the next call) and
shown without credentials (an old config may carry `user:pw@`). Stdlib only."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_SCHEMES = ("http", "https")


def check_base_url(url: str) -> None:
    """Raise ValueError saying what is wrong with `url` as an API base URL."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ValueError(f"base_url {safe_url(url)!r} contains spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES or not parts.netloc:
        raise ValueError(f"base_url must look like https://host/v1, got {safe_url(url)!r}")
    if "@" in parts.netloc:
        raise ValueError(
            f"base_url {safe_url(url)!r} carries credentials (user:password@); "
            "store the key with `callm providers set-key` instead"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError(f"base_url {url!r} has a bad port") from None
    if not parts.hostname:
        raise ValueError(f"base_url {url!r} has no host")
    check_host(url)


def check_host(url: str) -> None:
    """The host name of `url` can be looked up: labels of 1 to 63 characters, IDNA-encodable
    (the encoder's UnicodeError was an internal error). Other URL problems are left to the
    caller (the transport names them)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return
    if not host or ":" in host:  # none, or an IPv6 literal
        return
    if len(host) > 253 or any(not 0 < len(label) <= 63 for label in host.rstrip(".").split(".")):
        raise ValueError(f"base_url {url!r}: host name parts must be 1 to 63 characters")
    try:
        host.encode("idna")
    except UnicodeError:
        raise ValueError(f"base_url {url!r}: {host!r} is not a valid host name") from None


def safe_url(url: str | None) -> str | None:
    """`url` with any user-info replaced by `***`, for display."""
    if not url or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("@", 1)[-1]
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
