"""`Response` (salas.http.response): defaults, JSON, and how a route's answer reaches the wire."""

from __future__ import annotations

import orjson

from salas.http import Response, Router


def test_defaults() -> None:
    """A bare Response is an empty 200 text/plain answer with no extra headers."""
    response = Response()
    assert (response.status, response.body, response.headers) == (200, b"", [])
    assert response.content_type == "text/plain; charset=UTF-8"


def test_json() -> None:
    """Response.json encodes with orjson and sets the JSON content type and the status."""
    response = Response.json({"ok": True, "n": [1, 2]}, status=202)
    assert response.status == 202
    assert orjson.loads(response.body) == {"ok": True, "n": [1, 2]}
    assert response.content_type == "application/json"


def test_headers_are_per_instance() -> None:
    """Each Response has its own header list (no shared mutable default)."""
    first, second = Response(), Response()
    first.headers.append(("X-A", "1"))
    assert second.headers == []


async def test_on_the_wire(serve, http) -> None:
    """Status, content type, extra headers and body are sent as given; HEAD sends no body."""
    router = Router()
    router.add(
        "/made",
        lambda r: Response(418, b"teapot", "text/x-tea", [("X-Brew", "green")]),
    )
    port = await serve(router)
    response = await http(port, "GET", "/made")
    assert (response.status, response.body) == (418, b"teapot")
    assert response.headers["content-type"] == "text/x-tea"
    assert response.headers["x-brew"] == "green"
    head = await http(port, "HEAD", "/made")
    assert (head.status, head.headers["content-length"], head.body) == (418, "6", b"")
