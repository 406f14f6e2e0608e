"""CORS headers for Engine.IO requests and preflights, and the Origin check they imply.

The CORS setting says which sites' pages may use the server; `origin_allowed` enforces it on
the requests a browser makes without asking first (a websocket upgrade, a polling GET): an
`Origin` that CORS would not allow is refused, rather than merely left without headers. No
CORS setting means the page's own origin only: the `Origin`'s host and port must be the
`Host` the browser asked (the scheme is not compared: TLS may end at a proxy). A request
without an `Origin` is not from a browser page and is allowed.
"""

from __future__ import annotations

from salas.engine.config import CorsConfig
from salas.engine.http import HttpRequest

__all__ = ["cors_headers", "origin_allowed", "preflight_headers"]

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def origin_allowed(
    config: CorsConfig, request: HttpRequest, forwarded_host: str | None = None
) -> bool:
    """Whether `request`'s `Origin` (if any) may use the server under `config`.

    Args:
        config: The CORS setting.
        request: The request; its `Origin` and `Host` headers are read.
        forwarded_host: The `Host` the browser used, when a trusted proxy rewrote it.
    """
    origin = request.headers.get("origin")
    if origin is None or config.origins == "*":
        return True
    if config.origins:
        return origin in config.origins
    host = forwarded_host or request.headers.get("host")
    if not host:
        return False
    scheme, sep, netloc = origin.partition("://")
    if not sep:
        return False  # "null" (a sandboxed page or a file), or garbage
    return _host_port(netloc, _DEFAULT_PORTS.get(scheme.lower())) in (
        _host_port(host, "80"),
        _host_port(host, "443"),
    )


def _host_port(netloc: str, default_port: str | None) -> tuple[str, str | None]:
    """("host", "port") of "host[:port]" in lower case, `default_port` when none is given."""
    text = netloc.strip().lower()
    if text.startswith("["):  # an IPv6 literal
        host, _, rest = text.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, _, port_text = text.partition(":")
        port = port_text or None
    return host, port or default_port


def cors_headers(config: CorsConfig, request: HttpRequest) -> list[tuple[str, str]]:
    """The Access-Control-* headers for `request`, or none if its origin is not allowed."""
    origin = request.headers.get("origin")
    if not config.origins:
        return []
    headers: list[tuple[str, str]] = []
    if config.origins == "*":
        if config.credentials and origin:
            # A credentialed request may not be answered with "*": echo the origin instead.
            headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        else:
            headers.append(("Access-Control-Allow-Origin", "*"))
    elif origin and origin in config.origins:
        headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    else:
        return []
    if config.credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    return headers


def preflight_headers(config: CorsConfig, request: HttpRequest) -> list[tuple[str, str]]:
    headers = cors_headers(config, request)
    if not headers:
        return []
    headers.append(("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE"))
    asked = request.headers.get("access-control-request-headers")
    if asked:
        headers.append(("Access-Control-Allow-Headers", asked))
        headers.append(("Vary", "Access-Control-Request-Headers"))
    return headers
