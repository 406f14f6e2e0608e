"""Plain HTTP beside Engine.IO: exact routes, static files, the official client
(salas.engine.routes), served through a real EngineServer's fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from salas.engine.routes import Response, Router, StaticFiles, find_client_dist
from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A static folder, with a secret file next to it (outside it)."""
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "docs").mkdir()
    (static / "index.html").write_text("<h1>home</h1>")
    (static / "css" / "site.css").write_text("body{}")
    (static / "docs" / "index.html").write_text("docs home")
    (static / "data.bin").write_bytes(b"\x00\x01")
    (static / "hello world.txt").write_text("spaced")
    (tmp_path / "secret.txt").write_text("top secret")
    (static / "link.txt").symlink_to(tmp_path / "secret.txt")
    return static


async def test_exact_routes_sync_and_async(engine, http) -> None:
    """A sync and an async route handler both answer their exact path (GET and POST)."""
    router = Router()
    router.add("/sync", lambda request: Response(200, b"sync " + request.method.encode()))

    async def slow(request) -> Response:
        await asyncio.sleep(0.01)
        return Response.json({"body": request.body.decode()}, status=201)

    router.add("/async", slow)
    h = await engine(fallback=router)
    response = await http(h.port, "GET", "/sync")
    assert (response.status, response.body) == (200, b"sync GET")
    assert response.headers["content-type"].startswith("text/plain")
    response = await http(h.port, "POST", "/async", b"posted")
    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"body": "posted"}
    assert (await http(h.port, "GET", "/sync/")).status == 404  # exact paths only


async def test_route_headers_and_query(engine, http) -> None:
    """A route sees the query and can set its own headers."""
    router = Router()
    router.add(
        "/q",
        lambda r: Response(200, r.query.get("name", "").encode(), headers=[("X-Route", "yes")]),
    )
    h = await engine(fallback=router)
    response = await http(h.port, "GET", "/q?name=ana")
    assert response.body == b"ana"
    assert response.headers["x-route"] == "yes"


async def test_route_exceptions_are_500(engine, http, caplog) -> None:
    """A route raising (sync or async) answers 500 and the error is logged."""
    router = Router()

    def sync_boom(request) -> Response:
        raise RuntimeError("sync boom")

    async def async_boom(request) -> Response:
        raise RuntimeError("async boom")

    router.add("/sync", sync_boom)
    router.add("/async", async_boom)
    h = await engine(fallback=router)
    assert (await http(h.port, "GET", "/sync")).status == 500
    assert (await http(h.port, "GET", "/async")).status == 500
    assert "sync boom" in caplog.text
    assert "async boom" in caplog.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(engine, http, method: str) -> None:
    """Methods other than GET, HEAD and POST answer 405 with an Allow header."""
    router = Router()
    router.add("/r", lambda r: Response(200, b"x"))
    h = await engine(fallback=router)
    response = await http(h.port, method, "/r")
    assert response.status == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}


async def test_unknown_paths_are_404(engine, http, site: Path) -> None:
    """Unknown paths answer 404 (GET and POST), also with a static folder mounted."""
    router = Router()
    router.mount_static(StaticFiles(site))
    h = await engine(fallback=router)
    assert (await http(h.port, "GET", "/missing.html")).status == 404
    assert (await http(h.port, "GET", "/css/")).status == 404  # no index there
    assert (await http(h.port, "POST", "/index.html", b"x")).status == 404


async def test_static_files(engine, http, site: Path) -> None:
    """Static files are served with their type; folders serve their index.html."""
    router = Router()
    router.mount_static(StaticFiles(site))
    h = await engine(fallback=router)
    index = await http(h.port, "GET", "/")
    assert (index.status, index.body) == (200, b"<h1>home</h1>")
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    css = await http(h.port, "GET", "/css/site.css?v=3")
    assert (css.status, css.body) == (200, b"body{}")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    docs = await http(h.port, "GET", "/docs/")
    assert docs.body == b"docs home"
    data = await http(h.port, "GET", "/data.bin")
    assert data.body == b"\x00\x01"
    assert data.headers["content-type"] == "application/octet-stream"
    head = await http(h.port, "HEAD", "/css/site.css")
    assert head.status == 200
    assert head.headers["content-length"] == "6"


