"""`StaticFiles` and `find_client_dist` (salas.http.static): files of one folder by URL path,
never anything outside it, served through a Router behind a real EngineServer."""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

import pytest

from salas.http import SECURITY_HEADERS, Router, StaticFiles, find_client_dist

ROOT = Path(__file__).resolve().parents[2]


async def test_static_files(serve, http, site: Path) -> None:
    """Static files are served with their type; folders serve their index.html."""
    router = Router()
    router.mount_static(StaticFiles(site))
    port = await serve(router)
    index = await http(port, "GET", "/")
    assert (index.status, index.body) == (200, b"<h1>home</h1>")
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    css = await http(port, "GET", "/css/site.css?v=3")
    assert (css.status, css.body) == (200, b"body{}")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    docs = await http(port, "GET", "/docs/")
    assert docs.body == b"docs home"
    data = await http(port, "GET", "/data.bin")
    assert data.body == b"\x00\x01"
    assert data.headers["content-type"] == "application/octet-stream"
    head = await http(port, "HEAD", "/css/site.css")
    assert head.status == 200
    assert head.headers["content-length"] == "6"


async def test_static_under_prefix(serve, http, site: Path) -> None:
    """A folder mounted under a prefix serves there; the bare prefix redirects to prefix/."""
    router = Router()
    router.mount_static(StaticFiles(site), "/app")
    port = await serve(router)
    assert (await http(port, "GET", "/app/css/site.css")).body == b"body{}"
    redirect = await http(port, "GET", "/app")
    assert redirect.status == 301
    assert redirect.headers["location"] == "/app/"
    assert (await http(port, "GET", "/app/")).body == b"<h1>home</h1>"
    assert (await http(port, "GET", "/css/site.css")).status == 404


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
async def test_static_no_path_traversal(serve, http, site: Path, target: str) -> None:
    """Nothing outside the static folder is reachable (.., encoded .., symlinks)."""
    router = Router()
    router.mount_static(StaticFiles(site))
    port = await serve(router)
    response = await http(port, "GET", target)
    assert response.status == 404
    assert b"top secret" not in response.body


@pytest.mark.parametrize("target", ["/../pyproject.toml", "/%2e%2e/pyproject.toml"])
async def test_static_no_traversal_to_project_files(serve, http, target: str) -> None:
    """With src/ mounted, /../pyproject.toml (plain or %2e-encoded) is not served."""
    assert (ROOT / "pyproject.toml").is_file()
    router = Router()
    router.mount_static(StaticFiles(ROOT / "src"))
    port = await serve(router)
    response = await http(port, "GET", target)
    assert response.status == 404
    assert b"[project]" not in response.body


async def test_static_percent_encoded_name(serve, http, site: Path) -> None:
    """A file name with a space is served at its percent-encoded URL."""
    router = Router()
    router.mount_static(StaticFiles(site))
    port = await serve(router)
    response = await http(port, "GET", "/hello%20world.txt")
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


def test_find_client_dist_prefers_the_bundled_client(tmp_path: Path, monkeypatch) -> None:
    """The copy the installed package carries comes before node_modules; SALAS_CLIENT_DIR wins."""
    package = tmp_path / "salas"
    bundled = package / "assets" / "socket.io-client"
    bundled.mkdir(parents=True)
    (bundled / "socket.io.js").write_text("// bundled client")
    monkeypatch.setattr(importlib.resources, "files", lambda name: package)
    monkeypatch.delenv("SALAS_CLIENT_DIR", raising=False)
    assert find_client_dist() == bundled
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    (explicit / "socket.io.js").write_text("// chosen client")
    monkeypatch.setenv("SALAS_CLIENT_DIR", str(explicit))
    assert find_client_dist() == explicit


@pytest.mark.parametrize(
    "target",
    [
        "/index.html%00",
        "/index.html%00.png",
        "/%00",
        "/" + "a" * 300,
        "/" + "a" * 300 + ".css",
        "/css/" + "b" * 256 + "/site.css",
        "/" + "c/" * 2000 + "x",
        "/" + "%61" * 5000,
        "/css/..%5c..%5csecret.txt",
        "/css%5csite.css",
        "/..%2f..%2fsecret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%ff%fe.txt",
        "/%e2%82.txt",
        "/docs/../../secret.txt",
    ],
)
async def test_hostile_static_paths_answer_404_without_a_traceback(
    serve, http, site: Path, caplog, target: str
) -> None:
    """NUL bytes, over-long names, backslashes, encoded slashes and invalid UTF-8 escapes
    answer 404 and log no error (a traceback per request would flood the log)."""
    router = Router()
    router.mount_static(StaticFiles(site))
    port = await serve(router)
    response = await http(port, "GET", target)
    assert response.status == 404
    assert b"top secret" not in response.body
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert (await http(port, "GET", "/css/site.css")).status == 200


@pytest.mark.parametrize(
    "url_path",
    ["/a\x00b", "/index.html\x00", "/" + "a" * 300, "/x" * 3000, "/css\\site.css", "/\udcff"],
)
def test_static_lookup_of_hostile_paths_is_none(site: Path, url_path: str) -> None:
    """lookup answers None, never raises, for NUL, over-long, backslashed or unencodable paths."""
    assert StaticFiles(site).lookup(url_path) is None


async def test_static_headers_go_with_every_file(serve, http, site: Path) -> None:
    """A folder's `headers` are sent with each of its files, not with 404s or redirects."""
    router = Router()
    router.mount_static(StaticFiles(site, headers=SECURITY_HEADERS), "/app")
    router.mount_static(StaticFiles(site), "/plain")
    port = await serve(router)
    for target in ("/app/", "/app/css/site.css"):
        response = await http(port, "GET", target)
        assert response.status == 200
        for name, value in SECURITY_HEADERS:
            assert response.headers[name.lower()] == value
    plain = await http(port, "GET", "/plain/")
    assert plain.status == 200 and "content-security-policy" not in plain.headers
    for target in ("/app/missing.txt", "/app"):
        assert "content-security-policy" not in (await http(port, "GET", target)).headers
