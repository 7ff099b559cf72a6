"""Who may read the local view: loopback by default; anywhere else only with a token.

The view is read-only, but it shows the sale's numbers: bound to a non-loopback address it refuses
to start without `PROMO_VIEW_TOKEN`, and then every request (except the static chart library)
must carry the token as `Authorization: Bearer <token>` or `?token=<token>`, compared in constant
time. A token that is set is required on loopback too.
"""

from __future__ import annotations

import hmac
import ipaddress

from streams.errors import ConfigError

MIN_TOKEN_CHARS = 16
TOKEN_QUERY_KEY = "token"  # noqa: S105 - the name of a query parameter, not a secret


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; any other name or address is reachable from outside."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, token: str) -> None:
    """Refuse a view that others could reach without a token, or with a guessable one."""
    if port == 0:
        return
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"the view would listen on {host}:{port}, beyond this machine: set PROMO_VIEW_TOKEN "
            "(or PROMO_VIEW_HOST=127.0.0.1, or --view-port 0 to turn the view off)"
        )
    if token and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"PROMO_VIEW_TOKEN must be at least {MIN_TOKEN_CHARS} characters")


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def authorized(expected: str, authorization: str | None, query_token: str | None) -> bool:
    """Whether a request may read: no token configured, or the header's or the query's token is it."""
    if not expected:
        return True
    want = expected.encode("utf-8")
    for given in (bearer(authorization), query_token):
        if given is not None and hmac.compare_digest(given.encode("utf-8"), want):
            return True
    return False


def host_allowed(host_header: str) -> bool:
    """Whether a Host header names this machine (localhost, 127.x, [::1]; any port)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return bool(name) and is_loopback(name)
