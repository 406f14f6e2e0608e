"""`Response`: what a route handler returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

__all__ = ["Response"]


@dataclass(slots=True)
class Response:
    """An HTTP answer: status, body bytes, content type and extra headers.

    `Content-Length` and `Connection` are written by the server; a HEAD request gets the
    same head as a GET (with the body's length) and no body.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=UTF-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: object, status: int = 200) -> Response:
        """`data` encoded as JSON (`orjson`), with `Content-Type: application/json`."""
        return cls(status, orjson.dumps(data), "application/json")
