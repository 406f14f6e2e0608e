"""The integration test application (``tests/apps/salas_app.py``'s ``io``) beside a Starlette
application, for ``tests/test_asgi.py``; run with uvicorn:

- ``tests.apps.starlette_app:outer``: ``ASGIApp(io, other_asgi_app=web)``, salas around the
  Starlette application (salas' lifespan runs the application's);
- ``tests.apps.starlette_app:mounted``: a Starlette application that mounts
  ``ASGIApp(io)`` at ``/socket.io`` and starts ``io`` from its own lifespan.

Both answer ``GET /hello`` (Starlette) and ``GET /status`` (whether ``io`` is open, from
Starlette), and print ``LIFESPAN <event>`` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from tests.apps.salas_app import io

from salas.asgi import ASGIApp


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello from starlette")


async def status(request: Request) -> JSONResponse:
    # `wait_closed` returns at once while io is not open, and waits while it is.
    try:
        await asyncio.wait_for(io.wait_closed(), 0.05)
    except TimeoutError:
        return JSONResponse({"io_open": True})
    return JSONResponse({"io_open": False})


@contextlib.asynccontextmanager
async def web_lifespan(app: Starlette) -> AsyncIterator[None]:
    print("LIFESPAN app-startup", flush=True)
    yield
    print("LIFESPAN app-shutdown", flush=True)


routes = [Route("/hello", hello), Route("/status", status)]
web = Starlette(routes=routes, lifespan=web_lifespan)
outer = ASGIApp(io, other_asgi_app=web)


@contextlib.asynccontextmanager
async def mounted_lifespan(app: Starlette) -> AsyncIterator[None]:
    await io.open()
    print("LIFESPAN app-startup", flush=True)
    yield
    print("LIFESPAN app-shutdown", flush=True)
    await io.shutdown()


mounted = Starlette(
    routes=[*routes, Mount("/socket.io", app=ASGIApp(io))], lifespan=mounted_lifespan
)
