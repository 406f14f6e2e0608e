"""CORS headers for Engine.IO requests and preflights."""

from __future__ import annotations

from salas.engine.config import CorsConfig
from salas.engine.http import HttpRequest

__all__ = ["cors_headers", "preflight_headers"]


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