async def test_static_under_prefix(engine, http, site: Path) -> None:
    """A folder mounted under a prefix serves there; the bare prefix redirects to prefix/."""
    router = Router()
    router.mount_static(StaticFiles(site), "/app")
    h = await engine(fallback=router)
    assert (await http(h.port, "GET", "/app/css/site.css")).body == b"body{}"
    redirect = await http(h.port, "GET", "/app")
    assert redirect.status == 301
    assert redirect.headers["location"] == "/app/"
    assert (await http(h.port, "GET", "/app/")).body == b"<h1>home</h1>"
    assert (await http(h.port, "GET", "/css/site.css")).status == 404


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/css/../../secret.txt",
        "/link.txt",  # a symlink pointing outside the folder
        "//secret.txt",
    ],
)
async def test_static_no_path_traversal(engine, http, site: Path, target: str) -> None:
    """Nothing outside the static folder is reachable (.., encoded .., symlinks)."""
    router = Router()
    router.mount_static(StaticFiles(site))
    h = await engine(fallback=router)
    response = await http(h.port, "GET", target)
    assert response.status == 404
    assert b"top secret" not in response.body


@pytest.mark.parametrize("target", ["/../pyproject.toml", "/%2e%2e/pyproject.toml"])
async def test_static_no_traversal_to_project_files(engine, http, target: str) -> None:
    """With src/ mounted, /../pyproject.toml (plain or %2e-encoded) is not served."""
    assert (ROOT / "pyproject.toml").is_file()
    router = Router()
    router.mount_static(StaticFiles(ROOT / "src"))
    h = await engine(fallback=router)
    response = await http(h.port, "GET", target)
    assert response.status == 404
    assert b"[project]" not in response.body


async def test_static_percent_encoded_name(engine, http, site: Path) -> None:
    """A file name with a space is served at its percent-encoded URL."""
    router = Router()
    router.mount_static(StaticFiles(site))
    h = await engine(fallback=router)
    response = await http(h.port, "GET", "/hello%20world.txt")
    assert (response.status, response.body) == (200, b"spaced")


def test_static_files_needs_existing_folder(tmp_path: Path) -> None:
    """StaticFiles refuses a folder that does not exist."""
    with pytest.raises(ValueError):
        StaticFiles(tmp_path / "nope")


def test_static_lookup(site: Path) -> None:
    """lookup maps URL paths to files inside the folder, None for anything else."""
    files = StaticFiles(site)
    assert files.lookup("/") == (site / "index.html").resolve()
    assert files.lookup("/docs/") == (site / "docs" / "index.html").resolve()
    assert files.lookup("/css") is None  # a folder without the slash
    assert files.lookup("/../secret.txt") is None
    assert files.lookup("/link.txt") is None


def test_find_client_dist_env(tmp_path: Path, monkeypatch) -> None:
    """SALAS_CLIENT_DIR wins when it holds socket.io.js, and gives None when it does not."""
    (tmp_path / "socket.io.js").write_text("// client")
    monkeypatch.setenv("SALAS_CLIENT_DIR", str(tmp_path))
    assert find_client_dist() == tmp_path
    monkeypatch.setenv("SALAS_CLIENT_DIR", str(tmp_path / "empty"))
    assert find_client_dist() is None


@pytest.mark.node
async def test_official_client_served(engine, http, monkeypatch) -> None:
    """The official client is served at <engine path>socket.io.js when npm installed it."""
    monkeypatch.delenv("SALAS_CLIENT_DIR", raising=False)
    dist = find_client_dist()
    if dist is None:
        unavailable("node_modules/socket.io-client is not installed (run scripts/setup.sh)")
    router = Router()
    h = await engine(fallback=router, path="/socket.io/")
    assert router.serve_client(h.config.path) is True
    response = await http(h.port, "GET", "/socket.io/socket.io.js")
    assert response.status == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.body == (dist / "socket.io.js").read_bytes()
    if (dist / "socket.io.min.js").is_file():
        minified = await http(h.port, "GET", "/socket.io/socket.io.min.js")
        assert minified.status == 200
    assert (await http(h.port, "GET", "/socket.io/other.js")).status == 404
    assert (await http(h.port, "GET", "/socket.io/../package.json")).status == 404
    # the engine path itself still belongs to Engine.IO
    assert (await http(h.port, "GET", "/socket.io/?EIO=4&transport=polling")).status == 200


async def test_official_client_missing_is_404(engine, http, tmp_path: Path, monkeypatch) -> None:
    """Without the client installed, serve_client reports False and the URL answers 404."""
    monkeypatch.setenv("SALAS_CLIENT_DIR", str(tmp_path))
    router = Router()
    h = await engine(fallback=router, path="/socket.io/")
    assert router.serve_client(h.config.path) is False
    assert (await http(h.port, "GET", "/socket.io/socket.io.js")).status == 404
