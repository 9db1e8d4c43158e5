"""AWS credentials, region and SigV4 signing for the bedrock driver, through botocore.

botocore is an optional extra (`pip install 'callm[bedrock]'`): it carries AWS's own
credential chain (environment, shared credentials/config files and profiles, SSO cache,
container and instance roles) and signer, which callm should not re-implement. It is
imported only here and in the bedrock stream parser, only when a Bedrock call needs it.

Secrets met here (secret keys, session tokens) are handed to secrets.remember so every error
message is scrubbed of them."""

from __future__ import annotations

import os
import threading
from typing import Any

from callm.errors import AuthError, ConfigError, MissingKeyError
from callm.types import AwsSigning

INSTALL_HINT = "install it with: pip install 'callm[bedrock]'"
_sessions: dict[str | None, Any] = {}  # profile -> botocore Session (it caches credentials)
_lock = threading.Lock()


def need_botocore(what: str = "the bedrock driver") -> None:
    """A one-line usage error (exit 2) when botocore is not installed."""
    try:
        import botocore  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"{what} needs botocore, which is not installed", hint=INSTALL_HINT
        ) from None


def reset() -> None:
    """Forget cached sessions and credentials (tests change the environment)."""
    with _lock:
        _sessions.clear()


def _session(profile: str | None) -> Any:
    need_botocore()
    with _lock:
        session = _sessions.get(profile)
        if session is None:
            import botocore.session

            session = botocore.session.Session(profile=profile or None)
            _sessions[profile] = session
        return session


def region(profile: str | None = None) -> str | None:
    """The region from AWS_REGION / AWS_DEFAULT_REGION, else the profile's `region` in the
    shared config file. None when nothing says."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        import botocore  # noqa: F401
    except ImportError:
        return None
    try:
        value = _session(profile).get_config_variable("region")
    except Exception as exc:  # ProfileNotFound, an unreadable config file
        raise _config_problem(exc, profile) from None
    return value or None


def _config_problem(exc: Exception, profile: str | None) -> ConfigError:
    from callm.secrets import scrub

    name = type(exc).__name__
    if name == "ProfileNotFound":
        return ConfigError(
            f"AWS profile {profile!r} is not in the shared config or credentials file",
            hint="check `profile` in the provider config, or run `aws configure --profile ...`",
        )
    return ConfigError(scrub(f"cannot read the AWS configuration: {name}: {exc}"))


def credentials(profile: str | None, provider: str | None = None) -> Any:
    """Frozen botocore credentials from the chain (refreshed when they expire).
    MissingKeyError when the chain finds none; AuthError when it fails (expired SSO...)."""
    from callm.secrets import remember, scrub

    session = _session(profile)
    try:
        with _lock:  # verify checks providers in threads; the chain runs once per profile
            creds = session.get_credentials()
            frozen = creds.get_frozen_credentials() if creds is not None else None
    except Exception as exc:  # botocore's errors: ProfileNotFound, SSO token expired, ...
        if type(exc).__name__ == "ProfileNotFound":
            raise _config_problem(exc, profile) from None
        raise AuthError(
            scrub(f"AWS credentials could not be loaded: {type(exc).__name__}: {exc}"),
            provider=provider,
            hint="for SSO profiles run `aws sso login`; or set a Bedrock API key",
        ) from None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise MissingKeyError(
            "no AWS credentials found; looked in the environment, the shared credentials and "
            "config files"
            + (f" (profile {profile!r})" if profile else "")
            + ", the SSO cache, and container and instance roles",
            provider=provider,
            hint="export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or set a "
            "Bedrock API key (AWS_BEARER_TOKEN_BEDROCK or `callm providers set-key NAME`)",
        )
    remember(frozen.secret_key)
    if frozen.token:
        remember(frozen.token)
    return frozen


def sign(
    signing: AwsSigning, method: str, url: str, headers: dict[str, str], body: bytes | None
) -> dict[str, str]:
    """The headers with SigV4 added (Authorization, X-Amz-Date, X-Amz-Security-Token)."""
    frozen = credentials(signing.profile)
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
    SigV4Auth(frozen, signing.service, signing.region).add_auth(request)
    return dict(request.headers.items())
