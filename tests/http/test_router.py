"""`Router` (salas.http.router): exact routes by method, 405 with Allow, HEAD, the official
client, 404s, served through a real EngineServer's fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from salas.http import Response, Router, StaticFiles, find_client_dist
from tests.support.services import unavailable


async def test_exact_routes_sync_and_async(serve, http) -> None:
    """A sync and an async route handler both answer their exact path (GET and POST)."""
    router = Router()
    router.add("/sync", lambda request: Response(200, b"sync " + request.method.encode()))

    async def slow(request) -> Response:
        await asyncio.sleep(0.01)
        return Response.json({"body": request.body.decode()}, status=201)

    router.add("/async", slow)
    port = await serve(router)
    response = await http(port, "GET", "/sync")
    assert (response.status, response.body) == (200, b"sync GET")
    assert response.headers["content-type"].startswith("text/plain")
    response = await http(port, "POST", "/async", b"posted")
    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"body": "posted"}
    assert (await http(port, "GET", "/sync/")).status == 404  # exact paths only


async def test_route_headers_and_query(serve, http) -> None:
    """A route sees the query and can set its own headers."""
    router = Router()
    router.add(
        "/q",
        lambda r: Response(200, r.query.get("name", "").encode(), headers=[("X-Route", "yes")]),
    )
    port = await serve(router)
    response = await http(port, "GET", "/q?name=ana")
    assert response.body == b"ana"
    assert response.headers["x-route"] == "yes"


async def test_route_exceptions_are_500(serve, http, caplog) -> None:
    """A route raising (sync or async) answers 500 and the error is logged."""
    router = Router()

    def sync_boom(request) -> Response:
        raise RuntimeError("sync boom")

    async def async_boom(request) -> Response:
        raise RuntimeError("async boom")

    router.add("/sync", sync_boom)
    router.add("/async", async_boom)
    port = await serve(router)
    assert (await http(port, "GET", "/sync")).status == 500
    assert (await http(port, "GET", "/async")).status == 500
    assert "sync boom" in caplog.text
    assert "async boom" in caplog.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(serve, http, method: str) -> None:
    """Methods other than GET, HEAD and POST answer 405 with an Allow header."""
    router = Router()
    router.add("/r", lambda r: Response(200, b"x"))
    port = await serve(router)
    response = await http(port, method, "/r")
    assert response.status == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}


async def test_unknown_paths_are_404(serve, http, site: Path) -> None:
    """Unknown paths answer 404 (GET and POST), also with a static folder mounted."""
    router = Router()
    router.mount_static(StaticFiles(site))
    port = await serve(router)
    assert (await http(port, "GET", "/missing.html")).status == 404
    assert (await http(port, "GET", "/css/")).status == 404  # no index there
    assert (await http(port, "POST", "/missing.html", b"x")).status == 404


@pytest.mark.node
async def test_official_client_served(serve, http, monkeypatch) -> None:
    """The official client is served at <engine path>socket.io.js when npm installed it."""
    monkeypatch.delenv("SALAS_CLIENT_DIR", raising=False)
    dist = find_client_dist()
    if dist is None:
        unavailable("node_modules/socket.io-client is not installed (run scripts/setup.sh)")
    router = Router()
    port = await serve(router, path="/socket.io/")
    assert router.serve_client("/socket.io/") is True
    response = await http(port, "GET", "/socket.io/socket.io.js")
    assert response.status == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.body == (dist / "socket.io.js").read_bytes()
    if (dist / "socket.io.min.js").is_file():
        minified = await http(port, "GET", "/socket.io/socket.io.min.js")
        assert minified.status == 200
    assert (await http(port, "GET", "/socket.io/other.js")).status == 404
    assert (await http(port, "GET", "/socket.io/../package.json")).status == 404
    # the engine path itself still belongs to Engine.IO
    assert (await http(port, "GET", "/socket.io/?EIO=4&transport=polling")).status == 200


async def test_official_client_missing_is_404(serve, http, tmp_path: Path, monkeypatch) -> None:
    """Without the client installed, serve_client reports False and the URL answers 404."""
    monkeypatch.setenv("SALAS_CLIENT_DIR", str(tmp_path))
    router = Router()
    port = await serve(router, path="/socket.io/")
    assert router.serve_client("/socket.io/") is False
    assert (await http(port, "GET", "/socket.io/socket.io.js")).status == 404


async def test_methods_limit_a_route(serve, http) -> None:
    """A route added for GET answers GET and HEAD; POST gets 405 with Allow: GET, HEAD."""
    router = Router()
    router.add("/only-get", lambda r: Response(200, b"got " + r.method.encode()), ("GET",))
    port = await serve(router)
    assert (await http(port, "GET", "/only-get")).body == b"got GET"
    refused = await http(port, "POST", "/only-get", b"x")
    assert refused.status == 405
    assert refused.headers["allow"] == "GET, HEAD"


async def test_one_handler_per_method(serve, http) -> None:
    """Two handlers on one path, by method; the Allow header lists both (and HEAD)."""
    router = Router()
    router.add("/item", lambda r: Response(200, b"read"), methods=["get"])
    router.add("/item", lambda r: Response(204), methods=["DELETE"])
    port = await serve(router)
    assert (await http(port, "GET", "/item")).body == b"read"
    assert (await http(port, "DELETE", "/item")).status == 204
    refused = await http(port, "PUT", "/item", b"")
    assert (refused.status, refused.headers["allow"]) == (405, "DELETE, GET, HEAD")


async def test_head_is_get_without_body(serve, http) -> None:
    """HEAD on a route runs the GET handler and sends its head (Content-Length) only."""
    router = Router()
    router.add("/page", lambda r: Response(200, b"0123456789", headers=[("X-Seen", r.method)]))
    port = await serve(router)
    head = await http(port, "HEAD", "/page")
    assert head.status == 200
    assert head.headers["content-length"] == "10"
    assert head.headers["x-seen"] == "HEAD"
    assert head.body == b""


async def test_static_paths_are_read_only(serve, http, site: Path) -> None:
    """Writing to a static file answers 405 (Allow: GET, HEAD); to a missing path, 404."""
    router = Router()
    router.mount_static(StaticFiles(site))
    port = await serve(router)
    refused = await http(port, "PUT", "/index.html", b"x")
    assert (refused.status, refused.headers["allow"]) == (405, "GET, HEAD")
    assert (await http(port, "DELETE", "/missing.html")).status == 404


def test_add_refuses_bad_routes() -> None:
    """A path without a leading slash, or no methods at all, is a ValueError."""
    router = Router()
    with pytest.raises(ValueError):
        router.add("healthz", lambda r: Response())
    with pytest.raises(ValueError):
        router.add("/healthz", lambda r: Response(), methods=())


async def test_async_routes_run_with_spawn(serve, http) -> None:
    """An async handler runs as a task started by the router's `spawn`."""
    spawned: list[asyncio.Task[None]] = []

    def spawn(coro) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        spawned.append(task)
        return task

    async def handler(request) -> Response:
        return Response(200, b"from a task")

    router = Router(spawn)
    router.add("/a", handler)
    port = await serve(router)
    assert (await http(port, "GET", "/a")).body == b"from a task"
    assert len(spawned) == 1 and spawned[0].done()


