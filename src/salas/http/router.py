"""`Router`: plain HTTP beside Engine.IO — routes by method (exact paths, or paths with
`{name}` parameters), static folders, the official browser client.

The engine hands it every request outside its path. Route handlers may be sync or async
and return a `Response`; an async one runs as a task started with the router's `spawn`
(the server's task registry), so shutdown can wait for it or cancel it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from salas.engine.logsafe import printable
from salas.http.request import Request
from salas.http.response import Response
from salas.http.static import CLIENT_FILES, StaticFiles, find_client_dist

__all__ = ["DEFAULT_METHODS", "RouteHandler", "Router", "Spawn"]

_CLIENT_HEADERS = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]

logger = logging.getLogger("salas.http")

RouteHandler = Callable[[Request], Response | Awaitable[Response]]
# Starts a coroutine in the background and keeps it until it is done (`TaskRegistry.spawn`).
Spawn = Callable[[Coroutine[Any, Any, None]], object]

# What a route answers when `add` is not told: GET (and so HEAD) and POST.
DEFAULT_METHODS = ("GET", "POST")
# Static files and the client are read-only.
_READ_METHODS = ("GET", "HEAD")
# A file, its content type and extra headers; or where to redirect.
_Found = tuple[Path, str, list[tuple[str, str]]] | str
# A path segment that is a parameter: "{name}", the name a Python identifier.
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(slots=True)
class _Pattern:
    """A route path with parameters, split into segments ("" first, for the leading "/");
    a parameter segment is its name in `names`, a literal one is None there."""

    path: str
    segments: tuple[str, ...]
    names: tuple[str | None, ...]
    by_method: dict[str, RouteHandler] = field(default_factory=dict)

    def match(self, raw_segments: list[str]) -> dict[str, str] | None:
        """The parameters, if the (still percent-encoded) segments fit; else None."""
        if len(raw_segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for raw, literal, name in zip(raw_segments, self.segments, self.names, strict=True):
            if name is None:
                if unquote(raw, errors="replace") != literal:
                    return None
            elif not raw:
                return None  # an empty segment ("//") fills no parameter
            else:
                # UTF-8; bytes that are not become lone surrogates (surrogateescape), which a
                # handler can tell from text and refuse, where U+FFFD would pass as a symbol.
                params[name] = unquote(raw, errors="surrogateescape")
        return params


class Router:
    """The server's answer to every request outside the Engine.IO path.

    Exact routes first (by path, then method: a known path with another method answers
    405 with an `Allow` header), then routes with parameters (in the order added; the
    first whose path fits, with 405 likewise), then the official client under the
    engine's path, then static folders (longest prefix first), else 404.

    A parameter is one whole segment, `"/api/rooms/{room}/messages"`: it matches one
    non-empty segment of the path as sent, then percent-decoded (so `%2F` is a "/" inside
    the value, never a separator), and the handler reads it in `request.path_params`.
    """

    def __init__(self, spawn: Spawn | None = None) -> None:
        """`spawn` runs async route handlers; without one the router keeps its own tasks."""
        self._routes: dict[str, dict[str, RouteHandler]] = {}
        self._patterns: list[_Pattern] = []
        self._static: list[tuple[str, StaticFiles]] = []  # (URL prefix, files), longest first
        self._client_prefix: str | None = None
        self._client_dist: Path | None = None
        self._spawn = spawn if spawn is not None else self._keep
        self._own_tasks: set[asyncio.Task[None]] = set()

    def add(
        self, path: str, handler: RouteHandler, methods: Iterable[str] = DEFAULT_METHODS
    ) -> None:
        """Answer `methods` at `path` with `handler`; GET also answers HEAD.

        `path` is exact, or has `{name}` segments (parameters, see the class). A path and
        method added again replace the earlier handler. ValueError for a path without a
        leading "/", an empty method list, a brace that is not a whole `{name}` segment, or
        a parameter name used twice.
        """
        if not path.startswith("/"):
            raise ValueError(f"a route path starts with '/': {path!r}")
        wanted = [method.strip().upper() for method in methods]
        if not wanted or not all(wanted):
            raise ValueError(f"a route needs at least one method: {path!r}")
        if "GET" in wanted and "HEAD" not in wanted:
            wanted.append("HEAD")
        by_method = self._by_method(path)
        for method in wanted:
            by_method[method] = handler

    def _by_method(self, path: str) -> dict[str, RouteHandler]:
        """The handlers of `path` by method (a new, empty table for a new path)."""
        if "{" not in path and "}" not in path:
            return self._routes.setdefault(path, {})
        for pattern in self._patterns:
            if pattern.path == path:
                return pattern.by_method
        segments = tuple(path.split("/"))
        names: list[str | None] = []
        for segment in segments:
            param = _PARAM.fullmatch(segment)
            if param is None and ("{" in segment or "}" in segment):
                raise ValueError(f"a route parameter is a whole '{{name}}' segment: {path!r}")
            names.append(param.group(1) if param else None)
        given = [name for name in names if name is not None]
        if len(set(given)) != len(given):
            raise ValueError(f"a route parameter name is used twice: {path!r}")
        pattern = _Pattern(path, segments, tuple(names))
        self._patterns.append(pattern)
        return pattern.by_method

    def routes(self) -> dict[str, list[str]]:
        """Every route path (as added, parameters as `{name}`) with its methods, sorted."""
        found = {path: sorted(by_method) for path, by_method in self._routes.items()}
        found.update({p.path: sorted(p.by_method) for p in self._patterns})
        return found

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

    def serves(self, raw_path: str) -> bool:
        """Whether `raw_path` (as sent) is a route's or the official client's.

        What the router answers even beside another application (`salas.asgi`); static
        folders are not counted."""
        if raw_path in self._routes or unquote(raw_path) in self._routes:
            return True
        segments = raw_path.split("/")
        if any(pattern.match(segments) is not None for pattern in self._patterns):
            return True
        prefix = self._client_prefix
        if not prefix or not raw_path.startswith(prefix):
            return False
        return raw_path[len(prefix) :] in CLIENT_FILES

    def __call__(self, request: Request) -> None:
        """Answer `request` (now, or when its async handler finishes)."""
        routes = self._routes.get(request.path)
        if routes is None and self._patterns:
            routes = self._match(request)
        if routes is not None:
            handler = routes.get(request.method)
            if handler is None:
                allow = ", ".join(sorted(routes))
                request.respond(405, b"Method Not Allowed", [("Allow", allow)])
            else:
                self._run(handler, request)
            return
        found = self._find(request.path)
        if found is None:
            request.respond(404, b"Not Found")
        elif request.method not in _READ_METHODS:
            request.respond(405, b"Method Not Allowed", [("Allow", ", ".join(_READ_METHODS))])
        elif isinstance(found, str):
            request.respond(301, b"", [("Location", found)])
        else:
            self._send_file(request, *found)

    def _match(self, request: Request) -> dict[str, RouteHandler] | None:
        """The handlers of the first pattern the request's path fits, with its parameters
        put in `request.path_params`; for a method it lacks, the methods of all that fit
        (for the 405's `Allow`)."""
        raw_segments = (request.raw_path or request.path).split("/")
        allowed: dict[str, RouteHandler] = {}
        for pattern in self._patterns:
            params = pattern.match(raw_segments)
            if params is None:
                continue
            if request.method in pattern.by_method:
                request.path_params = params
                return pattern.by_method
            allowed.update(pattern.by_method)
        return allowed or None

    def _find(self, path: str) -> _Found | None:
        if self._client_prefix and path.startswith(self._client_prefix):
            name = path[len(self._client_prefix) :]
            if name in CLIENT_FILES and self._client_dist is not None:
                # Scripts other sites may load too: no page headers, but never sniffed.
                return self._client_dist / name, CLIENT_FILES[name], _CLIENT_HEADERS
        for prefix, files in self._static:
            if path == prefix[:-1] and prefix != "/":
                # "/tutorial" → "/tutorial/" so that the page's relative URLs resolve.
                return prefix
            if not path.startswith(prefix):
                continue
            found = files.lookup(path[len(prefix) - 1 :])
            if found is not None:
                kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind == "application/javascript":
                    kind += "; charset=utf-8"
                return found, kind, files.headers
        return None

    @staticmethod
    def _send_file(
        request: Request, path: Path, content_type: str, headers: list[tuple[str, str]]
    ) -> None:
        try:
            body = path.read_bytes()
        except OSError:
            request.respond(404, b"Not Found")
            return
        request.respond(200, body, [("Cache-Control", "no-cache"), *headers], content_type)

    def _run(self, handler: RouteHandler, request: Request) -> None:
        result = handler(request)
        if inspect.isawaitable(result):
            self._spawn(_finish(result, request))
        else:
            assert isinstance(result, Response)
            request.respond(result.status, result.body, result.headers, result.content_type)

    def _keep(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._own_tasks.add(task)
        task.add_done_callback(self._own_tasks.discard)


async def _finish(result: Awaitable[Response], request: Request) -> None:
    try:
        response = await result
    except Exception:
        logger.exception("error in route %s", printable(request.path))
        response = Response(500, b"Internal Server Error")
    request.respond(response.status, response.body, response.headers, response.content_type)
