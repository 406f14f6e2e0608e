"""Plain HTTP routes beside Engine.IO: exact paths, a static folder, the official client.

Route handlers may be sync or async and return a `Response`.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import inspect
import logging
import mimetypes
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from salas.engine.http import HttpRequest

__all__ = ["Response", "RouteHandler", "Router", "StaticFiles", "find_client_dist"]

logger = logging.getLogger("salas.engine")


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=UTF-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: object, status: int = 200) -> Response:
        import orjson

        return cls(status, orjson.dumps(data), "application/json")


RouteHandler = Callable[[HttpRequest], Response | Awaitable[Response]]


class StaticFiles:
    """Files under one folder, by URL path; never anything outside it."""

    def __init__(self, directory: str | os.PathLike[str], index: str = "index.html") -> None:
        self.directory = Path(directory).resolve()
        self.index = index
        if not self.directory.is_dir():
            raise ValueError(f"static folder does not exist: {self.directory}")

    def lookup(self, url_path: str) -> Path | None:
        relative = url_path.lstrip("/")
        if not relative or relative.endswith("/"):
            relative += self.index
        candidate = (self.directory / relative).resolve()
        if not candidate.is_relative_to(self.directory) or not candidate.is_file():
            return None
        return candidate


def find_client_dist() -> Path | None:
    """Where the official `socket.io-client` browser bundle is, None when nowhere.

    In order: `SALAS_CLIENT_DIR` when set (an explicit choice wins, and names the only place
    looked at); the copy an installed salas carries (`salas/assets/socket.io-client`, put
    there when the wheel is built); `node_modules/socket.io-client/dist` in the current folder
    or any folder above this package (a checkout after `npm ci`).
    """
    explicit = os.environ.get("SALAS_CLIENT_DIR")
    if explicit:
        path = Path(explicit)
        return path if (path / "socket.io.js").is_file() else None
    bundled = importlib.resources.files("salas") / "assets" / "socket.io-client"
    if isinstance(bundled, Path) and (bundled / "socket.io.js").is_file():
        return bundled
    starts = [Path.cwd(), Path(__file__).resolve()]
    for start in starts:
        for folder in [start, *start.parents]:
            dist = folder / "node_modules" / "socket.io-client" / "dist"
            if (dist / "socket.io.js").is_file():
                return dist
    return None


_CLIENT_FILES = {
    "socket.io.js": "application/javascript; charset=utf-8",
    "socket.io.min.js": "application/javascript; charset=utf-8",
    "socket.io.js.map": "application/json",
    "socket.io.min.js.map": "application/json",
    "socket.io.esm.min.js": "application/javascript; charset=utf-8",
    "socket.io.esm.min.js.map": "application/json",
}


class Router:
    """The engine's fallback for requests outside its path."""

    def __init__(self) -> None:
        self._routes: dict[str, RouteHandler] = {}
        self._static: list[tuple[str, StaticFiles]] = []  # (URL prefix, files), longest first
        self._client_prefix: str | None = None
        self._client_dist: Path | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, path: str, handler: RouteHandler) -> None:
        self._routes[path] = handler

    def mount_static(self, files: StaticFiles, prefix: str = "/") -> None:
        """Serve `files` under the URL `prefix` ("/" for the site root)."""
        if not prefix.endswith("/"):
            prefix += "/"
        self._static.append((prefix, files))
        self._static.sort(key=lambda mount: len(mount[0]), reverse=True)

    def serve_client(self, engine_path: str) -> bool:
        """Serve the official browser client under `engine_path`; False if it isn't installed."""
        self._client_dist = find_client_dist()
        self._client_prefix = engine_path
        return self._client_dist is not None

    def __call__(self, request: HttpRequest) -> None:
        if request.method not in ("GET", "HEAD", "POST"):
            request.respond(405, b"Method Not Allowed", [("Allow", "GET, HEAD, POST")])
            return
        handler = self._routes.get(request.path)
        if handler is not None:
            self._run(handler, request)
            return
        if request.method == "POST":
            request.respond(404, b"Not Found")
            return
        if self._client_prefix and request.path.startswith(self._client_prefix):
            name = request.path[len(self._client_prefix) :]
            if name in _CLIENT_FILES and self._client_dist is not None:
                self._send_file(request, self._client_dist / name, _CLIENT_FILES[name])
                return
        for prefix, files in self._static:
            if request.path == prefix[:-1] and prefix != "/":
                # "/tutorial" → "/tutorial/" so that the page's relative URLs resolve.
                request.respond(301, b"", [("Location", prefix)])
                return
            if not request.path.startswith(prefix):
                continue
            found = files.lookup(request.path[len(prefix) - 1 :])
            if found is not None:
                kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind == "application/javascript":
                    kind += "; charset=utf-8"
                self._send_file(request, found, kind)
                return
        request.respond(404, b"Not Found")

    def _send_file(self, request: HttpRequest, path: Path, content_type: str) -> None:
        try:
            body = path.read_bytes()
        except OSError:
            request.respond(404, b"Not Found")
            return
        request.respond(200, body, [("Cache-Control", "no-cache")], content_type)

    def _run(self, handler: RouteHandler, request: HttpRequest) -> None:
        result = handler(request)
        if inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(self._finish(result, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            assert isinstance(result, Response)
            request.respond(result.status, result.body, result.headers, result.content_type)

    @staticmethod
    async def _finish(result: Awaitable[Response], request: HttpRequest) -> None:
        try:
            response = await result
        except Exception:
            logger.exception("error in route %s", request.path)
            response = Response(500, b"Internal Server Error")
        request.respond(response.status, response.body, response.headers, response.content_type)