async def test_path_parameters(serve, http) -> None:
    """A `{name}` segment matches one segment, percent-decoded (%2F stays inside it)."""
    router = Router()
    router.add(
        "/rooms/{room}/messages",
        lambda r: Response.json(r.path_params),
        methods=("GET",),
    )
    port = await serve(router)
    response = await http(port, "GET", "/rooms/lobby/messages")
    assert (response.status, response.json()) == (200, {"room": "lobby"})
    response = await http(port, "GET", "/rooms/a%2Fb%20c/messages")
    assert response.json() == {"room": "a/b c"}
    response = await http(port, "GET", "/rooms/%C3%A9t%C3%A9/messages")
    assert response.json() == {"room": "été"}
    for path in ("/rooms/a/b/messages", "/rooms//messages", "/rooms/x", "/rooms/x/messages/"):
        assert (await http(port, "GET", path)).status == 404, path


async def test_path_parameter_that_is_not_utf8_is_surrogate_escaped(serve, http) -> None:
    """Bytes that are not UTF-8 reach the handler as lone surrogates, not as U+FFFD."""
    router = Router()
    seen: list[str] = []

    def handler(request) -> Response:
        seen.append(request.path_params["name"])
        return Response(200)

    router.add("/p/{name}", handler, methods=("GET",))
    port = await serve(router)
    assert (await http(port, "GET", "/p/a%FFb")).status == 200
    assert seen == ["a\udcffb"]


async def test_path_parameter_routes_by_method(serve, http) -> None:
    """Patterns answer by method: an unknown method is 405 with the Allow of every
    pattern that fits; an exact route wins over a pattern."""
    router = Router()
    router.add("/r/{x}", lambda r: Response(200, b"get " + r.path_params["x"].encode()), ("GET",))
    router.add("/r/{y}", lambda r: Response(201, b"post " + r.path_params["y"].encode()), ("POST",))
    router.add("/r/fixed", lambda r: Response(200, b"exact"), ("GET",))
    port = await serve(router)
    assert (await http(port, "GET", "/r/one")).body == b"get one"
    response = await http(port, "POST", "/r/two")
    assert (response.status, response.body) == (201, b"post two")
    response = await http(port, "DELETE", "/r/three")
    assert response.status == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}
    assert (await http(port, "GET", "/r/fixed")).body == b"exact"


@pytest.mark.parametrize(
    "path", ["/a/{b", "/a/x{b}", "/a/{b}{c}", "/a/{1b}", "/a/{b}/{b}", "/a/b}"]
)
def test_bad_route_patterns_are_refused(path: str) -> None:
    """A brace that is not a whole `{name}` segment, or a name used twice, is a ValueError."""
    with pytest.raises(ValueError):
        Router().add(path, lambda r: Response())


def test_routes_lists_paths_and_methods() -> None:
    """`routes()` lists exact and parameter paths as added, with their methods."""
    router = Router()
    router.add("/x", lambda r: Response(), ("POST",))
    router.add("/items/{id}", lambda r: Response(), ("GET",))
    router.add("/items/{id}", lambda r: Response(), ("DELETE",))
    assert router.routes() == {"/x": ["POST"], "/items/{id}": ["DELETE", "GET", "HEAD"]}
